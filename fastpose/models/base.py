"""The contract between a pose-transfer model and the generic training loop.

A model is an ``nn.Module`` that owns its networks (in ``self.nets``, an ``nn.ModuleDict``, so the
loop can wrap each one in DDP or ``torch.compile``), and tells the loop

- which pose encodings it needs from the dataset (:attr:`PoseTransferModel.encodings`),
- its optimisers and schedulers, by name (:meth:`PoseTransferModel.configure_optimizers`),
- its training stages in order (:meth:`PoseTransferModel.stages`): each stage has a length in steps
  and the names of the networks it trains (the others are kept in eval mode and frozen),
- how to train on one batch in a stage (:meth:`PoseTransferModel.train_step`): it computes losses
  and hands each one to ``update(optimizer_name, loss)``, which the loop implements (zero_grad,
  backward with the AMP scaler, NaN/Inf check, optimiser step); the model decides the order of the
  updates, so several discriminators and generator/discriminator alternation fit,
- how to generate from a batch (:meth:`PoseTransferModel.generate`),
- optionally, model-specific held-out metrics: ``extra_metrics(dataset, pairs, batch_size, device)``
  returning ``{"model": {name: value}, "copy_source": {name: value}}``, which the loop adds to its
  final table (e.g. SPGNet's stage-1 parsing accuracy).

Batches are dicts of tensors as produced by :class:`fastpose.data.PairDataset`: ``source_image`` and
``target_image`` ``[N, 3, H, W]`` in [-1, 1], ``source_keypoints``/``target_keypoints``
``[N, 18, 2]`` (y, x; -1 missing) and ``source_<encoding>``/``target_<encoding>``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

Batch = Mapping[str, Tensor]
# update(optimizer name, loss): backward + step of that optimiser (implemented by the loop).
Update = Callable[[str, Tensor], None]


@dataclass(frozen=True)
class Stage:
    """One phase of a multi-stage schedule."""
    name: str  # e.g. "stage1"
    steps: int  # optimisation steps (iterations) spent in this stage
    trains: tuple[str, ...]  # networks updated in this stage; the others are frozen


@dataclass
class BuildContext:
    """What a model may need from the outside world when it is built."""
    image_size: tuple[int, int]  # (H, W) of the dataset's images
    impl: str = "auto"  # fastpose ops implementation: auto | ext | ref
    # feature_net(arch, layers) -> a frozen VGGFeatures; applies the run's weight/fallback policy.
    feature_net: Optional[Callable[[str, Sequence[str]], nn.Module]] = None
    dataset_kind: str = "synthetic"  # synthetic | market | deepfashion


class PoseTransferModel(nn.Module, ABC):
    """Base class of the registered models (see the module docstring for the contract)."""

    name: ClassVar[str]  # registry name, set by @register_model
    config_class: ClassVar[type]  # the model's dataclass config

    def __init__(self, cfg: Any, ctx: BuildContext) -> None:
        super().__init__()
        self.cfg = cfg
        self.ctx = ctx
        self.nets = nn.ModuleDict()
        # The stage being trained, set by the loop (and from a checkpoint's step); None once every
        # stage is done. generate() uses it, e.g. PG2 outputs G1's image before stage 2 starts.
        self.current_stage: Optional[str] = None

    # -- what the data must provide -----------------------------------------------------------
    @classmethod
    @abstractmethod
    def encodings_for(cls, cfg: Any) -> tuple[str, ...]:
        """Pose encodings (names in fastpose.pose's registry) the dataset must attach for a model
        with config ``cfg`` (a classmethod: the data is built before the networks)."""

    @property
    def encodings(self) -> tuple[str, ...]:
        return self.encodings_for(self.cfg)

    # -- optimisation --------------------------------------------------------------------------
    @abstractmethod
    def configure_optimizers(self) -> tuple[dict[str, torch.optim.Optimizer], dict[str, Any]]:
        """(optimisers by name, LR schedulers by name; a scheduler steps once per iteration)."""

    @abstractmethod
    def stages(self) -> list[Stage]:
        """The training stages in order; their steps add up to the run's length."""

    @abstractmethod
    def train_step(self, stage: str, batch: Batch, update: Update) -> dict[str, Tensor]:
        """Train on one batch; return the scalar losses to log (detached or not)."""

    # -- inference -----------------------------------------------------------------------------
    @abstractmethod
    def generate(self, batch: Batch) -> Tensor:
        """The final generated target images ``[N, 3, H, W]`` in [-1, 1] (no grad needed)."""

    def net(self, name: str) -> nn.Module:
        """A network by name (possibly wrapped in DDP / torch.compile by the loop)."""
        return self.nets[name]

    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages())

    def stage_at(self, step: int) -> Stage:
        """The stage that iteration ``step`` (0-based) belongs to."""
        end = 0
        for s in self.stages():
            end += s.steps
            if step < end:
                return s
        return self.stages()[-1]


def unwrap(net: nn.Module) -> nn.Module:
    """The plain module under DDP and torch.compile wrappers (for state dicts)."""
    while True:
        if hasattr(net, "module") and isinstance(net.module, nn.Module):
            net = net.module
        elif hasattr(net, "_orig_mod"):
            net = net._orig_mod
        else:
            return net
