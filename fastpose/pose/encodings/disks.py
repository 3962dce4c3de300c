"""Solid joint disks: PG2's sparse pose input."""

from __future__ import annotations

from torch import Tensor

from fastpose.pose.encodings._common import Size, batched, stamp_disks


@batched
def disks(keypoints: Tensor, size: Size, *, radius: int = 4) -> Tensor:
    """Solid disks, one channel per joint (PG2 ``_getSparsePose(..., radius=4, mode='Solid')``).

    A pixel is on when its offset (i, j) from the joint's pixel satisfies i^2 + j^2 <= radius^2.
    The joint's pixel is the nearest one (PG2 truncates with ``int()``; the two agree on the
    integer keypoints of the annotation files). Missing joints give an empty channel. PG2 feeds
    ``2 * disks - 1`` to its generator; that rescaling is the model's business.

    Args:
        keypoints: ``[N, 18, 2]`` (y, x), -1 = missing.
        size: output (H, W).
        radius: disk radius in pixels (4 in PG2).
    Returns:
        ``[N, 18, H, W]`` in {0, 1}.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    return stamp_disks(keypoints, size, radius)
