"""PCKh of keypoints detected on the generated images, as PATN's ``tool/calPCKH_market.py``.

For each pair, the head box of the **reference** keypoints is the extent (x: width, y: height)
of its present head joints (nose, neck, eyes, ears; indices 0, 1, 14-17); a pair with fewer than
two present head joints is skipped. A joint is correct when it is present in both and
``|x_pred - x_ref| < alpha * width`` **and** ``|y_pred - y_ref| < alpha * height`` (strict, per
axis, alpha = 0.5). PCKh = correct joints / joints present in the reference, summed over the
pairs not skipped (a joint counts as present when its y is not -1, as in the script).

The reference is the target annotation (the papers; detected with OpenPose) or, with
``MetricOptions.pckh_reference="detected"``, keypoints re-detected on the target image with the
same estimator as the generated image (which removes the bias between two detectors).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fastpose.metrics.batch import EvalBatch
from fastpose.metrics.options import MetricOptions
from fastpose.metrics.pose_estimator import PoseEstimator, get_pose_estimator
from fastpose.metrics.registry import Metric, MetricResult, register_metric
from fastpose.pose import HEAD_JOINTS, MISSING, NUM_KEYPOINTS

REFERENCES = ("annotations", "detected")


def head_size(keypoints: Tensor) -> Tensor:
    """Head box ``[N, 2]`` as (height, width) from ``keypoints [N, 18, 2]`` (y, x); -1 where
    fewer than two head joints are present."""
    head = keypoints[:, list(HEAD_JOINTS)].double()
    present = (head != MISSING).all(-1)  # [N, 6]
    big = torch.finfo(torch.float64).max
    lo = torch.where(present[..., None], head, torch.full_like(head, big)).amin(1)
    hi = torch.where(present[..., None], head, torch.full_like(head, -big)).amax(1)
    size = hi - lo
    return torch.where((present.sum(1) >= 2)[:, None], size, torch.full_like(size, -1.0))


def pckh_counts(pred: Tensor, ref: Tensor, alpha: float = 0.5) -> tuple[Tensor, Tensor]:
    """Per pair (correct joints, reference joints) ``[N]`` each, 0 for skipped pairs.

    Args:
        pred: keypoints detected on the generated images ``[N, 18, 2]`` (y, x), -1 = missing.
        ref: reference keypoints ``[N, 18, 2]``.
        alpha: threshold as a fraction of the head box, per axis.
    """
    for name, t in (("pred", pred), ("ref", ref)):
        if t.dim() != 3 or tuple(t.shape[1:]) != (NUM_KEYPOINTS, 2):
            raise ValueError(f"pckh: {name} must be [N, {NUM_KEYPOINTS}, 2] (y, x), got "
                             f"{tuple(t.shape)}")
    if pred.shape[0] != ref.shape[0]:
        raise ValueError(f"pckh: pred has {pred.shape[0]} poses but ref has {ref.shape[0]}")
    p, r = pred.double(), ref.double()
    hw = head_size(r)  # [N, 2] (h, w)
    used = (hw >= 0).all(1)
    both = (p != MISSING).all(-1) & (r != MISSING).all(-1)
    close = ((p - r).abs() < alpha * hw[:, None, :]).all(-1)
    correct = (both & close).sum(1)
    valid = (r[..., 0] != MISSING).sum(1)
    zero = torch.zeros_like(correct)
    return torch.where(used, correct, zero), torch.where(used, valid, zero)


class PCKh(Metric):
    """PCKh over pairs; keypoints of generated images come from ``batch.generated_keypoints``
    or from ``estimator``."""

    def __init__(self, *, alpha: float = 0.5, reference: str = "annotations",
                 estimator: Optional[PoseEstimator] = None) -> None:
        if reference not in REFERENCES:
            raise ValueError(f"pckh reference must be one of {REFERENCES}, got {reference!r}")
        self.alpha, self.reference, self.estimator = alpha, reference, estimator
        self.reset()

    def reset(self) -> None:
        self._correct, self._valid, self._pairs, self._skipped = 0, 0, 0, 0

    def _detect(self, batch: EvalBatch, images: Tensor) -> Tensor:
        if self.estimator is None:
            raise ValueError("pckh: EvalBatch.generated_keypoints is None and no pose estimator "
                             "was given to detect them")
        return batch.memo.get(("keypoints", id(self.estimator), id(images)),
                              lambda: self.estimator(images))

    def update(self, batch: EvalBatch) -> None:
        pred = batch.generated_keypoints
        if pred is None:
            pred = self._detect(batch, batch.generated)
        if self.reference == "annotations":
            batch.require("pckh", "target_keypoints")
            ref = batch.target_keypoints
        else:
            batch.require("pckh", "target")
            ref = self._detect(batch, batch.target)
        correct, valid = pckh_counts(pred.cpu(), ref.cpu(), self.alpha)
        skipped = int((head_size(ref.cpu()) < 0).any(1).sum())
        self._correct += int(correct.sum())
        self._valid += int(valid.sum())
        self._pairs += pred.shape[0]
        self._skipped += skipped

    def compute(self) -> MetricResult:
        if self._valid == 0:
            raise RuntimeError("pckh: no reference joints were accumulated (no pairs, or no "
                               "pair with at least two head joints)")
        return MetricResult(self._correct / self._valid, self._pairs,
                            details={"correct": self._correct, "joints": self._valid,
                                     "skipped_pairs": self._skipped, "alpha": self.alpha,
                                     "reference": self.reference})


@register_metric("pckh", higher_is_better=True,
                 description="PCKh@0.5 of keypoints detected on the generated images")
def _build_pckh(options: MetricOptions) -> Metric:
    est = options.pose_estimator
    if isinstance(est, str):
        key = ("pose_estimator", est)
        if key not in options.cache:
            options.cache[key] = get_pose_estimator(est)
        est = options.cache[key]
    return PCKh(alpha=options.pckh_alpha, reference=options.pckh_reference, estimator=est)
