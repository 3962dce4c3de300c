"""Convolution of a region-constant map (``fastpose::region_conv``), with gradients.

SEAN/SPGNet convolve maps that are constant on each parsing region: the broadcast style codes
(``conv(region_broadcast(codes, seg))``) and the one-hot parsing (``conv(one_hot(seg))``, i.e.
identity codes). Such a map is ``sum_r onehot_r (x) codes_r``, so its ``kh x kw`` convolution is

    out[n, :, p] = bias + sum_{taps o} T[n, o, seg(p + o), :],
    T[n, o, r, c] = sum_s weight[c, s, o] codes[n, r, s]

(taps in the zero padding add nothing). The tap table ``T`` is a tiny einsum done here (autograd by
torch); the kernel only gathers and sums ``kh * kw`` table rows per pixel, and its backward
scatter-adds the upstream gradient into the table. The bias is added to the centre tap's rows of
the table: every output pixel reads its centre tap exactly once, so this is the bias without a pass
over the output, and its gradient comes through the table for free.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fastpose import _ext
from fastpose.ops._dispatch import Impl, use_kernel
from fastpose.ops._registry import register_op
from fastpose.ops.ref.region_conv import region_conv_ref
from fastpose.ops.region_conv_args import check_conv_args
from fastpose.ops.region_pool_args import LABEL_DTYPES

__all__ = ["region_conv", "region_tap_table"]


def region_tap_table(
    codes: Tensor,  # [N, R, S]
    weight: Tensor,  # [C, S, kh, kw]
    bias: Optional[Tensor] = None,  # [C]
) -> Tensor:
    """The tap table ``T [N, kh*kw, R, C]``, ``T[n, o, r, c] = sum_s weight[c, s, o] codes[n, r, s]``,
    with ``bias`` added to the centre tap ``o = (kh // 2) * kw + kw // 2``. Differentiable."""
    kh, kw = weight.shape[2:]
    table = torch.einsum("nrs,csk->nkrc", codes, weight.flatten(2))
    if bias is None:
        return table
    if kh * kw == 1:
        return table + bias
    centre = (kh // 2) * kw + kw // 2
    return torch.cat([table[:, :centre], (table[:, centre] + bias).unsqueeze(1), table[:, centre + 1:]], 1)


def region_conv(
    codes: Tensor,  # [N, R, S]
    seg: Tensor,  # [N, H, W] integer labels in [0, R)
    weight: Tensor,  # [C, S, kh, kw], kh and kw odd
    bias: Optional[Tensor] = None,  # [C]
    *,
    impl: Impl = "auto",
) -> Tensor:
    """Convolution of the region-constant map ``region_broadcast(codes, seg)``:
    ``conv2d(region_broadcast(codes, seg), weight, bias, padding=(kh // 2, kw // 2))``, computed
    from the per-region codes without building the map (see the module docstring).

    ``conv2d(one_hot(seg), weight, bias)`` is ``region_conv(eye(R).expand(N, R, R), seg, weight,
    bias)``.

    Args:
        codes: ``[N, R, S]``, floating. Gets a gradient.
        seg: integer label map ``[N, H, W]`` (uint8, int32 or int64) with values in ``[0, R)``.
        weight: ``[C, S, kh, kw]`` of codes' dtype and device, odd ``kh`` and ``kw`` (zero 'same'
            padding). Gets a gradient.
        bias: ``[C]`` or None. Gets a gradient.
        impl: ``"auto"``, ``"ext"`` or ``"ref"`` (see :mod:`fastpose.ops`).

    Returns:
        ``[N, C, H, W]`` in codes' dtype.

    Raises:
        ValueError/RuntimeError for labels outside ``[0, R)`` (on CUDA: a device-side assertion,
        since checking on the host would synchronise).
    """
    kh, kw = check_conv_args("region_conv", codes, seg, weight, bias)
    if not use_kernel("region_conv", impl, codes.device):
        return region_conv_ref(codes, seg, weight, bias)
    table = region_tap_table(codes, weight, bias)
    return torch.ops.fastpose.region_conv(table, seg, kh, kw)


# --- torch.library registrations (run once the extension is loaded) -------------------------


def _conv_fake(table: Tensor, seg: Tensor, kh: int, kw: int) -> Tensor:
    torch._check(kh % 2 == 1 and kw % 2 == 1, lambda: f"region_conv: the kernel must have odd sizes, got "
                                                       f"({kh}, {kw})")
    torch._check(table.dim() == 4 and table.shape[1] == kh * kw,
                 lambda: f"region_conv: table must be [N, kh*kw={kh * kw}, R, C], got shape {tuple(table.shape)}")
    torch._check(seg.dim() == 3 and seg.dtype in LABEL_DTYPES,
                 lambda: f"region_conv: seg must be an integer label map [N, H, W], got shape "
                         f"{tuple(seg.shape)} of {seg.dtype}")
    n, _, _, c = table.shape
    return table.new_empty((n, c, seg.shape[1], seg.shape[2]))


def _conv_backward_fake(grad: Tensor, seg: Tensor, kh: int, kw: int, num_regions: int) -> Tensor:
    torch._check(grad.dim() == 4, lambda: f"region_conv_backward: grad must be [N, C, H, W], got shape "
                                          f"{tuple(grad.shape)}")
    torch._check(num_regions >= 1, lambda: f"region_conv_backward: num_regions must be >= 1, got {num_regions}")
    return grad.new_empty((grad.shape[0], kh * kw, num_regions, grad.shape[1]))


def _conv_setup_context(ctx, inputs, output) -> None:
    table, seg, kh, kw = inputs
    ctx.save_for_backward(seg)
    ctx.kernel, ctx.num_regions = (kh, kw), table.shape[2]


def _conv_autograd_backward(ctx, grad: Tensor):
    (seg,) = ctx.saved_tensors
    kh, kw = ctx.kernel
    dtable = torch.ops.fastpose.region_conv_backward(grad, seg, kh, kw, ctx.num_regions)
    return dtable, None, None, None


@_ext.on_load
def _register() -> None:
    torch.library.register_fake("fastpose::region_conv")(_conv_fake)
    torch.library.register_fake("fastpose::region_conv_backward")(_conv_backward_fake)
    torch.library.register_autograd("fastpose::region_conv", _conv_autograd_backward,
                                    setup_context=_conv_setup_context)


register_op("region_conv", region_conv, region_conv_ref, kernels=("region_conv", "region_conv_backward"))
