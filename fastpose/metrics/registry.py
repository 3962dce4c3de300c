"""The metric registry: name -> factory building a :class:`Metric` from :class:`MetricOptions`.

Every metric has the same interface: ``reset()``, ``update(batch)`` with an
:class:`~fastpose.metrics.batch.EvalBatch`, ``compute() -> MetricResult``. A factory raises
:class:`~fastpose.metrics.weights.MetricUnavailable` when the metric cannot be computed here
(missing weights or optional dependency); :func:`build_metrics` collects those reasons.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

from fastpose.metrics.batch import EvalBatch
from fastpose.metrics.options import MetricOptions
from fastpose.metrics.weights import MetricUnavailable


@dataclass
class MetricResult:
    value: float  # the score as the papers report it
    count: int  # number of images (or pairs) it was computed on
    std: Optional[float] = None  # spread where the convention has one (IS: std over splits)
    random_weights: bool = False  # computed with randomly initialised networks (tests only)
    details: dict = field(default_factory=dict)  # metric-specific extras (counts, conventions)


class Metric(abc.ABC):
    """Accumulates over batches, then computes one number."""

    name: str = ""  # registry name
    higher_is_better: bool = True
    random_weights: bool = False  # set when built with random networks (tests only)

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget everything accumulated."""

    @abc.abstractmethod
    def update(self, batch: EvalBatch) -> None:
        """Accumulate one batch."""

    @abc.abstractmethod
    def compute(self) -> MetricResult:
        """The score over everything accumulated since the last reset."""


@dataclass(frozen=True)
class MetricInfo:
    name: str  # registry name, e.g. "mask_ssim"
    factory: Callable[[MetricOptions], Metric]  # builds the metric
    higher_is_better: bool  # direction of improvement, for table arrows
    description: str  # one line for listings
    # PairDataset encodings the metric reads when a batch carries them (e.g. the target pose
    # mask, else drawn from the keypoints); a trainer asks its dataset for them
    encodings: tuple[str, ...] = ()


METRICS: dict[str, MetricInfo] = {}


def register_metric(name: str, *, higher_is_better: bool, description: str,
                    encodings: Sequence[str] = ()):
    """Decorator registering ``factory(options) -> Metric`` under ``name``."""

    def deco(factory: Callable[[MetricOptions], Metric]) -> Callable[[MetricOptions], Metric]:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        METRICS[name] = MetricInfo(name, factory, higher_is_better, description, tuple(encodings))
        return factory

    return deco


def list_metrics() -> list[str]:
    return sorted(METRICS)


def metric_info(name: str) -> MetricInfo:
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; available: {', '.join(list_metrics())}")
    return METRICS[name]


def build_metric(name: str, options: Optional[MetricOptions] = None) -> Metric:
    """Build one metric; raises :class:`MetricUnavailable` when it cannot be computed here."""
    info = metric_info(name)
    metric = info.factory(options or MetricOptions())
    metric.name = name
    metric.higher_is_better = info.higher_is_better
    return metric


def build_metrics(names: Iterable[str], options: Optional[MetricOptions] = None
                  ) -> tuple[dict[str, Metric], dict[str, str]]:
    """Build the named metrics; returns (metrics, {name: why it is unavailable}).

    Unknown names raise immediately (a typo should not become an "unavailable" cell).
    """
    options = options or MetricOptions()
    names = list(dict.fromkeys(names))
    for n in names:
        metric_info(n)
    built, unavailable = {}, {}
    for n in names:
        try:
            built[n] = build_metric(n, options)
        except MetricUnavailable as exc:
            unavailable[n] = str(exc)
    return built, unavailable


def metric_encodings(names: Iterable[str]) -> tuple[str, ...]:
    """The PairDataset encodings the named metrics read (see :attr:`MetricInfo.encodings`),
    without repeats; unknown names raise."""
    return tuple(dict.fromkeys(e for n in names for e in metric_info(n).encodings))


def available_metrics(names: Iterable[str], options: Optional[MetricOptions] = None
                      ) -> tuple[str, ...]:
    """The named metrics that can be computed here (weights and dependencies present), in order;
    unknown names raise."""
    names = list(names)
    built, _ = build_metrics(names, options)
    return tuple(n for n in dict.fromkeys(names) if n in built)
