"""``python -m fastpose.train --model NAME [--data ...] [--out DIR] [--resume RUN_OR_CKPT] ...``

Every field of the loop's config and of the model's config is an option (``--help`` lists them
with the model's options once ``--model`` is given). Multi-GPU / multi-node:
``torchrun --nproc_per_node G -m fastpose.train --model pg2 ...``.
"""

from __future__ import annotations

import json
import sys
from typing import Optional, Sequence

from fastpose.train.checkpoint import CheckpointError, load_checkpoint
from fastpose.train.config import apply_overrides, config_from_dict, config_to_dict, parse_args
from fastpose.train.data import DataError
from fastpose.train.loop import NonFiniteLossError, train


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg, ns, given = parse_args(argv)
    try:
        if ns.resume:
            ckpt = load_checkpoint(ns.resume)
            cfg = config_from_dict(ckpt["config"])
            if ns.model and ns.model != cfg.model:
                raise ValueError(f"--model {ns.model} but {ckpt['path']} is a {cfg.model} run")
            # Options given on the command line win over the run's saved config (e.g. --max-steps).
            apply_overrides(cfg, given)
            if ns.data:
                cfg.data = ns.data
            resume = ckpt["path"]
            del ckpt
        else:
            resume = None
        if ns.dry_run:
            print(json.dumps(config_to_dict(cfg), indent=2))
            return 0
        train(cfg, resume=resume)
    except (CheckpointError, DataError, NonFiniteLossError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
