"""Thin-plate-spline grid and fused TPS warp (``fastpose::tps_grid``, ``fastpose::tps_warp``).

Coordinates follow ``torch.nn.functional.grid_sample``: points are (x, y) with x
along the width and y along the height, normalised to [-1, 1]. ``ctrl[n, k]`` is
the *source* position of target control point ``target[k]`` (a backward map, as
in spatial transformer networks and PoT-GAN's pose transform module): the TPS
that maps each target point onto its control point is evaluated at every output
pixel, and the warp samples the input there.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from fastpose import _ext
from fastpose.ops._checks import acc_dtype
from fastpose.ops._dispatch import Impl, use_kernel
from fastpose.ops._registry import register_op
from fastpose.ops.ref.tps import tps_grid_ref, tps_warp_ref
from fastpose.ops.tps_args import Target, check_tps_grid_args, check_tps_warp_args
from fastpose.ops.tps_layout import TPSLayout, layout_tensors, regular_target, tps_layout


def tps_grid(
    ctrl: Tensor,  # [N, K, 2]
    size: Sequence[int],  # (H, W)
    target: Target = None,
    *,
    align_corners: bool = False,
    impl: Impl = "auto",
) -> Tensor:
    """Sampling grid ``[N, H, W, 2]`` of the thin-plate spline taking ``target`` to ``ctrl``.

    ``grid[n, i, j]`` is the (x, y) source position, in grid_sample's normalised
    coordinates, of output pixel (i, j), whose own normalised position is laid out as
    ``affine_grid`` does for ``align_corners``. The spline interpolates:
    an output pixel sitting on ``target[k]`` maps to ``ctrl[n, k]``.

    Args:
        ctrl: source positions ``[N, K, 2]`` (x, y) of the K target points.
        size: output size ``(H, W)``.
        target: the K target points ``[K, 2]`` (any K >= 3 non-collinear, distinct
            points), a :class:`TPSLayout`, or None for the regular g x g lattice spanning
            [-0.9, 0.9]^2 (K = g^2). The layout's (K+3)^2 system is solved once in float64
            and cached.
        align_corners: output lattice convention, as in ``affine_grid``.
        impl: ``"auto"``, ``"ext"`` or ``"ref"`` (see :func:`fastpose.ops.ssim`).

    Returns:
        The grid, in the dtype of ``ctrl`` (float16/bfloat16 accumulate in float32).
    """
    args = check_tps_grid_args("tps_grid", ctrl, size, target)
    if not use_kernel("tps_grid", impl, ctrl.device):
        return tps_grid_ref(ctrl, size, target, align_corners=align_corners)
    t, kinv = layout_tensors(args.key, ctrl.device, ctrl.dtype, "tps_grid")
    return torch.ops.fastpose.tps_grid(ctrl, t, kinv, args.height, args.width, bool(align_corners))


def tps_warp(
    x: Tensor,  # [N, C, Hin, Win]
    ctrl: Tensor,  # [N, K, 2]
    size: Optional[Sequence[int]] = None,  # (H, W)
    target: Target = None,
    *,
    align_corners: bool = False,
    impl: Impl = "auto",
) -> Tensor:
    """Warp ``x`` with the thin-plate spline taking ``target`` to ``ctrl``: ``[N, C, H, W]``.

    Equals ``grid_sample(x, tps_grid(ctrl, size, target, align_corners=align_corners),
    mode="bilinear", padding_mode="zeros", align_corners=align_corners)``, fused: the
    radial basis is evaluated on the fly and no grid or ``[N, H*W, K]`` tensor is stored.
    Identity control points (``ctrl = target``) reproduce ``x`` when the output size is
    the input size. Gradients flow to ``x`` and ``ctrl``.

    Args:
        x: input ``[N, C, Hin, Win]``.
        ctrl: source positions ``[N, K, 2]`` (x, y) in [-1, 1] of the K target points,
            same dtype and device as ``x``.
        size: output ``(H, W)``; default ``(Hin, Win)``.
        target: target points ``[K, 2]``, a :class:`TPSLayout`, or None for the regular
            g x g lattice spanning [-0.9, 0.9]^2 (K = g^2).
        align_corners: as in ``grid_sample`` (both the output lattice and the source
            unnormalisation follow it).
        impl: ``"auto"``, ``"ext"`` or ``"ref"``.

    Returns:
        The warped tensor in the dtype of ``x``. On CUDA the gradient to ``x`` is
        accumulated with atomics (like grid_sample's), so it is not bitwise
        reproducible; the gradient to ``ctrl`` is.
    """
    args = check_tps_warp_args("tps_warp", x, ctrl, size, target)
    if not use_kernel("tps_warp", impl, x.device):
        return tps_warp_ref(x, ctrl, (args.height, args.width), target,
                            align_corners=align_corners)
    t, kinv = layout_tensors(args.key, x.device, x.dtype, "tps_warp")
    return torch.ops.fastpose.tps_warp(x, ctrl, t, kinv, args.height, args.width,
                                       bool(align_corners))


class TPSWarp(nn.Module):
    """TPS warp for networks that regress control points (PoT-GAN's grid generator + sampler).

    ``forward(x, theta)`` warps ``x`` with control points ``theta`` (``[N, K, 2]`` or
    ``[N, 2K]`` flattened as x0, y0, x1, y1, ...), optionally bounded to (-1, 1) by a
    tanh (``bound="tanh"``, PoT-GAN's regression head ends with one). Initialise the
    regressor's last ``nn.Linear`` with :meth:`init_identity_` so training starts from
    the identity warp.

    Args:
        target: target points ``[K, 2]``, or None for the regular lattice of ``grid_size``.
        grid_size: g (g x g lattice spanning [-span, span]^2) or (gy, gx); used when
            ``target`` is None.
        span: extent of the default lattice.
        size: output ``(H, W)``; None keeps the input size.
        align_corners: as in ``grid_sample``.
        bound: None (raw control points) or ``"tanh"``.
        impl: ``"auto"``, ``"ext"`` or ``"ref"``.
    """

    BOUNDS = (None, "tanh")

    def __init__(self, target: Optional[Tensor] = None, *,
                 grid_size: Union[int, Sequence[int]] = 5, span: float = 0.9,
                 size: Optional[Sequence[int]] = None, align_corners: bool = False,
                 bound: Optional[str] = None, impl: Impl = "auto") -> None:
        super().__init__()
        if bound not in self.BOUNDS:
            raise ValueError(f"TPSWarp: bound must be one of {self.BOUNDS}, got {bound!r}")
        points = regular_target(grid_size, span) if target is None else target
        self.layout = tps_layout(points, op="TPSWarp")
        if bound == "tanh" and not bool((self.layout.target.abs() < 1).all()):
            raise ValueError("TPSWarp: with bound='tanh' the target points must lie inside (-1, 1)")
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.align_corners = align_corners
        self.bound = bound
        self.impl = impl

    @property
    def num_points(self) -> int:
        return self.layout.k

    def control_points(self, theta: Tensor) -> Tensor:
        """theta ``[N, K, 2]`` or ``[N, 2K]`` -> bounded control points ``[N, K, 2]``."""
        if theta.dim() == 2 and theta.shape[1] == 2 * self.num_points:
            theta = theta.view(theta.shape[0], self.num_points, 2)
        if theta.dim() != 3 or theta.shape[1:] != (self.num_points, 2):
            raise ValueError(f"TPSWarp: theta must be [N, {self.num_points}, 2] or "
                             f"[N, {2 * self.num_points}], got shape {tuple(theta.shape)}")
        return torch.tanh(theta) if self.bound == "tanh" else theta

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        return tps_warp(x, self.control_points(theta), self.size, self.layout,
                        align_corners=self.align_corners, impl=self.impl)

    def identity_theta(self, batch: int = 1, dtype: torch.dtype = torch.float32,
                       device: Union[str, torch.device, None] = None) -> Tensor:
        """The pre-bound parameters ``[batch, K, 2]`` whose warp is the identity."""
        t = self.layout.target
        t = torch.atanh(t) if self.bound == "tanh" else t
        return t.to(device=device, dtype=dtype).expand(batch, -1, -1).clone()

    @torch.no_grad()
    def init_identity_(self, linear: nn.Linear) -> nn.Linear:
        """Zero ``linear``'s weight and set its bias to the identity control points
        (``atanh(target)`` under the tanh bound), as spatial transformer networks do."""
        if linear.out_features != 2 * self.num_points or linear.bias is None:
            raise ValueError(f"TPSWarp.init_identity_: need an nn.Linear with bias and "
                             f"{2 * self.num_points} outputs, got {linear}")
        linear.weight.zero_()
        linear.bias.copy_(self.identity_theta(1, linear.bias.dtype).reshape(-1))
        return linear

    def extra_repr(self) -> str:
        return (f"K={self.num_points}, size={self.size}, align_corners={self.align_corners}, "
                f"bound={self.bound!r}, impl={self.impl!r}")


# --- torch.library registrations (run once the extension is loaded) -------------------------


def _check_layout_fake(op: str, target: Tensor, kinv: Tensor, dtype: torch.dtype) -> int:
    torch._check(target.dim() == 2 and target.shape[1] == 2,
                 lambda: f"{op}: target must be [K, 2], got shape {tuple(target.shape)}")
    k = target.shape[0]
    torch._check(k >= 3, lambda: f"{op}: a thin-plate spline needs at least 3 control points")
    torch._check(kinv.dim() == 2 and kinv.shape[0] == k + 3 and kinv.shape[1] == k,
                 lambda: f"{op}: kinv must be [K+3, K], got shape {tuple(kinv.shape)}")
    torch._check(target.dtype == acc_dtype(dtype) and kinv.dtype == acc_dtype(dtype),
                 lambda: f"{op}: target and kinv must be {acc_dtype(dtype)}")
    return k


def _check_ctrl_fake(op: str, ctrl: Tensor, target: Tensor, kinv: Tensor, height: int,
                     width: int) -> None:
    torch._check(ctrl.dim() == 3 and ctrl.shape[2] == 2,
                 lambda: f"{op}: ctrl must be [N, K, 2], got shape {tuple(ctrl.shape)}")
    k = _check_layout_fake(op, target, kinv, ctrl.dtype)
    torch._check(ctrl.shape[1] == k, lambda: f"{op}: ctrl must be [N, K, 2] with the layout's K={k}")
    torch._check(height >= 1 and width >= 1, lambda: f"{op}: size must be positive")


def _tps_grid_fake(ctrl: Tensor, target: Tensor, kinv: Tensor, height: int, width: int,
                   align_corners: bool) -> Tensor:
    _check_ctrl_fake("tps_grid", ctrl, target, kinv, height, width)
    return ctrl.new_empty((ctrl.shape[0], height, width, 2))


def _tps_grid_backward_fake(grad: Tensor, target: Tensor, kinv: Tensor, height: int, width: int,
                            align_corners: bool) -> Tensor:
    k = _check_layout_fake("tps_grid_backward", target, kinv, grad.dtype)
    torch._check(grad.dim() == 4 and tuple(grad.shape[1:]) == (height, width, 2),
                 lambda: f"tps_grid_backward: grad must be [N, {height}, {width}, 2]")
    return grad.new_empty((grad.shape[0], k, 2))


def _tps_warp_fake(x: Tensor, ctrl: Tensor, target: Tensor, kinv: Tensor, height: int, width: int,
                   align_corners: bool) -> Tensor:
    _check_ctrl_fake("tps_warp", ctrl, target, kinv, height, width)
    torch._check(x.dim() == 4, lambda: f"tps_warp: x must be [N, C, H, W], got shape {tuple(x.shape)}")
    torch._check(x.shape[0] == ctrl.shape[0],
                 lambda: "tps_warp: x and ctrl must have the same batch size")
    torch._check(x.dtype == ctrl.dtype, lambda: "tps_warp: x and ctrl must share a dtype")
    return x.new_empty((x.shape[0], x.shape[1], height, width))


def _tps_warp_backward_fake(grad: Tensor, x: Tensor, ctrl: Tensor, target: Tensor, kinv: Tensor,
                            align_corners: bool, need_x: bool,
                            need_ctrl: bool) -> tuple[Tensor, Tensor]:
    torch._check(grad.dim() == 4, lambda: "tps_warp_backward: grad must be [N, C, H, W]")
    _check_ctrl_fake("tps_warp_backward", ctrl, target, kinv, grad.shape[2], grad.shape[3])
    dx = torch.empty_like(x, memory_format=torch.contiguous_format) if need_x else x.new_empty((0,))
    dctrl = ctrl.new_empty(ctrl.shape) if need_ctrl else ctrl.new_empty((0,))
    return dx, dctrl


def _tps_grid_setup_context(ctx, inputs, output) -> None:
    _, target, kinv, height, width, align_corners = inputs
    ctx.save_for_backward(target, kinv)
    ctx.height, ctx.width, ctx.align_corners = height, width, align_corners


def _tps_grid_autograd_backward(ctx, grad: Tensor):
    target, kinv = ctx.saved_tensors
    dctrl = None
    if ctx.needs_input_grad[0]:
        dctrl = torch.ops.fastpose.tps_grid_backward(grad, target, kinv, ctx.height, ctx.width,
                                                     ctx.align_corners)
    return dctrl, None, None, None, None, None


def _tps_warp_setup_context(ctx, inputs, output) -> None:
    x, ctrl, target, kinv, _, _, align_corners = inputs
    ctx.save_for_backward(x, ctrl, target, kinv)
    ctx.align_corners = align_corners


def _tps_warp_autograd_backward(ctx, grad: Tensor):
    x, ctrl, target, kinv = ctx.saved_tensors
    need_x, need_ctrl = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    dx, dctrl = torch.ops.fastpose.tps_warp_backward(grad, x, ctrl, target, kinv,
                                                     ctx.align_corners, need_x, need_ctrl)
    return (dx if need_x else None, dctrl if need_ctrl else None, None, None, None, None, None)


@_ext.on_load
def _register() -> None:
    torch.library.register_fake("fastpose::tps_grid")(_tps_grid_fake)
    torch.library.register_fake("fastpose::tps_grid_backward")(_tps_grid_backward_fake)
    torch.library.register_fake("fastpose::tps_warp")(_tps_warp_fake)
    torch.library.register_fake("fastpose::tps_warp_backward")(_tps_warp_backward_fake)
    torch.library.register_autograd("fastpose::tps_grid", _tps_grid_autograd_backward,
                                    setup_context=_tps_grid_setup_context)
    torch.library.register_autograd("fastpose::tps_warp", _tps_warp_autograd_backward,
                                    setup_context=_tps_warp_setup_context)


register_op("tps_grid", tps_grid, tps_grid_ref, kernels=("tps_grid", "tps_grid_backward"))
register_op("tps_warp", tps_warp, tps_warp_ref, kernels=("tps_warp", "tps_warp_backward"))

__all__ = ["TPSLayout", "TPSWarp", "regular_target", "tps_grid", "tps_layout", "tps_warp"]
