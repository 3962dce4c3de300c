"""Fused Gaussian-window SSIM (``fastpose::ssim``) with gradients to both images."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fastpose import _ext
from fastpose.ops._checks import acc_dtype
from fastpose.ops._dispatch import Impl, use_kernel
from fastpose.ops._registry import register_op
from fastpose.ops.ref.ssim import reduce_map, ssim_ref
from fastpose.ops.ssim_args import check_ssim_args

N_DERIV_MAPS = 5  # dS/d(mu_x, mu_y, E[x^2], E[y^2], E[xy]) per pixel, stored for the backward


def ssim(
    x: Tensor,  # [N, C, H, W]
    y: Tensor,  # [N, C, H, W]
    *,
    window: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
    padding: str = "valid",
    reduction: str = "mean",
    impl: Impl = "auto",
) -> Tensor:
    """Structural similarity with a separable Gaussian window, per channel.

    C1 = (k1 * data_range)^2 and C2 = (k2 * data_range)^2; statistics use the
    population covariance (formula (5) of the part-SSIM paper). With
    ``padding="valid"`` the map covers only positions where the window fits,
    ``[N, C, H-window+1, W-window+1]``, which equals scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=L)``, the papers' evaluation
    convention; ``padding="same"`` zero-pads to ``[N, C, H, W]``. Variances are
    clamped at 0 and the value at 1.

    Args:
        x, y: images ``[N, C, H, W]`` of one floating dtype and device. Both get gradients.
        window: odd window length (11 for the metric, 7 for the part-SSIM background).
        sigma: Gaussian standard deviation in pixels (1.5, resp. 0.8).
        data_range: value range L of the images (1 for [0, 1], 255 for uint8-scaled images).
        k1, k2: SSIM constants.
        padding: ``"valid"`` or ``"same"``.
        reduction: ``"mean"`` (scalar), ``"per_image"`` (``[N]``) or ``"none"`` (the map).
        impl: ``"auto"`` (kernel when available, else reference with one warning),
            ``"ext"`` (kernel or error) or ``"ref"`` (pure PyTorch).

    Returns:
        The reduced SSIM, in the dtype of ``x``.
    """
    args = check_ssim_args("ssim", x, y, window, sigma, data_range, k1, k2, padding, reduction)
    if not use_kernel("ssim", impl, x.device):
        return ssim_ref(x, y, window=window, sigma=sigma, data_range=data_range, k1=k1, k2=k2,
                        padding=padding, reduction=reduction)
    need_grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    smap, _ = torch.ops.fastpose.ssim(x, y, args.window, args.sigma, args.c1, args.c2,
                                      args.padding == "same", need_grad)
    return reduce_map(smap, reduction, x.dtype)


def ssim_loss(
    x: Tensor,  # [N, C, H, W]
    y: Tensor,  # [N, C, H, W]
    *,
    window: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
    padding: str = "valid",
    reduction: str = "mean",
    impl: Impl = "auto",
) -> Tensor:
    """``1 - ssim(x, y)``, the SSIM loss of equation (7) of the part-SSIM paper."""
    return 1.0 - ssim(x, y, window=window, sigma=sigma, data_range=data_range, k1=k1, k2=k2,
                      padding=padding, reduction=reduction, impl=impl)


class SSIM(nn.Module):
    """Module form of :func:`ssim`; the keyword arguments are fixed at construction."""

    def __init__(self, *, window: int = 11, sigma: float = 1.5, data_range: float = 1.0,
                 k1: float = 0.01, k2: float = 0.03, padding: str = "valid",
                 reduction: str = "mean", impl: Impl = "auto") -> None:
        super().__init__()
        self.kwargs = dict(window=window, sigma=sigma, data_range=data_range, k1=k1, k2=k2,
                           padding=padding, reduction=reduction, impl=impl)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return ssim(x, y, **self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())


class SSIMLoss(SSIM):
    """Module form of :func:`ssim_loss`."""

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return ssim_loss(x, y, **self.kwargs)


# --- torch.library registrations (run once the extension is loaded) -------------------------


def _ssim_fake(x: Tensor, y: Tensor, window: int, sigma: float, c1: float, c2: float,
               same_padding: bool, need_grad: bool) -> tuple[Tensor, Tensor]:
    torch._check(x.dim() == 4, lambda: f"ssim: x must be [N, C, H, W], got shape {tuple(x.shape)}")
    torch._check(y.shape == x.shape,
                 lambda: f"ssim: y must have the shape of x {tuple(x.shape)}, got {tuple(y.shape)}")
    torch._check(x.dtype == y.dtype, lambda: f"ssim: x and y must share a dtype, got {x.dtype} "
                                             f"and {y.dtype}")
    torch._check(window >= 1 and window % 2 == 1,
                 lambda: f"ssim: window must be a positive odd integer, got {window}")
    n, c, h, w = x.shape
    torch._check(window <= h and window <= w,
                 lambda: f"ssim: window {window} is larger than the image (H={h}, W={w})")
    pad = window // 2 if same_padding else 0
    ho, wo = h + 2 * pad - window + 1, w + 2 * pad - window + 1
    dshape = (n, c, N_DERIV_MAPS, ho, wo) if need_grad else (0,)
    return x.new_empty((n, c, ho, wo)), x.new_empty(dshape, dtype=acc_dtype(x.dtype))


def _ssim_backward_fake(grad: Tensor, x: Tensor, y: Tensor, dmaps: Tensor, window: int,
                        sigma: float, same_padding: bool) -> tuple[Tensor, Tensor]:
    torch._check(dmaps.dim() == 5, lambda: "ssim_backward: dmaps must be [N, C, 5, Ho, Wo]")
    return torch.empty_like(x), torch.empty_like(y)


def _ssim_setup_context(ctx, inputs, output) -> None:
    x, y, window, sigma, _, _, same_padding, need_grad = inputs
    _, dmaps = output
    ctx.mark_non_differentiable(dmaps)
    ctx.save_for_backward(x, y, dmaps)
    ctx.window, ctx.sigma, ctx.same_padding, ctx.need_grad = window, sigma, same_padding, need_grad


def _ssim_autograd_backward(ctx, grad_map: Tensor, _grad_dmaps: Tensor):
    if not ctx.need_grad:
        raise RuntimeError("fastpose::ssim was called with need_grad=False, so it kept no derivative "
                           "maps; call it with need_grad=True to differentiate it")
    x, y, dmaps = ctx.saved_tensors
    dx, dy = torch.ops.fastpose.ssim_backward(grad_map, x, y, dmaps, ctx.window, ctx.sigma,
                                              ctx.same_padding)
    return (dx if ctx.needs_input_grad[0] else None, dy if ctx.needs_input_grad[1] else None,
            None, None, None, None, None, None)


@_ext.on_load
def _register() -> None:
    torch.library.register_fake("fastpose::ssim")(_ssim_fake)
    torch.library.register_fake("fastpose::ssim_backward")(_ssim_backward_fake)
    torch.library.register_autograd("fastpose::ssim", _ssim_autograd_backward,
                                    setup_context=_ssim_setup_context)


register_op("ssim", ssim, ssim_ref, kernels=("ssim", "ssim_backward"))
