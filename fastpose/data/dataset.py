"""The pair dataset over a PATN-format folder (Market-1501, DeepFashion, or the synthetic set)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from fastpose.data.annotations import read_annotations
from fastpose.data.encoder import BatchEncoder, stack_samples, unstack_batch
from fastpose.data.errors import DataError, ProblemLog, check_on_error
from fastpose.data.images import image_to_uint8, load_image, load_parsing, parsing_to_uint8
from fastpose.data.layout import PRESET_SIZE, Layout
from fastpose.data.pairs import read_pair_rows
from fastpose.pose.encodings import (ENCODING_CHANNELS, get_encoding, hflip, list_encodings,
                                     resize_keypoints)

logger = logging.getLogger("fastpose.data")

SIDES = ("source", "target")
# Encodings read from files rather than computed from keypoints.
FILE_ENCODINGS = {"parsing": 1}


def parse_encodings(encodings: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Turn ``("heatmaps", "target_pose_mask_pg2")`` into ``{name: sides}``.

    A bare name is wanted for both images; a ``source_`` / ``target_`` prefix restricts it to one.
    """
    if isinstance(encodings, str):
        raise TypeError(f"encodings must be a sequence of names, got the string {encodings!r}")
    wanted: dict[str, set[str]] = {}
    for item in encodings:
        side = next((s for s in SIDES if item.startswith(s + "_")), None)
        name = item[len(side) + 1:] if side else item
        if name not in FILE_ENCODINGS:
            get_encoding(name)  # raises on unknown names, listing the known ones
        wanted.setdefault(name, set()).update((side,) if side else SIDES)
    return {name: tuple(s for s in SIDES if s in sides) for name, sides in wanted.items()}


def available_encodings() -> list[str]:
    """Every name :class:`PairDataset` accepts in ``encodings`` (prefix-free)."""
    return sorted(list_encodings() + list(FILE_ENCODINGS))


