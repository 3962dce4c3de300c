"""Shared plumbing of the pose encodings: keypoint checks, batching, the pixel grid.

Coordinates: pixel (i, j) of an H x W image sits at (y, x) = (i, j), the convention of PATN's
``cords_to_map`` (``np.arange`` grids) and PG2's rasterisers, so a keypoint (y, x) = (3, 5) from an
annotation CSV lies on the centre of row 3, column 5.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor

from fastpose.pose.openpose import MISSING, NUM_KEYPOINTS

Size = tuple[int, int]


def check_size(size: Size, name: str = "size") -> tuple[int, int]:
    """Validate an image size (H, W) of positive ints."""
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"{name} must be (H, W) with positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def as_batch(keypoints: Tensor, name: str = "keypoints") -> tuple[Tensor, bool]:
    """Return keypoints as a float ``[N, 18, 2]`` batch and whether the input was unbatched ``[18, 2]``."""
    if not isinstance(keypoints, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [N, {NUM_KEYPOINTS}, 2], "
                        f"got {type(keypoints).__name__}")
    unbatched = keypoints.dim() == 2
    kp = keypoints.unsqueeze(0) if unbatched else keypoints
    if kp.dim() != 3 or kp.shape[1] != NUM_KEYPOINTS or kp.shape[2] != 2:
        raise ValueError(f"{name} must be [N, {NUM_KEYPOINTS}, 2] or [{NUM_KEYPOINTS}, 2] (y, x), "
                         f"got {list(keypoints.shape)}")
    if not kp.is_floating_point():
        kp = kp.to(torch.float32)
    return kp, unbatched


def present(kp: Tensor) -> Tensor:
    """``[N, K]`` bool: the joint is annotated (neither coordinate is the MISSING value)."""
    return (kp != MISSING).all(dim=-1)


def grid(size: Size, kp: Tensor) -> tuple[Tensor, Tensor]:
    """Row and column coordinates ``[H, 1]`` and ``[1, W]`` on kp's device and dtype."""
    h, w = size
    yy = torch.arange(h, device=kp.device, dtype=kp.dtype).view(h, 1)
    xx = torch.arange(w, device=kp.device, dtype=kp.dtype).view(1, w)
    return yy, xx


