"""Training losses: L1, PG2's pose-mask L1, adversarial losses, perceptual (VGG) loss.

Images are ``[N, C, H, W]`` in [-1, 1] unless a function says otherwise.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def l1_loss(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute difference."""
    return (x - y).abs().mean()


def pose_mask_l1_loss(
    x: Tensor,  # [N, C, H, W] generated
    y: Tensor,  # [N, C, H, W] target
    mask: Tensor,  # [N, 1, H, W] or [N, H, W], 1 on the body, 0 on the background
    mask_weight: float = 1.0,
) -> Tensor:
    """PG2's pose-mask loss, equation (1): ``mean(|x - y| * (1 + w * M))``.

    With ``mask_weight=1`` this is the authors' ``mean|x-y| + mean(|x-y| * M)``.
    """
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    if mask.shape[0] != x.shape[0] or mask.shape[-2:] != x.shape[-2:] or mask.shape[1] != 1:
        raise ValueError(f"pose_mask_l1_loss: mask must be [N, 1, H, W] matching x {tuple(x.shape)}, "
                         f"got {tuple(mask.shape)}")
    diff = (x - y).abs()
    return diff.mean() + mask_weight * (diff * mask.to(diff.dtype)).mean()


# --- adversarial losses ---------------------------------------------------------------------
# Each takes the discriminator's raw outputs (logits) and whether they should be judged real.

def _bce(logits: Tensor, real: bool) -> Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def _lsgan(logits: Tensor, real: bool) -> Tensor:
    return ((logits - (1.0 if real else 0.0)) ** 2).mean()


def _hinge(logits: Tensor, real: bool) -> Tensor:
    # Discriminator hinge terms; for the generator use gan_loss(..., real=True, for_generator=True).
    return F.relu(1.0 - logits).mean() if real else F.relu(1.0 + logits).mean()


GAN_LOSSES: dict[str, Callable[[Tensor, bool], Tensor]] = {
    "bce": _bce,  # vanilla GAN on a sigmoid output (DCGAN, PG2, PATN on Market)
    "lsgan": _lsgan,  # least squares (PATN on DeepFashion)
    "hinge": _hinge,
}


def gan_loss(logits: Tensor, real: bool, kind: str = "bce", for_generator: bool = False) -> Tensor:
    """Adversarial loss of logits judged as ``real`` (or fake) with loss ``kind``.

    The generator's loss is ``gan_loss(D(fake), real=True, for_generator=True)``; for the hinge
    loss that is ``-mean(D(fake))``, for the others the same as the discriminator's real term.
    """
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; expected one of {sorted(GAN_LOSSES)}")
    if for_generator and kind == "hinge":
        return -logits.mean()
    return GAN_LOSSES[kind](logits, real)


class PerceptualLoss(nn.Module):
    """Weighted L1 distance between frozen VGG features of two images in [-1, 1].

    Args:
        features: a module mapping images to {layer: features} (:class:`fastpose.models.vgg.VGGFeatures`).
        weights: weight per layer name (default 1 for every layer of ``features``).
    """

    def __init__(self, features: nn.Module, weights: Optional[Mapping[str, float]] = None) -> None:
        super().__init__()
        self.features = features
        layers: Sequence[str] = getattr(features, "layers", ())
        self.weights = dict(weights) if weights is not None else {n: 1.0 for n in layers}

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        fx = self.features(x)
        with torch.no_grad():
            fy = self.features(y)
        return sum(w * (fx[n] - fy[n]).abs().mean() for n, w in self.weights.items())
