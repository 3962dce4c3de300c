"""Anti-aliased rasteriser of 3D primitives into depth-sorted layers.

Each primitive is a tapered capsule (round or elliptic cross-section) rasterised analytically
over its bounding box: a signed distance gives a 1-pixel-wide coverage ramp (anti-aliasing), and
the sphere-swept surface gives a depth and a normal (shading) per pixel. The layers are then
composited per pixel front to back by depth, so limbs that cross the torso or each other occlude
correctly; the parsing label of a pixel is the label that contributes most to its colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fastpose.data.cihp import CIHP_INDEX
from fastpose.data.synthetic.appearance import Material

LIGHT = np.array([-0.40, 0.62, 0.68]) / np.linalg.norm([-0.40, 0.62, 0.68])  # camera coords
AMBIENT, DIFFUSE = 0.52, 0.55
BACKGROUND = CIHP_INDEX["background"]


@dataclass
class Prim:
    """A tapered capsule from ``a`` to ``b`` (local frame, head units).

    Radii are ``(along the person's left axis, along the forward axis)``: equal for round
    limbs, different for the torso-like parts whose cross-section is an ellipse."""

    a: np.ndarray  # [3] start point
    b: np.ndarray  # [3] end point
    ra: tuple[float, float]  # radii at a
    rb: tuple[float, float]  # radii at b
    materials: tuple[tuple[float, Material], ...]  # (start fraction along a->b, material)
    cap: tuple[float, float] = (1.0, 1.0)  # end-cap flattening at a, b (1 = round, >1 flatter)
    bias: float = 0.0  # depth offset (head units) that layers garments over the body
    part: str = ""  # body part name, used by the keypoint occlusion test (render.py)
    occludes: bool = True  # can hide keypoints (hair and bags do not)


@dataclass(frozen=True)
class Camera:
    """Orthographic camera: local frame -> pixels."""

    basis: np.ndarray  # [3, 3] rows = person's (left, up, forward) in camera coords
    scale: float  # pixels per head unit
    ox: float  # column of the local origin
    oy: float  # row of the ground (local u = 0)

    def project(self, p: np.ndarray) -> np.ndarray:
        """Local points ``[..., 3]`` -> ``[..., 3]`` = (column, row, depth in head units)."""
        c = p @ self.basis
        return np.stack([self.ox + self.scale * c[..., 0], self.oy - self.scale * c[..., 1],
                         c[..., 2]], axis=-1)


# Layer buffers reused between images of one process (fresh multi-megabyte arrays per image
# cost more in page faults than refilling them). Rendering is single-threaded per process.
_BUFFERS: dict[tuple[int, int], dict[str, np.ndarray]] = {}


def _buffers(h: int, w: int, n: int) -> dict[str, np.ndarray]:
    buf = _BUFFERS.get((h, w))
    if buf is None or buf["alpha"].shape[0] < n:
        buf = {"alpha": np.empty((n, h, w), np.float32), "depth": np.empty((n, h, w), np.float32),
               "color": np.empty((n, h, w, 3), np.float32), "label": np.empty((n, h, w), np.uint8)}
        _BUFFERS[(h, w)] = buf
    return buf


class Canvas:
    """Per-primitive layers (coverage, depth, colour, label) composited at the end."""

    def __init__(self, h: int, w: int, n: int):
        self.h, self.w = h, w
        buf = _buffers(h, w, n)
        self.alpha, self.depth = buf["alpha"][:n], buf["depth"][:n]
        self.color, self.label = buf["color"][:n], buf["label"][:n]
        self.alpha.fill(0.0)
        self.depth.fill(-1e4)
        self.color.fill(0.0)
        self.label.fill(0)
        self.occludes = np.zeros(n, bool)
        self.parts: list[str] = []
        self.n = 0

    def window(self, x0: float, x1: float, y0: float, y1: float):
        """Integer pixel window covering [x0, x1] x [y0, y1], clipped; None when empty."""
        c0, c1 = max(int(math.floor(x0)), 0), min(int(math.ceil(x1)) + 1, self.w)
        r0, r1 = max(int(math.floor(y0)), 0), min(int(math.ceil(y1)) + 1, self.h)
        if c0 >= c1 or r0 >= r1:
            return None
        return r0, r1, c0, c1

    def add(self, win, alpha, depth, color, label, occludes: bool, part: str) -> None:
        r0, r1, c0, c1 = win
        i = self.n
        self.alpha[i, r0:r1, c0:c1] = alpha
        self.depth[i, r0:r1, c0:c1] = depth
        self.color[i, r0:r1, c0:c1] = color
        self.label[i, r0:r1, c0:c1] = label
        self.occludes[i] = occludes
        self.parts.append(part)
        self.n += 1

    def composite(self, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Front-to-back over-compositing: ``([H, W, 3] float image, [H, W] uint8 labels)``.

        Only pixels that some primitive touches are sorted; the weights are scattered back to
        the unsorted layer order so colours and labels need no gather."""
        n, hw = self.n, self.h * self.w
        alpha = self.alpha[:n].reshape(n, hw)
        idx = np.flatnonzero(alpha.max(0) > 0)
        img = background.reshape(hw, 3).copy()
        lab = np.full(hw, BACKGROUND, np.uint8)
        if idx.size:
            a = alpha[:, idx]
            order = np.argsort(-self.depth[:n].reshape(n, hw)[:, idx], axis=0, kind="stable")
            a_s = np.take_along_axis(a, order, 0)
            trans = np.cumprod(1.0 - a_s, axis=0)
            weight_s = a_s.copy()
            weight_s[1:] *= trans[:-1]
            weight = np.empty_like(weight_s)
            np.put_along_axis(weight, order, weight_s, 0)
            col = self.color[:n].reshape(n, hw, 3)[:, idx]
            img[idx] = np.einsum("nm,nmc->mc", weight, col) + trans[-1][:, None] * img[idx]
            # The label that contributes most to the pixel; the background when it does.
            best = weight.argmax(0)
            top = weight[best, np.arange(idx.size)]
            labels = self.label[:n].reshape(n, hw)[:, idx][best, np.arange(idx.size)]
            lab[idx] = np.where(top >= trans[-1], labels, BACKGROUND)
        return img.reshape(self.h, self.w, 3), lab.reshape(self.h, self.w)


def _stripes(x: np.ndarray, px_per_period: float) -> np.ndarray:
    """Anti-aliased 50% square wave of ``x`` (in periods)."""
    tri = np.abs(x - np.floor(x) - 0.5)
    return np.clip((tri - 0.25) * px_per_period + 0.5, 0.0, 1.0)


def _paint(mat: Material, pu: np.ndarray, pw: np.ndarray, scale: float) -> np.ndarray:
    """Colour ``[..., 3]`` of ``mat`` at pattern coordinates (head units along / across)."""
    base = np.asarray(mat.color, np.float32)
    if mat.pattern == "solid":
        return np.broadcast_to(base, pu.shape + (3,))
    m = _stripes(pu / mat.period, mat.period * scale)
    if mat.pattern == "checks":
        m2 = _stripes(pw / mat.period, mat.period * scale)
        m = m + m2 - 2.0 * m * m2
    c2 = np.asarray(mat.color2, np.float32)
    return base + m[..., None] * (c2 - base)


def _radius_px(r: tuple[float, float], n3: np.ndarray, cam: Camera) -> float:
    if r[0] == r[1]:
        return r[0] * cam.scale
    lx = float(cam.basis[0] @ n3)
    fx = float(cam.basis[2] @ n3)
    return cam.scale * math.hypot(r[0] * lx, r[1] * fx)


def _depth_radius(r: tuple[float, float], cam: Camera) -> float:
    if r[0] == r[1]:
        return r[0]
    return math.hypot(r[0] * cam.basis[0, 2], r[1] * cam.basis[2, 2])


def raster_prim(canvas: Canvas, prim: Prim, cam: Camera) -> None:
    pa, pb = cam.project(prim.a), cam.project(prim.b)
    v = pb[:2] - pa[:2]
    length = float(np.hypot(*v))
    vh = v / length if length > 1e-3 else np.array([0.0, 1.0])
    nh = np.array([-vh[1], vh[0]])
    n3 = np.array([nh[0], -nh[1], 0.0])
    ra, rb = _radius_px(prim.ra, n3, cam), _radius_px(prim.rb, n3, cam)
    za, zb = _depth_radius(prim.ra, cam), _depth_radius(prim.rb, cam)
    rmax = max(ra, rb) + 1.5
    win = canvas.window(min(pa[0], pb[0]) - rmax, max(pa[0], pb[0]) + rmax,
                        min(pa[1], pb[1]) - rmax, max(pa[1], pb[1]) + rmax)
    if win is None:
        return
    r0, r1, c0, c1 = win
    ys = np.arange(r0, r1, dtype=np.float32)[:, None] - np.float32(pa[1])
    xs = np.arange(c0, c1, dtype=np.float32)[None, :] - np.float32(pa[0])
    u = xs * vh[0] + ys * vh[1]
    w = xs * nh[0] + ys * nh[1]
    tc = np.clip(u / max(length, 1e-3), 0.0, 1.0)
    e = np.where(u < 0, -u * prim.cap[0], np.where(u > length, (u - length) * prim.cap[1], 0.0))
    dist = np.sqrt(e * e + w * w)
    rad = ra + (rb - ra) * tc
    alpha = np.clip(0.5 - (dist - rad), 0.0, 1.0)
    if not alpha.any():
        return
    q = np.clip(dist / np.maximum(rad, 1e-3), 0.0, 1.0)
    nz = np.sqrt(1.0 - q * q)
    depth = pa[2] + (pb[2] - pa[2]) * tc + (za + (zb - za) * tc) * nz + prim.bias
    # Shade with the normal of the cylinder (ignoring the end caps), so consecutive segments
    # of a limb join without a visible seam at the joint.
    qw = np.clip(w / np.maximum(rad, 1e-3), -1.0, 1.0)
    cz = np.sqrt(1.0 - qw * qw)
    shade = AMBIENT + DIFFUSE * np.maximum(qw * (nh[0] * LIGHT[0] - nh[1] * LIGHT[1])
                                           + cz * LIGHT[2], 0.0)
    pu, pw = u / cam.scale, w / cam.scale
    color = _paint(prim.materials[0][1], pu, pw, cam.scale)
    label = np.full(u.shape, prim.materials[0][1].label, np.uint8)
    for t0, mat in prim.materials[1:]:
        m = np.clip(u - t0 * length + 0.5, 0.0, 1.0)
        color = color + m[..., None] * (_paint(mat, pu, pw, cam.scale) - color)
        label = np.where(m >= 0.5, np.uint8(mat.label), label)
    canvas.add(win, alpha, depth, color * shade[..., None], label, prim.occludes,
               prim.part)
