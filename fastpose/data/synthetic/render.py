"""Anti-aliased rasteriser of the synthetic people: image, CIHP parsing map and keypoints.

The body is a set of 3D primitives (tapered capsules with round or elliptic cross-sections,
plus an ellipsoid head). Each primitive is rasterised analytically over its bounding box: a
signed distance gives a 1-pixel-wide coverage ramp (anti-aliasing) and the sphere-swept surface
gives a depth and a normal (shading) per pixel. The primitives are then composited per pixel
front to back by depth, so limbs that cross the torso or each other occlude correctly; the
parsing label of a pixel is the label that contributes most to its colour. A keypoint is kept
when it is inside the frame and no other surface lies in front of it at its pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fastpose.data.cihp import CIHP_INDEX
from fastpose.data.synthetic.appearance import Identity, Material
from fastpose.data.synthetic.kinematics import FWD, UP, Skeleton3D
from fastpose.pose.openpose import KEYPOINT_NAMES, MISSING


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
    part: str = ""  # body part name, used by the keypoint occlusion test (OWN_PARTS, TRUNK)
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


class Canvas:
    """Per-primitive layers (coverage, depth, colour, label) composited at the end."""

    def __init__(self, h: int, w: int, n: int):
        self.h, self.w = h, w
        self.alpha = np.zeros((n, h, w), np.float32)
        self.depth = np.full((n, h, w), -1e4, np.float32)
        self.color = np.zeros((n, h, w, 3), np.float32)
        self.label = np.zeros((n, h, w), np.uint8)
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

    def occluded(self, r: int, c: int, z: float, own: frozenset, trunk_slack: float) -> bool:
        """Whether a joint at pixel (r, c) and depth ``z`` is hidden: some surface covering the
        pixel lies in front of it, other than the joint's own limbs (``own``) and a trunk part
        less than ``trunk_slack`` in front (a shoulder sits at the edge of the torso)."""
        for i in range(self.n):
            if not self.occludes[i] or self.alpha[i, r, c] < 0.5 or self.parts[i] in own:
                continue
            slack = trunk_slack if self.parts[i] in TRUNK else FRONT_SLACK
            if self.depth[i, r, c] > z + slack:
                return True
        return False


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


def raster_head(canvas: Canvas, ident: Identity, skel: Skeleton3D, cam: Camera) -> None:
    """Ellipsoid head: face skin, hair and hat regions from the head-frame surface normal, eyes
    and mouth painted where they face the camera."""
    body = ident.body
    c = cam.project(skel.joints["head"])
    rx, ry = body.head_rx * cam.scale, body.head_ry * cam.scale
    win = canvas.window(c[0] - rx - 1.5, c[0] + rx + 1.5, c[1] - ry - 1.5, c[1] + ry + 1.5)
    if win is None:
        return
    r0, r1, c0, c1 = win
    dy = (np.arange(r0, r1, dtype=np.float32)[:, None] - np.float32(c[1])) / ry
    dx = (np.arange(c0, c1, dtype=np.float32)[None, :] - np.float32(c[0])) / rx
    rho2 = dx * dx + dy * dy
    grad = 2.0 * np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)
    alpha = np.clip(0.5 - (rho2 - 1.0) / np.maximum(grad, 1e-6), 0.0, 1.0)
    rho = np.sqrt(np.maximum(rho2, 1e-12))
    inside = rho2 < 1.0
    nz = np.sqrt(np.maximum(1.0 - rho2, 0.0))
    nx = np.where(inside, dx, dx / rho)
    ny = np.where(inside, -dy, -dy / rho)
    depth = c[2] + body.head_rx * nz
    hl, hu, hf = (cam.basis.T @ a for a in skel.head_frame)  # head axes in camera coords
    n_l = nx * hl[0] + ny * hl[1] + nz * hl[2]
    n_u = nx * hu[0] + ny * hu[1] + nz * hu[2]
    n_f = nx * hf[0] + ny * hf[1] + nz * hf[2]
    shade = AMBIENT + DIFFUSE * np.maximum(nx * LIGHT[0] + ny * LIGHT[1] + nz * LIGHT[2], 0.0)
    skin = np.asarray(ident.skin, np.float32)
    color = np.broadcast_to(skin, rho2.shape + (3,)).copy()
    label = np.full(rho2.shape, CIHP_INDEX["face"], np.uint8)
    sharp = rx  # normals change by ~1/rx per pixel: margins * rx are in pixels
    # Facial features, only on the camera-facing side.
    for eye in ("l_eye", "r_eye"):
        p = cam.project(skel.joints[eye])
        facing = (skel.joints[eye] - skel.joints["head"]) @ cam.basis
        if facing[2] / np.linalg.norm(facing) < 0.15:
            continue
        er = max(0.065 * cam.scale, 0.55)
        d = np.sqrt((np.arange(r0, r1)[:, None] - p[1]) ** 2 / 0.8 + (np.arange(c0, c1)[None, :] - p[0]) ** 2)
        m = np.clip(er - d + 0.5, 0.0, 1.0) * (0.85 if cam.scale > 20 else 0.55)
        color += m[..., None] * (np.array([0.08, 0.06, 0.06], np.float32) - color)
    mouth3 = skel.joints["head"] + skel.head_frame[2] * body.head_rx * 0.9 - skel.head_frame[1] * 0.28
    facing = (mouth3 - skel.joints["head"]) @ cam.basis
    if cam.scale > 20 and facing[2] / np.linalg.norm(facing) > 0.3:
        p = cam.project(mouth3)
        d = np.sqrt(((np.arange(r0, r1)[:, None] - p[1]) * 2.2) ** 2 + (np.arange(c0, c1)[None, :] - p[0]) ** 2)
        m = np.clip(0.11 * cam.scale - d + 0.5, 0.0, 1.0) * 0.6
        color += m[..., None] * (np.array([0.55, 0.22, 0.22], np.float32) - color)
    if ident.hair is not None:
        h = ident.hair
        margin = np.maximum(n_u - h.top, h.back - n_f)
        m = np.clip(margin * sharp + 0.5, 0.0, 1.0)
        color += m[..., None] * (np.asarray(h.color, np.float32) - color)
        label = np.where(m >= 0.5, np.uint8(CIHP_INDEX["hair"]), label)
    if ident.hat is not None:
        m = np.clip((n_u - 0.32) * sharp + 0.5, 0.0, 1.0)
        color += m[..., None] * (np.asarray(ident.hat, np.float32) - color)
        label = np.where(m >= 0.5, np.uint8(CIHP_INDEX["hat"]), label)
    canvas.add(win, alpha, depth, color * shade[..., None], label, True, "head")


def build_prims(ident: Identity, skel: Skeleton3D) -> list[Prim]:
    """The body, garments and accessories of ``ident`` posed as ``skel``."""
    j, b = skel.joints, ident.body
    k = b.build
    skin_face = Material(ident.skin, CIHP_INDEX["torso_skin"])
    top, bottom = ident.top, ident.bottom
    spine = j["spine"]
    prims: list[Prim] = []
    # Torso: chest (garment) from just under the neck to the waist.
    waist = j["pelvis"] + spine * 0.55
    chest_top = j["neck"] - spine * (b.shoulder_half * 0.62)
    prims.append(Prim(j["neck"] + spine * 0.15, j["head"] - spine * 0.2, (0.19 * k,) * 2,
                      (0.18 * k,) * 2, ((0.0, skin_face),), part="neck"))
    prims.append(Prim(chest_top, waist, (b.shoulder_half * 0.98 * k, b.chest_depth * k),
                      (b.hip_half * 1.55 * k, b.chest_depth * 0.92 * k), ((0.0, top),),
                      cap=(1.2, 3.0), bias=0.03, part="torso"))
    # Pelvis (trousers, skirt or dress), flat at the crotch.
    prims.append(Prim(waist + spine * 0.1, j["pelvis"] - spine * 0.15,
                      (b.hip_half * 1.5 * k, b.chest_depth * 0.85 * k),
                      (b.hip_half * 1.55 * k, b.chest_depth * 0.8 * k), ((0.0, bottom),),
                      cap=(3.0, 4.0), part="pelvis"))
    for side, s in (("l", "left"), ("r", "right")):
        arm_skin = Material(ident.skin, CIHP_INDEX[f"{s}_arm"])
        leg_skin = Material(ident.skin, CIHP_INDEX[f"{s}_leg"])
        ua, fa = b.upper_arm, b.forearm
        sl = ident.sleeve * (ua + fa)
        up_mats = ((0.0, top),) if sl >= ua else ((0.0, top), (sl / ua, arm_skin)) if sl > 0 else (
            (0.0, arm_skin),)
        fore_sl = sl - ua
        fore_mats = ((0.0, top), (fore_sl / fa, arm_skin)) if fore_sl > 0 else ((0.0, arm_skin),)
        # The sleeve starts a little inside the shoulder so its cap does not bulge above the
        # torso's outline.
        sho = j[f"{side}_shoulder"] - spine * 0.1 - (j[f"{side}_shoulder"] - j["neck"]) * 0.08
        prims.append(Prim(sho, j[f"{side}_elbow"], (0.26 * k,) * 2,
                          (0.22 * k,) * 2, up_mats, bias=0.02 if sl > 0 else 0.0,
                          part=f"{side}_upper_arm"))
        prims.append(Prim(j[f"{side}_elbow"], j[f"{side}_wrist"], (0.21 * k,) * 2,
                          (0.17 * k,) * 2, fore_mats, part=f"{side}_forearm"))
        prims.append(Prim(j[f"{side}_wrist"], j[f"{side}_hand"] - (j[f"{side}_hand"] - j[f"{side}_wrist"]) * 0.3,
                          (0.15 * k,) * 2, (0.14 * k,) * 2, ((0.0, arm_skin),), part=f"{side}_hand"))
        # Legs.
        th, sh = b.thigh, b.shin
        if ident.bottom_kind == "pants":
            th_mats, sh_mats = ((0.0, bottom),), ((0.0, bottom),)
        elif ident.bottom_kind == "shorts":
            th_mats, sh_mats = ((0.0, bottom), (0.55, leg_skin)), ((0.0, leg_skin),)
        else:  # skirt / dress: bare legs under a separate skirt primitive
            th_mats, sh_mats = ((0.0, leg_skin),), ((0.0, leg_skin),)
        prims.append(Prim(j[f"{side}_hip"], j[f"{side}_knee"], (0.37 * k,) * 2, (0.25 * k,) * 2,
                          th_mats, part=f"{side}_thigh"))
        prims.append(Prim(j[f"{side}_knee"], j[f"{side}_ankle"], (0.25 * k,) * 2, (0.18 * k,) * 2,
                          sh_mats, part=f"{side}_shin"))
        shoe = Material(ident.shoes, CIHP_INDEX[f"{s}_shoe"])
        prims.append(Prim(j[f"{side}_heel"], j[f"{side}_toe"], (0.17,) * 2, (0.15,) * 2,
                          ((0.0, shoe),), bias=0.01, part=f"{side}_shoe"))
    if ident.bottom_kind in ("skirt", "dress"):
        hem = 0.55 if ident.bottom_kind == "skirt" else 0.75
        knees = 0.5 * (j["l_knee"] + j["r_knee"])
        end = j["pelvis"] + (knees - j["pelvis"]) * hem
        prims.append(Prim(waist, end, (b.hip_half * 1.6 * k, b.chest_depth * 0.95 * k),
                          (b.hip_half * 2.6 * k, b.chest_depth * 1.3 * k), ((0.0, bottom),),
                          cap=(3.0, 4.0), bias=0.25, part="skirt"))
    if ident.top_kind == "coat":
        knees = 0.5 * (j["l_knee"] + j["r_knee"])
        prims.append(Prim(waist + spine * 0.2, j["pelvis"] + (knees - j["pelvis"]) * 0.35,
                          (b.hip_half * 1.65 * k, b.chest_depth * 0.98 * k),
                          (b.hip_half * 2.1 * k, b.chest_depth * 1.1 * k), ((0.0, top),),
                          cap=(3.0, 4.0), bias=0.26, part="coat"))
    if ident.hair is not None and ident.hair.length > 0:
        h = ident.hair
        top_pt = j["head"] - skel.head_frame[2] * 0.18
        bot = j["neck"] - spine * (h.length - 0.9) - FWD * (b.chest_depth * k + 0.06)
        hair = Material(h.color, CIHP_INDEX["hair"])
        prims.append(Prim(top_pt, bot, (b.head_rx * 1.05, 0.2), (b.head_rx * 1.25, 0.1),
                          ((0.0, hair),), cap=(1.0, 2.5), part="hair", occludes=False))
    if ident.hat is not None:
        hu = skel.head_frame[1]
        base = j["head"] + hu * 0.2
        prims.append(Prim(base, base + hu * 0.05, (b.head_rx * 1.35,) * 2,
                          (b.head_rx * 1.35,) * 2, ((0.0, Material(ident.hat, CIHP_INDEX["hat"])),),
                          cap=(8.0, 8.0), part="hat", occludes=False))
    bag = Material(ident.bag_color, BACKGROUND)  # CIHP has no bag class
    if ident.bag == "backpack":
        back = -FWD * (b.chest_depth * k + 0.2)
        prims.append(Prim(j["neck"] - spine * 0.55 + back, j["neck"] - spine * 1.7 + back,
                          (0.62, 0.22), (0.62, 0.22), ((0.0, bag),), cap=(2.0, 2.0),
                          part="bag", occludes=False))
    elif ident.bag == "handbag":
        d = skel.dirs["r_forearm"]
        if d @ UP < -0.3:  # only hangs from a lowered hand
            w = j["r_wrist"] + d * 0.25
            prims.append(Prim(w - UP * 0.15, w - UP * 0.85, (0.42, 0.14), (0.48, 0.14),
                              ((0.0, bag),), cap=(3.0, 3.0), part="bag",
                              occludes=False))
    return prims


# Keypoint occlusion. A joint is hidden by any covering surface more than FRONT_SLACK in front
# of it, except its own limbs (never) and the trunk (only beyond the joint's trunk slack: a
# shoulder or hip lies inside the torso's silhouette, and is hidden only once the body has
# turned far enough, ~50 degrees, for the chest to be in front of it). Head units.
TRUNK = frozenset({"torso", "pelvis", "skirt", "coat"})
FRONT_SLACK = 0.05
OWN_PARTS: dict[str, frozenset] = {
    "nose": frozenset({"head"}), "l_eye": frozenset({"head"}), "r_eye": frozenset({"head"}),
    "l_ear": frozenset({"head"}), "r_ear": frozenset({"head"}),
    "neck": frozenset({"neck", "head", "l_upper_arm", "r_upper_arm"}),
}
for _s in "lr":
    OWN_PARTS.update({
        f"{_s}_shoulder": frozenset({"neck", f"{_s}_upper_arm"}),
        f"{_s}_elbow": frozenset({f"{_s}_upper_arm", f"{_s}_forearm"}),
        f"{_s}_wrist": frozenset({f"{_s}_forearm", f"{_s}_hand"}),
        f"{_s}_hip": frozenset({f"{_s}_thigh"}),
        f"{_s}_knee": frozenset({f"{_s}_thigh", f"{_s}_shin"}),
        f"{_s}_ankle": frozenset({f"{_s}_shin", f"{_s}_shoe"}),
    })
TRUNK_SLACK = {"neck": 2.0, "l_shoulder": 1.1, "r_shoulder": 1.1, "l_hip": 1.0, "r_hip": 1.0}
# How far inside the head surface the face joints sit (ears sit on the silhouette).
HEAD_SLACK = {"nose": 0.12, "l_eye": 0.12, "r_eye": 0.12, "l_ear": 0.2, "r_ear": 0.2}


def render_person(ident: Identity, skel: Skeleton3D, cam: Camera, background: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one person over ``background`` ``[H, W, 3]`` (float, [0, 1]).

    Returns:
        image ``[H, W, 3]`` float in [0, 1], parsing ``[H, W]`` uint8 CIHP labels and
        keypoints ``[18, 2]`` int (row, column), -1 where outside the frame or occluded.
    """
    h, w = background.shape[:2]
    prims = build_prims(ident, skel)
    canvas = Canvas(h, w, len(prims) + 1)
    for p in prims:
        raster_prim(canvas, p, cam)
    raster_head(canvas, ident, skel, cam)
    img, lab = canvas.composite(background)
    kps = np.full((len(KEYPOINT_NAMES), 2), MISSING, np.int64)
    k = ident.body.build
    for i, name in enumerate(KEYPOINT_NAMES):
        col, row, z = cam.project(skel.joints[name])
        r, c = int(round(row)), int(round(col))
        if not (0 <= r < h and 0 <= c < w):
            continue
        if name in HEAD_SLACK:  # inside the head: hidden when the head surface is in front
            hidden = canvas.occluded(r, c, z + HEAD_SLACK[name], frozenset(), 0.0)
        else:
            hidden = canvas.occluded(r, c, z, OWN_PARTS[name], TRUNK_SLACK.get(name, 0.3) * k)
        if not hidden:
            kps[i] = (r, c)
    return img, lab, kps
