"""Pure-PyTorch references of :func:`fastpose.ops.region_avg_pool` and
:func:`fastpose.ops.region_broadcast`, and a transcription of SEAN's per-(n, r) loop.

The references turn label maps into one-hot masks and use dense batched matrix
products: ``codes[n] = M[n] F[n]^T / area[n]`` and ``out[n] = codes[n]^T M[n]``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from fastpose.ops._checks import acc_dtype
from fastpose.ops.region_pool_args import (RegionPooled, check_broadcast_args, check_label_range,
                                           check_pool_args, is_label_map)


def label_masks(seg: Tensor, num_regions: int, dtype: torch.dtype, op: str = "label_masks") -> Tensor:
    """One-hot masks ``[N, R, H, W]`` of a label map ``[N, H, W]`` (labels checked against R)."""
    check_label_range(op, seg, num_regions)
    return F.one_hot(seg.long(), num_regions).permute(0, 3, 1, 2).to(dtype)


def _masks(op: str, seg: Tensor, num_regions: int, dtype: torch.dtype) -> Tensor:
    return label_masks(seg, num_regions, dtype, op) if is_label_map(seg) else seg


def region_avg_pool_ref(
    feat: Tensor,  # [N, C, H, W]
    seg: Tensor,  # [N, H, W] integer labels or [N, R, H, W] masks
    num_regions: Optional[int] = None,
) -> RegionPooled:
    """Reference region-wise average pooling (see :func:`fastpose.ops.region_avg_pool`)."""
    op = "region_avg_pool_ref"
    r = check_pool_args(op, feat, seg, num_regions)
    acc = acc_dtype(feat.dtype)
    m = _masks(op, seg, r, feat.dtype).flatten(2).to(acc)  # [N, R, P]
    f = feat.flatten(2).to(acc)  # [N, C, P]
    area = m.sum(2)  # [N, R]
    full = area > 0
    # Divide by a safe area so the unused branch of where() has no inf/NaN gradients.
    safe = torch.where(full, area, torch.ones_like(area))
    codes = torch.where(full.unsqueeze(2), torch.bmm(m, f.transpose(1, 2)) / safe.unsqueeze(2),
                        torch.zeros((), dtype=acc, device=feat.device))
    return RegionPooled(codes.to(feat.dtype), area.detach())


def region_broadcast_ref(
    codes: Tensor,  # [N, R, C]
    seg: Tensor,  # [N, H, W] integer labels or [N, R, H, W] masks
) -> Tensor:
    """Reference broadcast (see :func:`fastpose.ops.region_broadcast`): ``[N, C, H, W]``."""
    op = "region_broadcast_ref"
    check_broadcast_args(op, codes, seg)
    n, r, c = codes.shape
    h, w = seg.shape[-2:]
    acc = acc_dtype(codes.dtype)
    m = _masks(op, seg, r, codes.dtype).flatten(2).to(acc)
    out = torch.bmm(codes.to(acc).transpose(1, 2), m)
    return out.view(n, c, h, w).to(codes.dtype)


# --- SEAN's original formulation (a baseline for tests and benchmarks, not an op) --------------


def sean_region_pool_loop(feat: Tensor, segmap: Tensor) -> Tensor:
    """SEAN's ``Zencoder`` region average pooling, transcribed from its description: a Python
    loop over images and regions, each with a host-synchronising area test and a
    ``masked_select`` of the region's pixels. ``segmap`` is one-hot ``[N, R, H, W]``;
    returns ``[N, R, C]`` (empty regions stay 0)."""
    b, s = segmap.shape[:2]
    f = feat.shape[1]
    codes = torch.zeros(b, s, f, dtype=feat.dtype, device=feat.device)
    for i in range(b):
        for j in range(s):
            area = torch.sum(segmap.bool()[i, j])
            if area > 0:
                selected = feat[i].masked_select(segmap.bool()[i, j]).reshape(f, int(area))
                codes[i][j] = selected.mean(1)
    return codes


def sean_region_broadcast_loop(codes: Tensor, segmap: Tensor) -> Tensor:
    """SEAN's ACE broadcast, transcribed likewise: per image and present region, the code is
    ``masked_scatter_``-ed into that region of a zero map. Returns ``[N, C, H, W]``."""
    b, s = segmap.shape[:2]
    c = codes.shape[2]
    out = torch.zeros(b, c, *segmap.shape[2:], dtype=codes.dtype, device=codes.device)
    for i in range(b):
        for j in range(s):
            mask = segmap.bool()[i, j]
            area = torch.sum(mask)
            if area > 0:
                out[i].masked_scatter_(mask, codes[i, j].reshape(c, 1).expand(c, int(area)))
    return out
