"""The papers' results table: rows = method / copy-source baseline / real data, columns per dataset.

Market (PATN, pSSIM and PoT-GAN papers): SSIM, IS, mask-SSIM, mask-IS, pSSIM, FID, LPIPS, PCKh.
DeepFashion: SSIM, IS, FID, LPIPS, PCKh. Metrics that were requested but could not be computed
show ``n/a`` with the reason as a footnote; values from randomly initialised networks (tests)
carry a dagger.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

from fastpose.metrics.registry import METRICS, MetricResult

# dataset -> ((column header, registry name), ...) in the papers' order
DATASET_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "market": (("SSIM", "ssim"), ("IS", "is"), ("mask-SSIM", "mask_ssim"), ("mask-IS", "mask_is"),
               ("pSSIM", "pssim"), ("FID", "fid"), ("LPIPS", "lpips"), ("PCKh", "pckh")),
    "deepfashion": (("SSIM", "ssim"), ("IS", "is"), ("FID", "fid"), ("LPIPS", "lpips"),
                    ("PCKh", "pckh")),
}
# row key -> label; "method" is replaced by the method's name when one is given
ROW_LABELS: dict[str, str] = {"method": "Generated", "copy_source": "Copy source (baseline)",
                              "real": "Real data"}
RANDOM_MARK = "†"

Cell = Union[MetricResult, str]  # a result, or why there is none


def default_metrics(dataset: str) -> list[str]:
    """The registry names of a dataset's columns."""
    if dataset not in DATASET_COLUMNS:
        raise ValueError(f"dataset must be one of {sorted(DATASET_COLUMNS)}, got {dataset!r}")
    return [name for _, name in DATASET_COLUMNS[dataset]]


def format_table(results: Mapping[str, Mapping[str, Cell]], dataset: Optional[str] = None, *,
                 method_name: Optional[str] = None, digits: int = 3,
                 rows: Optional[Sequence[str]] = None) -> str:
    """A markdown table of ``results[row][metric]``.

    Args:
        results: row key (``"method"``, ``"copy_source"``, ``"real"`` or any label) -> metric
            name -> :class:`MetricResult`, or a string saying why it is missing.
        dataset: ``"market"`` or ``"deepfashion"`` orders the columns as the papers do and
            names them as they do; metrics outside the dataset's set follow in the order first
            seen. ``None``: all metrics in the order first seen.
        method_name: label of the ``"method"`` row.
        digits: decimals shown.
        rows: row order (default: the order of ``results``).
    """
    seen: list[str] = []
    for row in results.values():
        for name in row:
            if name not in seen:
                seen.append(name)
    header_of = {}
    order: list[str] = []
    if dataset is not None:
        default_metrics(dataset)  # validates the name
        for header, name in DATASET_COLUMNS[dataset]:
            if name in seen:
                header_of[name] = header
                order.append(name)
    order += [n for n in seen if n not in order]
    # one footnote per distinct reason, naming every metric it applies to (IS, mask-IS and FID
    # miss the same weight file)
    notes: dict[str, list[str]] = {}
    random_used = False

    def note(name: str, reason: str) -> str:
        names = notes.setdefault(reason, [])
        if name not in names:
            names.append(name)
        return f"[{list(notes).index(reason) + 1}]"

    def arrow(name: str) -> str:
        info = METRICS.get(name)
        return "" if info is None else (" ↑" if info.higher_is_better else " ↓")

    lines = ["| | " + " | ".join(header_of.get(n, n) + arrow(n) for n in order) + " |",
             "|---|" + "---:|" * len(order)]
    for key in (rows or list(results)):
        row = results.get(key, {})
        label = method_name if (key == "method" and method_name) else ROW_LABELS.get(key, key)
        cells = []
        for name in order:
            cell = row.get(name)
            if cell is None:
                cells.append("–")
            elif isinstance(cell, str):
                cells.append("n/a " + note(name, cell))
            else:
                text = f"{cell.value:.{digits}f}"
                if cell.random_weights:
                    random_used = True
                    text += RANDOM_MARK
                cells.append(text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if random_used:
        lines.append("")
        lines.append(f"{RANDOM_MARK} computed with RANDOMLY INITIALISED networks (testing only; "
                     f"the value means nothing)")
    if notes:
        lines.append("")
        lines += [f"[{i + 1}] {', '.join(names)}: {reason}"
                  for i, (reason, names) in enumerate(notes.items())]
    return "\n".join(lines)
