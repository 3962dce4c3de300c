"""Fréchet Inception Distance between generated images and their targets.

FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) over the 2048-d pool features of the FID
Inception (:mod:`fastpose.metrics.inception`, variant ``"fid"``), covariances with the n - 1
denominator (numpy's ``np.cov``, as pytorch-fid). Everything after the network is float64.

The matrix square root is never formed: Tr((S1 S2)^(1/2)) is the sum of the square roots of the
eigenvalues of B^T S2 B for any factor S1 = B B^T (a symmetric positive semi-definite matrix, so
one symmetric eigenvalue solve: no complex parts, no ``sqrtm`` failures on singular covariances;
negative rounding noise is clipped at 0). B is the centred feature matrix when a set has no more
samples than dimensions (exact and cheap), else a Cholesky factor of whichever covariance is
positive definite, else the eigendecomposition square root (slow at 2048-d on CPU, ~10x a
Cholesky). scipy is not needed.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fastpose.metrics.batch import EvalBatch
from fastpose.metrics.inception_score import inception_outputs, inception_network
from fastpose.metrics.options import MetricOptions
from fastpose.metrics.registry import Metric, MetricResult, register_metric


def _psd_sqrt(s: Tensor) -> Tensor:
    """Square root of a symmetric PSD matrix by eigendecomposition (negative noise -> 0)."""
    evals, evecs = torch.linalg.eigh(s)
    return (evecs * evals.clamp(min=0).sqrt()) @ evecs.T


def _cholesky(s: Tensor) -> Optional[Tensor]:
    factor, info = torch.linalg.cholesky_ex(s)
    return factor if int(info) == 0 else None


def trace_sqrt_product(s1: Tensor, s2: Tensor, factor1: Optional[Tensor] = None,
                       factor2: Optional[Tensor] = None) -> Tensor:
    """Tr((S1 S2)^(1/2)) of two symmetric PSD ``[D, D]`` matrices, in their dtype.

    ``factor1`` / ``factor2`` (``[D, k]`` with S = F F^T, e.g. centred features / sqrt(n - 1))
    make it exact and cheap for covariances of few samples.
    """
    if factor1 is not None:
        b, other = factor1, s2
    elif factor2 is not None:
        b, other = factor2, s1
    else:
        b, other = _cholesky(s1), s2
        if b is None:
            b, other = _cholesky(s2), s1
        if b is None:
            b, other = _psd_sqrt(s1), s2
    m = b.T @ other @ b
    return torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor, *,
                     factor1: Optional[Tensor] = None, factor2: Optional[Tensor] = None) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    Args:
        mu1, mu2: means ``[D]``.
        sigma1, sigma2: covariances ``[D, D]`` (symmetric positive semi-definite).
        factor1, factor2: optional ``[D, k]`` factors with sigma = F F^T (see
            :func:`trace_sqrt_product`).
    """
    mu1, mu2 = mu1.double().flatten(), mu2.double().flatten()
    s1, s2 = sigma1.double(), sigma2.double()
    d = mu1.numel()
    for name, t in (("mu2", mu2), ("sigma1", s1), ("sigma2", s2)):
        expected = (d,) if name == "mu2" else (d, d)
        if tuple(t.shape) != expected:
            raise ValueError(f"frechet_distance: {name} must be {list(expected)}, got "
                             f"{list(t.shape)}")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    tr_covmean = trace_sqrt_product(s1, s2, None if factor1 is None else factor1.double(),
                                    None if factor2 is None else factor2.double())
    diff = mu1 - mu2
    value = diff.dot(diff) + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean
    return max(float(value), 0.0)


class FeatureStats:
    """Running mean and covariance of feature vectors, accumulated in float64. While there are
    no more samples than dimensions the samples are kept too, for an exact low-rank factor."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.n = 0
        self._sum = torch.zeros(dim, dtype=torch.float64)
        self._outer = torch.zeros(dim, dim, dtype=torch.float64)
        self._rows: Optional[list[Tensor]] = []

    def update(self, features: Tensor) -> None:  # [N, dim]
        if features.dim() != 2 or features.shape[1] != self.dim:
            raise ValueError(f"FeatureStats: features must be [N, {self.dim}], got "
                             f"{tuple(features.shape)}")
        f = features.detach().to("cpu", torch.float64)
        self.n += f.shape[0]
        self._sum += f.sum(0)
        self._outer += f.T @ f
        if self._rows is not None:
            self._rows.append(f)
            if self.n > self.dim:
                self._rows = None

    def mean(self) -> Tensor:
        return self._sum / self.n

    def cov(self) -> Tensor:
        """Sample covariance (n - 1 denominator)."""
        if self.n < 2:
            raise ValueError(f"FeatureStats: a covariance needs at least 2 samples, got {self.n}")
        mu = self.mean()
        return (self._outer - self.n * torch.outer(mu, mu)) / (self.n - 1)

    def factor(self) -> Optional[Tensor]:
        """``[dim, n]`` with cov = F F^T while n <= dim, else None."""
        if self._rows is None or self.n < 2:
            return None
        x = torch.cat(self._rows)
        return ((x - x.mean(0)) / (self.n - 1) ** 0.5).T

    def distance(self, other: "FeatureStats") -> float:
        """FID between the two sets of features."""
        return frechet_distance(self.mean(), self.cov(), other.mean(), other.cov(),
                                factor1=self.factor(), factor2=other.factor())


def fid_from_features(a: Tensor, b: Tensor) -> float:
    """FID between two feature sets ``[N1, D]`` and ``[N2, D]``."""
    sa, sb = FeatureStats(a.shape[1]), FeatureStats(b.shape[1])
    sa.update(a)
    sb.update(b)
    return sa.distance(sb)


class FID(Metric):
    """FID between the generated images and the target images of the same pairs.

    Args:
        net: a network returning ``(pool [N, D], logits)`` for images in [0, 1]
            (:class:`~fastpose.metrics.inception.InceptionV3`).
        batch_size: images per forward pass.
        reference: precomputed reference statistics (e.g. of a whole test set); when given, the
            batch targets are not needed.
    """

    higher_is_better = False

    def __init__(self, net: torch.nn.Module, *, batch_size: int = 50,
                 reference: Optional[FeatureStats] = None) -> None:
        self.net, self.batch_size, self.reference = net, batch_size, reference
        self.reset()

    def _dim(self) -> int:
        fc = getattr(self.net, "fc", None)
        return fc.in_features if fc is not None else 2048

    def reset(self) -> None:
        self.generated = FeatureStats(self._dim())
        self.target = self.reference or FeatureStats(self._dim())

    def update(self, batch: EvalBatch) -> None:
        pool, _ = inception_outputs(batch, batch.generated, self.net, self.batch_size)
        self.generated.update(pool)
        if self.reference is None:
            batch.require("fid", "target")
            pool_t, _ = inception_outputs(batch, batch.target, self.net, self.batch_size)
            self.target.update(pool_t)

    def compute(self) -> MetricResult:
        value = self.generated.distance(self.target)
        return MetricResult(value, self.generated.n, random_weights=self.random_weights,
                            details={"reference_count": self.target.n})


@register_metric("fid", higher_is_better=False,
                 description="Fréchet Inception Distance to the target images (FID Inception)")
def _build_fid(options: MetricOptions) -> Metric:
    net, random = inception_network(options, "fid")
    metric = FID(net, batch_size=options.network_batch)
    metric.random_weights = random
    return metric
