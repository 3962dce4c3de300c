"""Datasets of a run: ``--data synthetic | market:DIR | deepfashion:DIR`` -> train/test
:class:`fastpose.data.PairDataset` with the pose encodings the model needs (optionally resized,
with flips for training), and the loop's resumable sampler.

The training set yields raw samples (uint8 images, keypoints, no encodings: little to move from
the DataLoader workers); :attr:`DataBundle.train_transform` (the dataset's
:class:`fastpose.data.BatchEncoder`) turns each collated batch into the model's batch on the
training device. The test set yields finished samples (sample grids, evaluation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from fastpose.data.errors import DataError
from fastpose.data.layout import PRESET_PREFIX, Layout


@dataclass
class DataBundle:
    """The datasets of a run."""
    train: Dataset  # training pairs (sample dicts, see fastpose.models.base)
    test: Dataset  # held-out pairs: sample grids and final metrics
    image_size: tuple[int, int]  # (H, W) of the images the model sees
    kind: str  # synthetic | market | deepfashion
    # Applied by the loop to each collated training batch after moving it to the device: raw
    # batch -> model batch (fastpose.data.BatchEncoder). None: the samples are finished already.
    train_transform: Optional[Callable[[dict], dict]] = None


def check_dataset_folder(root: str | Path, kind: str) -> Layout:
    """Verify that ``root`` has the PATN layout of ``kind``; the error lists every missing path."""
    layout = Layout.for_preset(root, kind)
    if not Path(root).is_dir():
        raise DataError(f"{kind} data folder {root} does not exist (see the README section "
                        f"'Training on Market-1501 / DeepFashion' for the files to prepare)")
    missing = [str(p) for split in ("train", "test")
               for p in (layout.images(split), layout.annotations(split), layout.pairs(split))
               if not p.exists()]
    if missing:
        raise DataError(f"{kind} data folder {root} is incomplete; missing:\n  " + "\n  ".join(missing)
                        + f"\n(expected PATN's layout with CSV prefix {PRESET_PREFIX[kind]!r}; "
                          f"see the README)")
    return layout


# --- builders per data kind ---------------------------------------------------------------------

Builder = Callable[[str, Optional[str], Sequence[str], dict], tuple[Dataset, Dataset]]
DATA_BUILDERS: dict[str, Builder] = {}


def register_data(kind: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        DATA_BUILDERS[kind] = fn
        return fn
    return deco


def _pair_datasets(root: str | Path, preset: str, encodings: Sequence[str], opts: dict) -> tuple[Dataset, Dataset]:
    from fastpose.data import PairDataset
    size = opts.get("image_size")
    size = tuple(size) if size and all(size) else None
    common = dict(preset=preset, encodings=tuple(encodings), image_size=size)
    # Training batches are encoded after the loader (DataBundle.train_transform), test samples here.
    train = PairDataset(root, split="train", raw=True, flip_prob=opts.get("flip_prob", 0.0), **common)
    return train, PairDataset(root, split="test", **common)


@register_data("synthetic")
def _synthetic(kind, root, encodings, opts):
    from fastpose.data.synthetic import ensure_synthetic
    preset = opts.get("synthetic_preset", "market")
    sizes = {k: v for k, v in (("train_ids", opts.get("synthetic_train_ids", 0)),
                               ("test_ids", opts.get("synthetic_test_ids", 0))) if v}
    folder = ensure_synthetic(preset=preset, progress=opts.get("progress", True), **sizes)
    return _pair_datasets(folder, preset, encodings, opts)


@register_data("market")
@register_data("deepfashion")
def _real(kind, root, encodings, opts):
    check_dataset_folder(root, kind)
    return _pair_datasets(root, kind, encodings, opts)


def build_data(kind: str, root: Optional[str], encodings: Sequence[str], image_size=(0, 0),
               **opts) -> DataBundle:
    """The train/test datasets of ``kind`` with ``encodings``, at ``image_size`` when set.

    ``opts``: ``flip_prob`` (training pairs), ``synthetic_preset``, ``synthetic_train_ids``,
    ``synthetic_test_ids``, ``progress``.
    """
    if kind not in DATA_BUILDERS:
        raise DataError(f"unknown data kind {kind!r}; expected one of {sorted(DATA_BUILDERS)}")
    train, test = DATA_BUILDERS[kind](kind, root, encodings, {**opts, "image_size": image_size})
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"{kind} data has {len(train)} training and {len(test)} test pairs")
    size = tuple(train[0]["source_image"].shape[-2:])
    transform = train.batch_encoder if getattr(train, "raw", False) else None
    return DataBundle(train, test, size, kind, transform)


class ResumableSampler(DistributedSampler):
    """DistributedSampler (also for one process) whose position inside an epoch can be restored:
    the permutation of epoch e is a function of (seed, e) only, and ``set_position(e, k)`` skips
    the first k batches of this rank's share, so a resumed run sees the same batches."""

    def __init__(self, dataset: Dataset, batch_size: int, rank: int, world_size: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                         drop_last=True)
        self.batch_size = batch_size
        self.offset = 0  # batches of the current epoch already consumed

    @property
    def batches_per_epoch(self) -> int:
        return self.num_samples // self.batch_size

    def set_position(self, epoch: int, offset: int) -> None:
        self.set_epoch(epoch)
        self.offset = offset

    def __iter__(self) -> Iterator[int]:
        idx = list(super().__iter__())
        n = self.batches_per_epoch * self.batch_size
        return iter(idx[self.offset * self.batch_size: n])

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.offset) * self.batch_size


def collate(samples: list[dict]) -> dict:
    """Stack tensors; keep other values (names) as lists."""
    out = {}
    for k in samples[0]:
        vals = [s[k] for s in samples]
        out[k] = torch.stack(vals) if isinstance(vals[0], Tensor) else vals
    return out


def spread_indices(total: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``range(total)`` (all of them when ``n`` is 0 or larger):
    pairs files list each person's pairs together, so the first n pairs would show few people."""
    if n <= 0 or n >= total:
        return list(range(total))
    return [round(i * (total - 1) / max(n - 1, 1)) for i in range(n)]


def sample_pairs(ds: Dataset, n: int) -> dict:
    """A batch of ``n`` fixed test pairs spread over the test set (the sample-grid pairs)."""
    return collate([ds[i] for i in spread_indices(len(ds), n)])
