"""The head: an ellipsoid with face, hair and hat regions from its surface normal, and eyes and
mouth painted where they face the camera."""

from __future__ import annotations

import numpy as np

from fastpose.data.cihp import CIHP_INDEX
from fastpose.data.synthetic.appearance import Identity
from fastpose.data.synthetic.kinematics import Skeleton3D
from fastpose.data.synthetic.raster import AMBIENT, DIFFUSE, LIGHT, Camera, Canvas


def _dot(color: np.ndarray, win, cam: Camera, skel: Skeleton3D, point: np.ndarray,
         radius: float, squash: float, min_facing: float, rgb: tuple[float, float, float],
         strength: float) -> None:
    """Paint an anti-aliased elliptic dot (eye, mouth) of ``radius`` pixels at the head-surface
    ``point`` into ``color`` (the head's window), if it faces the camera enough."""
    facing = (point - skel.joints["head"]) @ cam.basis
    if facing[2] / np.linalg.norm(facing) < min_facing:
        return
    r0, r1, c0, c1 = win
    p = cam.project(point)
    d = np.sqrt((np.arange(r0, r1)[:, None] - p[1]) ** 2 / squash
                + (np.arange(c0, c1)[None, :] - p[0]) ** 2)
    m = np.clip(radius - d + 0.5, 0.0, 1.0) * strength
    color += m[..., None] * (np.asarray(rgb, np.float32) - color)


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
    # Facial features, only on the camera-facing side (the mouth only when large enough).
    for eye in ("l_eye", "r_eye"):
        _dot(color, win, cam, skel, skel.joints[eye], max(0.065 * cam.scale, 0.55), 0.8, 0.15,
             (0.08, 0.06, 0.06), 0.85 if cam.scale > 20 else 0.55)
    if cam.scale > 20:
        hf3, hu3 = skel.head_frame[2], skel.head_frame[1]
        mouth = skel.joints["head"] + hf3 * body.head_rx * 0.9 - hu3 * 0.28
        _dot(color, win, cam, skel, mouth, 0.11 * cam.scale, 1 / 2.2 ** 2, 0.3,
             (0.55, 0.22, 0.22), 0.6)
    if ident.hair is not None:
        h = ident.hair
        # Top of the head, the back, and the temples above and behind the ears (not the cheeks).
        temples = np.minimum(np.minimum(np.abs(n_l) - h.side, n_u + 0.05), 0.35 - n_f)
        margin = np.maximum(np.maximum(n_u - h.top, h.back - n_f), temples)
        m = np.clip(margin * sharp + 0.5, 0.0, 1.0)
        color += m[..., None] * (np.asarray(h.color, np.float32) - color)
        label = np.where(m >= 0.5, np.uint8(CIHP_INDEX["hair"]), label)
    if ident.hat is not None:
        m = np.clip((n_u - 0.32) * sharp + 0.5, 0.0, 1.0)
        color += m[..., None] * (np.asarray(ident.hat, np.float32) - color)
        label = np.where(m >= 0.5, np.uint8(CIHP_INDEX["hat"]), label)
    canvas.add(win, alpha, depth, color * shade[..., None], label, True, "head")
