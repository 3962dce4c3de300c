"""Pure-PyTorch reference of :func:`fastpose.ops.region_conv`: the literal formulation, a dense
convolution of the broadcast map."""

from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from fastpose.ops.ref.region_pool import region_broadcast_ref
from fastpose.ops.region_conv_args import check_conv_args
from fastpose.ops.region_pool_args import check_label_range


def region_conv_ref(
    codes: Tensor,  # [N, R, S]
    seg: Tensor,  # [N, H, W] integer labels in [0, R)
    weight: Tensor,  # [C, S, kh, kw], kh and kw odd
    bias: Optional[Tensor] = None,  # [C]
) -> Tensor:
    """``conv2d(region_broadcast(codes, seg), weight, bias, padding=(kh // 2, kw // 2))``:
    ``[N, C, H, W]`` (see :func:`fastpose.ops.region_conv`)."""
    op = "region_conv_ref"
    kh, kw = check_conv_args(op, codes, seg, weight, bias)
    check_label_range(op, seg, codes.shape[1])
    return F.conv2d(region_broadcast_ref(codes, seg), weight, bias, padding=(kh // 2, kw // 2))
