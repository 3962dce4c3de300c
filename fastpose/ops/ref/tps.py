"""Pure-PyTorch references of :func:`fastpose.ops.tps_grid` and :func:`fastpose.ops.tps_warp`.

Built independently of the kernels' shortcut: the TPS system is solved
explicitly per call (``torch.linalg.solve``, in the accumulation dtype), the
output lattice comes from ``affine_grid`` with the identity transform, the
basis is materialised ``[H*W, K+3]``, and sampling is ``grid_sample``.
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from fastpose.ops._checks import acc_dtype
from fastpose.ops.tps_args import Target, check_tps_grid_args, check_tps_warp_args
from fastpose.ops.tps_layout import layout_tensors, tps_basis, tps_system


def _grid(ctrl: Tensor, key: tuple, height: int, width: int, align_corners: bool) -> Tensor:
    """TPS grid [N, H, W, 2] in the accumulation dtype of ctrl."""
    cd = acc_dtype(ctrl.dtype)
    n, k, _ = ctrl.shape
    t, _ = layout_tensors(key, ctrl.device, cd)
    rhs = torch.cat([ctrl.to(cd), ctrl.new_zeros(n, 3, 2, dtype=cd)], dim=1)
    coef = torch.linalg.solve(tps_system(t), rhs)  # [N, K+3, 2]
    theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=cd, device=ctrl.device)
    with warnings.catch_warnings():
        # affine_grid warns that unit-size axes with align_corners=True give 0; so does the kernel.
        warnings.filterwarnings("ignore", message=".*unit-size grids.*")
        lattice = F.affine_grid(theta[None], [1, 1, height, width], align_corners=align_corners)
    basis = tps_basis(lattice.reshape(-1, 2), t)  # [H*W, K+3]
    return (basis @ coef).view(n, height, width, 2)


def tps_grid_ref(
    ctrl: Tensor,  # [N, K, 2]
    size: Sequence[int],  # (H, W)
    target: Target = None,
    *,
    align_corners: bool = False,
) -> Tensor:
    """Reference of :func:`fastpose.ops.tps_grid`: ``[N, H, W, 2]`` in the dtype of ctrl."""
    args = check_tps_grid_args("tps_grid", ctrl, size, target)
    return _grid(ctrl, args.key, args.height, args.width, align_corners).to(ctrl.dtype)


def tps_warp_ref(
    x: Tensor,  # [N, C, Hin, Win]
    ctrl: Tensor,  # [N, K, 2]
    size: Optional[Sequence[int]] = None,  # (H, W), default (Hin, Win)
    target: Target = None,
    *,
    align_corners: bool = False,
) -> Tensor:
    """Reference of :func:`fastpose.ops.tps_warp`: ``[N, C, H, W]`` in the dtype of x."""
    args = check_tps_warp_args("tps_warp", x, ctrl, size, target)
    grid = _grid(ctrl, args.key, args.height, args.width, align_corners)
    out = F.grid_sample(x.to(grid.dtype), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=align_corners)
    return out.to(x.dtype)
