"""Reading and writing PATN's keypoint annotation CSVs, with validation.

Format (PATN ``pd.read_csv(sep=':')``): a header ``name:keypoints_y:keypoints_x`` then one row per
image, e.g. ``0002_c1s1_000451_03.jpg:[14, 28, ..., -1]:[31, 30, ..., 25]``, each keypoint column a
JSON list of 18 numbers in the OpenPose-18 order, -1 = missing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

import torch
from torch import Tensor

from fastpose.data.errors import DataError, ProblemLog
from fastpose.pose.openpose import MISSING, NUM_KEYPOINTS

ANNOTATION_COLUMNS = ("name", "keypoints_y", "keypoints_x")
SEPARATOR = ":"

PathLike = Union[str, Path]


def parse_coordinates(text: str, column: str) -> list[float]:
    """Parse one keypoint column: a JSON list of 18 numbers. Raises ValueError with the reason."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{column} is not a JSON list ({e.msg}): {text[:60]!r}") from None
    if not isinstance(values, list):
        raise ValueError(f"{column} must be a JSON list, got {text[:60]!r}")
    if len(values) != NUM_KEYPOINTS:
        raise ValueError(f"{column} has {len(values)} values, expected {NUM_KEYPOINTS}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{column} holds a non-number {v!r}")
    return [float(v) for v in values]


def check_keypoints(kp: Tensor, image_size: Optional[tuple[int, int]]) -> Tensor:
    """Normalise and check ``[18, 2]`` keypoints; raises ValueError naming the joint.

    A joint with either coordinate -1 is missing (PATN's test) and becomes (-1, -1). Other
    negative values, and with ``image_size`` (H, W) coordinates beyond ``H - 1`` / ``W - 1``, are
    errors.
    """
    missing = (kp == MISSING).any(-1, keepdim=True)
    kp = torch.where(missing, torch.full_like(kp, MISSING), kp)
    for j in range(NUM_KEYPOINTS):
        if missing[j]:
            continue
        y, x = float(kp[j, 0]), float(kp[j, 1])
        if y < 0 or x < 0:
            raise ValueError(f"joint {j} has a negative coordinate (y={y:g}, x={x:g}); "
                             f"only {MISSING} marks a missing joint")
        if image_size is not None and (y > image_size[0] - 1 or x > image_size[1] - 1):
            raise ValueError(f"joint {j} at (y={y:g}, x={x:g}) is outside the "
                             f"{image_size[0]}x{image_size[1]} image")
    return kp


def read_annotations(path: PathLike, *, image_size: Optional[tuple[int, int]] = None,
                     on_error: str = "raise", problems: Optional[ProblemLog] = None
                     ) -> dict[str, Tensor]:
    """Read an annotation CSV into ``{image name: keypoints [18, 2] float32 (y, x)}``.

    Args:
        path: the ``*-annotation-{train,test}.csv`` file.
        image_size: (H, W) of the images, to reject out-of-range keypoints; None skips that check.
        on_error: "raise" (first bad row raises :class:`DataError` naming file and line) or
            "skip" (bad rows are left out and recorded in ``problems``).
        problems: where skipped rows are recorded (a fresh log when None).
    Raises:
        DataError: a missing file or wrong header (always), or a bad row in raise mode.
    """
    path = Path(path)
    log = problems if problems is not None else ProblemLog(on_error)
    if not path.is_file():
        raise DataError("annotation file not found", path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read annotation file: {e}", path) from None
    if not lines:
        raise DataError("annotation file is empty (expected a header "
                        f"{SEPARATOR.join(ANNOTATION_COLUMNS)!r})", path)
    header = tuple(c.strip() for c in lines[0].split(SEPARATOR))
    if header != ANNOTATION_COLUMNS:
        raise DataError(f"wrong columns {list(header)}; expected {list(ANNOTATION_COLUMNS)} "
                        f"separated by {SEPARATOR!r}", path, 1)
    out: dict[str, Tensor] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(SEPARATOR)
        if len(fields) != len(ANNOTATION_COLUMNS):
            log.report(f"expected {len(ANNOTATION_COLUMNS)} {SEPARATOR!r}-separated fields, "
                       f"got {len(fields)}", path, number)
            continue
        name = fields[0].strip()
        if not name:
            log.report("empty image name", path, number)
            continue
        if name in out:
            log.report(f"image {name!r} is annotated twice", path, number)
            continue
        try:
            ys = parse_coordinates(fields[1], "keypoints_y")
            xs = parse_coordinates(fields[2], "keypoints_x")
            kp = check_keypoints(torch.tensor([ys, xs], dtype=torch.float32).t().contiguous(),
                                 image_size)
        except ValueError as e:
            log.report(f"image {name!r}: {e}", path, number)
            continue
        out[name] = kp
    return out


def _format_list(values: Iterable[float]) -> str:
    # Integers print without a decimal point, as in PATN's files.
    return json.dumps([int(v) if float(v).is_integer() else float(v) for v in values])


def format_annotation_row(name: str, keypoints: Tensor) -> str:
    """One CSV row for ``keypoints [18, 2]`` (y, x)."""
    kp = torch.as_tensor(keypoints, dtype=torch.float64)
    if kp.shape != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints of {name!r} must be [{NUM_KEYPOINTS}, 2], got {list(kp.shape)}")
    if SEPARATOR in name or "\n" in name:
        raise ValueError(f"image name {name!r} contains {SEPARATOR!r} or a newline")
    return SEPARATOR.join([name, _format_list(kp[:, 0].tolist()), _format_list(kp[:, 1].tolist())])


def write_annotations(path: PathLike, annotations: Mapping[str, Tensor]) -> None:
    """Write ``{name: keypoints [18, 2]}`` as a PATN annotation CSV (header included)."""
    rows = [SEPARATOR.join(ANNOTATION_COLUMNS)]
    rows += [format_annotation_row(name, kp) for name, kp in annotations.items()]
    Path(path).write_text("\n".join(rows) + "\n", encoding="utf-8")
