"""Scalar logging of a run: ``log.csv`` always, TensorBoard when installed. Rank 0 only."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional


class RunLogger:
    """Append rows of scalars to ``<run>/log.csv`` (columns grow as new names appear; the file is
    rewritten with the wider header) and to TensorBoard (``<run>/tb``) when it is installed."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / "log.csv"
        self.columns: list[str] = []
        self.tb = None
        if not enabled:
            return
        if self.path.exists():  # resuming: keep the rows written so far
            with self.path.open(newline="") as f:
                self.columns = next(csv.reader(f), [])
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(Path(run_dir) / "tb"))
            except Exception:  # tensorboard is optional (ImportError, or a broken install)
                self.tb = None

    def log(self, step: int, values: dict[str, float], stage: Optional[str] = None) -> None:
        if not self.enabled:
            return
        row = {"step": step, **({"stage": stage} if stage else {}), **values}
        new = [k for k in row if k not in self.columns]
        if new:
            self._widen(self.columns + new)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerow(row)
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a resumed run re-logs them)."""
        if not self.enabled or not self.path.exists():
            return
        with self.path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        self._rewrite(self.columns, rows)

    def _widen(self, columns: list[str]) -> None:
        rows = []
        if self.path.exists():
            with self.path.open(newline="") as f:
                rows = list(csv.DictReader(f))
        self._rewrite(columns, rows)

    def _rewrite(self, columns: list[str], rows: list[dict]) -> None:
        self.columns = columns
        with self.path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
