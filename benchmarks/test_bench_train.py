"""One training step (every stage) of every registered model, ``impl="ext"`` vs ``impl="ref"``.

Label ``train_step:<model>``; the pass column holds the stage. On CPU the models run at the
synthetic preset's scale (64x32 images, batch 16, the preset's widths); on CUDA at the paper's
Market-1501 scale (128x64, batch 16, full widths). The step is the loop's own (forward, losses,
backward, optimiser steps), on random inputs with the model's encodings.
"""

from __future__ import annotations

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
