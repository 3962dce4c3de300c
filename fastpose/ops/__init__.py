"""Public ops. Each takes ``impl="auto"|"ext"|"ref"`` and has a pure-PyTorch twin in ``fastpose.ops.ref``.

| op | kernel schemas | reference |
|---|---|---|
| :func:`ssim` (+ :func:`ssim_loss`, :class:`SSIM`, :class:`SSIMLoss`) | ``fastpose::ssim``, ``fastpose::ssim_backward`` | :func:`ssim_ref` |
| :func:`region_avg_pool` (+ :class:`RegionAvgPool`, :func:`resize_labels`) | ``fastpose::region_avg_pool``, ``fastpose::region_avg_pool_backward`` | :func:`region_avg_pool_ref` |
| :func:`region_broadcast` | ``fastpose::region_broadcast``, ``fastpose::region_broadcast_backward`` | :func:`region_broadcast_ref` |
"""

from fastpose.ops._registry import OPS
from fastpose.ops.ref import ssim_ref
from fastpose.ops.ssim import SSIM, SSIMLoss, ssim, ssim_loss
from fastpose.ops.ref import region_avg_pool_ref, region_broadcast_ref
from fastpose.ops.region_pool import (RegionAvgPool, RegionPooled, region_avg_pool, region_broadcast,
                                      resize_labels)

__all__ = ["OPS", "SSIM", "SSIMLoss", "ssim", "ssim_loss", "ssim_ref"]
__all__ += ["RegionAvgPool", "RegionPooled", "region_avg_pool", "region_avg_pool_ref",
            "region_broadcast", "region_broadcast_ref", "resize_labels"]
