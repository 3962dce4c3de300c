"""The guided filter of He et al. (TPAMI 2013) with an O(1) box filter from cumulative sums.

PoT-GAN (Li et al. 2021, Sec. III-B) filters the generated image with the full-body pose mask as the
guide, so that the output follows the mask's edges (the person's silhouette). The box filter is
the cumulative-sum formulation of the authors of the deep guided filter (wuhuikai/DeepGuidedFilter,
see the facts file §4): a sum over the (2r+1)^2 window truncated at the borders, normalised by the
number of pixels inside the image.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _box_sum_1d(x: Tensor, r: int, dim: int) -> Tensor:
    """Sum of ``x`` over ``[i - r, i + r]`` along ``dim``, truncated at the borders."""
    n = x.shape[dim]
    shape = list(x.shape)
    shape[dim] = 1
    # c[k] = sum of the first k elements, so a window [lo, hi] sums to c[hi + 1] - c[lo].
    c = torch.cat([x.new_zeros(shape), x.cumsum(dim)], dim)
    idx = torch.arange(n, device=x.device)
    hi = (idx + r + 1).clamp(max=n)
    lo = (idx - r).clamp(min=0)
    return c.index_select(dim, hi) - c.index_select(dim, lo)


def box_filter(x: Tensor, r: int) -> Tensor:
    """Box sum of ``x`` ``[N, C, H, W]`` over a (2r+1) x (2r+1) window (zeros outside the image).

    Two cumulative sums, so the cost does not depend on ``r``.
    """
    if x.dim() != 4:
        raise ValueError(f"box_filter: x must be [N, C, H, W], got shape {tuple(x.shape)}")
    if r < 0:
        raise ValueError(f"box_filter: radius must be >= 0, got {r}")
    return _box_sum_1d(_box_sum_1d(x, r, 2), r, 3)


def guided_filter(guide: Tensor, src: Tensor, r: int, eps: float) -> Tensor:
    """Guided filter output ``[N, C, H, W]`` of ``src`` ``[N, C, H, W]`` steered by ``guide``.

    ``guide`` is ``[N, 1, H, W]`` (one guide for every channel, e.g. a pose mask) or
    ``[N, C, H, W]`` (channel-wise). Per window: ``a = cov(I, p) / (var(I) + eps)``,
    ``b = mean(p) - a mean(I)``; the output is ``mean(a) I + mean(b)``. Where the guide is flat the
    output is the local mean of ``src``; across an edge of the guide it follows that edge.
    """
    if guide.dim() != 4 or src.dim() != 4:
        raise ValueError(f"guided_filter: guide and src must be [N, C, H, W], got "
                         f"{tuple(guide.shape)} and {tuple(src.shape)}")
    if guide.shape[0] != src.shape[0] or guide.shape[2:] != src.shape[2:] \
            or guide.shape[1] not in (1, src.shape[1]):
        raise ValueError(f"guided_filter: guide must be [N, 1 or C, H, W] matching src "
                         f"{tuple(src.shape)}, got {tuple(guide.shape)}")
    if eps <= 0:
        raise ValueError(f"guided_filter: eps must be > 0, got {eps}")
    guide = guide.to(src.dtype)
    h, w = src.shape[2:]
    count = box_filter(src.new_ones(1, 1, h, w), r)
    mean_i = box_filter(guide, r) / count
    mean_p = box_filter(src, r) / count
    cov_ip = box_filter(guide * src, r) / count - mean_i * mean_p
    var_i = box_filter(guide * guide, r) / count - mean_i * mean_i
    a = cov_ip / (var_i.clamp(min=0) + eps)
    b = mean_p - a * mean_i
    return box_filter(a, r) / count * guide + box_filter(b, r) / count


class GuidedFilter(nn.Module):
    """Module form of :func:`guided_filter`: ``forward(guide, src)``."""

    def __init__(self, radius: int = 1, eps: float = 1e-2) -> None:
        super().__init__()
        if radius < 0:
            raise ValueError(f"GuidedFilter: radius must be >= 0, got {radius}")
        if eps <= 0:
            raise ValueError(f"GuidedFilter: eps must be > 0, got {eps}")
        self.radius, self.eps = int(radius), float(eps)

    def forward(self, guide: Tensor, src: Tensor) -> Tensor:
        return guided_filter(guide, src, self.radius, self.eps)

    def extra_repr(self) -> str:
        return f"radius={self.radius}, eps={self.eps}"
