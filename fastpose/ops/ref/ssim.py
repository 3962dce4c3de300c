"""Pure-PyTorch reference of :func:`fastpose.ops.ssim`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fastpose.ops._checks import acc_dtype
from fastpose.ops.ssim_args import SsimArgs, check_ssim_args


def gaussian_taps(window: int, sigma: float, dtype: torch.dtype = torch.float64,
                  device: torch.device | str | None = None) -> Tensor:
    """Normalised 1-D Gaussian window ``[window]``, computed in float64 then cast."""
    t = torch.arange(window, dtype=torch.float64, device=device) - window // 2
    taps = torch.exp(-(t * t) / (2.0 * sigma * sigma))
    return (taps / taps.sum()).to(dtype)


def ssim_map_ref(x: Tensor, y: Tensor, args: SsimArgs) -> Tensor:
    """SSIM map ``[N, C, Ho, Wo]`` in the accumulation dtype (float32, or float64 for float64)."""
    cd = acc_dtype(x.dtype)
    xs, ys = x.to(cd), y.to(cd)
    channels = x.shape[1]
    stack = torch.cat([xs, ys, xs * xs, ys * ys, xs * ys], dim=1)
    taps = gaussian_taps(args.window, args.sigma, cd, x.device)
    groups = 5 * channels
    kh = taps.view(1, 1, 1, -1).expand(groups, 1, 1, args.window)
    kv = taps.view(1, 1, -1, 1).expand(groups, 1, args.window, 1)
    pad = args.window // 2 if args.padding == "same" else 0
    blurred = F.conv2d(F.conv2d(stack, kh, padding=(0, pad), groups=groups), kv, padding=(pad, 0),
                       groups=groups)
    mx, my, exx, eyy, exy = blurred.split(channels, dim=1)
    vx = (exx - mx * mx).clamp(min=0)
    vy = (eyy - my * my).clamp(min=0)
    # Same arrangement as the kernel (csrc/ssim_math.h): numerators as b - (difference), with
    # vd = Var(x - y), so identical windows give exactly 1; no covariance where a variance is 0.
    dm = mx - my
    vd = (exx + eyy - 2 * exy) - dm * dm
    b1 = mx * mx + my * my + args.c1
    b2 = vx + vy + args.c2
    a1 = b1 - dm * dm
    a2 = torch.where(vx * vy > 0, b2 - vd, torch.full((), args.c2, dtype=cd, device=x.device))
    return ((a1 * a2) / (b1 * b2)).clamp(max=1.0)


def reduce_map(smap: Tensor, reduction: str, dtype: torch.dtype) -> Tensor:
    if reduction == "mean":
        out = smap.mean()
    elif reduction == "per_image":
        out = smap.mean(dim=(1, 2, 3))
    else:
        out = smap
    return out.to(dtype)


def ssim_ref(
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
) -> Tensor:
    """Reference SSIM: grouped separable ``conv2d`` on the five moments, autograd for gradients.

    Same semantics as :func:`fastpose.ops.ssim`; see there for the arguments.
    """
    args = check_ssim_args("ssim_ref", x, y, window, sigma, data_range, k1, k2, padding, reduction)
    return reduce_map(ssim_map_ref(x, y, args), reduction, x.dtype)
