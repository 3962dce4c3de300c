"""Binary pose masks: PG2/PATN's limb mask and PoT-GAN's full-body mask."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from fastpose.pose.encodings._common import Size, batched, grid, present
from fastpose.pose.openpose import HEAD_POLYGON_JOINTS, MASK_LIMBS, TORSO_POLYGON_JOINTS


def binary_closing(mask: Tensor, size: int = 5) -> Tensor:
    """Morphological closing (dilation then erosion) of ``[N, C, H, W]`` {0,1} masks by a square.

    Pixels outside the image are ignored by both steps, which is what skimage's ``dilation`` /
    ``erosion`` (scipy ``grey_*`` with mode 'reflect') give for a square footprint.
    """
    if size % 2 != 1:
        raise ValueError(f"closing size must be odd, got {size}")
    pad = size // 2
    dilated = F.max_pool2d(mask, size, stride=1, padding=pad)
    return -F.max_pool2d(-dilated, size, stride=1, padding=pad)


def _disk_kernel(radius: int, like: Tensor) -> Tensor:
    r = torch.arange(-radius, radius + 1, device=like.device, dtype=like.dtype)
    return ((r.view(-1, 1) ** 2 + r.view(1, -1) ** 2) <= radius * radius).to(like.dtype)[None, None]


def _limb_centres(kp: Tensor, size: Size, radius: int) -> tuple[Tensor, Tensor]:
    """Disk centres of PG2's ``_getPoseMask``: both ends of every MASK_LIMBS segment whose ends are
    present, plus ``n - 1`` evenly spaced interior points with ``n = floor(length / radius)``.

    Returns rounded centres ``[N, P, 2]`` and their validity ``[N, P]``.
    """
    limbs = torch.tensor(MASK_LIMBS, device=kp.device)
    a, b = kp[:, limbs[:, 0]], kp[:, limbs[:, 1]]  # [N, L, 2]
    ok = present(kp)
    visible = ok[:, limbs[:, 0]] & ok[:, limbs[:, 1]]  # [N, L]
    # A static bound on the samples per limb (no host sync): a limb longer than the image
    # diagonal has an end outside the image, and its spacing merely gets coarser there.
    s = max(1, math.ceil(math.hypot(*size) / max(radius, 1)))
    n = torch.floor(torch.linalg.vector_norm(b - a, dim=-1) / max(radius, 1)).clamp(1, s)
    i = torch.arange(s + 1, device=kp.device, dtype=kp.dtype)
    t = i / n[..., None]  # [N, L, S+1]; i == n is the far end
    valid = visible[..., None] & (i <= n[..., None])
    pts = a[..., None, :] + (b - a)[..., None, :] * t.clamp(max=1)[..., None]
    return torch.floor(pts + 0.5).flatten(1, 2), valid.flatten(1)


@batched
def pose_mask_pg2(keypoints: Tensor, size: Size, *, radius: int = 4, closing: int = 5) -> Tensor:
    """PG2's pose mask (``_getPoseMask(radius=4)``, field ``pose_mask_r4``), used by PATN too.

    Solid disks of ``radius`` (i^2 + j^2 <= r^2 around rounded centres) at both ends of each of the
    23 :data:`~fastpose.pose.openpose.MASK_LIMBS` whose two ends are present, and every
    ``length / floor(length / radius)`` pixels along it, then a ``closing`` x ``closing`` square
    closing. Disks are drawn by dilating a map of the centres with the disk, so centres outside
    the image still paint the pixels of their disk that are inside.

    Args:
        keypoints: ``[N, 18, 2]`` (y, x), -1 = missing.
        size: output (H, W).
        radius: disk radius in pixels (4: PG2's training mask).
        closing: side of the square closing footprint (5).
    Returns:
        ``[N, 1, H, W]`` in {0, 1}.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    h, w = size
    n = keypoints.shape[0]
    centres, valid = _limb_centres(keypoints, size, radius)
    hp, wp = h + 2 * radius, w + 2 * radius
    cy, cx = centres[..., 0] + radius, centres[..., 1] + radius
    valid = valid & (cy >= 0) & (cy < hp) & (cx >= 0) & (cx < wp)
    # Invalid centres go to one extra dump cell that is cut off afterwards.
    index = torch.where(valid, cy * wp + cx, torch.full_like(cy, hp * wp)).long()
    seeds = keypoints.new_zeros(n, hp * wp + 1).scatter_(1, index, 1.0)
    seeds = seeds[:, :-1].view(n, 1, hp, wp)
    mask = (F.conv2d(seeds, _disk_kernel(radius, seeds)) > 0.5).to(keypoints.dtype)
    return binary_closing(mask, closing) if closing > 1 else mask


# All vertex triples of a polygon joint set: the convex hull of a point set is the union of the
# triangles on its points (Caratheodory), which keeps the fill batched with no hull algorithm.
def _triangles(joints: tuple[int, ...]) -> list[tuple[int, int, int]]:
    return list(itertools.combinations(joints, 3))


_POLYGON_TRIANGLES = _triangles(HEAD_POLYGON_JOINTS) + _triangles(TORSO_POLYGON_JOINTS)


def convex_fill(keypoints: Tensor, size: Size, triangles: list[tuple[int, int, int]]) -> Tensor:
    """Pixels inside (or on) any non-degenerate triangle of present joints: ``[N, 1, H, W]`` {0, 1}."""
    tri = torch.tensor(triangles, device=keypoints.device)  # [T, 3]
    v = keypoints[:, tri]  # [N, T, 3, 2]
    ok = present(keypoints)[:, tri].all(-1)  # [N, T]
    e = v.roll(-1, dims=2) - v  # edges v_k -> v_{k+1}
    area2 = e[:, :, 0, 0] * e[:, :, 1, 1] - e[:, :, 0, 1] * e[:, :, 1, 0]
    ok = ok & (area2.abs() > 1e-6)  # three collinear joints fill nothing
    yy, xx = grid(size, keypoints)
    # Cross product of each edge with the pixel offset from its start: [N, T, 3, H, W].
    cross = (e[..., 0, None, None] * (xx - v[..., 1, None, None])
             - e[..., 1, None, None] * (yy - v[..., 0, None, None]))
    inside = (cross >= 0).all(2) | (cross <= 0).all(2)  # either orientation
    return (inside & ok[..., None, None]).any(1, keepdim=True).to(keypoints.dtype)


@batched
def pose_mask_potgan(keypoints: Tensor, size: Size, *, radius: int = 4, closing: int = 5) -> Tensor:
    """PoT-GAN's full-body pose mask (Li et al. 2021, Sec. IV-C and Fig. 4).

    The PG2 mask (:func:`pose_mask_pg2`) plus the head and torso filled as polygons, which closes
    the cavities the limb mask leaves there. No code was published: the polygons are the convex
    hulls of the present joints among :data:`~fastpose.pose.openpose.HEAD_POLYGON_JOINTS` (face
    points and neck) and :data:`~fastpose.pose.openpose.TORSO_POLYGON_JOINTS` (neck, shoulders,
    hips); a hull needs three non-collinear present joints.

    Args:
        keypoints: ``[N, 18, 2]`` (y, x), -1 = missing.
        size: output (H, W).
        radius, closing: as in :func:`pose_mask_pg2`.
    Returns:
        ``[N, 1, H, W]`` in {0, 1}.
    """
    limbs = pose_mask_pg2.__wrapped__(keypoints, size, radius=radius, closing=closing)
    return torch.maximum(limbs, convex_fill(keypoints, size, _POLYGON_TRIANGLES))
