"""Validated arguments of the SEAN region ops, shared by the kernel path and the reference.

``seg`` is either an integer label map ``[N, H, W]`` (uint8/int32/int64, values in
``[0, R)``) or soft/one-hot masks ``[N, R, H, W]`` of the feature dtype.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from fastpose.ops._checks import check_floating, check_tensor

LABEL_DTYPES = (torch.uint8, torch.int32, torch.int64)


class RegionPooled(NamedTuple):
    """Result of :func:`fastpose.ops.region_avg_pool`."""

    codes: Tensor  # [N, R, C] mask-weighted means, 0 for empty regions; dtype of feat
    area: Tensor  # [N, R] pixel count (labels) or total mask weight (masks); empty where <= 0;
    # float32 (float64 for float64 features); carries no gradient


def is_label_map(seg: Tensor) -> bool:
    return seg.dim() == 3


def check_seg(op: str, seg: object, values: Tensor, values_name: str, h: int, w: int) -> None:
    """seg against the tensor (feat or codes) whose N, dtype and device it must share, and the
    resolution (h, w) it must have."""
    if not isinstance(seg, Tensor):
        raise TypeError(f"{op}: seg must be a torch.Tensor (label map [N, H, W] or masks "
                        f"[N, R, H, W]), got {type(seg).__name__}")
    if seg.dim() == 3:
        if seg.dtype not in LABEL_DTYPES:
            raise TypeError(f"{op}: a label map seg [N, H, W] must be uint8, int32 or int64, got "
                            f"{seg.dtype} (soft masks are [N, R, H, W] floating tensors)")
    elif seg.dim() == 4:
        if seg.dtype != values.dtype:
            raise TypeError(f"{op}: masks seg [N, R, H, W] must have the dtype of {values_name} "
                            f"({values.dtype}), got {seg.dtype}")
    else:
        raise ValueError(f"{op}: seg must be a label map [N, H, W] or masks [N, R, H, W], got shape "
                         f"{tuple(seg.shape)}")
    if seg.device != values.device:
        raise ValueError(f"{op}: {values_name} and seg must be on one device, got {values.device} "
                         f"and {seg.device}")
    if seg.shape[0] != values.shape[0]:
        raise ValueError(f"{op}: seg must have N={values.shape[0]} like {values_name}, got shape "
                         f"{tuple(seg.shape)}")
    sh, sw = seg.shape[-2:]
    if (sh, sw) != (h, w):
        raise ValueError(f"{op}: seg is {sh}x{sw} but the features are {h}x{w} (H x W); resize the "
                         f"label map first, e.g. fastpose.ops.resize_labels(seg, ({h}, {w}))")


def infer_num_regions(op: str, seg: Tensor) -> int:
    """R = max label + 1. Reads the maximum back to the host: a device synchronisation."""
    if seg.numel() == 0:
        raise ValueError(f"{op}: cannot infer num_regions from an empty label map; pass num_regions")
    return int(seg.max().item()) + 1


def check_pool_args(op: str, feat: Tensor, seg: Tensor, num_regions: Optional[int]) -> int:
    """Validates region_avg_pool's arguments and returns the number of regions R."""
    check_tensor(op, "feat", feat, 4, "[N, C, H, W]")
    check_floating(op, "feat", feat)
    check_seg(op, seg, feat, "feat", feat.shape[2], feat.shape[3])
    if num_regions is not None and (not isinstance(num_regions, int) or isinstance(num_regions, bool)
                                    or num_regions < 1):
        raise ValueError(f"{op}: num_regions must be a positive integer or None, got {num_regions!r}")
    if is_label_map(seg):
        return num_regions if num_regions is not None else infer_num_regions(op, seg)
    if num_regions is not None and num_regions != seg.shape[1]:
        raise ValueError(f"{op}: masks seg have R={seg.shape[1]} regions but num_regions is {num_regions}")
    return seg.shape[1]


def check_broadcast_args(op: str, codes: Tensor, seg: Tensor) -> None:
    check_tensor(op, "codes", codes, 3, "[N, R, C]")
    check_floating(op, "codes", codes)
    if isinstance(seg, Tensor) and seg.dim() in (3, 4):
        check_seg(op, seg, codes, "codes", seg.shape[-2], seg.shape[-1])
    else:
        check_seg(op, seg, codes, "codes", -1, -1)  # raises the type/shape error
    if codes.shape[1] < 1:
        raise ValueError(f"{op}: codes must have at least one region, got shape {tuple(codes.shape)}")
    if not is_label_map(seg) and seg.shape[1] != codes.shape[1]:
        raise ValueError(f"{op}: masks seg have R={seg.shape[1]} regions but codes have "
                         f"R={codes.shape[1]}")


def check_label_range(op: str, seg: Tensor, num_regions: int) -> None:
    """Raises for labels outside [0, R) with the first offending pixel. Synchronises (used by the
    reference; the kernels check while they read the labels)."""
    bad = (seg < 0) | (seg >= num_regions)
    if bool(bad.any()):
        n, y, x = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{op}: seg has label {int(seg[n, y, x])} at (n={n}, y={y}, x={x}), outside "
                         f"[0, num_regions={num_regions})")
