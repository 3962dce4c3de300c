"""An evaluation's results as a JSON-ready dict (``eval.json``, the trainer's ``metrics.json``),
and that dict printed as the papers' table.

The dict::

    {"model": {"ssim": 0.71, ...},          # one entry per row: the scored images ("model",
     "copy_source": {...}, "real": {...},   #   a model or a folder), the copy-source baseline,
                                            #   real data; values of the computed metrics
     "pairs": 512,                          # pairs scored
     "dataset": "market",                   # whose table columns (market | deepfashion)
     "metrics": ["ssim", ...],              # requested, in order
     "unavailable": {"fid": "why"},         # missing weights / dependency (every row)
     "not_computed": {"model": {"is": "why"}},  # e.g. fewer images than IS splits
     "std": {"model": {"is": 0.05}},        # spreads where the convention has one
     "details": {"model": {"pckh": {...}}}, # per-metric extras (counts, conventions)
     "random_weights": ["is"],              # values from random networks (tests only)
     "method_name": "pg2 (step 2200)"}      # label of the "model" row, when given

Row keys differ from :func:`~fastpose.metrics.folder.evaluate_batches`' ``"method"`` only in
that one name: ``"model"`` (kept from the trainer's first ``metrics.json``).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

from fastpose.metrics.registry import MetricResult
from fastpose.metrics.table import format_table

# What evaluate_batches puts in a cell instead of a result.
UNAVAILABLE = "unavailable: "  # the metric cannot be built here (weights, dependency)
NOT_COMPUTED = "not computed: "  # it was built but could not compute (too few images, ...)

# evaluate_batches' row -> key in the dict
JSON_ROWS: dict[str, str] = {"method": "model", "copy_source": "copy_source", "real": "real"}
LIBRARY_ROWS: dict[str, str] = {v: k for k, v in JSON_ROWS.items()}

Results = Mapping[str, Mapping[str, Union[MetricResult, str]]]


def report_dict(results: Results, *, pairs: int, dataset: Optional[str] = None,
                method_name: Optional[str] = None) -> dict[str, Any]:
    """The dict above from ``evaluate_batches``' results (row -> metric -> result or reason)."""
    out: dict[str, Any] = {}
    names: list[str] = []
    extras: dict[str, dict] = {"unavailable": {}, "not_computed": {}, "std": {}, "details": {}}
    random: list[str] = []
    for row, cells in results.items():
        key = JSON_ROWS.get(row, row)
        out[key] = {}
        for name, cell in cells.items():
            if name not in names:
                names.append(name)
            if isinstance(cell, str):
                if cell.startswith(UNAVAILABLE):
                    extras["unavailable"][name] = cell[len(UNAVAILABLE):]
                else:
                    reason = cell[len(NOT_COMPUTED):] if cell.startswith(NOT_COMPUTED) else cell
                    extras["not_computed"].setdefault(key, {})[name] = reason
                continue
            out[key][name] = cell.value
            if cell.std is not None:
                extras["std"].setdefault(key, {})[name] = cell.std
            if cell.details:
                extras["details"].setdefault(key, {})[name] = dict(cell.details)
            if cell.random_weights and name not in random:
                random.append(name)
    out.update(pairs=pairs, dataset=dataset, metrics=names)
    out.update({k: v for k, v in extras.items() if v})
    if random:
        out["random_weights"] = random
    if method_name:
        out["method_name"] = method_name
    return out


def format_report(report: Mapping[str, Any], digits: int = 4,
                  rows: Optional[Sequence[str]] = None) -> str:
    """The papers' table of a :func:`report_dict` dict, with the pairs count (and, for a folder,
    the pairs without a generated image and the stray files) under it.

    ``rows``: dict row keys to show, in order (default: those present of model, copy_source,
    real).
    """
    keys = list(rows) if rows is not None else [k for k in LIBRARY_ROWS if k in report]
    # the requested metrics, then values added to the rows by others (a model's own held-out
    # numbers, e.g. SPGNet's parsing accuracy), so every number in the dict is printed
    names = list(report.get("metrics", ()))
    names += [n for key in keys for n in report.get(key, {}) if n not in names]
    names = list(dict.fromkeys(names))
    unavailable = report.get("unavailable", {})
    random = set(report.get("random_weights", ()))
    results: dict[str, dict[str, Union[MetricResult, str]]] = {}
    for key in keys:
        values = report.get(key, {})
        failed = report.get("not_computed", {}).get(key, {})
        std = report.get("std", {}).get(key, {})
        cells: dict[str, Union[MetricResult, str]] = {}
        for name in names:
            if name in unavailable:
                cells[name] = UNAVAILABLE + unavailable[name]
            elif name in failed:
                cells[name] = NOT_COMPUTED + failed[name]
            elif name in values:
                cells[name] = MetricResult(values[name], report.get("pairs", 0),
                                           std=std.get(name), random_weights=name in random)
        results[LIBRARY_ROWS.get(key, key)] = cells
    label = report.get("method_name") or "Model"
    text = format_table(results, report.get("dataset"), method_name=label, digits=digits)
    footer = [f"{report.get('pairs', 0)} pairs scored"]
    if report.get("missing_pairs"):
        footer.append(f"{report['missing_pairs']} test pairs had no generated image")
    if report.get("unmatched_files"):
        footer.append(f"{report['unmatched_files']} files matched no test pair")
    return text + "\n\n" + "; ".join(footer) + "."
