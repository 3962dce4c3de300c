"""Registry of the public ops, read by ``python -m fastpose.info`` and the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class OpInfo:
    name: str  # one name everywhere: fastpose::<name>, fastpose.ops.<name>, <name>_ref
    fn: Callable  # public op taking impl="auto"|"ext"|"ref"
    ref: Callable  # pure-PyTorch twin with the same signature (minus impl)
    kernels: tuple[str, ...]  # schema names whose kernels the op needs


OPS: dict[str, OpInfo] = {}


def register_op(name: str, fn: Callable, ref: Callable, kernels: tuple[str, ...]) -> None:
    OPS[name] = OpInfo(name, fn, ref, kernels)
