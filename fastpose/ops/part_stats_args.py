"""Argument checks and the per-part SSIM formula shared by the part_stats kernel path and its reference."""

from __future__ import annotations

from torch import Tensor

from fastpose.ops._checks import check_floating, check_positive, check_same, check_tensor

N_STATS = 5  # mu_x, mu_y, var_x, var_y, cov per (n, k, c)


def check_part_stats_args(op: str, x: Tensor, y: Tensor, m: Tensor, eps: float) -> None:
    check_tensor(op, "x", x, 4, "[N, C, H, W]")
    check_tensor(op, "y", y, 4, "[N, C, H, W]")
    check_floating(op, "x", x)
    check_same(op, "x", x, "y", y)
    n, _, h, w = x.shape
    check_tensor(op, "m", m, 4, f"[N, K, H, W] = [{n}, K, {h}, {w}]")
    if m.shape[0] != n or tuple(m.shape[2:]) != (h, w):
        raise ValueError(f"{op}: m must be [N, K, H, W] = [{n}, K, {h}, {w}] to match x, got shape "
                         f"{tuple(m.shape)}")
    if m.dtype != x.dtype:
        raise TypeError(f"{op}: m must have the dtype of x ({x.dtype}), got {m.dtype}")
    if m.device != x.device:
        raise ValueError(f"{op}: x and m must be on one device, got {x.device} and {m.device}")
    check_positive(op, "eps", eps)


def ssim_from_part_stats(stats: Tensor, c1: float, c2: float) -> Tensor:
    """Equation (8) of the part-SSIM paper from ``stats [..., 5]`` = (mu_x, mu_y, var_x, var_y, cov).

    Written as in the published code, luminance times contrast-structure; identical
    images give exactly 1 because the moments of x and y are then bitwise equal.
    """
    mx, my, vx, vy, cxy = stats.unbind(-1)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    cs = (2 * cxy + c2) / (vx + vy + c2)
    return lum * cs
