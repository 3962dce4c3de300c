"""SPGNet's skeleton distance maps."""

from __future__ import annotations

import torch
from torch import Tensor

from fastpose.pose.encodings._common import Size, batched, present, segment_distance
from fastpose.pose.openpose import DISTANCE_MAP_LIMBS


@batched
def distance_maps(keypoints: Tensor, size: Size, *, kappa: float = -0.1) -> Tensor:
    """Skeleton distance maps ``exp(kappa * d)`` (SPGNet, Lv et al. 2021, eq. 2-3).

    d is the Euclidean distance in pixels from each pixel to the segment of one skeleton line.
    The 12 lines are :data:`fastpose.pose.openpose.DISTANCE_MAP_LIMBS`, in this channel order:
    neck-r_shoulder, neck-l_shoulder, r_shoulder-r_elbow, r_elbow-r_wrist, l_shoulder-l_elbow,
    l_elbow-l_wrist, neck-r_hip, r_hip-r_knee, r_knee-r_ankle, neck-l_hip, l_hip-l_knee,
    l_knee-l_ankle (the paper does not list them; see that constant). A line with a missing end
    gives an all-zero channel, as the paper prescribes for invisible skeletons.

    Args:
        keypoints: ``[N, 18, 2]`` (y, x), -1 = missing.
        size: output (H, W).
        kappa: negative decay (-0.1 in the paper; SPGNet's model makes it learnable).
    Returns:
        ``[N, 12, H, W]`` in (0, 1], 1 on the skeleton.
    """
    if not kappa < 0:
        raise ValueError(f"kappa must be negative, got {kappa}")
    limbs = torch.tensor(DISTANCE_MAP_LIMBS, device=keypoints.device)
    a, b = keypoints[:, limbs[:, 0]], keypoints[:, limbs[:, 1]]
    ok = present(keypoints)
    visible = ok[:, limbs[:, 0]] & ok[:, limbs[:, 1]]
    # exp(kappa d) = exp(-(|kappa| d)): the decay scales the separable terms for free, and an
    # infinite distance gives the invisible segments their zeros.
    return segment_distance(a, b, size, scale=-kappa, hidden=~visible).neg_().exp_()