def batched(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Let an encoding written for ``[N, 18, 2]`` also take one pose ``[18, 2]`` (output ``[C, H, W]``)."""

    def wrapper(keypoints: Tensor, size: Size, **kwargs) -> Tensor:
        kp, unbatched = as_batch(keypoints)
        out = fn(kp, check_size(size), **kwargs)
        return out[0] if unbatched else out

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


def segment_distance(a: Tensor, b: Tensor, size: Size, scale: float = 1.0,
                     hidden: Optional[Tensor] = None) -> Tensor:
    """Euclidean distance of every pixel to segments ``a -> b``, times ``scale``.

    With the unit direction u of the segment (any unit vector for a zero-length one) and the
    offset q = p - a of a pixel, the distance splits into a part across the segment, q x u, and
    a part along it past either end, max(|q.u - L/2| - L/2, 0) (L the length): both are a row
    term plus a column term, so the full-size work is a few in-place passes, and the sum of two
    squares needs no clamp before the square root. No |p - a|^2 - s^2/L^2 cancellation either,
    which loses about 1e-3 in float32 near long segments.

    Args:
        a, b: segment end points ``[N, L, 2]`` (y, x).
        size: (H, W).
        scale: factor applied to the coordinates before the distance (free: it scales the row
            and column terms), e.g. the decay of a distance map.
        hidden: optional ``[N, L]`` bool; those segments get an infinite distance everywhere
            (through the row term: no extra pass, no device sync).
    Returns:
        ``[N, L, H, W]`` distances in pixels times scale (a zero-length segment gives the point
        distance).
    """
    yy, xx = grid(size, a)
    e = b - a
    length = torch.linalg.vector_norm(e, dim=-1)  # [N, L]
    nonzero = length > 0
    inv = 1.0 / length.clamp_min(torch.finfo(a.dtype).tiny)
    uy = torch.where(nonzero, e[..., 0] * inv, torch.ones_like(length))[..., None, None]
    ux = torch.where(nonzero, e[..., 1] * inv, torch.zeros_like(length))[..., None, None]
    half = (length * (0.5 * scale))[..., None, None]
    qy = (yy - a[..., 0, None, None]) * scale  # [N, L, H, 1]
    qx = (xx - a[..., 1, None, None]) * scale  # [N, L, 1, W]
    along = (qy * uy - half) + qx * ux  # [N, L, H, W]: (q.u - L/2), scaled
    row = qy * ux
    if hidden is not None:
        row = row + torch.where(hidden, math.inf, 0.0).to(row.dtype)[..., None, None]
    across = row - qx * uy  # q x u (up to sign), scaled
    past = along.abs_().sub_(half).clamp_min_(0)
    return across.mul_(across).addcmul_(past, past).sqrt_()


def disk_offsets(radius: int, device: torch.device) -> Tensor:
    """Integer (dy, dx) offsets ``[P, 2]`` of the lattice disk dy^2 + dx^2 <= radius^2."""
    r = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    keep = dy * dy + dx * dx <= radius * radius
    return torch.stack([dy[keep], dx[keep]], dim=-1)


def paint_disks(centres: Tensor, valid: Tensor, radius: int, size: Size) -> Tensor:
    """Union of the lattice disks ``dy^2 + dx^2 <= radius^2`` around integer centres, per row.

    The centres are set on a canvas with a ``radius`` margin (one pixel each), then dilated by
    the disk: row offset dy of a disk is a run of ``2 floor(sqrt(r^2 - dy^2)) + 1`` columns, so
    horizontal ORs of growing width (2 r shifted ORs) and one vertical OR per dy (2 r + 1) do it:
    about 4 r + 1 boolean passes over a 1-channel canvas instead of one write per disk pixel.

    Args:
        centres: integer (y, x) pixels ``[N, P, 2]`` (long).
        valid: ``[N, P]`` bool, which centres to draw.
        radius: disk radius (>= 0).
        size: (H, W).
    Returns:
        ``[N, H, W]`` bool; disk pixels outside the image are dropped (a centre outside the image
        still draws the part of its disk that is inside).
    """
    n = centres.shape[0]
    h, w = size
    r = radius
    hc, wc = h + 2 * r, w + 2 * r  # canvas: the image at offset (r, r)
    cy, cx = centres[..., 0] + r, centres[..., 1] + r
    # A centre off the canvas is more than r away from the image: it draws nothing.
    keep = valid & (cy >= 0) & (cy < hc) & (cx >= 0) & (cx < wc)
    row = torch.arange(n, device=centres.device).view(n, 1)
    flat = torch.where(keep, (row * hc + cy) * wc + cx, n * hc * wc)  # the spare element: dropped
    canvas = torch.zeros(n * hc * wc + 1, dtype=torch.bool, device=centres.device)
    canvas[flat.view(-1)] = True
    c = canvas[:-1].view(n, hc, wc)
    # runs[k][:, i, x]: a centre in canvas row i within k columns of image column x.
    runs = [c[:, :, r:r + w]]
    for k in range(1, r + 1):
        runs.append(runs[-1] | c[:, :, r - k:r - k + w] | c[:, :, r + k:r + k + w])
    out = runs[r][:, r:r + h].clone()  # dy = 0
    for dy in range(1, r + 1):
        k = math.isqrt(r * r - dy * dy)
        out |= runs[k][:, r - dy:r - dy + h]
        out |= runs[k][:, r + dy:r + dy + h]
    return out


def stamp_disks(keypoints: Tensor, size: Size, radius: int) -> Tensor:
    """Lattice disks ``dy^2 + dx^2 <= radius^2`` around each joint's nearest pixel, a channel per joint.

    The few disk pixels are scattered into a zeroed output (a memset plus ``N * K * pi r^2``
    writes) instead of testing every pixel of every channel: the output is the size of a batch of
    images per channel, so one cheap pass over it is what matters. Disk pixels outside the image
    are sent to one spare element past the end, so no bounds check splits the scatter.

    Returns:
        ``[N, K, H, W]`` in {0, 1} (keypoints' dtype, contiguous); a missing joint's channel is empty.
    """
    h, w = size
    n, k, _ = keypoints.shape
    offsets = disk_offsets(radius, keypoints.device)  # [Q, 2]
    # Clamping keeps far-away centres (which draw nothing inside either way) in integer range.
    centre = torch.floor(keypoints + 0.5)
    cy = centre[..., 0].clamp(-radius - 1, h + radius).long()[..., None] + offsets[:, 0]  # N,K,Q
    cx = centre[..., 1].clamp(-radius - 1, w + radius).long()[..., None] + offsets[:, 1]
    drawn = present(keypoints) & torch.isfinite(keypoints).all(-1)
    inside = drawn[..., None] & (cy >= 0) & (cy < h) & (cx >= 0) & (cx < w)
    channel = torch.arange(n * k, device=keypoints.device).view(n, k, 1)
    flat = torch.where(inside, (channel * h + cy) * w + cx, n * k * h * w)
    canvas = torch.zeros(n * k * h * w + 1, dtype=keypoints.dtype, device=keypoints.device)
    canvas.index_fill_(0, flat.view(-1), 1.0)
    return canvas[:-1].view(n, k, h, w)
