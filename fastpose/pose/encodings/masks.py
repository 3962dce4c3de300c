"""Binary pose masks: PG2/PATN's limb mask and PoT-GAN's full-body mask."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from fastpose.pose.encodings._common import Size, batched, grid, paint_disks, present
from fastpose.pose.openpose import HEAD_POLYGON_JOINTS, MASK_LIMBS, TORSO_POLYGON_JOINTS


def _box_or(mask: Tensor, size: int, dim: int, fill: bool) -> Tensor:
    """OR (fill=False) or AND (fill=True) of ``size`` neighbours along dim, outside = fill."""
    pad = size // 2
    shape = list(mask.shape)
    shape[dim] = pad
    edge = torch.full(shape, fill, dtype=torch.bool, device=mask.device)
    padded = torch.cat([edge, mask, edge], dim=dim)
    n = mask.shape[dim]
    out = padded.narrow(dim, 0, n).clone()
    for k in range(1, size):
        if fill:
            out &= padded.narrow(dim, k, n)
        else:
            out |= padded.narrow(dim, k, n)
    return out


def binary_closing(mask: Tensor, size: int = 5) -> Tensor:
    """Morphological closing (dilation then erosion) of ``[N, C, H, W]`` {0,1} masks by a square.

    Pixels outside the image are ignored by both steps, which is what skimage's ``dilation`` /
    ``erosion`` (scipy ``grey_*`` with mode 'reflect') give for a square footprint. Both are
    separable boolean ORs / ANDs of shifted views (far cheaper than pooling on CPU).
    """
    if size % 2 != 1:
        raise ValueError(f"closing size must be odd, got {size}")
    m = mask > 0.5
    dilated = _box_or(_box_or(m, size, -1, False), size, -2, False)
    closed = _box_or(_box_or(dilated, size, -1, True), size, -2, True)
    return closed.to(mask.dtype)


def _limb_centres(kp: Tensor, size: Size, radius: int) -> tuple[Tensor, Tensor]:
    """Disk centres of PG2's ``_getPoseMask``: both ends of every MASK_LIMBS segment whose ends are
    present, plus ``n - 1`` evenly spaced interior points with ``n = floor(length / radius)``.

    Returns rounded centres ``[N, P, 2]`` and their validity ``[N, P]``.
    """
    limbs = torch.tensor(MASK_LIMBS, device=kp.device)
    a, b = kp[:, limbs[:, 0]], kp[:, limbs[:, 1]]  # [N, L, 2]
    ok = present(kp)
    visible = ok[:, limbs[:, 0]] & ok[:, limbs[:, 1]]  # [N, L]
    # Samples per limb are bounded by the image diagonal (a longer limb has an end outside the
    # image, and its spacing merely gets coarser there). On CPU the bound is tightened to the
    # longest limb present, which cuts the work several times; on GPU that would be a host sync.
    s = max(1, math.ceil(math.hypot(*size) / max(radius, 1)))
    n = torch.floor(torch.linalg.vector_norm(b - a, dim=-1) / max(radius, 1)).clamp(1, s)
    if n.device.type == "cpu" and n.numel():
        s = max(1, int(torch.where(visible, n, 1).max()))
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
    centres, valid = _limb_centres(keypoints, size, radius)
    mask = paint_disks(centres.long(), valid, radius, size)[:, None].to(keypoints.dtype)
    return binary_closing(mask, closing) if closing > 1 else mask


def convex_fill(keypoints: Tensor, size: Size, joints: tuple[int, ...]) -> Tensor:
    """Fill the convex hull of the present joints among ``joints``: ``[N, 1, H, W]`` in {0, 1}.

    Batched with no hull algorithm: an ordered pair (i, j) of present joints is a hull edge when
    every other present joint lies on its left (cross product >= 0), and the hull is the
    intersection of the left half-planes of its edges. Edges that another joint splits (a joint
    strictly inside the segment, or a duplicate with a lower index at an end) are dropped, so a
    hull has at most ``len(joints)`` edges and only those are tested per pixel. Fewer than three
    non-collinear present joints fill nothing. Pixels on the boundary are inside.
    """
    g = len(joints)
    pairs = torch.tensor([(i, j) for i in joints for j in joints if i != j], device=keypoints.device)
    others = torch.tensor(joints, device=keypoints.device)
    kp64 = keypoints.double()  # exact for integer keypoints: the edge tests cannot flicker
    ok = present(keypoints)
    p_i, p_j, p_k = kp64[:, pairs[:, 0]], kp64[:, pairs[:, 1]], kp64[:, others]  # [N,E,2], [N,G,2]
    e = p_j - p_i  # [N, E, 2]
    length2 = (e * e).sum(-1)
    rel = p_k[:, None] - p_i[:, :, None]  # [N, E, G, 2]
    side = e[..., 0, None] * rel[..., 1] - e[..., 1, None] * rel[..., 0]  # e x (p_k - p_i)
    along = (e[:, :, None] * rel).sum(-1) / length2.clamp_min(1e-12)[..., None]  # [N, E, G]
    k_index, i_index, j_index = others.view(1, 1, g), pairs[:, 0].view(1, -1, 1), pairs[:, 1].view(1, -1, 1)
    counted = ok[:, others][:, None, :] & (k_index != i_index) & (k_index != j_index)  # [N, E, G]
    on_line = side.abs() <= 1e-9
    splits = counted & on_line & (((along > 1e-9) & (along < 1 - 1e-9))
                                  | ((along.abs() <= 1e-9) & (k_index < i_index))
                                  | (((along - 1).abs() <= 1e-9) & (k_index < j_index)))
    edge = ok[:, pairs[:, 0]] & ok[:, pairs[:, 1]] & (length2 > 1e-12)
    hull_edge = edge & ((side >= -1e-9) | ~counted).all(-1) & ~splits.any(-1)  # [N, E]
    solid = (edge[..., None] & counted & ~on_line).flatten(1).any(1)  # not all collinear
    # Keep the (at most g) hull edges, first in pair order; unused slots hold invalid edges.
    pick = torch.sort(hull_edge.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :g]
    hull_edge = hull_edge.gather(1, pick)
    e = e.gather(1, pick[..., None].expand(-1, -1, 2)).to(keypoints.dtype)
    p_i = p_i.gather(1, pick[..., None].expand(-1, -1, 2)).to(keypoints.dtype)
    # The same cross product for every pixel, split into a row part and a column part.
    yy, xx = grid(size, keypoints)
    col = e[..., 0, None, None] * (xx - p_i[..., 1, None, None])  # [N, g, 1, W]
    col = torch.where(hull_edge[..., None, None], col, torch.full_like(col, math.inf))
    row = -e[..., 1, None, None] * (yy - p_i[..., 0, None, None])  # [N, g, H, 1]
    inside = (col + row).amin(1, keepdim=True) >= 0  # [N, 1, H, W]
    return (inside & solid[:, None, None, None]).to(keypoints.dtype)


@batched
def pose_mask_potgan(keypoints: Tensor, size: Size, *, radius: int = 4, closing: int = 5,
                     pg2_mask: Optional[Tensor] = None) -> Tensor:
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
        pg2_mask: ``pose_mask_pg2`` of the same keypoints, size, radius and closing when it is
            computed anyway (``BatchEncoder`` passes it), so it is not drawn twice.
    Returns:
        ``[N, 1, H, W]`` in {0, 1}.
    """
    if pg2_mask is None:
        mask = pose_mask_pg2.__wrapped__(keypoints, size, radius=radius, closing=closing)
    elif pg2_mask.shape != (keypoints.shape[0], 1, *size):
        raise ValueError(f"pg2_mask must be [{keypoints.shape[0]}, 1, {size[0]}, {size[1]}], "
                         f"got {list(pg2_mask.shape)}")
    else:
        mask = pg2_mask
    for joints in (HEAD_POLYGON_JOINTS, TORSO_POLYGON_JOINTS):
        mask = torch.maximum(mask, convex_fill(keypoints, size, joints))
    return mask
