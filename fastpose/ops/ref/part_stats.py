"""Pure-PyTorch reference of :func:`fastpose.ops.part_stats` and :func:`fastpose.ops.part_ssim`."""

from __future__ import annotations

import torch
from torch import Tensor

from fastpose.ops._checks import acc_dtype
from fastpose.ops.part_stats_args import check_part_stats_args, ssim_from_part_stats


def part_stats_ref(
    x: Tensor,  # [N, C, H, W]
    y: Tensor,  # [N, C, H, W]
    m: Tensor,  # [N, K, H, W], >= 0
    *,
    eps: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """Reference part statistics: ``(stats [N, K, C, 5], msum [N, K])``.

    Same semantics as :func:`fastpose.ops.part_stats`. Written in centred form so
    it has no E[x^2] - E[x]^2 cancellation: with w = m / D, D = sum m + eps and
    sum w = 1 - eps / D, the published ``sum w x^2 - mu^2`` equals
    ``sum w (x - mu)^2 + (eps / D) mu^2`` exactly. This materialises
    ``[N, K, C, H*W]`` temporaries (it is the reference, not the fast path) and
    gives exact autograd gradients everywhere, empty masks included.
    """
    check_part_stats_args("part_stats_ref", x, y, m, eps)
    if not torch.compiler.is_compiling() and bool((m < 0).any()):
        raise ValueError("part_stats_ref: m must be non-negative (soft masks), found a negative value")
    cd = acc_dtype(x.dtype)
    n, c, h, w = x.shape
    k = m.shape[1]
    xs = x.to(cd).reshape(n, 1, c, h * w)
    ys = y.to(cd).reshape(n, 1, c, h * w)
    ms = m.to(cd).reshape(n, k, 1, h * w)
    msum = ms.sum(dim=-1)  # [N, K, 1]
    d = msum + eps
    wt = ms / d.unsqueeze(-1)  # [N, K, 1, HW]
    mx = (wt * xs).sum(-1)  # [N, K, C]
    my = (wt * ys).sum(-1)
    ex = xs - mx.unsqueeze(-1)  # [N, K, C, HW]
    ey = ys - my.unsqueeze(-1)
    rest = eps / d  # 1 - sum w
    vx = (wt * ex * ex).sum(-1) + rest * mx * mx
    vy = (wt * ey * ey).sum(-1) + rest * my * my
    cxy = (wt * ex * ey).sum(-1) + rest * mx * my
    return torch.stack([mx, my, vx, vy, cxy], dim=-1), msum.squeeze(-1)


def part_ssim_ref(
    x: Tensor,  # [N, C, H, W]
    y: Tensor,  # [N, C, H, W]
    m: Tensor,  # [N, K, H, W]
    *,
    c1: float = 1e-4,
    c2: float = 9e-4,
    eps: float = 1e-6,
) -> Tensor:
    """Reference part SSIM ``[N, K, C]`` (equation (8)); see :func:`fastpose.ops.part_ssim`."""
    stats, _ = part_stats_ref(x, y, m, eps=eps)
    return ssim_from_part_stats(stats, c1, c2).to(x.dtype)
