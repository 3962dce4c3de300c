"""The ``impl`` switch shared by every public op."""

from __future__ import annotations

import warnings
from typing import Literal

import torch

from fastpose import _ext

Impl = Literal["auto", "ext", "ref"]
IMPLS = ("auto", "ext", "ref")

_warned: set[tuple[str, str]] = set()


def use_kernel(op: str, impl: str, device: torch.device) -> bool:
    """Decide between the compiled kernel (True) and the reference (False).

    ``"ref"`` always picks the reference, ``"ext"`` raises when the kernel is
    unavailable, and ``"auto"`` falls back to the reference with one warning per
    (op, device type).
    """
    return _use_kernel(op, impl, device.type)


# Evaluated eagerly while torch.compile traces (the dispatcher query is not traceable);
# the answer only depends on strings and on how the extension was built.
@torch.compiler.assume_constant_result
def _use_kernel(op: str, impl: str, device_type: str) -> bool:
    if impl not in IMPLS:
        raise ValueError(f"fastpose.ops.{op}: impl must be one of {IMPLS}, got {impl!r}")
    if impl == "ref":
        return False
    ok, why = _ext.kernel_status(op, device_type)
    if ok:
        return True
    if impl == "ext":
        raise RuntimeError(f"fastpose.ops.{op}(impl='ext') on {device_type}: {why}")
    key = (op, device_type)
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"fastpose.ops.{op}: using the pure-PyTorch reference on {device_type} "
                      f"because {why}", RuntimeWarning, stacklevel=3)
    return False
