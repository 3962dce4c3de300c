"""Lazy loading of the compiled extension ``fastpose._C``.

Nothing here runs at import time. The first call to :func:`load` imports the
extension (whose static initialisers register the ``torch.ops.fastpose`` schemas
and kernels) and then runs the Python-side registrations (fake kernels,
autograd) that ops declared with :func:`on_load`.

Set ``FASTPOSE_NO_EXT=1`` to behave as if the extension were not built (useful
to test the reference path).
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Callable, Optional

import torch

REINSTALL_HINT = (
    "build it with `pip install --no-build-isolation .` (or `-e .`) from the fastpose source "
    "tree, with torch installed first; `python -m fastpose.info` shows what was built"
)

_loaded: Optional[bool] = None
_error: Optional[str] = None
_registrars: list[Callable[[], None]] = []


def on_load(fn: Callable[[], None]) -> Callable[[], None]:
    """Run ``fn`` once the extension is loaded (immediately if it already is)."""
    _registrars.append(fn)
    if _loaded:
        fn()
    return fn


def load() -> bool:
    """Import ``fastpose._C`` once; return whether it is usable."""
    global _loaded, _error
    if _loaded is not None:
        return _loaded
    if os.environ.get("FASTPOSE_NO_EXT", "") not in ("", "0"):
        _loaded, _error = False, "the extension is disabled by FASTPOSE_NO_EXT"
        return False
    try:
        importlib.import_module("fastpose._C")
    except (ImportError, OSError) as exc:
        _loaded = False
        _error = f"fastpose._C could not be imported ({type(exc).__name__}: {exc}); {REINSTALL_HINT}"
        return False
    _loaded = True
    for fn in _registrars:
        fn()
    return True


def error() -> Optional[str]:
    """Why the extension is unavailable, or None when it loaded."""
    load()
    return _error


def build_info() -> dict:
    """How the loaded extension was built (torch version, CUDA, architectures, flags)."""
    if not load():
        return {}
    return json.loads(torch.ops.fastpose.build_info())


_DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA"}


def kernel_status(op: str, device_type: str) -> tuple[bool, str]:
    """Whether ``fastpose::<op>`` has a compiled kernel for ``device_type``, and if not, why."""
    if not load():
        return False, _error or "the extension is not available"
    key = _DISPATCH_KEYS.get(device_type)
    if key is None:
        return False, f"fastpose has no kernels for device type {device_type!r}"
    if torch._C._dispatch_has_kernel_for_dispatch_key(f"fastpose::{op}", key):
        return True, ""
    if device_type == "cuda" and not build_info().get("cuda", False):
        return False, ("the extension was built without CUDA kernels (torch CPU-only, nvcc missing "
                       "or FASTPOSE_CUDA=0 at build time); rebuild with a CUDA torch and nvcc")
    return False, f"the extension has no {key} kernel for {op}"
