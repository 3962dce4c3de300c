"""Training: configs and presets, the generic loop, checkpoints, DDP, logging, sample grids.

``python -m fastpose.train --model pg2`` is the command-line entry point; :func:`train` and
:class:`Trainer` the Python one.
"""

from fastpose.train.config import TrainConfig, default_config, load_config, save_config
from fastpose.train.loop import NonFiniteLossError, Trainer, train

__all__ = ["NonFiniteLossError", "TrainConfig", "Trainer", "default_config", "load_config",
           "save_config", "train"]
