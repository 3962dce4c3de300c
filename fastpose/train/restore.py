"""Rebuilding a trained model (and its run's data) from a checkpoint, for evaluate and generate."""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from fastpose.models import BuildContext, get_model
from fastpose.train.checkpoint import CheckpointError, load_checkpoint
from fastpose.train.config import TrainConfig, check_data_spec, config_from_dict
from fastpose.train.data import DataBundle, build_data


def pick_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available")
    return dev


def build_model(cfg: TrainConfig, image_size: tuple[int, int], feature_net=None):
    cls = get_model(cfg.model)
    ctx = BuildContext(image_size=tuple(image_size), impl=cfg.impl, feature_net=feature_net,
                       dataset_kind=cfg.data_kind)
    return cls(cfg.model_cfg, ctx)


def load_model_for_inference(run_or_ckpt: str, device: str = "auto", impl: str = "auto"):
    """(model in eval mode on ``device``, its config, the checkpoint dict)."""
    ckpt = load_checkpoint(run_or_ckpt)
    try:
        cfg = config_from_dict(ckpt["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{ckpt['path']}: unusable config ({exc})") from exc
    cfg.impl = impl
    size = tuple(ckpt.get("image_size") or (cfg.image_h, cfg.image_w))
    # Feature networks (losses only) are not needed to generate: no weights are looked up.
    model = build_model(cfg, size, feature_net=None)
    try:
        for name, state in ckpt["nets"].items():
            model.nets[name].load_state_dict(state)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{ckpt['path']}: weights do not fit model {cfg.model} ({exc})") from exc
    model.current_stage = None if ckpt["step"] >= model.total_steps() else model.stage_at(ckpt["step"]).name
    model.to(pick_device(device)).eval()
    return model, cfg, ckpt


def run_data_for(cfg: TrainConfig, model, extra_encodings: Sequence[str] = (),
                 data: Optional[str] = None) -> DataBundle:
    spec = data or cfg.data
    check_data_spec(spec)
    kind, root = spec.split(":", 1)[0], (spec.split(":", 1)[1] if ":" in spec else None)
    enc = tuple(dict.fromkeys(tuple(model.encodings) + tuple(extra_encodings)))
    return build_data(kind, root, enc, (cfg.image_h, cfg.image_w),
                      synthetic_preset=cfg.synthetic_preset,
                      synthetic_train_ids=cfg.synthetic_train_ids,
                      synthetic_test_ids=cfg.synthetic_test_ids)
