"""Argument checks shared by the public ops and their references.

Each message names the op, the argument, what was expected and what was given,
so the kernel path and the reference path reject bad input identically.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def check_tensor(op: str, name: str, t: object, ndim: int, layout: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor {layout}, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{op}: {name} must be {layout}, got shape {tuple(t.shape)}")


def check_floating(op: str, name: str, t: Tensor) -> None:
    if not t.is_floating_point():
        raise TypeError(f"{op}: {name} must be a floating-point tensor, got {t.dtype}")


def check_same(op: str, a_name: str, a: Tensor, b_name: str, b: Tensor) -> None:
    """b must match a in shape, dtype and device."""
    if b.shape != a.shape:
        raise ValueError(f"{op}: {b_name} must have the shape of {a_name} {tuple(a.shape)}, "
                         f"got {tuple(b.shape)}")
    check_dtype_device(op, a_name, a, b_name, b)


def check_choice(op: str, name: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ValueError(f"{op}: {name} must be one of {tuple(choices)}, got {value!r}")


def check_positive(op: str, name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{op}: {name} must be positive, got {value!r}")


def check_odd_window(op: str, window: int, height: int, width: int) -> None:
    if not isinstance(window, int) or isinstance(window, bool) or window < 1 or window % 2 == 0:
        raise ValueError(f"{op}: window must be a positive odd integer, got {window!r}")
    if window > height or window > width:
        raise ValueError(f"{op}: window {window} is larger than the image (H={height}, W={width})")


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float64 stays float64, everything else accumulates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_dtype_device(op: str, a_name: str, a: Tensor, b_name: str, b: Tensor) -> None:
    """b must have a's dtype and device (any shape)."""
    if b.dtype != a.dtype:
        raise TypeError(f"{op}: {a_name} and {b_name} must share a dtype, got {a.dtype} and {b.dtype}")
    if b.device != a.device:
        raise ValueError(f"{op}: {a_name} and {b_name} must be on one device, got {a.device} and "
                         f"{b.device}")
