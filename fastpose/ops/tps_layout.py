"""Target control-point layouts of the thin-plate-spline ops and their cached float64 solve.

A layout is the set of K target control points ``t`` ([K, 2], (x, y) in
grid_sample's normalised coordinates: x along the width, y along the height, both
in [-1, 1]). The TPS system

    L = [[U(|t_i - t_j|), 1, t_x, t_y],      (K rows)
         [1^T, 0], [t_x^T, 0], [t_y^T, 0]]   (3 rows),  U(r) = r^2 log r

is solved once per layout in float64; the ops use ``kinv = inv(L)[:, :K]``
([K+3, K]) so the TPS coefficients of control points ``ctrl`` are
``kinv @ ctrl`` and the mapping is linear in ``ctrl``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from fastpose.ops._checks import acc_dtype

DEFAULT_SPAN = 0.9  # the default lattice spans [-span, span]^2 (spatial transformer networks' choice)
_CACHE_SIZE = 64  # layouts kept by content; a TPSLayout object keeps its own solve regardless
# Relative thresholds of the layout checks, on coordinates scaled to unit extent.
_DUPLICATE_TOL = 1e-7
_COLLINEAR_TOL = 1e-7
_MAX_CONDITION = 1e12


def regular_target(grid_size: Union[int, Sequence[int]], span: float = DEFAULT_SPAN) -> Tensor:
    """A regular lattice of target points ``[gy * gx, 2]`` (float64) spanning ``[-span, span]^2``.

    ``grid_size`` is ``g`` (a g x g lattice) or ``(gy, gx)``. Points are in row-major
    order: ``k = row * gx + col`` is the point ``(x_col, y_row)``.
    """
    gy, gx = (grid_size, grid_size) if isinstance(grid_size, int) else tuple(grid_size)
    if gy < 2 or gx < 2:
        raise ValueError(f"regular_target: grid_size must be at least 2 per axis, got {grid_size!r}")
    ys = torch.linspace(-span, span, gy, dtype=torch.float64)
    xs = torch.linspace(-span, span, gx, dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def tps_rbf(d2: Tensor) -> Tensor:
    """U as a function of the squared distance, ``0.5 * d2 * log(d2)``, with its limit 0 at 0."""
    pos = d2 > 0
    return torch.where(pos, 0.5 * d2 * torch.log(torch.where(pos, d2, torch.ones_like(d2))),
                       torch.zeros_like(d2))


def tps_basis(points: Tensor, target: Tensor) -> Tensor:
    """Basis ``[P, K+3]`` of P points ``[P, 2]``: U(|p - t_j|^2) for each target, then 1, x, y.

    Squared distances come from explicit differences (the |a|^2 + |b|^2 - 2ab form cancels).
    """
    diff = points[:, None, :] - target[None, :, :]
    u = tps_rbf((diff * diff).sum(-1))
    ones = torch.ones_like(points[:, :1])
    return torch.cat([u, ones, points], dim=1)


def tps_system(target: Tensor) -> Tensor:
    """The (K+3) x (K+3) TPS system matrix of a layout, in the dtype of ``target``."""
    k = target.shape[0]
    top = tps_basis(target, target)  # [K, K+3]
    bottom = torch.cat([top[:, k:].t(), torch.zeros(3, 3, dtype=target.dtype, device=target.device)],
                       dim=1)
    return torch.cat([top, bottom], dim=0)


def check_layout_points(op: str, target: Tensor) -> None:
    """Reject layouts whose TPS system is singular: duplicated or collinear points."""
    k = target.shape[0]
    if k < 3:
        raise ValueError(f"{op}: a thin-plate spline needs at least 3 control points, got K={k}")
    if not torch.isfinite(target).all():
        raise ValueError(f"{op}: target points must be finite")
    centred = target - target.mean(0)
    extent = float(centred.abs().max())
    if extent == 0.0:
        raise ValueError(f"{op}: all {k} target points coincide")
    scaled = centred / extent
    d2 = ((scaled[:, None, :] - scaled[None, :, :]) ** 2).sum(-1)
    d2.fill_diagonal_(math.inf)
    i, j = divmod(int(torch.argmin(d2)), k)
    if float(d2[i, j]) < _DUPLICATE_TOL ** 2:
        raise ValueError(f"{op}: target points {min(i, j)} and {max(i, j)} are duplicated "
                         f"({target[i].tolist()}); the TPS system would be singular")
    sv = torch.linalg.svdvals(scaled)
    if float(sv[1]) < _COLLINEAR_TOL * float(sv[0]):
        raise ValueError(f"{op}: the {k} target points are collinear; a thin-plate spline needs "
                         "at least 3 non-collinear control points")


class TPSLayout:
    """A target layout with its float64 solve, and per-(device, dtype) copies made on first use.

    Build one with :func:`tps_layout` (cached by content) and pass it as ``target`` to
    skip the content lookup; :class:`fastpose.ops.TPSWarp` holds one.
    """

    def __init__(self, target: Tensor, op: str = "tps_layout") -> None:
        target = torch.as_tensor(target).detach().to("cpu", torch.float64).contiguous()
        if target.dim() != 2 or target.shape[1] != 2:
            raise ValueError(f"{op}: target must be [K, 2], got shape {tuple(target.shape)}")
        check_layout_points(op, target)
        system = tps_system(target)
        cond = float(torch.linalg.cond(system))
        if not math.isfinite(cond) or cond > _MAX_CONDITION:
            raise ValueError(f"{op}: the TPS system of these {target.shape[0]} target points is "
                             f"nearly singular (condition number {cond:.3g}); are some points "
                             "almost duplicated or almost collinear?")
        k = target.shape[0]
        eye = torch.eye(k + 3, k, dtype=torch.float64)
        self.k = int(k)  # number of control points
        self.key = points_key(target)  # content key of the layout cache
        self.target = target  # [K, 2] float64 on the CPU
        self.kinv = torch.linalg.solve(system, eye)  # [K+3, K] float64: inv(L)[:, :K]
        self.copies: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}
        _remember(self.key, self)

    def tensors(self, device: Union[str, torch.device],
                dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """(target, kinv) in the accumulation dtype of ``dtype`` on ``device``, cached."""
        key = (torch.device(device), acc_dtype(dtype))
        found = self.copies.get(key)
        if found is None:
            found = (self.target.to(*key), self.kinv.to(*key))
            self.copies[key] = found  # a race only builds an equal copy twice
        return found

    def __repr__(self) -> str:
        return f"TPSLayout(K={self.k})"


def points_key(points: Tensor) -> tuple:
    """Content key of a layout: the float64 coordinates, row-major."""
    return ("points", tuple(points.detach().to("cpu", torch.float64).reshape(-1).tolist()))


# No lock: dict operations are atomic under the GIL, a race only solves a layout twice, and
# torch.compile cannot trace through a lock.
_layouts: "OrderedDict[tuple, TPSLayout]" = OrderedDict()


def _remember(key: tuple, layout: TPSLayout) -> None:
    _layouts[key] = layout
    while len(_layouts) > _CACHE_SIZE:
        _layouts.popitem(last=False)  # oldest first


def _layout_for_key(key: tuple, op: str) -> TPSLayout:
    layout = _layouts.get(key)
    if layout is None:
        if key[0] == "regular":
            layout = TPSLayout(regular_target(key[1]), op)
            _remember(key, layout)
        else:
            layout = TPSLayout(torch.tensor(key[1], dtype=torch.float64).view(-1, 2), op)
    return layout


def layout_key(target: Union[None, Tensor, Sequence, TPSLayout], k: Optional[int],
               op: str) -> tuple:
    """Cache key of ``target`` (see :func:`tps_layout`), checked against K control points.

    Pure Python for None and TPSLayout targets, so torch.compile traces it; a tensor
    target is read back to the host (a synchronisation for a CUDA tensor).
    """
    if isinstance(target, TPSLayout):
        key, count = target.key, target.k
    elif target is None:
        if k is None:
            raise ValueError(f"{op}: give target points or the number of control points")
        g = math.isqrt(k)
        if g * g != k or g < 2:
            raise ValueError(f"{op}: without target points, K must be a square >= 4 (a g x g "
                             f"lattice); got K={k}; pass target=[K, 2] points")
        key, count = ("regular", g), k
    else:
        pts = torch.as_tensor(target).detach()
        if pts.dim() != 2 or pts.shape[1] != 2:
            raise ValueError(f"{op}: target must be [K, 2], got shape {tuple(pts.shape)}")
        key, count = points_key(pts), pts.shape[0]
    if k is not None and count != k:
        raise ValueError(f"{op}: ctrl has K={k} control points but target has {count}")
    return key


def tps_layout(target: Union[None, Tensor, Sequence, TPSLayout] = None, k: Optional[int] = None,
               op: str = "tps_layout") -> TPSLayout:
    """The layout of ``target`` ([K, 2] points, a TPSLayout, or None for the regular g x g
    lattice spanning [-0.9, 0.9]^2 with g^2 = ``k``), solved once and cached by content."""
    if isinstance(target, TPSLayout):
        layout_key(target, k, op)
        return target
    return _layout_for_key(layout_key(target, k, op), op)


# Evaluated eagerly while torch.compile traces (the solve branches on data); the result
# depends only on the arguments, so the copies are constants of the graph.
@torch.compiler.assume_constant_result
def _tensors_for_key(key: tuple, device: torch.device, dtype: torch.dtype,
                     op: str) -> tuple[Tensor, Tensor]:
    return _layout_for_key(key, op).tensors(device, dtype)


def layout_tensors(key: tuple, device: torch.device, dtype: torch.dtype,
                   op: str = "tps_layout") -> tuple[Tensor, Tensor]:
    """(target [K, 2], kinv [K+3, K]) of the layout ``key`` in the accumulation dtype of
    ``dtype`` on ``device``: solved once in float64, copied once per (device, dtype)."""
    return _tensors_for_key(key, device, acc_dtype(dtype), op)
