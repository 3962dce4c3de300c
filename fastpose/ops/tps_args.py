"""Validated arguments of the tps ops, shared by the kernel path and the reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

from torch import Tensor

from fastpose.ops._checks import check_floating, check_tensor
from fastpose.ops.tps_layout import TPSLayout, layout_key

Target = Union[None, Tensor, Sequence, TPSLayout]


@dataclass(frozen=True)
class TpsArgs:
    key: tuple  # cache key of the target layout (fastpose.ops.tps_layout.layout_tensors)
    height: int  # output height
    width: int  # output width


def check_size(op: str, size: object) -> tuple[int, int]:
    ok = (isinstance(size, (tuple, list)) and len(size) == 2
          and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size))
    if not ok:
        raise ValueError(f"{op}: size must be (H, W) with positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def check_ctrl(op: str, ctrl: Tensor) -> None:
    check_tensor(op, "ctrl", ctrl, 3, "[N, K, 2]")
    if ctrl.shape[2] != 2:
        raise ValueError(f"{op}: ctrl must be [N, K, 2], got shape {tuple(ctrl.shape)}")
    check_floating(op, "ctrl", ctrl)


def check_tps_grid_args(op: str, ctrl: Tensor, size: object, target: Target) -> TpsArgs:
    check_ctrl(op, ctrl)
    h, w = check_size(op, size)
    return TpsArgs(layout_key(target, ctrl.shape[1], op), h, w)


def check_tps_warp_args(op: str, x: Tensor, ctrl: Tensor, size: Optional[object],
                        target: Target) -> TpsArgs:
    check_tensor(op, "x", x, 4, "[N, C, H, W]")
    check_floating(op, "x", x)
    check_ctrl(op, ctrl)
    if x.shape[0] != ctrl.shape[0]:
        raise ValueError(f"{op}: x and ctrl must have the same batch size, got x {tuple(x.shape)} "
                         f"and ctrl {tuple(ctrl.shape)}")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"{op}: x must have a non-empty image, got shape {tuple(x.shape)}")
    if ctrl.dtype != x.dtype:
        raise TypeError(f"{op}: x and ctrl must share a dtype, got {x.dtype} and {ctrl.dtype}")
    if ctrl.device != x.device:
        raise ValueError(f"{op}: x and ctrl must be on one device, got {x.device} and {ctrl.device}")
    h, w = check_size(op, tuple(x.shape[2:]) if size is None else size)
    return TpsArgs(layout_key(target, ctrl.shape[1], op), h, w)
