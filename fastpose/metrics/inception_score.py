"""Inception Score and mask-IS as the papers' scripts compute them (OpenAI's code, 10 splits).

IS = exp(E_x KL(p(y|x) || p(y))) per split, p(y) the mean prediction over the split, splits the
contiguous chunks ``[i*N//10, (i+1)*N//10)`` in input order; the reported score is the mean over
splits and the spread their standard deviation (population, ``np.std``). With the default FID
Inception (``MetricOptions.inception="fid"``) the predictions are the softmax over the 1008
logits of TensorFlow's 2015-12-05 graph computed as ``pool @ W`` without the bias, as OpenAI's
script reads them; ``inception="torchvision"`` uses torchvision's 1000-class ImageNet network.

mask-IS scores the generated images multiplied by the target pose mask (Market, PATN's
``getMetrics_market.py``). ``MetricOptions.white_border`` adds white columns on both sides first
(PATN's DeepFashion ``addBounding``). Images go to the network as [0, 1] and are resized to
299x299 bilinearly, like pytorch-fid; OpenAI's TF graph resized 0..255 images itself, so values
differ slightly from the TensorFlow numbers in the papers.
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor

from fastpose.metrics.batch import (TARGET_MASK_ENCODING, EvalBatch, pixels, pose_mask,
                                    white_border)
from fastpose.metrics.inception import InceptionV3, load_inception
from fastpose.metrics.options import MetricOptions
from fastpose.metrics.registry import Metric, MetricResult, register_metric


def inception_score(probs: Tensor, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over ``splits`` of exp(mean KL(p(y|x) || p(y))), from ``probs [N, K]``."""
    if probs.dim() != 2:
        raise ValueError(f"inception_score: probs must be [N, K], got {tuple(probs.shape)}")
    n = probs.shape[0]
    if splits < 1 or n < splits:
        raise ValueError(f"inception_score: need at least splits={splits} images, got {n}")
    p = probs.double()
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        py = part.mean(0, keepdim=True)
        # xlogy: 0 * log 0 = 0, so classes with zero probability contribute nothing
        kl = (torch.xlogy(part, part) - torch.xlogy(part, py)).sum(1).mean()
        scores.append(torch.exp(kl))
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(unbiased=False))


def inception_network(options: MetricOptions, variant: str) -> tuple[torch.nn.Module, bool]:
    """The shared Inception network of ``variant`` for these options, and whether it is random.

    Raises :class:`~fastpose.metrics.weights.WeightsUnavailable` when its file is missing
    (unless ``options.random_weights_for_testing``).
    """
    if options.random_weights_for_testing:
        return options.network(("inception", variant, "random"), lambda: _random(variant)), True
    path = options.fid_inception_weights if variant == "fid" else options.inception_v3_weights
    return options.network(("inception", variant, str(path)),
                           lambda: load_inception(variant, path)), False


def _random(variant: str) -> InceptionV3:
    warnings.warn(f"Inception-v3 ({variant}) with RANDOM weights (random_weights_for_testing): "
                  f"IS/FID values are meaningless", stacklevel=3)
    return InceptionV3(variant)


def inception_outputs(batch: EvalBatch, images: Tensor, net: torch.nn.Module, batch_size: int,
                      *, masked: bool = False, border: int = 0) -> tuple[Tensor, Tensor]:
    """(pool, logits) of ``images`` (one of the batch's image tensors), memoised in the batch so
    IS, mask-IS and FID, and the rows of a table, share forward passes."""
    key = ("inception", id(net), id(images), masked, border)

    def run() -> tuple[Tensor, Tensor]:
        device = next(net.parameters()).device
        pix = pixels(images, torch.float32)
        if masked:
            pix = pix * pose_mask(batch).to(pix.device)
        x = white_border(pix, border) / 255.0
        pools, logits = [], []
        with torch.no_grad():
            for chunk in x.split(batch_size):
                p, lg = net(chunk.to(device))
                pools.append(p)
                logits.append(lg)
        return torch.cat(pools), torch.cat(logits)

    return batch.memo.get(key, run)


class InceptionScore(Metric):
    """IS (``masked=True``: mask-IS) of the generated images; see the module docstring."""

    def __init__(self, net: torch.nn.Module, *, masked: bool = False, splits: int = 10,
                 white_border_width: int = 0, batch_size: int = 50) -> None:
        self.net, self.masked, self.splits = net, masked, splits
        self.white_border_width, self.batch_size = white_border_width, batch_size
        self.reset()

    def reset(self) -> None:
        self._probs: list[Tensor] = []

    def update(self, batch: EvalBatch) -> None:
        _, logits = inception_outputs(batch, batch.generated, self.net, self.batch_size,
                                      masked=self.masked, border=self.white_border_width)
        self._probs.append(torch.softmax(logits.double(), 1).cpu())

    def compute(self) -> MetricResult:
        probs: Optional[Tensor] = torch.cat(self._probs) if self._probs else None
        if probs is None:
            raise RuntimeError(f"{self.name or 'is'}: no images were accumulated")
        mean, std = inception_score(probs, self.splits)
        return MetricResult(mean, probs.shape[0], std=std, random_weights=self.random_weights,
                            details={"splits": self.splits, "classes": probs.shape[1]})


def _build(options: MetricOptions, masked: bool) -> Metric:
    if options.inception not in ("fid", "torchvision"):
        raise ValueError(f"MetricOptions.inception must be 'fid' or 'torchvision', got "
                         f"{options.inception!r}")
    if masked:
        from fastpose.metrics.batch import POSE_MASK_FN, pose_function

        pose_function(POSE_MASK_FN)
    net, random = inception_network(options, options.inception)
    metric = InceptionScore(net, masked=masked, splits=options.is_splits,
                            white_border_width=options.white_border,
                            batch_size=options.network_batch)
    metric.random_weights = random
    return metric


@register_metric("is", higher_is_better=True,
                 description="Inception Score of the generated images, 10 splits")
def _build_is(options: MetricOptions) -> Metric:
    return _build(options, masked=False)


@register_metric("mask_is", higher_is_better=True,
                 description="Inception Score of the generated images times the target pose mask",
                 encodings=(TARGET_MASK_ENCODING,))
def _build_mask_is(options: MetricOptions) -> Metric:
    return _build(options, masked=True)
