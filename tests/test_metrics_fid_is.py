"""FID and Inception Score: the maths against known answers, the metric code paths on a RANDOMLY
INITIALISED Inception (CI has no pretrained weights; values from it mean nothing)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastpose.metrics import (FID, EvalBatch, FeatureStats, InceptionScore, InceptionV3,
                              fid_from_features, frechet_distance, inception_score_from_probs)
from fastpose.metrics import inception as inception_module


def random_cov(d: int, rank: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, rank, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T / rank


def test_fid_of_a_set_with_itself_is_zero():
    feats = torch.randn(300, 64, dtype=torch.float64) * 3 + 1
    assert fid_from_features(feats, feats) == pytest.approx(0.0, abs=1e-8)
    for rank in (64, 10):  # full rank and singular (fewer samples than dimensions)
        s = random_cov(64, rank, rank)
        mu = torch.randn(64, dtype=torch.float64)
        assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-8 * float(s.trace()))


def test_fid_of_two_gaussians_matches_the_closed_form():
    # diagonal covariances commute: FID = |mu1 - mu2|^2 + sum (a + b - 2 sqrt(ab))
    a = torch.tensor([1.0, 4.0, 0.25, 9.0], dtype=torch.float64)
    b = torch.tensor([2.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    mu1 = torch.tensor([0.0, 1.0, -2.0, 3.0], dtype=torch.float64)
    mu2 = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    closed = float(((mu1 - mu2) ** 2).sum() + (a + b - 2 * (a * b).sqrt()).sum())
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(closed,
                                                                                   rel=1e-12)
    # a rotated pair (non-diagonal but commuting): S2 = c^2 S1 gives (1 - c)^2 tr S1
    s1 = random_cov(6, 6, 1)
    got = frechet_distance(torch.zeros(6), s1, torch.zeros(6), 9 * s1)
    assert got == pytest.approx(4 * float(s1.trace()), rel=1e-10)


def test_fid_non_commuting_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    s1, s2 = random_cov(20, 20, 2), random_cov(20, 20, 3)
    mu1, mu2 = torch.randn(20, dtype=torch.float64), torch.randn(20, dtype=torch.float64)
    covmean = linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    expected = (float(((mu1 - mu2) ** 2).sum()) + float(s1.trace() + s2.trace())
                - 2 * np.trace(covmean))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_fid_from_samples_converges_to_the_closed_form():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x = torch.randn(n, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5])
    y = torch.randn(n, 3, generator=g, dtype=torch.float64) * torch.tensor([1.5, 1.0, 0.5]) + 1
    closed = 3 * 1.0 + (1 - 1.5) ** 2 + (2 - 1) ** 2 + 0.0
    assert fid_from_features(x, y) == pytest.approx(closed, rel=0.02)


def test_feature_stats_stream_equals_torch_cov():
    f = torch.randn(50, 7, dtype=torch.float64) + 5
    stats = FeatureStats(7)
    for chunk in f.split(13):
        stats.update(chunk)
    torch.testing.assert_close(stats.mean(), f.mean(0))
    torch.testing.assert_close(stats.cov(), torch.cov(f.T))
    with pytest.raises(ValueError, match=r"\[N, 7\]"):
        stats.update(torch.zeros(3, 8))
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(3), torch.eye(4))


def openai_inception_score(preds: np.ndarray, splits: int) -> tuple[float, float]:
    """OpenAI's improved-gan formula (numpy), for comparison."""
    scores = []
    for i in range(splits):
        part = preds[(i * preds.shape[0] // splits):((i + 1) * preds.shape[0] // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_known_values():
    uniform = torch.full((40, 1008), 1 / 1008)
    mean, std = inception_score_from_probs(uniform, splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    # each split holds K distinct confident classes: IS = K
    k = 7
    onehot = torch.eye(k).repeat(10, 1)
    assert inception_score_from_probs(onehot, splits=10)[0] == pytest.approx(k, rel=1e-12)
    probs = torch.softmax(torch.randn(53, 20, dtype=torch.float64) * 3, 1)
    ours = inception_score_from_probs(probs, splits=10)
    ref = openai_inception_score(probs.numpy(), 10)
    assert ours == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError, match="at least splits=10"):
        inception_score_from_probs(probs[:9], splits=10)


@pytest.fixture
def small_inception(monkeypatch):
    """Random-init FID Inception fed 75x75 instead of 299x299, to keep CI fast (code path only)."""
    monkeypatch.setattr(inception_module, "INPUT_SIZE", 75)
    torch.manual_seed(0)
    return InceptionV3("fid").eval()


def test_fid_metric_on_random_network(small_inception):
    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, 256, (4, 3, 32, 24), dtype=torch.uint8, generator=g)
    b = torch.randint(0, 256, (4, 3, 32, 24), dtype=torch.uint8, generator=g) // 4
    same = FID(small_inception, batch_size=3)
    batch = EvalBatch(a, a)
    same.update(batch)
    assert len(batch.memo) == 1  # generated and target are one tensor: one forward pass
    assert same.compute().value == pytest.approx(0.0, abs=1e-6)
    diff = FID(small_inception, batch_size=3)
    diff.update(EvalBatch(a, b))
    result = diff.compute()
    assert result.value > 0 and math.isfinite(result.value)
    assert result.count == 4 and result.details["reference_count"] == 4
    # precomputed reference statistics replace the targets
    pre = FID(small_inception, reference=diff.target)
    pre.update(EvalBatch(a))
    assert pre.compute().value == pytest.approx(result.value, rel=1e-6)


def test_inception_score_metric_on_random_network(small_inception):
    imgs = torch.rand(4, 3, 40, 30)
    with torch.no_grad():  # sharper random predictions, so the score is not 1 + rounding
        small_inception.fc.weight.mul_(200)
    metric = InceptionScore(small_inception, splits=2, batch_size=3)
    metric.update(EvalBatch(imgs[:3]))
    metric.update(EvalBatch(imgs[3:]))
    result = metric.compute()
    with torch.no_grad():
        probs = torch.softmax(small_inception(imgs)[1].double(), 1)
    mean, std = inception_score_from_probs(probs, 2)
    # float32 convolutions differ slightly between batch sizes 3 and 4
    assert result.value == pytest.approx(mean, rel=1e-5)
    assert result.std == pytest.approx(std, abs=1e-6)
    assert result.value > 1.01
    assert result.count == 4 and result.details["classes"] == 1008
    # the white border reaches the network: different inputs, different logits
    bordered = InceptionScore(small_inception, splits=2, white_border_width=10)
    bordered.update(EvalBatch(imgs))
    assert bordered.compute().value != pytest.approx(result.value, rel=1e-9)