class PairDataset(Dataset):
    """(source, target) image pairs of one person read from a PATN-format folder.

    The folder layout is :class:`fastpose.data.layout.Layout`: images in ``train/`` and ``test/``,
    the ``:``-separated annotation CSV, the ``from,to`` pairs CSV, and (for ``"parsing"``) CIHP
    label PNGs in ``parsing/<split>/<stem>.png``. Nothing is ever written into the folder.

    A sample is a dict::

        "index"                     int, the pair's position in the pairs file (after skips)
        "source_name", "target_name"  str, image file names
        "source_image", "target_image"  float32 [3, H, W] in [-1, 1]
        "source_keypoints", "target_keypoints"  float32 [18, 2] (y, x) pixels, -1 = missing
        "<side>_<encoding>"         float32 [C, H, W] per requested keypoint encoding
                                    (heatmaps 18, peaks 18, disks 18, pose_mask_pg2 1,
                                    pose_mask_potgan 1, distance_maps 12 channels)
        "<side>_parsing"            int64 [H, W], CIHP labels 0..19 (when "parsing" is requested)

    where ``<side>`` is ``source`` or ``target``. A model declares what it needs through
    ``encodings``: ``("heatmaps",)`` gives both ``source_heatmaps`` and ``target_heatmaps``;
    ``("target_pose_mask_pg2",)`` only the target's. Nothing else is computed.

    By default encodings are computed in the dataset, i.e. in the DataLoader workers, and
    ``dataset[i]`` is self-contained (any sampler, the default collate). With a batch sampler the
    DataLoader calls :meth:`__getitems__` with a batch's indices and each encoding is computed
    once for all poses of the batch; the result is identical to loading samples one by one.

    With ``raw=True`` a sample is the raw form of :mod:`fastpose.data.encoder` instead: images
    uint8 ``[3, H, W]``, parsing uint8 ``[H, W]``, keypoints, names, index, and no encodings
    (about 66 KB instead of ~3.6 MB per Market sample with every encoding, which is what makes
    the worker -> main process transfer cheap). :attr:`batch_encoder` turns a collated raw batch
    into exactly the batch the default mode gives, on the batch's device (the trainer applies it
    after moving the batch to its CPU or GPU). Both modes share that code.

    Bad data (missing or unreadable image or parsing file, wrong CSV columns, keypoint lists of
    the wrong length or out of the image, pairs naming unknown images) raises
    :class:`fastpose.data.errors.DataError` naming the file and line. With ``on_error="skip"``
    the bad rows and pairs are dropped, counted in :attr:`num_skipped`, listed in
    :attr:`problems` and logged once. Files are checked for existence at construction; their
    content is decoded at construction only with ``verify_images=True`` and otherwise when a
    sample is loaded, where a bad file in skip mode is replaced by the next good pair (counted
    in :attr:`num_skipped_at_load` of the process that loaded it, and logged).

    Args:
        root: the dataset folder.
        preset: "market" (128x64 images, ``market-*.csv``) or "deepfashion" (256x176,
            ``fasion-resize-*.csv``).
        split: "train" or "test".
        encodings: encodings to compute, see above and :func:`available_encodings`.
        encoding_params: keyword arguments per encoding name, e.g. ``{"heatmaps": {"sigma": 4}}``.
        image_size: (H, W) to resize images, keypoints and parsing to; None keeps the native size.
        flip_prob: probability of mirroring a pair (both images together; PATN uses 0).
        on_error: "raise" or "skip".
        verify_images: decode every used image (and parsing map) at construction.
        raw: return raw samples and leave the encoding to :attr:`batch_encoder` (see above).
    """

    def __init__(self, root: Union[str, Path], preset: str = "market", split: str = "train", *,
                 encodings: Sequence[str] = (), encoding_params: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 image_size: Optional[tuple[int, int]] = None, flip_prob: float = 0.0,
                 on_error: str = "raise", verify_images: bool = False, raw: bool = False):
        self.layout = Layout.for_preset(root, preset)
        self.split = split
        self.layout.images(split)  # validates the split name
        self.native_size: tuple[int, int] = PRESET_SIZE[preset]
        if image_size is not None and (len(image_size) != 2 or min(image_size) <= 0):
            raise ValueError(f"image_size must be (H, W) with positive ints, got {image_size!r}")
        self.size: tuple[int, int] = tuple(image_size) if image_size else self.native_size
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        self.flip_prob = float(flip_prob)
        self.on_error = check_on_error(on_error)
        self.encodings = parse_encodings(encodings)
        self.encoding_params = {k: dict(v) for k, v in (encoding_params or {}).items()}
        stray = set(self.encoding_params) - set(self.encodings)
        if stray:
            raise ValueError(f"encoding_params given for encodings not requested: {sorted(stray)}")
        self.parsing_sides: tuple[str, ...] = self.encodings.get("parsing", ())
        self.raw = bool(raw)
        # Raw batch -> model batch: the keypoint encodings, float images, int64 parsing.
        self.batch_encoder = BatchEncoder(
            self.size, {n: s for n, s in self.encodings.items() if n not in FILE_ENCODINGS},
            self.encoding_params)
        self.num_skipped_at_load = 0

        self._log = ProblemLog(on_error)
        annotations_path = self.layout.annotations(split)
        self.annotations: dict[str, Tensor] = read_annotations(
            annotations_path, image_size=self.native_size, problems=self._log)
        rows = read_pair_rows(self.layout.pairs(split), known=self.annotations,
                              known_source=str(annotations_path), problems=self._log)
        self.pairs: list[tuple[str, str]] = self._check_files(rows, verify_images)
        self._log.log_summary(f"PairDataset({self.layout.root}, {split})")

    # --- construction -------------------------------------------------------------------------

    def _file_problem(self, name: str, parsing: bool, verify: bool) -> Optional[DataError]:
        """The first problem with an image's files (and its parsing map when asked), or None."""
        paths = [("image", self.layout.images(self.split) / name, load_image)]
        if parsing:
            paths.append(("parsing map", self.layout.parsing(self.split, name), load_parsing))
        for what, path, loader in paths:
            if not path.is_file():
                return DataError(f"{what} file not found", path)
            if verify:
                try:
                    loader(path, self.native_size)
                except DataError as e:
                    return e
        return None

    def _check_files(self, rows: list[tuple[int, str, str]], verify: bool) -> list[tuple[str, str]]:
        pairs_path = self.layout.pairs(self.split)
        checked: dict[tuple[str, bool], Optional[DataError]] = {}
        pairs = []
        for line, src, tgt in rows:
            bad = []
            for side, column, name in zip(SIDES, ("from", "to"), (src, tgt)):
                key = (name, side in self.parsing_sides)
                if key not in checked:
                    checked[key] = self._file_problem(*key, verify)
                if checked[key] is not None:
                    bad.append(f"{column} image {name!r}: {checked[key]}")
            if bad:
                self._log.report("; ".join(bad), pairs_path, line)
                continue
            pairs.append((src, tgt))
        return pairs

    # --- reporting ----------------------------------------------------------------------------

    @property
    def problems(self) -> list:
        """Problems skipped at construction (skip mode), each naming file and line."""
        return list(self._log.problems)

    @property
    def num_skipped(self) -> int:
        """Number of annotation rows and pairs left out at construction (skip mode)."""
        return self._log.count

    def channels(self) -> dict[str, int]:
        """Channels of each requested encoding, e.g. ``{"heatmaps": 18, "parsing": 1}``."""
        return {n: FILE_ENCODINGS.get(n) or ENCODING_CHANNELS[n] for n in self.encodings}

    # --- loading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Load several pairs, then (unless ``raw``) encode them in one batched call per encoding.

        DataLoader calls this with a whole batch's indices: batching amortises the per-op cost of
        the encodings, which dominates for single 128x64 poses. Same result as one by one.
        """
        samples = [self._load_readable(self._check_index(i)) for i in indices]
        if self.raw or not samples:
            return samples
        return unstack_batch(self.batch_encoder(stack_samples(samples)), len(samples))

    def _check_index(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"pair index {index} out of range for {len(self)} pairs")
        return index % len(self)

    def _load_readable(self, index: int) -> dict[str, Any]:
        """Load pair ``index``; in skip mode a bad pair is replaced by the next readable one."""
        for attempt in range(len(self)):
            i = (index + attempt) % len(self)
            try:
                return self._load(i)
            except DataError as e:
                if self.on_error == "raise":
                    raise
                self.num_skipped_at_load += 1
                logger.warning("skipping pair %d (%s -> %s): %s", i, *self.pairs[i], e)
        raise DataError(f"no readable pair among the {len(self)} pairs", self.layout.root)

    def _load_side(self, side: str, name: str) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        folder = self.layout.images(self.split)
        image = load_image(folder / name, self.native_size)
        keypoints = self.annotations[name]
        parsing = None
        if side in self.parsing_sides:
            parsing_path = self.layout.parsing(self.split, name)
            parsing = load_parsing(parsing_path, self.native_size)
        if self.size != self.native_size:
            h, w = self.size
            image = image.resize((w, h), Image.BILINEAR)
            keypoints = resize_keypoints(keypoints, self.native_size, self.size)
            parsing = None if parsing is None else parsing.resize((w, h), Image.NEAREST)
        parsing_t = None if parsing is None else parsing_to_uint8(parsing, parsing_path)
        return image_to_uint8(image), keypoints.clone(), parsing_t

    def _load(self, index: int) -> dict[str, Any]:
        names = self.pairs[index]
        sample: dict[str, Any] = {"index": index}
        loaded = [self._load_side(side, name) for side, name in zip(SIDES, names)]
        flip = self.flip_prob > 0 and float(torch.rand(())) < self.flip_prob
        for side, name, (image, keypoints, parsing) in zip(SIDES, names, loaded):
            if flip:
                image, keypoints, parsing = hflip(image, keypoints, parsing)
            sample[f"{side}_name"] = name
            sample[f"{side}_image"] = image
            sample[f"{side}_keypoints"] = keypoints
            if parsing is not None:
                sample[f"{side}_parsing"] = parsing
        return sample

    def __repr__(self) -> str:
        return (f"PairDataset(root={str(self.layout.root)!r}, split={self.split!r}, "
                f"pairs={len(self)}, size={self.size}, encodings={list(self.encodings)}, raw={self.raw})")
