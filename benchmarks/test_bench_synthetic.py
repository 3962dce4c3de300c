"""synthetic: generation time of the default synthetic datasets (target: market < 60 s on 2
cores) and the single-process render time of one image."""

from __future__ import annotations

import os


import pytest

from fastpose.data.synthetic import SyntheticConfig, generate, render_sample


@pytest.mark.parametrize("preset", ["market", "deepfashion"])
def test_synthetic_default_set(benchmark, record, tmp_path, preset):
    # One generation is ~15-30 s, so it is timed once (not with record's 15 rounds) and added
    # to the summary table through the harness's own globals (benchmarks/conftest.py).
    results, bench_result = record.__globals__["RESULTS"], record.__globals__["BenchResult"]
    cfg = SyntheticConfig.for_preset(preset, workers=2)
    out = tmp_path / preset
    cpu = {}

    def run():
        t = os.times()
        generate(cfg, out, overwrite=True, progress=False)
        t2 = os.times()
        cpu["s"] = (t2.user + t2.system + t2.children_user + t2.children_system
                    - t.user - t.system - t.children_user - t.children_system)

    benchmark.pedantic(run, rounds=1, iterations=1)
    wall = benchmark.stats.stats.median
    h, w = cfg.size
    case = f"default {preset} set {cfg.num_images} imgs {h}x{w}, 2 workers"
    results.append(bench_result("synthetic", case, "cpu", "generate", "numpy", wall * 1e3))
    benchmark.extra_info.update(images=cfg.num_images, wall_s=wall, cpu_s=cpu["s"],
                                cpu_ms_per_image=cpu["s"] / cfg.num_images * 1e3)
    print(f"\n{preset}: {cfg.num_images} images in {wall:.1f} s wall, "
          f"{cpu['s']:.1f} s CPU ({cpu['s'] / cfg.num_images * 1e3:.1f} ms CPU/image)")


@pytest.mark.parametrize("preset", ["market", "deepfashion"])
def test_synthetic_render_one(record, preset):
    cfg = SyntheticConfig.for_preset(preset)
    counter = iter(range(10**9))
    h, w = cfg.size
    record("synthetic", f"render one {preset} image {h}x{w}", "cpu", "render", "numpy",
           lambda: render_sample(cfg, "train", 1 + next(counter) % 50, 0))
