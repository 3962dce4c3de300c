"""SEAN region-wise average pooling and broadcast (``fastpose::region_avg_pool``,
``fastpose::region_broadcast``), with gradients, and the nearest-neighbour label resize the
models apply at every scale."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from fastpose import _ext
from fastpose.ops._checks import acc_dtype
from fastpose.ops._dispatch import Impl, use_kernel
from fastpose.ops._registry import register_op
from fastpose.ops.ref.region_pool import region_avg_pool_ref, region_broadcast_ref
from fastpose.ops.region_pool_args import (LABEL_DTYPES, RegionPooled, check_broadcast_args,
                                           check_pool_args)

__all__ = ["RegionAvgPool", "RegionPooled", "region_avg_pool", "region_broadcast", "resize_labels"]


def region_avg_pool(
    feat: Tensor,  # [N, C, H, W]
    seg: Tensor,  # [N, H, W] integer labels or [N, R, H, W] masks
    num_regions: Optional[int] = None,
    *,
    impl: Impl = "auto",
) -> RegionPooled:
    """Region-wise average pooling (SEAN's style codes): the mask-weighted mean of ``feat`` over
    each region.

    ``codes[n, r, c] = sum_p m[n, r, p] feat[n, c, p] / area[n, r]`` with
    ``area[n, r] = sum_p m[n, r, p]``, where ``m`` is the one-hot encoding of a label map or the
    given masks. Regions with ``area <= 0`` (absent from the image) get code 0 and no gradient;
    ``area`` reports them.

    Args:
        feat: features ``[N, C, H, W]``, floating. Gets a gradient.
        seg: an integer label map ``[N, H, W]`` (uint8, int32 or int64, values in
            ``[0, num_regions)``; the fast path) or soft/one-hot masks ``[N, R, H, W]`` of feat's
            dtype (get a gradient when they require one). Must have feat's resolution: resize label
            maps with :func:`resize_labels`.
        num_regions: R. Pass it for label maps: inferring it reads ``seg.max()`` back to the
            host, a device synchronisation. With R given the op never synchronises. For masks it
            defaults to ``seg.shape[1]``.
        impl: ``"auto"``, ``"ext"`` or ``"ref"`` (see :mod:`fastpose.ops`).

    Returns:
        ``RegionPooled(codes [N, R, C] in feat's dtype, area [N, R] in the accumulation dtype)``.

    Raises:
        ValueError/RuntimeError for labels outside ``[0, R)`` (on CUDA: a device-side assertion,
        since checking on the host would synchronise).
    """
    r = check_pool_args("region_avg_pool", feat, seg, num_regions)
    if not use_kernel("region_avg_pool", impl, feat.device):
        return region_avg_pool_ref(feat, seg, r)
    codes, area = torch.ops.fastpose.region_avg_pool(feat, seg, r)
    return RegionPooled(codes, area)


def region_broadcast(
    codes: Tensor,  # [N, R, C]
    seg: Tensor,  # [N, H, W] integer labels or [N, R, H, W] masks
    *,
    impl: Impl = "auto",
) -> Tensor:
    """Broadcast each region's code to its pixels: ``out[n, c, p] = sum_r m[n, r, p] codes[n, r, c]``,
    i.e. ``codes[n, label(p), c]`` for a label map. The adjoint of region pooling without its
    normalisation.

    Args:
        codes: ``[N, R, C]``, floating. Gets a gradient.
        seg: label map ``[N, H, W]`` with values in ``[0, R)`` or masks ``[N, R, H, W]`` of codes'
            dtype (get a gradient when they require one).
        impl: ``"auto"``, ``"ext"`` or ``"ref"``.

    Returns:
        ``[N, C, H, W]`` in codes' dtype.
    """
    check_broadcast_args("region_broadcast", codes, seg)
    if not use_kernel("region_broadcast", impl, codes.device):
        return region_broadcast_ref(codes, seg)
    return torch.ops.fastpose.region_broadcast(codes, seg)


def resize_labels(seg: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of a label map ``[N, H, W]`` (or ``[H, W]``) to ``size = (h, w)``.

    Same pixel choice as ``F.interpolate(mode="nearest")`` (source index ``floor(i * H / h)``),
    which SEAN and SPGNet apply to their one-hot maps, but on the integer map itself: any dtype,
    no one-hot tensor, labels unchanged.
    """
    if not isinstance(seg, Tensor) or seg.dim() not in (2, 3):
        raise ValueError("resize_labels: seg must be a label map [N, H, W] or [H, W], got "
                         f"{getattr(seg, 'shape', type(seg).__name__)}")
    if seg.is_floating_point():
        raise TypeError(f"resize_labels: seg must be an integer label map, got {seg.dtype}")
    if (len(size) != 2 or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in size)):
        raise ValueError(f"resize_labels: size must be two positive integers (h, w), got {size!r}")
    h_in, w_in = seg.shape[-2:]
    h, w = size
    if (h, w) == (h_in, w_in):
        return seg
    # floor(i * in / out) in float32 like ATen's nearest kernel (scale = in / out).
    rows = (torch.arange(h, device=seg.device, dtype=torch.float32) * (h_in / h)).floor().long().clamp_(max=h_in - 1)
    cols = (torch.arange(w, device=seg.device, dtype=torch.float32) * (w_in / w)).floor().long().clamp_(max=w_in - 1)
    return seg.index_select(-2, rows).index_select(-1, cols)


class RegionAvgPool(nn.Module):
    """Module form of :func:`region_avg_pool` with a fixed number of regions; returns
    :class:`RegionPooled`."""

    def __init__(self, num_regions: int, *, impl: Impl = "auto") -> None:
        super().__init__()
        self.num_regions = num_regions  # R, fixed so the op never synchronises
        self.impl = impl  # "auto", "ext" or "ref"

    def forward(self, feat: Tensor, seg: Tensor) -> RegionPooled:
        return region_avg_pool(feat, seg, self.num_regions, impl=self.impl)

    def extra_repr(self) -> str:
        return f"num_regions={self.num_regions}, impl={self.impl!r}"


# --- torch.library registrations (run once the extension is loaded) -------------------------


def _pool_fake(feat: Tensor, seg: Tensor, num_regions: int) -> tuple[Tensor, Tensor]:
    torch._check(feat.dim() == 4, lambda: f"region_avg_pool: feat must be [N, C, H, W], got shape "
                                          f"{tuple(feat.shape)}")
    torch._check(seg.dim() in (3, 4), lambda: "region_avg_pool: seg must be a label map [N, H, W] or "
                                              f"masks [N, R, H, W], got shape {tuple(seg.shape)}")
    torch._check(seg.dim() == 4 or seg.dtype in LABEL_DTYPES,
                 lambda: f"region_avg_pool: a label map must be uint8, int32 or int64, got {seg.dtype}")
    torch._check(seg.shape[-2:] == feat.shape[-2:],
                 lambda: f"region_avg_pool: seg is {tuple(seg.shape[-2:])} but the features are "
                         f"{tuple(feat.shape[-2:])}; resize the label map first")
    torch._check(num_regions >= 1, lambda: f"region_avg_pool: num_regions must be >= 1, got {num_regions}")
    n, c = feat.shape[:2]
    return feat.new_empty((n, num_regions, c)), feat.new_empty((n, num_regions),
                                                               dtype=acc_dtype(feat.dtype))


def _pool_backward_fake(grad: Tensor, feat: Tensor, seg: Tensor, codes: Tensor, area: Tensor,
                        seg_grad: bool) -> tuple[Tensor, Tensor]:
    torch._check(grad.shape == codes.shape, lambda: "region_avg_pool_backward: grad must have the "
                                                    "shape of codes")
    dseg = seg.new_empty(seg.shape) if seg_grad else feat.new_empty((0,))
    return feat.new_empty(feat.shape), dseg


def _broadcast_fake(codes: Tensor, seg: Tensor) -> Tensor:
    torch._check(codes.dim() == 3, lambda: f"region_broadcast: codes must be [N, R, C], got shape "
                                           f"{tuple(codes.shape)}")
    torch._check(seg.dim() in (3, 4), lambda: "region_broadcast: seg must be a label map [N, H, W] or "
                                              f"masks [N, R, H, W], got shape {tuple(seg.shape)}")
    n, _, c = codes.shape
    h, w = seg.shape[-2:]
    return codes.new_empty((n, c, h, w))


def _broadcast_backward_fake(grad: Tensor, codes: Tensor, seg: Tensor,
                             seg_grad: bool) -> tuple[Tensor, Tensor]:
    dseg = seg.new_empty(seg.shape) if seg_grad else codes.new_empty((0,))
    return codes.new_empty(codes.shape), dseg


def _pool_setup_context(ctx, inputs, output) -> None:
    feat, seg, _ = inputs
    codes, area = output
    ctx.mark_non_differentiable(area)
    ctx.save_for_backward(feat, seg, codes, area)


def _pool_autograd_backward(ctx, grad_codes: Tensor, _grad_area: Tensor):
    feat, seg, codes, area = ctx.saved_tensors
    seg_grad = ctx.needs_input_grad[1]
    dfeat, dseg = torch.ops.fastpose.region_avg_pool_backward(grad_codes, feat, seg, codes, area,
                                                              seg_grad)
    return (dfeat if ctx.needs_input_grad[0] else None, dseg if seg_grad else None, None)


def _broadcast_setup_context(ctx, inputs, output) -> None:
    codes, seg = inputs
    ctx.save_for_backward(codes, seg)


def _broadcast_autograd_backward(ctx, grad: Tensor):
    codes, seg = ctx.saved_tensors
    seg_grad = ctx.needs_input_grad[1]
    dcodes, dseg = torch.ops.fastpose.region_broadcast_backward(grad, codes, seg, seg_grad)
    return (dcodes if ctx.needs_input_grad[0] else None, dseg if seg_grad else None)


@_ext.on_load
def _register() -> None:
    torch.library.register_fake("fastpose::region_avg_pool")(_pool_fake)
    torch.library.register_fake("fastpose::region_avg_pool_backward")(_pool_backward_fake)
    torch.library.register_fake("fastpose::region_broadcast")(_broadcast_fake)
    torch.library.register_fake("fastpose::region_broadcast_backward")(_broadcast_backward_fake)
    torch.library.register_autograd("fastpose::region_avg_pool", _pool_autograd_backward,
                                    setup_context=_pool_setup_context)
    torch.library.register_autograd("fastpose::region_broadcast", _broadcast_autograd_backward,
                                    setup_context=_broadcast_setup_context)


register_op("region_avg_pool", region_avg_pool, region_avg_pool_ref,
            kernels=("region_avg_pool", "region_avg_pool_backward"))
register_op("region_broadcast", region_broadcast, region_broadcast_ref,
            kernels=("region_broadcast", "region_broadcast_backward"))
