"""SSIM and mask-SSIM as the papers' evaluation scripts compute them.

PATN's ``getMetrics_market.py`` / ``getMetrics_fashion.py`` score uint8 images with
``compare_ssim(ref, gen, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
multichannel=True, data_range=gen.max() - gen.min())`` and average over images. fastpose computes
the same quantity with the fused kernel (:func:`fastpose.ops.ssim`, window 11, valid padding):

* per channel, population covariance, 11-tap Gaussian with sigma 1.5, C1 = (0.01 L)^2,
  C2 = (0.03 L)^2 on 0..255 images; the per-image value is the mean of the map over channels
  and pixels (= scikit-image's ``structural_similarity(..., channel_axis=-1)``);
* ``data_range="fixed"`` (default): L = 255. ``data_range="generated"``: L = max - min of each
  generated image over all its channels (PATN's quirk; an image with max = min would divide by
  zero there, fastpose uses L = 255 for it and counts it in ``details["constant_generated"]``);
* ``white_border=40``: 40 white columns added on both sides of both images first (PATN's
  DeepFashion ``addBounding``; it raises SSIM, see the README);
* mask-SSIM multiplies **both** images by the target pose mask (23 limbs, radius 4, 5x5
  closing; :func:`fastpose.metrics.batch.pose_mask`) before SSIM; with
  ``data_range="generated"`` L then comes from the masked generated image, as in the script.

PG2's own ``score.py`` used scikit-image's default uniform 7x7 window instead; fastpose does not
reproduce that variant (the later papers all use the Gaussian one).
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from fastpose.metrics.batch import (TARGET_MASK_ENCODING, EvalBatch, pixels, pose_mask,
                                    white_border)
from fastpose.metrics.options import MetricOptions
from fastpose.metrics.registry import Metric, MetricResult, register_metric
from fastpose.ops import ssim

DATA_RANGES = ("fixed", "generated")


def ssim_per_image(
    generated: Tensor,  # [N, 3, H, W] uint8, or float in [0, 1]
    target: Tensor,  # [N, 3, H, W] same
    *,
    data_range: Union[str, float] = "fixed",
    white_border_width: int = 0,
    mask: Optional[Tensor] = None,  # [N, 1, H, W] 0/1, multiplies both images (mask-SSIM)
    dtype: torch.dtype = torch.float64,
    impl: str = "auto",
) -> tuple[Tensor, int]:
    """SSIM of each pair on 0..255 images, the papers' convention (see the module docstring).

    Args:
        generated, target: image batches of one shape.
        data_range: ``"fixed"`` (255), ``"generated"`` (PATN: per generated image max - min)
            or a number.
        white_border_width: white columns added on both sides of both images first.
        mask: optional pose mask multiplying both images (mask-SSIM).
        dtype: arithmetic dtype (float64 matches scikit-image to rounding).
        impl: :func:`fastpose.ops.ssim` implementation.

    Returns:
        (``[N]`` SSIM values in ``dtype``, number of images whose generated range was 0 and got
        L = 255 instead).
    """
    x, y = pixels(generated, dtype), pixels(target, dtype)  # fresh tensors: edited in place below
    if mask is not None:
        m = mask.to(dtype)
        x.mul_(m)
        y.mul_(m)
    x, y = white_border(x, white_border_width), white_border(y, white_border_width)
    if isinstance(data_range, str) and data_range not in DATA_RANGES:
        raise ValueError(f"data_range must be one of {DATA_RANGES} or a number, got {data_range!r}")
    if data_range != "generated":
        value = 255.0 if data_range == "fixed" else float(data_range)
        if not value > 0:
            raise ValueError(f"data_range must be positive, got {data_range}")
        return ssim(x, y, data_range=value, reduction="per_image", impl=impl), 0
    # per-image ranges: SSIM with range L on (x, y) equals SSIM with range 1 on (x / L, y / L)
    # (C1, C2 scale with L^2 like the moments), so they become one batched call
    n = x.shape[0]
    flat = x.reshape(n, -1)
    scale = flat.amax(1) - flat.amin(1)
    zero = scale <= 0
    scale = torch.where(zero, torch.full_like(scale, 255.0), scale).view(n, 1, 1, 1)
    x.div_(scale)
    y.div_(scale)
    return ssim(x, y, data_range=1.0, reduction="per_image", impl=impl), int(zero.sum())


class SSIMMetric(Metric):
    """Mean SSIM over pairs (``masked=True``: mask-SSIM); see the module docstring."""

    def __init__(self, *, masked: bool = False, data_range: Union[str, float] = "fixed",
                 white_border_width: int = 0, dtype: torch.dtype = torch.float64,
                 impl: str = "auto") -> None:
        self.masked, self.data_range = masked, data_range
        self.white_border_width = white_border_width
        self.dtype, self.impl = dtype, impl
        self.reset()

    def reset(self) -> None:
        self._sum, self._count, self._constant = 0.0, 0, 0

    def update(self, batch: EvalBatch) -> None:
        batch.require(self.name or "ssim", "target")
        mask = pose_mask(batch) if self.masked else None
        values, constant = ssim_per_image(
            batch.generated, batch.target, data_range=self.data_range,
            white_border_width=self.white_border_width, mask=mask, dtype=self.dtype,
            impl=self.impl)
        self._sum += float(values.double().sum())
        self._count += values.numel()
        self._constant += constant

    def compute(self) -> MetricResult:
        if self._count == 0:
            raise RuntimeError(f"{self.name or 'ssim'}: no pairs were accumulated")
        details = {"data_range": self.data_range, "white_border": self.white_border_width}
        if self._constant:
            details["constant_generated"] = self._constant
        return MetricResult(self._sum / self._count, self._count, details=details)


def _check_data_range(options: MetricOptions) -> str:
    if options.ssim_data_range not in DATA_RANGES:
        raise ValueError(f"MetricOptions.ssim_data_range must be one of {DATA_RANGES}, got "
                         f"{options.ssim_data_range!r}")
    return options.ssim_data_range


@register_metric("ssim", higher_is_better=True,
                 description="SSIM on 0..255 images, Gaussian 11/1.5, population covariance")
def _build_ssim(options: MetricOptions) -> Metric:
    return SSIMMetric(data_range=_check_data_range(options),
                      white_border_width=options.white_border, dtype=options.ssim_dtype,
                      impl=options.impl)


@register_metric("mask_ssim", higher_is_better=True,
                 description="SSIM of both images times the target pose mask (Market)",
                 encodings=(TARGET_MASK_ENCODING,))
def _build_mask_ssim(options: MetricOptions) -> Metric:
    from fastpose.metrics.batch import POSE_MASK_FN, pose_function

    pose_function(POSE_MASK_FN)  # unavailable now rather than at the first batch
    return SSIMMetric(masked=True, data_range=_check_data_range(options),
                      white_border_width=options.white_border, dtype=options.ssim_dtype,
                      impl=options.impl)
