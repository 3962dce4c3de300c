"""Checkpoints: atomic writes, ``latest.pt``, keep-last-N, RNG states, readable errors.

A checkpoint is one ``torch.save`` dict::

    {"format": 1, "step": int, "config": dict, "nets": {name: state_dict},
     "optimizers": {name: state_dict}, "schedulers": {name: state_dict}, "scaler": state_dict,
     "rng": [per-rank RNG states], "sampler": {"epoch": int, "offset": int}}

Writes go to a temporary file in the same folder, are flushed and fsync'ed, then renamed over the
destination (``os.replace`` is atomic on POSIX and Windows), so a crash at any point leaves either
the previous ``latest.pt`` or the new one, never a truncated file.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

FORMAT = 1
LATEST = "latest.pt"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or not a fastpose checkpoint."""


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` that never leaves a partial file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _link_or_copy_atomic(src: Path, dst: Path) -> None:
    """Make ``dst`` a copy of ``src`` atomically (a hard link when the filesystem allows)."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        if tmp.exists():
            tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            import shutil
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def save_checkpoint(state: dict, ckpt_dir: str | Path, step: int, keep: int = 2) -> Path:
    """Write ``<ckpt_dir>/<step:07d>.pt`` and point ``latest.pt`` at it; keep the newest ``keep``
    numbered files (0 = all)."""
    ckpt_dir = Path(ckpt_dir)
    path = ckpt_dir / f"{step:07d}.pt"
    atomic_save({"format": FORMAT, **state}, path)
    _link_or_copy_atomic(path, ckpt_dir / LATEST)
    if keep > 0:
        numbered = sorted(p for p in ckpt_dir.glob("[0-9]*.pt"))
        for old in numbered[:-keep]:
            old.unlink(missing_ok=True)
    return path


def resolve_checkpoint(run_or_ckpt: str | Path) -> Path:
    """A run directory -> its ``checkpoints/latest.pt``; a file -> itself."""
    p = Path(run_or_ckpt)
    if p.is_dir():
        for cand in (p / "checkpoints" / LATEST, p / LATEST):
            if cand.is_file():
                return cand
        raise CheckpointError(f"{p} holds no checkpoint (expected {p / 'checkpoints' / LATEST})")
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    return p


def load_checkpoint(run_or_ckpt: str | Path, map_location: Any = "cpu") -> dict:
    """Read a checkpoint, with an error that names the file when it cannot be read."""
    path = resolve_checkpoint(run_or_ckpt)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types for truncated/corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc} "
                              f"(the file is truncated, corrupt or not a fastpose checkpoint)") from exc
    if not isinstance(ckpt, dict) or "format" not in ckpt or "nets" not in ckpt:
        raise CheckpointError(f"{path} is not a fastpose checkpoint (no 'format'/'nets' entries)")
    if ckpt["format"] > FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {ckpt['format']}; this fastpose reads "
                              f"up to {FORMAT}")
    ckpt["path"] = str(path)
    return ckpt


# --- RNG states ------------------------------------------------------------------------------

def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Optional[dict]) -> None:
    if not state:
        return
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
