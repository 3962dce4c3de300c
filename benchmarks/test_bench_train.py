"""One training step (every stage) of every registered model, ``impl="ext"`` vs ``impl="ref"``.

Label ``train_step:<model>``; the pass column holds the stage. On CPU the models run at the
synthetic preset's scale (64x32 images, batch 16, the preset's widths); on CUDA at the paper's
Market-1501 scale (128x64, batch 16, full widths). The step is the loop's own (forward, losses,
backward, optimiser steps), on random inputs with the model's encodings.

``train_step_paired:<model>`` times the same comparison as a paired A/B run: an ext step and a ref
step alternate (the order flips every pair), so slow drifts of a shared or thermally throttled
machine hit both alike; the case column carries how many pairs ext won. On these small CPU steps
the kernels are a few per cent of the work, below the run-to-run noise of separate timings.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from fastpose.data.cihp import NUM_CIHP_LABELS
from fastpose.models import BuildContext, get_model, list_models
from fastpose.pose.encodings.registry import ENCODING_CHANNELS
from fastpose.train.config import default_config

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _batch(encodings, n, size, device):
    g = torch.Generator().manual_seed(0)
    h, w = size
    b = {"source_image": torch.rand(n, 3, h, w, generator=g) * 2 - 1,
         "target_image": torch.rand(n, 3, h, w, generator=g) * 2 - 1,
         "source_keypoints": torch.rand(n, 18, 2, generator=g) * torch.tensor([h, w]),
         "target_keypoints": torch.rand(n, 18, 2, generator=g) * torch.tensor([h, w])}
    for e in encodings:
        if e == "parsing":  # read from files by the dataset: CIHP label maps [N, H, W]
            for side in ("source", "target"):
                b[f"{side}_parsing"] = torch.randint(0, NUM_CIHP_LABELS, (n, h, w), generator=g)
            continue
        # Random binary maps with each encoding's registered channel count.
        c = ENCODING_CHANNELS[e]
        for side in ("source", "target"):
            b[f"{side}_{e}"] = (torch.rand(n, c, h, w, generator=g) > 0.9).float()
    return {k: v.to(device) for k, v in b.items()}


def _setup(name, device, impl):
    cfg = default_config(name, "synthetic" if device == "cpu" else "market:/unused")
    cfg.impl = impl
    size = (cfg.image_h, cfg.image_w) if device == "cpu" else (128, 64)
    cls = get_model(name)
    model = cls(cfg.model_cfg, BuildContext(size, impl=impl, dataset_kind=cfg.data_kind)).to(device)
    opts, _ = model.configure_optimizers()

    def update(opt_name, loss):
        opts[opt_name].zero_grad(set_to_none=True)
        loss.backward()
        opts[opt_name].step()

    return model, update, _batch(model.encodings, cfg.batch_size, size, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["ext", "ref"])
@pytest.mark.parametrize("stage_index", [0, 1, 2], ids=lambda i: f"stage{i + 1}")
@pytest.mark.parametrize("name", list_models())
def test_train_step(record, device, impl, stage_index, name):
    model, update, batch = _setup(name, device, impl)
    stages = model.stages()
    if stage_index >= len(stages):
        pytest.skip(f"{name} has {len(stages)} stages")
    stage = stages[stage_index]
    model.current_stage = stage.name
    for n, net in model.nets.items():
        net.train(n in stage.trains)
        net.requires_grad_(n in stage.trains)
    size = "x".join(map(str, batch["source_image"].shape))
    record(f"train_step:{name}", size, device, stage.name, impl,
           lambda: model.train_step(stage.name, batch, update))


PAIRS = 40  # alternating ext/ref step pairs of the paired benchmark


def _prepare(name, device, impl, stage_index):
    """(stage or None if the model has fewer stages, a function timing one step in ms)."""
    torch.manual_seed(0)
    model, update, batch = _setup(name, device, impl)
    if stage_index >= len(model.stages()):
        return None, None
    stage = model.stages()[stage_index]
    model.current_stage = stage.name
    for n, net in model.nets.items():
        net.train(n in stage.trains)
        net.requires_grad_(n in stage.trains)

    def step() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.train_step(stage.name, batch, update)
        if device == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1e3

    return stage, step


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("stage_index", [0, 1], ids=lambda i: f"stage{i + 1}")
@pytest.mark.parametrize("name", [m for m in list_models() if m != "pg2"])  # pg2 calls no fastpose op
def test_train_step_paired(record, benchmark, device, stage_index, name):
    stage, ext_step = _prepare(name, device, "ext", stage_index)
    if stage is None:
        pytest.skip(f"{name} has fewer than {stage_index + 1} stages")
    _, ref_step = _prepare(name, device, "ref", stage_index)
    for _ in range(3):
        ext_step(), ref_step()
    times = {"ext": [], "ref": []}
    for i in range(PAIRS):
        for impl in (("ext", "ref") if i % 2 == 0 else ("ref", "ext")):
            times[impl].append((ext_step if impl == "ext" else ref_step)())
    wins = sum(e < r for e, r in zip(times["ext"], times["ref"]))
    # The harness's own result list and record type (benchmarks/conftest.py), as test_bench_data does.
    results, result_type = record.__globals__["RESULTS"], record.__globals__["BenchResult"]
    case = f"{stage.name}, ext faster in {wins}/{PAIRS} pairs"
    for impl in ("ext", "ref"):
        results.append(result_type(f"train_step_paired:{name}", case, device, "step", impl,
                                   statistics.median(times[impl])))
    benchmark.extra_info.update(ext_wins=wins, pairs=PAIRS)
    benchmark.pedantic(lambda: None, rounds=1)  # registers the test with pytest-benchmark
