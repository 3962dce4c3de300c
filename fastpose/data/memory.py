"""Keep freed CPU memory for reuse: the page-fault cost of batch-sized tensors on CPU.

A Market batch of 32 pairs with every encoding is ~115 MB of float32 made afresh for every
batch. With glibc's default policy, the memory of the previous batch is handed back to the
kernel when it is freed (large blocks are ``mmap``-ed and unmapped; the heap top is trimmed), so
every new batch page-faults its ~30 000 pages in again, zero-filled: measured on the 2-core
machine, that doubled the CPU cost of :class:`fastpose.data.BatchEncoder` (~100 ms -> ~45 ms per
batch once memory is kept). :func:`retain_freed_memory` sets glibc's ``mallopt`` so that blocks
up to 32 MiB come from the heap and freed heap memory stays mapped for the next batch.

The setting is process-wide (the process keeps its peak heap instead of returning freed memory
to the system) and a no-op on other C libraries.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# glibc <malloc.h> parameter numbers.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Largest mmap threshold glibc accepts on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): blocks below it
# come from the heap; a Market 128x64 batch's largest tensor (32 x 18 x 128 x 64 float32) is 19 MB.
MMAP_THRESHOLD = 32 * 1024 * 1024
# Free memory at the heap top kept instead of trimmed: several batches' worth.
TRIM_THRESHOLD = 1024 * 1024 * 1024

_state: dict[str, bool] = {}


def retain_freed_memory() -> bool:
    """Make glibc's malloc reuse freed memory rather than return it to the kernel (once per process).

    Returns True when the setting is in effect (glibc), False elsewhere (nothing is changed).
    """
    if "applied" in _state:
        return _state["applied"]
    applied = False
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            # Setting either parameter turns off glibc's dynamic thresholds, so set both.
            applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        except (OSError, AttributeError):
            applied = False
    _state["applied"] = applied
    return applied
