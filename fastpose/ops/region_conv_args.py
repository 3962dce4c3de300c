"""Validated arguments of :func:`fastpose.ops.region_conv`, shared by the kernel path and the
reference."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from fastpose.ops._checks import check_dtype_device, check_floating, check_tensor
from fastpose.ops.region_pool_args import LABEL_DTYPES, check_seg


def check_conv_args(op: str, codes: Tensor, seg: Tensor, weight: Tensor,
                    bias: Optional[Tensor]) -> tuple[int, int]:
    """Validates region_conv's arguments and returns the kernel size (kh, kw)."""
    check_tensor(op, "codes", codes, 3, "[N, R, S]")
    check_floating(op, "codes", codes)
    if codes.shape[1] < 1:
        raise ValueError(f"{op}: codes must have at least one region, got shape {tuple(codes.shape)}")
    if isinstance(seg, Tensor) and (seg.dim() != 3 or seg.dtype not in LABEL_DTYPES):
        raise TypeError(f"{op}: seg must be an integer label map [N, H, W] (uint8, int32 or int64), got "
                        f"shape {tuple(seg.shape)} of {seg.dtype}")
    check_seg(op, seg, codes, "codes", *(seg.shape[-2:] if isinstance(seg, Tensor) else (-1, -1)))
    check_tensor(op, "weight", weight, 4, "[C, S, kh, kw]")
    check_dtype_device(op, "codes", codes, "weight", weight)
    if weight.shape[1] != codes.shape[2]:
        raise ValueError(f"{op}: weight [C, S, kh, kw] must have S={codes.shape[2]} like codes [N, R, S], got "
                         f"shape {tuple(weight.shape)}")
    kh, kw = weight.shape[2:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"{op}: weight must have an odd kernel size (kh, kw) for 'same' zero padding, got "
                         f"({kh}, {kw})")
    if bias is not None:
        check_tensor(op, "bias", bias, 1, "[C]")
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"{op}: bias must be [C={weight.shape[0]}] like weight's output channels, got "
                             f"shape {tuple(bias.shape)}")
        check_dtype_device(op, "codes", codes, "bias", bias)
    return kh, kw
