"""Public ops. Each takes ``impl="auto"|"ext"|"ref"`` and has a pure-PyTorch twin in ``fastpose.ops.ref``.

| op | kernel schemas | reference |
|---|---|---|
| :func:`ssim` (+ :func:`ssim_loss`, :class:`SSIM`, :class:`SSIMLoss`) | ``fastpose::ssim``, ``fastpose::ssim_backward`` | :func:`ssim_ref` |
| :func:`tps_grid` (+ :func:`tps_layout`, :func:`regular_target`) | ``fastpose::tps_grid``, ``fastpose::tps_grid_backward`` | :func:`tps_grid_ref` |
| :func:`tps_warp` (+ :class:`TPSWarp`) | ``fastpose::tps_warp``, ``fastpose::tps_warp_backward`` | :func:`tps_warp_ref` |
"""

from fastpose.ops._registry import OPS
from fastpose.ops.ref import ssim_ref
from fastpose.ops.ssim import SSIM, SSIMLoss, ssim, ssim_loss
from fastpose.ops.ref import tps_grid_ref, tps_warp_ref
from fastpose.ops.tps import TPSLayout, TPSWarp, regular_target, tps_grid, tps_layout, tps_warp

__all__ = ["OPS", "SSIM", "SSIMLoss", "ssim", "ssim_loss", "ssim_ref"]
__all__ += ["TPSLayout", "TPSWarp", "regular_target", "tps_grid", "tps_grid_ref", "tps_layout",
            "tps_warp", "tps_warp_ref"]
