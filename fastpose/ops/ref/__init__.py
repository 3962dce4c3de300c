"""Pure-PyTorch twins of the fastpose kernels (same signatures, autograd-native, float64-safe)."""

from fastpose.ops.ref.ssim import ssim_ref

__all__ = ["ssim_ref"]
