"""Public ops. Each takes ``impl="auto"|"ext"|"ref"`` and has a pure-PyTorch twin in ``fastpose.ops.ref``.

| op | kernel schemas | reference |
|---|---|---|
| :func:`ssim` (+ :func:`ssim_loss`, :class:`SSIM`, :class:`SSIMLoss`) | ``fastpose::ssim``, ``fastpose::ssim_backward`` | :func:`ssim_ref` |
"""

from fastpose.ops._registry import OPS
from fastpose.ops.ref import ssim_ref
from fastpose.ops.ssim import SSIM, SSIMLoss, ssim, ssim_loss

__all__ = ["OPS", "SSIM", "SSIMLoss", "ssim", "ssim_loss", "ssim_ref"]
