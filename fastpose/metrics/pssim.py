"""pSSIM, the part-based SSIM of Shi et al. as a metric (their ``tool/getPartSSIM.py``).

The value is :func:`fastpose.losses.pssim` (equation (9): half the background SSIM with window 7,
sigma 0.8, valid padding, plus half the mean part SSIM over the 10 Gaussian part masks; images
in [0, 1], C1 = 1e-4, C2 = 9e-4), with the soft part masks of
:func:`fastpose.pose.part_masks` drawn from the **target** keypoints, averaged over pairs.

Empty parts (a missing joint): the published script scores such a part as SSIM 1 and keeps it in
the mean; the metric does the same by default (``MetricOptions.pssim_empty="one"``) so numbers
compare with the paper's; ``"exclude"`` averages over the visible parts only.
"""

from __future__ import annotations

from typing import Callable

from fastpose.metrics.batch import EvalBatch, part_masks, unit
from fastpose.metrics.options import MetricOptions
from fastpose.metrics.registry import Metric, MetricResult, register_metric
from fastpose.metrics.weights import MetricUnavailable


def pssim_function() -> Callable:
    """``fastpose.losses.pssim``, or :class:`MetricUnavailable` when this build lacks it."""
    try:
        from fastpose.losses import PSSIMConfig, pssim  # noqa: F401 (both are needed)
    except ImportError as exc:
        raise MetricUnavailable(f"pssim: fastpose.losses.pssim is not available in this build "
                                f"({exc})") from None
    return pssim


class PartSSIMMetric(Metric):
    """Mean pSSIM over pairs (target part masks from the target keypoints)."""

    def __init__(self, *, empty: str = "one", impl: str = "auto") -> None:
        self.empty, self.impl = empty, impl
        self._pssim = pssim_function()
        from fastpose.losses import PSSIMConfig

        self._config = PSSIMConfig(empty=empty, reduction="per_image")
        self.reset()

    def reset(self) -> None:
        self._sum, self._count = 0.0, 0

    def update(self, batch: EvalBatch) -> None:
        batch.require("pssim", "target", "target_keypoints")
        x, y = unit(batch.generated), unit(batch.target)
        values = self._pssim(x, y, part_masks(batch), config=self._config, impl=self.impl)
        self._sum += float(values.double().sum())
        self._count += values.numel()

    def compute(self) -> MetricResult:
        if self._count == 0:
            raise RuntimeError("pssim: no pairs were accumulated")
        return MetricResult(self._sum / self._count, self._count, details={"empty": self.empty})


@register_metric("pssim", higher_is_better=True,
                 description="part-based SSIM (Shi et al.), 10 target part masks + background")
def _build_pssim(options: MetricOptions) -> Metric:
    from fastpose.metrics.batch import PART_MASK_FN, pose_function

    pose_function(PART_MASK_FN)  # unavailable now rather than at the first batch
    return PartSSIMMetric(empty=options.pssim_empty, impl=options.impl)
