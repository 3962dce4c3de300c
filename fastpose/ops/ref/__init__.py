"""Pure-PyTorch twins of the fastpose kernels (same signatures, autograd-native, float64-safe)."""

from fastpose.ops.ref.ssim import ssim_ref
from fastpose.ops.ref.part_stats import part_ssim_ref, part_stats_ref

__all__ = ["ssim_ref", "part_ssim_ref", "part_stats_ref"]
