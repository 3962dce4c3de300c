"""Benchmark harness: ``pytest benchmarks --benchmark``.

Without ``--benchmark`` every benchmark is skipped. With it, each case is timed
with pytest-benchmark (CPU) or CUDA events after warm-up (CUDA), and the session
ends with a table of medians and speedups (reference / kernel, external /
kernel), also written to ``benchmarks/.results/latest.md``.

CPU allocator: the session runs with :func:`fastpose.data.retain_freed_memory` in
effect, as a fastpose training process does (its batch encoder sets it on the first
CPU batch). Under glibc's default policy, whether a multi-megabyte tensor freed by one
call comes back to the next as mapped memory or as fresh pages to fault in (~2,000 per
8 MB) depends on what ran before; on this 2-core machine that swung the same kernel
call by up to 50 % between a case timed alone and one timed after other
implementations. ``FASTPOSE_BENCH_DEFAULT_MALLOC=1`` keeps glibc's default policy;
the table header says which policy a run used.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

RESULTS: list["BenchResult"] = []


@dataclass
class BenchResult:
    op: str  # benchmark label = op name
    case: str  # shape and parameters
    device: str  # "cpu" or "cuda"
    pass_: str  # "fwd" or "fwd+bwd"
    impl: str  # "ext", "ref" or an external library
    median_ms: float  # median time of one call


def pytest_addoption(parser):
    parser.addoption("--benchmark", action="store_true", default=False,
                     help="run the fastpose benchmarks (skipped otherwise)")


MALLOC_POLICY = {"name": "not set"}


def pytest_configure(config):
    if not config.getoption("--benchmark"):
        return
    if os.environ.get("FASTPOSE_BENCH_DEFAULT_MALLOC") == "1":
        MALLOC_POLICY["name"] = "glibc default (FASTPOSE_BENCH_DEFAULT_MALLOC=1)"
        return
    from fastpose.data.memory import retain_freed_memory

    MALLOC_POLICY["name"] = ("freed memory retained (fastpose.data.retain_freed_memory, as in "
                             "training)" if retain_freed_memory() else "C library default")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--benchmark"):
        return
    skip = pytest.mark.skip(reason="benchmarks run only with --benchmark")
    for item in items:
        item.add_marker(skip)


def cuda_median_ms(fn: Callable[[], object], warmup: int = 10, iters: int = 50) -> float:
    """Median of per-call CUDA-event timings after warm-up."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


@pytest.fixture
def record(benchmark, request):
    """record(op, case, device, pass_, impl, fn): time fn and keep the median for the table."""

    def _record(op: str, case: str, device: str, pass_: str, impl: str, fn: Callable[[], object]):
        benchmark.group = f"{op} {device} {case} {pass_}"
        if device == "cuda":
            def synced():
                fn()
                torch.cuda.synchronize()
            benchmark.pedantic(synced, rounds=20, warmup_rounds=5)
            median = cuda_median_ms(fn)
        else:
            benchmark.pedantic(fn, rounds=15, warmup_rounds=2)
            median = benchmark.stats.stats.median * 1e3
        RESULTS.append(BenchResult(op, case, device, pass_, impl, median))

    return _record


def environment_header() -> list[str]:
    try:
        sha = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True,
                                      stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        sha = "unknown"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [
        f"date: {datetime.date.today().isoformat()}",
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch threads {torch.get_num_threads()}, GPU {gpu}",
        f"torch {torch.__version__} (CUDA {torch.version.cuda}), commit {sha}",
        f"CPU allocator: {MALLOC_POLICY['name']}",
        "command: pytest benchmarks --benchmark",
    ]


def results_table() -> list[str]:
    rows = defaultdict(dict)
    for r in RESULTS:
        rows[(r.op, r.device, r.case, r.pass_)][r.impl] = r.median_ms
    externals = sorted({r.impl for r in RESULTS} - {"ext", "ref"})
    head = ["op", "device", "case", "pass", "ext ms", "ref ms", "ref/ext"]
    for e in externals:
        head += [f"{e} ms", f"{e}/ext"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (op, device, case, pass_), t in rows.items():
        ext = t.get("ext")
        cells = [op, device, case, pass_, fmt(ext), fmt(t.get("ref")), ratio(t.get("ref"), ext)]
        for e in externals:
            cells += [fmt(t.get(e)), ratio(t.get(e), ext)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def fmt(ms):
    return "-" if ms is None else (f"{ms * 1e3:.1f} µs" if ms < 0.1 else f"{ms:.3f}")


def ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.1f}x"


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    lines = environment_header() + [""] + results_table()
    terminalreporter.write_sep("=", "fastpose benchmark medians (ms unless marked)")
    for line in lines:
        terminalreporter.write_line(line)
    out = Path(__file__).parent / ".results"
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text("\n".join(lines) + "\n")
