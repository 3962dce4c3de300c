"""Body-part masks of the part-based SSIM loss (Shi et al. 2020), batched in torch.

The construction follows the authors' ``make_limb_masks`` (shyern/Pose-Transfer-PSSIM):
10 parts, each an anisotropic Gaussian centred on the midpoint of a segment between joints,
with variance ``max(5, length^2 / 1.2)`` along the segment and 81 (9^2, limbs and head) or
169 (13^2, torso) across it, in pixels (not rescaled with the image size, as published).
Each part is divided by ``max + 1e-6`` over the image (the published normalisation, which
also keeps a Gaussian that underflows everywhere at 0 instead of NaN). A part with a
missing joint is all zero. The background is ``1 - max`` over the parts and comes first:
the output is ``[N, 11, H, W]`` with channel 0 = background, the layout of the published
``BP2_mask`` that the loss reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fastpose.pose.openpose import MISSING, NUM_KEYPOINTS

# Joints of each part in the OpenPose-18 order. Two joints: the segment between them.
# Four joints (the torso): from the midpoint of the first two (shoulders) to the midpoint
# of the last two (hips).
PART_JOINTS: tuple[tuple[int, ...], ...] = (
    (0, 1),  # head: nose - neck
    (2, 3), (3, 4),  # right upper arm, right forearm
    (5, 6), (6, 7),  # left upper arm, left forearm
    (8, 9), (9, 10),  # right thigh, right shin
    (11, 12), (12, 13),  # left thigh, left shin
    (2, 5, 8, 11),  # torso: shoulders -> hips
)
PART_NAMES: tuple[str, ...] = ("head", "r_upper_arm", "r_forearm", "l_upper_arm", "l_forearm",
                               "r_thigh", "r_shin", "l_thigh", "l_shin", "torso")
NUM_PARTS = len(PART_JOINTS)
BACKGROUND = 0  # channel of the background in the output of part_masks
TORSO = NUM_PARTS - 1  # index of the torso among the parts (channel TORSO + 1 in the output)


@dataclass(frozen=True)
class PartMaskConfig:
    min_parallel_var: float = 5.0  # floor of the variance along the segment, pixels^2
    parallel_div: float = 1.2  # variance along the segment = length^2 / parallel_div (above the floor)
    limb_perp_var: float = 81.0  # variance across limbs and head, pixels^2 (9^2)
    torso_perp_var: float = 169.0  # variance across the torso, pixels^2 (13^2)
    norm_eps: float = 1e-6  # each part is divided by (its max + norm_eps), as published


def _check_keypoints(keypoints: object) -> Tensor:
    if not isinstance(keypoints, Tensor):
        raise TypeError(f"part_masks: keypoints must be a torch.Tensor [N, {NUM_KEYPOINTS}, 2] of "
                        f"(y, x) pixels, got {type(keypoints).__name__}")
    if keypoints.dim() not in (2, 3) or tuple(keypoints.shape[-2:]) != (NUM_KEYPOINTS, 2):
        raise ValueError(f"part_masks: keypoints must be [N, {NUM_KEYPOINTS}, 2] or "
                         f"[{NUM_KEYPOINTS}, 2] (y, x) pixels in the OpenPose-18 order, got shape "
                         f"{tuple(keypoints.shape)}")
    if keypoints.is_complex():
        raise TypeError("part_masks: keypoints must be real, got a complex tensor")
    return keypoints


def _check_size(size: object) -> tuple[int, int]:
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"part_masks: size must be (H, W) with positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def part_segments(keypoints: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Segment endpoints of the 10 parts and which parts are present.

    Args:
        keypoints: ``[N, 18, 2]`` (y, x) pixels; a joint with a coordinate equal to -1 is missing.

    Returns:
        ``p0 [N, 10, 2]``, ``p1 [N, 10, 2]`` (y, x) in float64, and ``present [N, 10]`` (bool).
    """
    kp = keypoints.to(torch.float64)
    missing = (keypoints == MISSING).any(dim=-1)  # [N, 18]
    p0, p1, present = [], [], []
    for joints in PART_JOINTS:
        j = list(joints)
        present.append(~missing[:, j].any(dim=1))
        if len(j) == 2:
            p0.append(kp[:, j[0]])
            p1.append(kp[:, j[1]])
        else:
            p0.append(kp[:, j[:2]].mean(dim=1))
            p1.append(kp[:, j[2:]].mean(dim=1))
    return torch.stack(p0, 1), torch.stack(p1, 1), torch.stack(present, 1)


