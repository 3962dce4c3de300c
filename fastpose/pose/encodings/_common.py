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
    ay, ax = a[..., 0, None, None], a[..., 1, None, None]
    dy, dx = (b - a)[..., 0, None, None], (b - a)[..., 1, None, None]
    py, px = yy - ay, xx - ax  # pixel relative to a: [N, L, H, W] after broadcasting
    length2 = dy * dy + dx * dx
    # Projection parameter of the pixel on the segment, clamped to the segment; 0 for a point.
    t = ((py * dy + px * dx) / length2.clamp_min(torch.finfo(a.dtype).tiny)).clamp(0, 1)
    t = torch.where(length2 > 0, t, torch.zeros_like(t))
    return torch.hypot(py - t * dy, px - t * dx)
