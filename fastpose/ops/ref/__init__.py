"""Pure-PyTorch twins of the fastpose kernels (same signatures, autograd-native, float64-safe)."""

from fastpose.ops.ref.ssim import ssim_ref
from fastpose.ops.ref.tps import tps_grid_ref, tps_warp_ref

__all__ = ["ssim_ref"]
__all__ += ["tps_grid_ref", "tps_warp_ref"]