def part_gaussians(
    keypoints: Tensor,  # [N, 18, 2] or [18, 2], (y, x) pixels
    size: tuple[int, int],  # (H, W)
    *,
    config: PartMaskConfig = PartMaskConfig(),
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The 10 normalised part Gaussians ``[N, 10, H, W]`` (no background), zero for missing parts."""
    kp = _check_keypoints(keypoints)
    h, w = _check_size(size)
    squeeze = kp.dim() == 2
    if squeeze:
        kp = kp.unsqueeze(0)
    p0, p1, present = part_segments(kp)
    # Geometry in float64 (cheap: N x 10 numbers), the maps in `dtype`.
    centre = (p0 + p1) / 2
    d = p1 - p0  # (dy, dx)
    var_par = torch.clamp((d * d).sum(-1) / config.parallel_div, min=config.min_parallel_var)
    var_perp = torch.full_like(var_par, config.limb_perp_var)
    var_perp[:, TORSO] = config.torso_perp_var
    # The published angle and quadratic form: theta = atan2(dx, -dy), evaluated with the row
    # offset as the first coordinate, which puts var_par along the segment.
    theta = torch.atan2(d[..., 1], -d[..., 0])
    cos2, sin2, sin2t = torch.cos(theta) ** 2, torch.sin(theta) ** 2, torch.sin(2 * theta)
    a = cos2 / (2 * var_par) + sin2 / (2 * var_perp)
    b = -sin2t / (4 * var_par) + sin2t / (4 * var_perp)
    c = sin2 / (2 * var_par) + cos2 / (2 * var_perp)
    work = torch.float64 if dtype == torch.float64 else torch.float32
    a, b, c, centre = (t.to(work) for t in (a, b, c, centre))
    rows = torch.arange(h, dtype=work, device=kp.device).view(1, 1, h, 1)
    cols = torch.arange(w, dtype=work, device=kp.device).view(1, 1, 1, w)
    u = rows - centre[..., 0, None, None]  # [N, 10, H, 1]
    v = cols - centre[..., 1, None, None]  # [N, 10, 1, W]
    q = a[..., None, None] * u * u + 2 * b[..., None, None] * u * v + c[..., None, None] * v * v
    g = torch.exp(-q)
    g = g / (g.amax(dim=(2, 3), keepdim=True) + config.norm_eps)
    g = (g * present[..., None, None]).to(dtype)
    return g[0] if squeeze else g


def part_masks(
    keypoints: Tensor,  # [N, 18, 2] or [18, 2], (y, x) pixels, -1 = missing
    size: tuple[int, int],  # (H, W)
    *,
    hard: bool = False,
    hard_threshold: float = 0.5,
    config: PartMaskConfig = PartMaskConfig(),
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Background and the 10 part masks of pSSIM: ``[N, 11, H, W]`` (``[11, H, W]`` unbatched).

    Channel 0 is the background ``1 - max`` over the parts, channels 1..10 the parts in the
    order of :data:`PART_NAMES`. The soft masks (default) are the published ones. With
    ``hard=True`` each part is binarised at ``hard_threshold`` of its peak (0.5: the half-maximum
    contour) and the background is the complement of their union; this variant is for
    experiments, the paper uses the soft masks. Computed on the device of ``keypoints``.
    """
    if not 0 < hard_threshold < 1:
        raise ValueError(f"part_masks: hard_threshold must be in (0, 1), got {hard_threshold!r}")
    parts = part_gaussians(keypoints, size, config=config, dtype=dtype)
    if hard:
        parts = (parts >= hard_threshold).to(dtype)
    background = 1 - parts.amax(dim=-3, keepdim=True)
    return torch.cat([background, parts], dim=-3)
