"""Pure-PyTorch twins of the fastpose kernels (same signatures, autograd-native, float64-safe)."""

from fastpose.ops.ref.part_stats import part_ssim_ref, part_stats_ref
from fastpose.ops.ref.region_conv import region_conv_ref
from fastpose.ops.ref.region_pool import region_avg_pool_ref, region_broadcast_ref
from fastpose.ops.ref.ssim import ssim_ref
from fastpose.ops.ref.tps import tps_grid_ref, tps_warp_ref

__all__ = ["part_ssim_ref", "part_stats_ref", "region_avg_pool_ref", "region_broadcast_ref",
           "region_conv_ref", "ssim_ref", "tps_grid_ref", "tps_warp_ref"]
