"""Public ops. Each takes ``impl="auto"|"ext"|"ref"`` and has a pure-PyTorch twin in ``fastpose.ops.ref``.

| op | kernel schemas | reference |
|---|---|---|
| :func:`ssim` (+ :func:`ssim_loss`, :class:`SSIM`, :class:`SSIMLoss`) | ``fastpose::ssim``, ``fastpose::ssim_backward`` | :func:`ssim_ref` |
| :func:`part_stats` (+ :func:`part_ssim`, :class:`PartSSIM`) | ``fastpose::part_stats``, ``fastpose::part_stats_backward`` | :func:`part_stats_ref`, :func:`part_ssim_ref` |
"""

from fastpose.ops._registry import OPS
from fastpose.ops.ref import ssim_ref
from fastpose.ops.ssim import SSIM, SSIMLoss, ssim, ssim_loss
from fastpose.ops.part_stats import PartSSIM, part_ssim, part_stats
from fastpose.ops.ref import part_ssim_ref, part_stats_ref

__all__ = ["OPS", "SSIM", "SSIMLoss", "ssim", "ssim_loss", "ssim_ref",
           "PartSSIM", "part_ssim", "part_stats", "part_ssim_ref", "part_stats_ref"]
