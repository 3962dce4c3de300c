"""Shared plumbing of the pose encodings: keypoint checks, batching, the pixel grid.

Coordinates: pixel (i, j) of an H x W image sits at (y, x) = (i, j), the convention of PATN's
``cords_to_map`` (``np.arange`` grids) and PG2's rasterisers, so a keypoint (y, x) = (3, 5) from an
annotation CSV lies on the centre of row 3, column 5.
"""

from __future__ import annotations

from typing import Callable

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


def segment_distance(a: Tensor, b: Tensor, size: Size) -> Tensor:
    """Euclidean distance of every pixel to segments ``a -> b``.

    Args:
        a, b: segment end points ``[N, L, 2]`` (y, x).
        size: (H, W).
    Returns:
        ``[N, L, H, W]`` distances in pixels (a zero-length segment gives the point distance).
    """
    yy, xx = grid(size, a)
    d = b - a
    length2 = (d * d).sum(-1)[..., None, None]  # [N, L, 1, 1]
    inv = torch.where(length2 > 0, 1.0 / length2.clamp_min(torch.finfo(a.dtype).tiny),
                      torch.zeros_like(length2))
    py = yy - a[..., 0, None, None]  # [N, L, H, 1] pixel offsets from a, per axis
    px = xx - a[..., 1, None, None]  # [N, L, 1, W]
    dy, dx = d[..., 0, None, None], d[..., 1, None, None]
    # Everything separable is built on one axis and combined once: s = (p - a).(b - a),
    # t = clamp(s / |b - a|^2, 0, 1), and |p - a - t (b - a)|^2 = |p - a|^2 + t (t |b - a|^2 - 2 s).
    # Written as few full-size passes as possible: this is the data loader's most costly encoding.
    s = py * dy + px * dx
    t = torch.mul(s, inv).clamp_(0, 1)
    w = s.mul_(-2).addcmul_(t, length2)
    dist2 = (py * py + px * px).addcmul_(t, w)
    return dist2.clamp_(min=0).sqrt_()


def disk_offsets(radius: int, device: torch.device) -> Tensor:
    """Integer (dy, dx) offsets ``[P, 2]`` of the lattice disk dy^2 + dx^2 <= radius^2."""
    r = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    keep = dy * dy + dx * dx <= radius * radius
    return torch.stack([dy[keep], dx[keep]], dim=-1)


def paint(centres: Tensor, valid: Tensor, offsets: Tensor, size: Size, margin: int) -> Tensor:
    """Union of a pixel pattern drawn around integer centres, per channel.

    Scattering the few pattern pixels is much cheaper than testing every pixel of every channel.
    Each channel is drawn on a canvas with a margin as wide as the pattern, so no pattern pixel
    needs a bounds test, plus a dump area below it where the invalid centres draw.

    Args:
        centres: integer (y, x) pixels ``[N, C, P, 2]`` (P centres per channel).
        valid: ``[N, C, P]`` bool, which centres to draw.
        offsets: the pattern ``[Q, 2]`` of integer (dy, dx).
        size: (H, W).
        margin: the largest ``|dy|`` or ``|dx|`` in offsets (given, to avoid a device sync).
    Returns:
        ``[N, C, H, W]`` float32 in {0, 1}; pattern pixels outside the image are dropped (so a
        centre outside the image still draws the part of its pattern that is inside).
    """
    n, c, _, _ = centres.shape
    h, w = size
    m = margin
    hp, wp = h + 2 * m, w + 2 * m  # canvas with margins
    rows = hp + 2 * m + 1  # ... and a dump area below it
    cy, cx = centres[..., 0] + m, centres[..., 1] + m
    valid = valid & (cy >= 0) & (cy < hp) & (cx >= 0) & (cx < wp)
    cy = torch.where(valid, cy, torch.full_like(cy, hp + m))  # the dump centre
    cx = torch.where(valid, cx, torch.full_like(cx, m))
    channel = torch.arange(n * c, device=centres.device).view(n, c, 1)
    base = (channel * rows + cy) * wp + cx  # [N, C, P]
    flat = base[..., None] + (offsets[:, 0] * wp + offsets[:, 1])  # [N, C, P, Q]
    canvas = torch.zeros(n * c * rows * wp, device=centres.device)
    canvas[flat.reshape(-1)] = 1.0
    return canvas.view(n, c, rows, wp)[:, :, m:m + h, m:m + w]


def stamp_disks(keypoints: Tensor, size: Size, radius: int) -> Tensor:
    """Lattice disks ``dy^2 + dx^2 <= radius^2`` around each joint's nearest pixel, one channel per joint.

    Row by row a disk is an interval of columns, so the test is one broadcast comparison of a
    per-row half-width with a per-column offset (the cheapest full-size form).

    Returns:
        ``[N, K, H, W]`` in {0, 1} (keypoints' dtype); missing joints give empty channels.
    """
    yy, xx = grid(size, keypoints)
    centre = torch.floor(keypoints + 0.5)
    room = radius * radius - (yy - centre[..., 0, None, None]) ** 2  # [N, K, H, 1]
    room = torch.where(present(keypoints)[..., None, None], room, torch.full_like(room, -1.0))
    return ((xx - centre[..., 1, None, None]) ** 2 <= room).to(keypoints.dtype)
