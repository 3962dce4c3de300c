"""Losses of the fastpose generators, grouped by family.

Structural-similarity family (Shi et al. 2020, "Loss Functions for Person Image Generation"):

| function | module | what |
|---|---|---|
| :func:`ssim_loss` | :class:`SSIMLoss` | ``1 - MSSIM``, equation (7) |
| :func:`pssim` / :func:`pssim_loss` | :class:`PSSIMLoss` | part-based SSIM, equations (9), (10) |
| :func:`pssim_star` / :func:`pssim_star_loss` | :class:`PSSIMStarLoss` | background as one more part, equation (11) |

:data:`SSIM_LOSSES` maps the names a trainer config uses to the modules.

All of them take images **in [0, 1]** (data_range 1, so C1 = 1e-4 and C2 = 9e-4, as in the
published code, which maps the generator's [-1, 1] output to [0, 1] first); converting is the
caller's job, and nothing here checks the range (that would cost a device sync). The masks of
the part-based losses are ``[N, 1 + L, H, W]`` with the background in channel 0 and the L body
parts after it, the layout of :func:`fastpose.pose.part_masks`.

Pixel and adversarial family (used by PG2 and the other generators; images in [-1, 1]):
:func:`l1_loss`, :func:`pose_mask_l1_loss` (PG2's equation (1)), :func:`gan_loss` with the
variants of :data:`GAN_LOSSES` (bce, lsgan, hinge), and :class:`PerceptualLoss` (L1 between frozen
VGG features, :class:`fastpose.models.vgg.VGGFeatures`).

Empty parts. The published code scores a part with an all-zero mask (a missing joint) as
SSIM = 1 and keeps it in the mean, which inflates the score and scales the gradient of an image
by (visible parts / L). ``empty="exclude"`` (the default here) averages only over parts whose
mask sum exceeds ``min_area``, so every visible part weighs the same whatever is missing, and an
image with no visible part scores 1. ``empty="one"`` reproduces the published behaviour: use it
to compare with the paper's pSSIM numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Literal, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastpose.ops import part_stats, ssim
from fastpose.ops._checks import check_choice, check_positive, check_tensor
from fastpose.ops._dispatch import Impl
from fastpose.ops.part_stats_args import ssim_from_part_stats

EmptyParts = Literal["exclude", "one"]
EMPTY_PARTS = ("exclude", "one")
PSSIM_REDUCTIONS = ("mean", "per_image")

# --- SSIM -----------------------------------------------------------------------------------


def ssim_loss(
    x: Tensor,  # [N, C, H, W] in [0, 1]
    y: Tensor,  # [N, C, H, W] in [0, 1]
    *,
    window: int = 11,
    sigma: float = 1.5,
    reduction: str = "mean",
    impl: Impl = "auto",
) -> Tensor:
    """SSIM loss ``1 - MSSIM(x, y)`` (equation (7)) on images in [0, 1], via :func:`fastpose.ops.ssim`.

    Valid padding, Gaussian window ``window``/``sigma``; ``reduction`` "mean" (scalar) or
    "per_image" (``[N]``).
    """
    check_choice("ssim_loss", "reduction", reduction, PSSIM_REDUCTIONS)
    return 1 - ssim(x, y, window=window, sigma=sigma, data_range=1.0, padding="valid",
                    reduction=reduction, impl=impl)


class SSIMLoss(nn.Module):
    """Module form of :func:`ssim_loss` (images in [0, 1])."""

    needs_masks = False  # forward(x, y)

    def __init__(self, *, window: int = 11, sigma: float = 1.5, reduction: str = "mean",
                 impl: Impl = "auto") -> None:
        super().__init__()
        check_choice("SSIMLoss", "reduction", reduction, PSSIM_REDUCTIONS)
        self.kwargs = dict(window=window, sigma=sigma, reduction=reduction, impl=impl)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return ssim_loss(x, y, **self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())


# --- part-based SSIM ------------------------------------------------------------------------


@dataclass(frozen=True)
class PSSIMConfig:
    window: int = 7  # Gaussian window of the background MSSIM (the paper's training scripts)
    sigma: float = 0.8  # its standard deviation, pixels
    k1: float = 0.01  # C1 = k1^2 (data range 1)
    k2: float = 0.03  # C2 = k2^2
    eps: float = 1e-6  # added to each mask sum in the part weights, as published
    empty: EmptyParts = "exclude"  # "exclude" parts with mask sum <= min_area, or score them 1 ("one")
    min_area: float = 0.5  # mask sum at or below which a part counts as empty (with "exclude")
    reduction: str = "mean"  # "mean" (scalar) or "per_image" ([N])


def _check_pssim_inputs(op: str, x: Tensor, y: Tensor, masks: Tensor, cfg: PSSIMConfig,
                        min_parts: int) -> None:
    check_tensor(op, "x", x, 4, "[N, C, H, W]")
    check_tensor(op, "y", y, 4, "[N, C, H, W]")
    n, _, h, w = x.shape
    layout = f"[N, 1 + L, H, W] = [{n}, 1 + L, {h}, {w}] (background first)"
    check_tensor(op, "masks", masks, 4, layout)
    if masks.shape[0] != n or tuple(masks.shape[2:]) != (h, w) or masks.shape[1] < min_parts:
        raise ValueError(f"{op}: masks must be {layout} with L >= 1, got shape {tuple(masks.shape)}")
    if not masks.is_floating_point():
        raise TypeError(f"{op}: masks must be a floating-point tensor, got {masks.dtype}")
    check_choice(op, "empty", cfg.empty, EMPTY_PARTS)
    check_choice(op, "reduction", cfg.reduction, PSSIM_REDUCTIONS)
    check_positive(op, "k1", cfg.k1)
    check_positive(op, "k2", cfg.k2)


def _mean_part_ssim(x: Tensor, y: Tensor, parts: Tensor, cfg: PSSIMConfig, impl: Impl) -> Tensor:
    """Mean part SSIM per image ``[N]`` over parts and channels, empty parts as configured."""
    stats, msum = part_stats(x, y, parts.to(x.dtype), eps=cfg.eps, impl=impl)
    per_part = ssim_from_part_stats(stats, cfg.k1 ** 2, cfg.k2 ** 2).mean(dim=-1)  # [N, K]
    if cfg.empty == "one":
        return per_part.mean(dim=1)
    present = (msum > cfg.min_area).to(per_part.dtype)
    count = present.sum(dim=1)
    mean = (per_part * present).sum(dim=1) / count.clamp(min=1)
    return torch.where(count > 0, mean, torch.ones_like(mean))


def _reduce(per_image: Tensor, reduction: str, dtype: torch.dtype) -> Tensor:
    return (per_image.mean() if reduction == "mean" else per_image).to(dtype)


def pssim(
    x: Tensor,  # [N, C, H, W] in [0, 1]
    y: Tensor,  # [N, C, H, W] in [0, 1]
    masks: Tensor,  # [N, 1 + L, H, W], channel 0 = background
    *,
    config: PSSIMConfig = PSSIMConfig(),
    impl: Impl = "auto",
) -> Tensor:
    """Part-based SSIM, equation (9): ``(MSSIM(b x, b y) + mean_l SSIM^l) / 2``.

    The background term is the Gaussian-window SSIM (window 7, sigma 0.8, valid padding) of
    both images multiplied by the background mask b = ``masks[:, 0]``; the part term is the
    mean over the L parts ``masks[:, 1:]`` and the channels of :func:`fastpose.ops.part_ssim`
    (equation (8)). Empty parts are handled as ``config.empty`` says (see the module docstring).

    Args:
        x, y: images in [0, 1] (generated and target), ``[N, C, H, W]``; both get gradients.
        masks: ``[N, 1 + L, H, W]`` soft masks >= 0, e.g. :func:`fastpose.pose.part_masks` of
            the target pose; gradients flow to them too when they require grad.
        config: window, constants, empty-part rule and reduction.
        impl: ``"auto"``, ``"ext"`` or ``"ref"`` for the underlying ops.

    Returns:
        pSSIM (1 for identical images): a scalar, or ``[N]`` with ``reduction="per_image"``.
    """
    _check_pssim_inputs("pssim", x, y, masks, config, min_parts=2)
    background = masks[:, :1].to(x.dtype)
    bg = ssim(background * x, background * y, window=config.window, sigma=config.sigma,
              data_range=1.0, k1=config.k1, k2=config.k2, padding="valid", reduction="per_image",
              impl=impl)
    fg = _mean_part_ssim(x, y, masks[:, 1:], config, impl)
    return _reduce(0.5 * (bg.to(fg.dtype) + fg), config.reduction, x.dtype)


def pssim_loss(x: Tensor, y: Tensor, masks: Tensor, *, config: PSSIMConfig = PSSIMConfig(),
               impl: Impl = "auto") -> Tensor:
    """Part-based SSIM loss ``1 - pssim(x, y, masks)``, equation (10); images in [0, 1]."""
    return 1 - pssim(x, y, masks, config=config, impl=impl)


def pssim_star(
    x: Tensor,  # [N, C, H, W] in [0, 1]
    y: Tensor,  # [N, C, H, W] in [0, 1]
    masks: Tensor,  # [N, 1 + L, H, W], channel 0 = background
    *,
    config: PSSIMConfig = PSSIMConfig(),
    impl: Impl = "auto",
) -> Tensor:
    """pSSIM*, the similarity of equation (11): the mean part SSIM (equation (8)) over all
    ``1 + L`` masks, the background being treated as one more part (no sliding window).

    Same arguments and empty-part rule as :func:`pssim` (``config.window``/``sigma`` are unused).
    """
    _check_pssim_inputs("pssim_star", x, y, masks, config, min_parts=1)
    return _reduce(_mean_part_ssim(x, y, masks, config, impl), config.reduction, x.dtype)


def pssim_star_loss(x: Tensor, y: Tensor, masks: Tensor, *, config: PSSIMConfig = PSSIMConfig(),
                    impl: Impl = "auto") -> Tensor:
    """``1 - pssim_star(x, y, masks)``, equation (11); images in [0, 1]."""
    return 1 - pssim_star(x, y, masks, config=config, impl=impl)


class PSSIMLoss(nn.Module):
    """Module form of :func:`pssim_loss`: ``forward(x, y, masks)``, images in [0, 1]."""

    needs_masks = True  # forward(x, y, masks) with masks [N, 1 + L, H, W]

    def __init__(self, config: PSSIMConfig = PSSIMConfig(), *, impl: Impl = "auto") -> None:
        super().__init__()
        self.config, self.impl = config, impl

    def forward(self, x: Tensor, y: Tensor, masks: Tensor) -> Tensor:
        return pssim_loss(x, y, masks, config=self.config, impl=self.impl)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in asdict(self.config).items()) + f", impl={self.impl!r}"


class PSSIMStarLoss(PSSIMLoss):
    """Module form of :func:`pssim_star_loss`: ``forward(x, y, masks)``, images in [0, 1]."""

    def forward(self, x: Tensor, y: Tensor, masks: Tensor) -> Tensor:
        return pssim_star_loss(x, y, masks, config=self.config, impl=self.impl)


# Names a trainer config uses for the structural-similarity losses (Table 4 of the paper).
SSIM_LOSSES: dict[str, type[nn.Module]] = {
    "ssim": SSIMLoss,
    "pssim": PSSIMLoss,
    "pssim_star": PSSIMStarLoss,
}


# --- pixel, adversarial and perceptual losses (images in [-1, 1]) ---------------------------


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
