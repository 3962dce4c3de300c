"""Bad-data reporting shared by the annotation, pairs and image readers.

A problem names the file and, for CSVs, the 1-based line. In ``on_error="raise"`` mode the first
problem raises :class:`DataError`; in ``"skip"`` mode problems are recorded, counted and logged
once as a summary, and the offending row or sample is left out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

logger = logging.getLogger("fastpose.data")

ON_ERROR = ("raise", "skip")


class DataError(ValueError):
    """A bad dataset file or row; ``path`` and ``line`` (1-based, None for whole files) say where."""

    def __init__(self, message: str, path: Union[str, Path, None] = None, line: Optional[int] = None):
        self.message, self.path, self.line = message, path, line
        where = "" if path is None else f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


@dataclass(frozen=True)
class Problem:
    path: str  # the file at fault
    line: Optional[int]  # 1-based line in a CSV (the header is line 1); None for a whole file
    message: str  # what is wrong

    def __str__(self) -> str:
        return str(DataError(self.message, self.path, self.line))


@dataclass
class ProblemLog:
    on_error: str = "raise"  # "raise": first problem raises DataError; "skip": record and go on
    problems: list[Problem] = field(default_factory=list)  # recorded problems (skip mode)

    def __post_init__(self) -> None:
        check_on_error(self.on_error)

    @property
    def count(self) -> int:
        return len(self.problems)

    def report(self, message: str, path: Union[str, Path, None] = None,
               line: Optional[int] = None) -> None:
        """Raise in raise mode; otherwise record the problem."""
        if self.on_error == "raise":
            raise DataError(message, path, line)
        self.problems.append(Problem(str(path), line, message))

    def log_summary(self, what: str) -> None:
        """Log one warning with the count and the first few problems (skip mode)."""
        if not self.problems:
            return
        shown = "\n  ".join(str(p) for p in self.problems[:5])
        more = f"\n  ... and {self.count - 5} more" if self.count > 5 else ""
        logger.warning("%s: skipped %d bad entr%s:\n  %s%s", what, self.count,
                       "y" if self.count == 1 else "ies", shown, more)


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    return on_error
