"""Pure-PyTorch twins of the fastpose kernels (same signatures, autograd-native, float64-safe)."""

from fastpose.ops.ref.ssim import ssim_ref
from fastpose.ops.ref.region_pool import region_avg_pool_ref, region_broadcast_ref

__all__ = ["ssim_ref"]
__all__ += ["region_avg_pool_ref", "region_broadcast_ref"]
