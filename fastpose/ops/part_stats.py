"""Per-part masked image statistics (``fastpose::part_stats``) and the part SSIM built on them."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fastpose import _ext
from fastpose.ops._checks import acc_dtype
from fastpose.ops._dispatch import Impl, use_kernel
from fastpose.ops._registry import register_op
from fastpose.ops.part_stats_args import N_STATS, check_part_stats_args, ssim_from_part_stats
from fastpose.ops.ref.part_stats import part_ssim_ref, part_stats_ref


def part_stats(
    x: Tensor,  # [N, C, H, W]
    y: Tensor,  # [N, C, H, W]
    m: Tensor,  # [N, K, H, W], >= 0
    *,
    eps: float = 1e-6,
    impl: Impl = "auto",
) -> tuple[Tensor, Tensor]:
    """Mask-weighted moments of two images per part and channel.

    With weights ``w = m[n, k] / (sum(m[n, k]) + eps)`` (the published part-SSIM
    code, eps = 1e-6), for every (n, k, c)::

        mu_x = sum w x     var_x = sum w x^2 - mu_x^2     cov = sum w x y - mu_x mu_y

    and likewise for y. The kernel makes one pass over the pixels in fixed chunks,
    keeps centred (shifted, then Chan-merged) moments so there is no
    E[x^2] - E[x]^2 cancellation, and merges the chunks in a deterministic second
    pass in float64 (results do not depend on the thread count; no atomics).
    An all-zero mask gives all-zero statistics.

    Args:
        x, y: images ``[N, C, H, W]`` of one floating dtype and device.
        m: soft masks ``[N, K, H, W]``, non-negative, the dtype and device of x.
            The CPU kernel and the reference reject negative values; the CUDA kernel
            does not check (that would need a host sync).
        eps: added to the mask sum in the weights' denominator.
        impl: ``"auto"``, ``"ext"`` or ``"ref"`` (see :func:`fastpose.ops.ssim`).

    Returns:
        ``stats [N, K, C, 5]`` = (mu_x, mu_y, var_x, var_y, cov) and
        ``msum [N, K]`` = sum of each mask, both in float32 (float64 for float64
        inputs), so half-precision inputs keep full-precision moments. Gradients
        flow to x, y and m (when it requires grad) through both outputs.
    """
    check_part_stats_args("part_stats", x, y, m, eps)
    if not use_kernel("part_stats", impl, x.device):
        return part_stats_ref(x, y, m, eps=eps)
    return tuple(torch.ops.fastpose.part_stats(x, y, m, float(eps)))


def part_ssim(
    x: Tensor,  # [N, C, H, W]
    y: Tensor,  # [N, C, H, W]
    m: Tensor,  # [N, K, H, W]
    *,
    c1: float = 1e-4,
    c2: float = 9e-4,
    eps: float = 1e-6,
    impl: Impl = "auto",
) -> Tensor:
    """SSIM of every part and channel, equation (8) of the part-SSIM paper: ``[N, K, C]``.

    ``((2 mu_x mu_y + C1) (2 cov + C2)) / ((mu_x^2 + mu_y^2 + C1) (var_x + var_y + C2))``
    from :func:`part_stats`. The defaults C1 = 1e-4, C2 = 9e-4 are those of images in
    [0, 1] (k1 = 0.01, k2 = 0.03, data_range 1). An empty part (all-zero mask) scores
    exactly 1, as in the published code; use :func:`part_stats`'s mask sums to tell
    empty parts apart (the pSSIM losses in :mod:`fastpose.losses` do).
    """
    stats, _ = part_stats(x, y, m, eps=eps, impl=impl)
    return ssim_from_part_stats(stats, c1, c2).to(x.dtype)


class PartSSIM(nn.Module):
    """Module form of :func:`part_ssim`; the keyword arguments are fixed at construction."""

    def __init__(self, *, c1: float = 1e-4, c2: float = 9e-4, eps: float = 1e-6,
                 impl: Impl = "auto") -> None:
        super().__init__()
        self.kwargs = dict(c1=c1, c2=c2, eps=eps, impl=impl)

    def forward(self, x: Tensor, y: Tensor, m: Tensor) -> Tensor:
        return part_ssim(x, y, m, **self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())


# --- torch.library registrations (run once the extension is loaded) -------------------------


def _part_stats_fake(x: Tensor, y: Tensor, m: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    torch._check(x.dim() == 4, lambda: f"part_stats: x must be [N, C, H, W], got shape {tuple(x.shape)}")
    torch._check(y.shape == x.shape, lambda: f"part_stats: y must have the shape of x {tuple(x.shape)}, "
                                             f"got {tuple(y.shape)}")
    torch._check(y.dtype == x.dtype and m.dtype == x.dtype,
                 lambda: f"part_stats: x, y and m must share a dtype, got {x.dtype}, {y.dtype}, {m.dtype}")
    torch._check(m.dim() == 4 and m.shape[0] == x.shape[0] and m.shape[2:] == x.shape[2:],
                 lambda: f"part_stats: m must be [N, K, H, W] = [{x.shape[0]}, K, {x.shape[2]}, "
                         f"{x.shape[3]}] to match x, got shape {tuple(m.shape)}")
    torch._check(eps > 0, lambda: f"part_stats: eps must be positive, got {eps}")
    n, c = x.shape[:2]
    k = m.shape[1]
    cd = acc_dtype(x.dtype)
    return x.new_empty((n, k, c, N_STATS), dtype=cd), x.new_empty((n, k), dtype=cd)


def _part_stats_backward_fake(grad_stats: Tensor, grad_msum: Tensor, x: Tensor, y: Tensor, m: Tensor,
                              stats: Tensor, msum: Tensor, eps: float, need_x_grad: bool,
                              need_y_grad: bool, need_m_grad: bool) -> tuple[Tensor, Tensor, Tensor]:
    torch._check(stats.dim() == 4 and stats.shape[-1] == N_STATS,
                 lambda: f"part_stats_backward: stats must be [N, K, C, {N_STATS}]")
    empty = lambda t: t.new_empty((0,))
    return (torch.empty_like(x) if need_x_grad else empty(x),
            torch.empty_like(y) if need_y_grad else empty(y),
            torch.empty_like(m) if need_m_grad else empty(m))


def _part_stats_setup_context(ctx, inputs, output) -> None:
    x, y, m, eps = inputs
    stats, msum = output
    ctx.save_for_backward(x, y, m, stats, msum)
    ctx.eps = eps


def _part_stats_autograd_backward(ctx, grad_stats: Tensor, grad_msum: Tensor):
    x, y, m, stats, msum = ctx.saved_tensors
    # An output that did not reach the loss may arrive as None.
    grad_stats = torch.zeros_like(stats) if grad_stats is None else grad_stats
    grad_msum = torch.zeros_like(msum) if grad_msum is None else grad_msum
    nx, ny, nm = ctx.needs_input_grad[:3]
    dx, dy, dm = torch.ops.fastpose.part_stats_backward(grad_stats, grad_msum, x, y, m, stats, msum,
                                                        ctx.eps, nx, ny, nm)
    return (dx if nx else None, dy if ny else None, dm if nm else None, None)


@_ext.on_load
def _register() -> None:
    torch.library.register_fake("fastpose::part_stats")(_part_stats_fake)
    torch.library.register_fake("fastpose::part_stats_backward")(_part_stats_backward_fake)
    torch.library.register_autograd("fastpose::part_stats", _part_stats_autograd_backward,
                                    setup_context=_part_stats_setup_context)


register_op("part_stats", part_stats, part_stats_ref, kernels=("part_stats", "part_stats_backward"))
register_op("part_ssim", part_ssim, part_ssim_ref, kernels=("part_stats", "part_stats_backward"))
