"""The synthetic dataset cache: generated on first use, reused afterwards."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from fastpose.data.synthetic.config import SyntheticConfig
from fastpose.data.synthetic.writer import generate, is_complete

# Temporary folders of runs that were killed outright (no cleanup ran) are removed once older
# than this; a live run of the default set finishes in well under a minute.
STALE_TMP_S = 6 * 3600


def cache_root() -> Path:
    """``$FASTPOSE_CACHE/synthetic`` if set, else ``~/.cache/fastpose/synthetic``."""
    base = os.environ.get("FASTPOSE_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "fastpose") / "synthetic"


def ensure_synthetic(preset: str = "market", root: str | Path | None = None, *,
                     progress: bool = True, **overrides) -> Path:
    """Path of the synthetic dataset ``preset`` (with config ``overrides``), generating it first
    when the cache does not hold it yet.

    The folder is ``<root>/<preset>-<config hash>`` (``root`` defaults to :func:`cache_root`),
    so another seed or size gets its own folder and a renderer change (``GENERATOR_VERSION``)
    invalidates old ones. Generation is atomic: concurrent callers each render into a private
    temporary folder and the first to finish wins."""
    cfg = SyntheticConfig.for_preset(preset, **overrides)
    path = Path(root if root is not None else cache_root()) / f"{preset}-{cfg.digest()}"
    if is_complete(path):
        return path
    _remove_stale(path)
    try:
        return generate(cfg, path, overwrite=path.exists(), progress=progress)
    except OSError:
        if is_complete(path):  # another process finished the same dataset first
            return path
        raise


def _remove_stale(path: Path) -> None:
    now = time.time()
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        try:
            if now - tmp.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except FileNotFoundError:  # another process removed it meanwhile
            pass
