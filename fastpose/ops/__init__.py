"""Public ops. Each takes ``impl="auto"|"ext"|"ref"`` and has a pure-PyTorch twin in ``fastpose.ops.ref``.

| op | kernel schemas | reference |
|---|---|---|
| :func:`ssim` (+ :func:`ssim_loss`, :class:`SSIM`, :class:`SSIMLoss`) | ``fastpose::ssim``, ``fastpose::ssim_backward`` | :func:`ssim_ref` |
| :func:`part_stats` (+ :func:`part_ssim`, :class:`PartSSIM`) | ``fastpose::part_stats``, ``fastpose::part_stats_backward`` | :func:`part_stats_ref`, :func:`part_ssim_ref` |
| :func:`tps_grid` (+ :func:`tps_layout`, :func:`regular_target`) | ``fastpose::tps_grid``, ``fastpose::tps_grid_backward`` | :func:`tps_grid_ref` |
| :func:`tps_warp` (+ :class:`TPSWarp`) | ``fastpose::tps_warp``, ``fastpose::tps_warp_backward`` | :func:`tps_warp_ref` |
| :func:`region_avg_pool` (+ :class:`RegionAvgPool`, :func:`resize_labels`) | ``fastpose::region_avg_pool``, ``fastpose::region_avg_pool_backward`` | :func:`region_avg_pool_ref` |
| :func:`region_broadcast` | ``fastpose::region_broadcast``, ``fastpose::region_broadcast_backward`` | :func:`region_broadcast_ref` |
| :func:`region_conv` (+ :func:`region_tap_table`) | ``fastpose::region_conv``, ``fastpose::region_conv_backward`` | :func:`region_conv_ref` |
"""

from fastpose.ops._registry import OPS
from fastpose.ops.part_stats import PartSSIM, part_ssim, part_stats
from fastpose.ops.ref import (part_ssim_ref, part_stats_ref, region_avg_pool_ref,
                              region_broadcast_ref, region_conv_ref, ssim_ref, tps_grid_ref, tps_warp_ref)
from fastpose.ops.region_conv import region_conv, region_tap_table
from fastpose.ops.region_pool import (RegionAvgPool, RegionPooled, region_avg_pool, region_broadcast,
                                      resize_labels)
from fastpose.ops.ssim import SSIM, SSIMLoss, ssim, ssim_loss
from fastpose.ops.tps import TPSLayout, TPSWarp, regular_target, tps_grid, tps_layout, tps_warp

__all__ = [
    "OPS",
    "SSIM", "SSIMLoss", "ssim", "ssim_loss", "ssim_ref",
    "PartSSIM", "part_ssim", "part_ssim_ref", "part_stats", "part_stats_ref",
    "TPSLayout", "TPSWarp", "regular_target", "tps_grid", "tps_grid_ref", "tps_layout", "tps_warp",
    "tps_warp_ref",
    "RegionAvgPool", "RegionPooled", "region_avg_pool", "region_avg_pool_ref", "region_broadcast",
    "region_broadcast_ref", "resize_labels",
    "region_conv", "region_conv_ref", "region_tap_table",
]
