"""Pairs CSVs (``from,to``): reading with validation, and building them as PATN's script does.

``python -m fastpose.data.pairs ANNOTATION_CSV PAIRS_CSV [--max-pairs N] [--seed S]`` writes the
pairs of one split (PATN samples 12,000 test pairs: ``--max-pairs 12000``).
"""

from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path
from typing import Callable, Collection, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor

from fastpose.data.annotations import read_annotations
from fastpose.data.errors import DataError, ProblemLog
from fastpose.pose.openpose import MISSING, PAIR_REQUIRED_JOINTS

PAIR_COLUMNS = ("from", "to")
PathLike = Union[str, Path]
Pair = tuple[str, str]


def read_pair_rows(path: PathLike, *, known: Optional[Collection[str]] = None,
                   known_source: str = "the annotations", on_error: str = "raise",
                   problems: Optional[ProblemLog] = None) -> list[tuple[int, str, str]]:
    """Read a pairs CSV into ``[(line, from, to), ...]`` (line is 1-based; the header is line 1).

    The header must be ``from,to``; a leading unnamed index column (``,from,to``, what pandas
    writes by default) is accepted and ignored.

    Args:
        path: the ``*-pairs-{train,test}.csv`` file.
        known: image names a pair may use (the annotated images); None accepts any name.
        known_source: how to name ``known`` in error messages (e.g. the annotation file).
        on_error: "raise" or "skip" (see :mod:`fastpose.data.errors`).
        problems: where skipped rows are recorded.
    Raises:
        DataError: a missing file or wrong header (always), or a bad row in raise mode.
    """
    path = Path(path)
    log = problems if problems is not None else ProblemLog(on_error)
    if not path.is_file():
        raise DataError("pairs file not found", path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read pairs file: {e}", path) from None
    if not rows:
        raise DataError("pairs file is empty (expected a header 'from,to')", path)
    header = [c.strip() for c in rows[0]]
    skip_index = len(header) == 3 and header[0] == ""
    if header[skip_index:] != list(PAIR_COLUMNS):
        raise DataError(f"wrong columns {header}; expected {list(PAIR_COLUMNS)}", path, 1)
    out: list[tuple[int, str, str]] = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            log.report(f"expected {len(header)} comma-separated fields, got {len(row)}", path, number)
            continue
        src, tgt = (c.strip() for c in row[skip_index:])
        bad = [f"{column} image {name!r} is not in {known_source}"
               for column, name in zip(PAIR_COLUMNS, (src, tgt))
               if not name or (known is not None and name not in known)]
        if bad:
            log.report("; ".join(bad), path, number)
            continue
        out.append((number, src, tgt))
    return out


def read_pairs(path: PathLike, **kwargs) -> list[Pair]:
    """Read a pairs CSV into ``[(from, to), ...]``; keyword arguments as :func:`read_pair_rows`."""
    return [(src, tgt) for _, src, tgt in read_pair_rows(path, **kwargs)]


def write_pairs(path: PathLike, pairs: Sequence[Pair], *, overwrite: bool = False) -> None:
    """Write ``[(from, to), ...]`` as a pairs CSV with the header ``from,to``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(PAIR_COLUMNS)
        writer.writerows(pairs)


def person_of(name: str) -> str:
    """Identity of an image: the file name up to the first '_' (Market ``0002_c1s1_...`` ->
    ``0002``; DeepFashion ``fashionMENShortsid0000341201_6flat.jpg`` -> the item id)."""
    return name.split("_")[0]


def is_distractor(name: str) -> bool:
    """Market-1501's junk (``-1_*``) and distractor (``0000_*``) images, never paired."""
    return name.startswith("-1") or name.startswith("0000")


def pose_is_pairable(keypoints: Tensor) -> bool:
    """Both shoulders and both hips are annotated (PATN ``pose_check_valid``)."""
    kp = keypoints[list(PAIR_REQUIRED_JOINTS)]
    return bool((kp != MISSING).all())


def build_pairs(annotations: Mapping[str, Tensor], *, max_pairs: Optional[int] = None,
                seed: int = 0, person: Callable[[str], str] = person_of) -> list[Pair]:
    """All ordered pairs of distinct images of the same person (PATN ``create_pairs_dataset.py``).

    Images whose pose lacks a shoulder or a hip, and Market distractors, are left out. Persons come
    in order of first appearance and each person's pairs in ``itertools.permutations`` order, as in
    PATN. With ``max_pairs``, a random subset of that size is drawn with ``torch.Generator(seed)``
    (PATN draws its 12,000 test pairs with pandas ``sample(random_state=0)``, which this does not
    reproduce row for row).
    """
    groups: dict[str, list[str]] = {}
    for name, kp in annotations.items():
        if not is_distractor(name) and pose_is_pairable(kp):
            groups.setdefault(person(name), []).append(name)
    pairs = [p for names in groups.values() for p in itertools.permutations(names, 2)]
    if max_pairs is not None:
        if max_pairs < 0:
            raise ValueError(f"max_pairs must be >= 0, got {max_pairs}")
        if max_pairs < len(pairs):
            gen = torch.Generator().manual_seed(seed)
            pick = torch.randperm(len(pairs), generator=gen)[:max_pairs].tolist()
            pairs = [pairs[i] for i in pick]
    return pairs


def make_pairs_csv(annotation_csv: PathLike, pairs_csv: PathLike, *, max_pairs: Optional[int] = None,
                   seed: int = 0, overwrite: bool = False) -> int:
    """Build the pairs of an annotation CSV and write them; returns the number of pairs."""
    pairs = build_pairs(read_annotations(annotation_csv), max_pairs=max_pairs, seed=seed)
    write_pairs(pairs_csv, pairs, overwrite=overwrite)
    return len(pairs)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fastpose.data.pairs",
                                     description="Build a PATN pairs CSV from an annotation CSV.")
    parser.add_argument("annotations", help="the *-annotation-<split>.csv file")
    parser.add_argument("pairs", help="the pairs CSV to write")
    parser.add_argument("--max-pairs", type=int, default=None,
                        help="draw this many pairs at random (PATN test split: 12000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of that draw")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing pairs file")
    args = parser.parse_args(argv)
    n = make_pairs_csv(args.annotations, args.pairs, max_pairs=args.max_pairs, seed=args.seed,
                       overwrite=args.overwrite)
    print(f"wrote {n} pairs to {args.pairs}")


if __name__ == "__main__":
    main()
