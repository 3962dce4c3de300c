"""Metric throughput on Market-sized pairs (128x64): SSIM, mask-SSIM and pSSIM, the target being
12,000 pairs (the Market test set) in under a minute on CPU.

Each case times one pass of ``evaluate_batches`` over ``PAIRS`` = 600 in-memory uint8 pairs with
their target keypoints (masks are drawn from the keypoints, as when scoring a folder), batches of
``BATCH``: the time for the 12,000 Market test pairs is 20x the median. Image decoding is not
included (PIL decodes a 128x64 JPEG in ~0.1 ms). Metrics missing from this build (pose masks,
pSSIM) are skipped with the reason. ``impl`` is that of the SSIM / part-statistics ops.
"""

from __future__ import annotations

import pytest
import torch

from fastpose.metrics import EvalBatch, MetricOptions, build_metric, evaluate_batches
from fastpose.metrics.weights import MetricUnavailable

PAIRS = 600  # a twentieth of the Market test set
BATCH = 100
MARKET_TEST_PAIRS = 12_000
CASES = {"ssim": ["ssim"], "mask_ssim": ["mask_ssim"], "pssim": ["pssim"],
         "ssim+mask_ssim+pssim": ["ssim", "mask_ssim", "pssim"]}


# A standing Market person (y, x) in a 128x64 image, OpenPose-18 order; poses are jittered copies
# so that limb lengths, hence mask-drawing work, are realistic.
STANDING = [(20, 32), (32, 32), (33, 22), (52, 19), (68, 18), (33, 42), (52, 45), (68, 46),
            (70, 26), (95, 25), (118, 25), (70, 38), (95, 39), (118, 39), (17, 29), (17, 35),
            (19, 26), (19, 38)]


def market_batches(n: int, batch: int) -> list[EvalBatch]:
    g = torch.Generator().manual_seed(0)
    template = torch.tensor(STANDING, dtype=torch.float32)
    out = []
    for start in range(0, n, batch):
        k = min(batch, n - start)
        target = torch.randint(0, 256, (k, 3, 128, 64), dtype=torch.uint8, generator=g)
        gen = (target.int() + torch.randint(-30, 31, target.shape, generator=g)).clamp(0, 255)
        kp = (template + torch.randint(-6, 7, (k, 18, 2), generator=g)).round()
        kp[torch.rand(k, 18, generator=g) < 0.1] = -1  # some joints missing
        out.append(EvalBatch(gen.to(torch.uint8), target, target_keypoints=kp))
    return out


@pytest.mark.parametrize("impl", ["ext", "ref"])
@pytest.mark.parametrize("case", list(CASES))
def test_metrics_market_pairs(record, case, impl):
    names = CASES[case]
    options = MetricOptions(impl=impl)
    for name in names:
        try:
            build_metric(name, options)
        except MetricUnavailable as exc:
            pytest.skip(f"{name} is unavailable in this build: {exc}")
    batches = market_batches(PAIRS, BATCH)

    def run():
        # fresh batches each round: the per-batch memo would otherwise keep the masks
        evaluate_batches([EvalBatch(b.generated, b.target, target_keypoints=b.target_keypoints)
                          for b in batches], names, options)

    record("metrics", f"{PAIRS} Market pairs {case}", "cpu", "fwd", impl, run)
