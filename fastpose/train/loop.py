"""The generic training loop every model plugs into (see :mod:`fastpose.models.base`).

One :class:`Trainer` per process. It resolves the device and the process group, seeds, builds the
data and the model, restores a checkpoint, wraps the networks (DDP, torch.compile), then runs the
model's stages step by step: the model computes its losses and calls ``update(name, loss)``; the
loop does zero_grad / backward / optimiser step under the AMP policy, checks losses for NaN/Inf,
steps the schedulers, logs, writes sample grids and checkpoints, and at the end computes the
run's metrics on held-out pairs (``metrics.json``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from fastpose.models import unwrap
from fastpose.train import distributed as D
from fastpose.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from fastpose.train.config import TrainConfig, config_to_dict, save_config
from fastpose.train.data import DataBundle, ResumableSampler, build_data, collate, sample_pairs
from fastpose.train.logging import RunLogger
from fastpose.train.restore import build_model, pick_device
from fastpose.train.samples import save_grid


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or Inf (``--nan-policy stop``)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def set_determinism(on: bool) -> None:
    if on:
        # cuBLAS needs this for deterministic matmuls; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=False)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on


def next_run_dir(out: str | Path, model: str, kind: str) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = [int(p.name[:5]) for p in out.iterdir() if p.is_dir() and p.name[:5].isdigit()]
    return out / f"{max(ids, default=-1) + 1:05d}-{model}-{kind}"


class Trainer:
    """Train ``cfg.model`` on ``cfg.data`` (or on ``data`` when given, e.g. in tests).

    Args:
        cfg: the resolved run config.
        data: datasets to use instead of building them from ``cfg.data``.
        resume: a run directory or checkpoint to continue from (its run directory is reused).
        progress: show tqdm progress bars (rank 0).
    """

    def __init__(self, cfg: TrainConfig, data: Optional[DataBundle] = None,
                 resume: Optional[str] = None, progress: bool = True) -> None:
        if cfg.nan_policy not in ("stop", "skip"):
            raise ValueError(f"nan_policy must be 'stop' or 'skip', got {cfg.nan_policy!r}")
        if cfg.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"amp must be none, bf16 or fp16, got {cfg.amp!r}")
        self.cfg = cfg
        self.progress = progress
        info = D.env_dist_info()
        device = pick_device(cfg.device)
        if device.type == "cuda" and info.enabled:
            device = torch.device("cuda", info.local_rank)
        self.device = device
        self.dist = D.init_distributed(device)
        self.main = self.dist.is_main
        set_determinism(cfg.deterministic)

        ckpt = load_checkpoint(resume, map_location="cpu") if resume else None

        # Data, then the model: identical initial weights on every rank (seed without the rank).
        seed_everything(cfg.seed)
        if data is None:
            # Rank 0 first: it may generate the synthetic set; the others then read the cache.
            if not self.main:
                D.barrier()
            data = self._build_data()
            if self.main:
                D.barrier()
        self.data = data
        # Drawn before any RNG state is restored, so reading them cannot shift a resumed run.
        self.sample_batch = sample_pairs(data.test, cfg.sample_pairs) if self.main else None
        self.model = build_model(cfg, self.data.image_size, feature_net=self._feature_net)
        self.model.to(device)
        self.opts, self.scheds = self.model.configure_optimizers()
        self.scaler = torch.amp.GradScaler("cuda", enabled=(cfg.amp == "fp16" and device.type == "cuda"))
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
        if self.autocast_dtype is not None and device.type != "cuda":
            warnings.warn(f"--amp {cfg.amp} applies on CUDA only; training in float32 on {device}")
            self.autocast_dtype = None
        self.total = self.model.total_steps() if cfg.max_steps <= 0 else min(cfg.max_steps, self.model.total_steps())

        self.step = 0
        self.sampler = ResumableSampler(self.data.train, cfg.batch_size, self.dist.rank,
                                        self.dist.world_size, cfg.seed)
        if self.sampler.batches_per_epoch == 0:
            raise ValueError(f"batch size {cfg.batch_size} x {self.dist.world_size} processes is larger "
                             f"than the training set ({len(self.data.train)} pairs)")
        self.epoch, self.offset = 0, 0
        self.skipped_updates = 0
        if ckpt is not None:
            self._restore(ckpt)
            ckpt_dir = Path(ckpt["path"]).parent
            self.run_dir = ckpt_dir.parent if ckpt_dir.name == "checkpoints" else ckpt_dir
        else:
            self.run_dir = self._new_run_dir()
        # Per-rank training randomness (dropout, noise) differs between ranks.
        if ckpt is None:
            seed_everything(cfg.seed + self.dist.rank)
        self._wrap_networks()
        if self.main:
            (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.run_dir / "config.json")
        self.logger = RunLogger(self.run_dir, enabled=self.main)
        if ckpt is not None:
            self.logger.truncate_after(self.step)
        self.history: list[dict[str, float]] = []  # per-step losses of this process (tests, debugging)

    # -- construction helpers ------------------------------------------------------------------
    def _build_data(self) -> DataBundle:
        from fastpose.evaluate import metric_encodings
        from fastpose.models import get_model
        enc = get_model(self.cfg.model).encodings_for(self.cfg.model_cfg)
        enc = tuple(dict.fromkeys(enc + metric_encodings(self._metrics())))
        return build_data(self.cfg.data_kind, self.cfg.data_dir, enc, (self.cfg.image_h, self.cfg.image_w),
                          synthetic_preset=self.cfg.synthetic_preset, flip_prob=self.cfg.flip_prob,
                          synthetic_train_ids=self.cfg.synthetic_train_ids,
                          synthetic_test_ids=self.cfg.synthetic_test_ids,
                          progress=self.progress and self.main)

    def _metrics(self) -> tuple[str, ...]:
        from fastpose.evaluate import available_metrics
        return available_metrics(("ssim", "mask_ssim", "pssim"))

    def _feature_net(self, arch: str, layers):
        """Build a frozen VGG feature extractor under the run's weight policy; a random-init
        fallback (synthetic preset, offline) is recorded in the config's notes."""
        from fastpose.models.vgg import WEIGHT_FILES, VGGFeatures
        weights = self.cfg.vgg_weights or "imagenet"
        if self.cfg.vgg_weights and Path(self.cfg.vgg_weights).is_dir():
            weights = str(Path(self.cfg.vgg_weights) / WEIGHT_FILES[arch])
        net = VGGFeatures(arch, layers, weights=weights, allow_random=self.cfg.allow_random_features)
        if net.source.weights == "random":
            note = (f"perceptual features: {arch} is RANDOMLY INITIALISED because {WEIGHT_FILES[arch]} "
                    f"was not found (offline); losses are not the paper's")
            if note not in self.cfg.notes:
                self.cfg.notes.append(note)
        return net.to(self.device)

    def _new_run_dir(self) -> Path:
        if self.main:
            path = (Path(self.cfg.out) / self.cfg.run_name if self.cfg.run_name
                    else next_run_dir(self.cfg.out, self.cfg.model, self.cfg.data_kind))
            path.mkdir(parents=True, exist_ok=True)
        else:
            path = None
        if self.dist.enabled:
            box = [str(path) if path else None]
            dist.broadcast_object_list(box, src=0)
            path = Path(box[0])
        return Path(path)

    def _restore(self, ckpt: dict) -> None:
        if ckpt["config"].get("model") != self.cfg.model:
            raise ValueError(f"checkpoint {ckpt['path']} is a {ckpt['config'].get('model')} model, "
                             f"not {self.cfg.model}")
        for name, state in ckpt["nets"].items():
            self.model.nets[name].load_state_dict(state)
        for name, state in ckpt["optimizers"].items():
            self.opts[name].load_state_dict(state)
        for name, state in ckpt.get("schedulers", {}).items():
            self.scheds[name].load_state_dict(state)
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        self.epoch, self.offset = ckpt["sampler"]["epoch"], ckpt["sampler"]["offset"]
        self.skipped_updates = int(ckpt.get("skipped_updates", 0))
        rngs = ckpt.get("rng") or []
        if rngs:
            # Same world size: each rank continues its own stream; otherwise rank-derived seeds.
            if len(rngs) == self.dist.world_size:
                set_rng_state(rngs[self.dist.rank])
            else:
                seed_everything(self.cfg.seed + self.dist.rank + 7919 * self.step)

    def _wrap_networks(self) -> None:
        for name in list(self.model.nets.keys()):
            net = self.model.nets[name]
            if self.dist.enabled and any(p.requires_grad for p in net.parameters()):
                net = DDP(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            if self.cfg.compile:
                net = torch.compile(net)
            self.model.nets[name] = net

    # -- the loop ------------------------------------------------------------------------------
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _update(self, name: str, loss: Tensor) -> None:
        if name not in self.opts:
            raise KeyError(f"{self.cfg.model}.train_step updated unknown optimiser {name!r}; "
                           f"known: {sorted(self.opts)}")
        opt = self.opts[name]
        if not D.all_finite(loss):
            msg = (f"non-finite loss for {name!r} ({float(loss.detach()):.4g}) at step {self.step + 1} "
                   f"(stage {self.model.current_stage})")
            if self.cfg.nan_policy == "stop":
                raise NonFiniteLossError(msg + "; rerun with --nan-policy skip to skip such updates")
            self.skipped_updates += 1
            if self.main:
                warnings.warn(msg + "; update skipped", RuntimeWarning)
            opt.zero_grad(set_to_none=True)
            return
        opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=False):
            self.scaler.scale(loss).backward()
        self.scaler.step(opt)
        self._stepped = True

    def _enter_stage(self, stage) -> None:
        self.model.current_stage = stage.name
        for name, net in self.model.nets.items():
            trains = name in stage.trains
            net.train(trains)
            for p in net.parameters():
                p.requires_grad_(trains)

    def _batches(self):
        while True:
            self.sampler.set_position(self.epoch, self.offset)
            gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.epoch)
            loader = DataLoader(self.data.train, batch_size=self.cfg.batch_size, sampler=self.sampler,
                                num_workers=self.cfg.workers, collate_fn=collate, drop_last=True,
                                pin_memory=self.device.type == "cuda", generator=gen,
                                persistent_workers=False)
            for batch in loader:
                self.offset += 1
                yield batch
            self.epoch, self.offset = self.epoch + 1, 0

    def train(self) -> dict:
        """Run until the end of the schedule (or ``max_steps``); returns the final metrics."""
        cfg = self.cfg
        pbar = None
        if self.main and self.progress:
            from tqdm import tqdm
            pbar = tqdm(total=self.total, initial=self.step, desc=cfg.model, dynamic_ncols=True)
        stage = None
        batches = self._batches()
        window: dict[str, list[float]] = {}
        t0, samples0 = time.perf_counter(), 0
        per_step = cfg.batch_size * self.dist.world_size
        try:
            while self.step < self.total:
                s = self.model.stage_at(self.step)
                if stage is None or s.name != stage.name:
                    stage = s
                    self._enter_stage(stage)
                batch = next(batches)
                batch = {k: v.to(self.device, non_blocking=True) if isinstance(v, Tensor) else v
                         for k, v in batch.items()}
                if self.data.train_transform is not None:  # raw batch -> model batch, on the device
                    batch = self.data.train_transform(batch)
                self._stepped = False
                with self._autocast():
                    losses = self.model.train_step(stage.name, batch, self._update)
                if self._stepped:
                    self.scaler.update()
                for sch in self.scheds.values():
                    sch.step()
                self.step += 1
                samples0 += per_step
                vals = {k: float(v.detach()) for k, v in losses.items()}
                self.history.append(vals)
                for k, v in vals.items():
                    window.setdefault(k, []).append(v)
                rate = samples0 / max(time.perf_counter() - t0, 1e-9)
                if pbar is not None:
                    pbar.update(1)
                    pbar.set_postfix({**{k: f"{v:.4f}" for k, v in vals.items()},
                                      "stage": stage.name, "samples/s": f"{rate:.1f}"}, refresh=False)
                if self.step % cfg.log_every == 0 or self.step == self.total:
                    row = {k: sum(v) / len(v) for k, v in window.items()}
                    row["samples_per_s"] = rate
                    row.update({f"lr_{n}": o.param_groups[0]["lr"] for n, o in self.opts.items()})
                    self.logger.log(self.step, row, stage.name)
                    window = {}
                if cfg.sample_every and self.step % cfg.sample_every == 0:
                    self.write_samples()
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < self.total:
                    self.save()
        finally:
            if pbar is not None:
                pbar.close()
        if self.step >= self.model.total_steps():
            self.model.current_stage = None
        self.write_samples()
        self.save()
        metrics = self.final_metrics()
        self.logger.close()
        return metrics

    # -- outputs -------------------------------------------------------------------------------
    @torch.no_grad()
    def write_samples(self) -> None:
        if not self.main:
            return
        batch = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in self.sample_batch.items()}
        with self.plain_networks():
            fake = self.model.generate(batch)
        save_grid(self.sample_batch, fake, self.run_dir / "samples" / f"{self.step:07d}.png")

    @contextlib.contextmanager
    def plain_networks(self):
        """Temporarily swap the DDP/compile wrappers for the plain networks in eval mode, so that
        rank 0 can run inference alone (a DDP forward may wait for the other ranks)."""
        wrapped = dict(self.model.nets.items())
        modes = {n: net.training for n, net in wrapped.items()}
        for n, net in wrapped.items():
            self.model.nets[n] = unwrap(net).eval()
        try:
            yield
        finally:
            for n, net in wrapped.items():
                self.model.nets[n] = net
                net.train(modes[n])

    def checkpoint_state(self) -> dict:
        return {
            "step": self.step,
            "config": config_to_dict(self.cfg),
            "image_size": list(self.data.image_size),
            "nets": {n: unwrap(net).state_dict() for n, net in self.model.nets.items()},
            "optimizers": {n: o.state_dict() for n, o in self.opts.items()},
            "schedulers": {n: s.state_dict() for n, s in self.scheds.items()},
            "scaler": self.scaler.state_dict(),
            "sampler": {"epoch": self.epoch, "offset": self.offset},
            "skipped_updates": self.skipped_updates,
        }

    def save(self) -> Optional[Path]:
        rngs = D.all_gather_object(rng_state())
        path = None
        if self.main:
            state = self.checkpoint_state()
            state["rng"] = rngs
            path = save_checkpoint(state, self.run_dir / "checkpoints", self.step, self.cfg.keep_checkpoints)
            save_config(self.cfg, self.run_dir / "config.json")
        D.barrier()
        return path

    def final_metrics(self) -> dict:
        from fastpose.evaluate import add_model_metrics, evaluate_model, format_table
        result: dict = {}
        if self.main and self.cfg.eval_pairs >= 0:
            with self.plain_networks():
                result = evaluate_model(self.model, self.data.test, self._metrics(), self.cfg.eval_pairs,
                                        self.cfg.eval_batch_size, self.device, self.cfg.impl,
                                        progress=self.progress)
                # Model-specific held-out metrics (e.g. SPGNet's parsing accuracy), same table.
                add_model_metrics(self.model, result, self.data.test, self.cfg.eval_pairs,
                                  self.cfg.eval_batch_size, self.device)
            result.update(step=self.step, skipped_updates=self.skipped_updates, notes=self.cfg.notes)
            (self.run_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
            if self.progress:
                print(format_table(result))
        D.barrier()
        return result


def train(cfg: TrainConfig, data: Optional[DataBundle] = None, resume: Optional[str] = None,
          progress: bool = True) -> dict:
    """Build a :class:`Trainer` and run it; returns the final metrics (rank 0)."""
    return Trainer(cfg, data=data, resume=resume, progress=progress).train()
