"""Validated arguments of the ssim op, shared by the kernel path and the reference."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from fastpose.ops._checks import (check_choice, check_floating, check_odd_window, check_positive,
                                  check_same, check_tensor)

PADDINGS = ("valid", "same")
REDUCTIONS = ("mean", "per_image", "none")


@dataclass(frozen=True)
class SsimArgs:
    window: int  # odd Gaussian window length
    sigma: float  # Gaussian standard deviation in pixels
    c1: float  # (k1 * data_range) ** 2
    c2: float  # (k2 * data_range) ** 2
    padding: str  # "valid" (map where the window fits) or "same" (zero padding)
    reduction: str  # "mean", "per_image" or "none"


def check_ssim_args(op: str, x: Tensor, y: Tensor, window: int, sigma: float, data_range: float,
                    k1: float, k2: float, padding: str, reduction: str) -> SsimArgs:
    check_tensor(op, "x", x, 4, "[N, C, H, W]")
    check_tensor(op, "y", y, 4, "[N, C, H, W]")
    check_floating(op, "x", x)
    check_same(op, "x", x, "y", y)
    check_choice(op, "padding", padding, PADDINGS)
    check_choice(op, "reduction", reduction, REDUCTIONS)
    check_positive(op, "sigma", sigma)
    check_positive(op, "data_range", data_range)
    check_odd_window(op, window, x.shape[2], x.shape[3])
    return SsimArgs(window, float(sigma), float((k1 * data_range) ** 2),
                    float((k2 * data_range) ** 2), padding, reduction)
