"""Joint heatmaps: PATN's Gaussian maps and the 1-pixel maps of its DeepFashion files."""

from __future__ import annotations

import torch
from torch import Tensor

from fastpose.pose.encodings._common import Size, batched, grid, present, stamp_disks


@batched
def heatmaps(keypoints: Tensor, size: Size, *, sigma: float = 6.0) -> Tensor:
    """Gaussian heatmaps, one channel per joint (PATN ``cords_to_map``).

    ``exp(-((y - y0)^2 + (x - x0)^2) / (2 sigma^2))`` on the pixel grid; a missing joint gives an
    all-zero channel.

    Args:
        keypoints: ``[N, 18, 2]`` (y, x) pixels, -1 = missing (or one pose ``[18, 2]``).
        size: output (H, W).
        sigma: Gaussian standard deviation in pixels (6 in PATN).
    Returns:
        ``[N, 18, H, W]`` in [0, 1], dtype of keypoints (float32 for integer keypoints).
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    yy, xx = grid(size, keypoints)
    scale = -0.5 / (sigma * sigma)
    # The 2-D Gaussian is separable: one exp per row and per column, then a single outer product.
    gy = torch.exp((yy - keypoints[..., 0, None, None]) ** 2 * scale)  # [N, 18, H, 1]
    gx = torch.exp((xx - keypoints[..., 1, None, None]) ** 2 * scale)  # [N, 18, 1, W]
    gy = gy * present(keypoints)[..., None, None].to(gy.dtype)
    return gy * gx


@batched
def peaks(keypoints: Tensor, size: Size) -> Tensor:
    """One-pixel joint maps: 1 at the pixel nearest each joint, 0 elsewhere.

    This is what PATN's DeepFashion heatmap files hold: ``generate_pose_map_fashion.py`` stores
    the sigma-6 Gaussians as uint8, which truncates everything but the exact joint pixel to 0
    (maintainer-confirmed, tengteng95/Pose-Transfer#10). Use it to reproduce PATN on DeepFashion.

    Args:
        keypoints: ``[N, 18, 2]`` (y, x), -1 = missing.
        size: output (H, W).
    Returns:
        ``[N, 18, H, W]`` in {0, 1}; joints outside the image give an empty channel.
    """
    return stamp_disks(keypoints, size, 0)
