"""Raw batches -> model batches: the half of data loading that runs after the DataLoader.

A *raw* sample (``PairDataset(..., raw=True)``) carries what was read from disk, already resized
and flipped: ``<side>_image`` uint8 ``[3, H, W]``, ``<side>_keypoints`` float32 ``[18, 2]``,
``<side>_parsing`` uint8 ``[H, W]`` (when requested), names and the index. It is about 66 KB
instead of the ~3.6 MB of a fully encoded Market sample, so little crosses the worker -> main
process boundary. :class:`BatchEncoder` then turns a collated raw batch into the batch a model
receives (:mod:`fastpose.models.base`), on whatever device the batch is on (the trainer's GPU,
or the main process's CPU threads):

- ``<side>_image``: float32 ``[N, 3, H, W]`` in [-1, 1] (``x / 127.5 - 1``, PATN's normalisation),
- ``<side>_parsing``: int64 ``[N, H, W]``,
- ``<side>_<encoding>``: float32 ``[N, C, H, W]`` computed from ``<side>_keypoints`` by the batched
  :mod:`fastpose.pose` encodings, each side separately (contiguous outputs),
- everything else passed through unchanged.

The dataset's non-raw samples are made by the same code (load raw, stack, encode, split), so the
two paths give identical values.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
from torch import Tensor

from fastpose.data.images import images_to_float
from fastpose.data.memory import retain_freed_memory
from fastpose.pose.encodings import get_encoding

SIDES = ("source", "target")
# Encodings that start from another one of the same side when it is computed with the same
# parameters: name -> (the other encoding, the keyword that takes it).
REUSES = {"pose_mask_potgan": ("pose_mask_pg2", "pg2_mask")}


def stack_samples(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Collate sample dicts: tensors stacked along a new dim 0, other values kept as lists."""
    if not samples:
        raise ValueError("cannot stack an empty list of samples")
    return {k: torch.stack([s[k] for s in samples]) if isinstance(samples[0][k], Tensor)
            else [s[k] for s in samples] for k in samples[0]}


def unstack_batch(batch: Mapping[str, Any], n: int) -> list[dict[str, Any]]:
    """Split a collated batch back into ``n`` sample dicts (tensors as views along dim 0)."""
    return [{k: v[i] for k, v in batch.items()} for i in range(n)]


class BatchEncoder:
    """Turn a collated raw batch into a model batch (see the module docstring).

    Args:
        size: (H, W) of the batch's images; the encodings are drawn at that size.
        encodings: ``{name: sides}`` of the keypoint encodings to compute, e.g.
            ``{"heatmaps": ("source", "target"), "pose_mask_pg2": ("target",)}``
            (what :func:`fastpose.data.parse_encodings` returns, file encodings left out).
        params: keyword arguments per encoding name, e.g. ``{"heatmaps": {"sigma": 4}}``.
        retain_memory: on the first CPU batch, call :func:`fastpose.data.memory.retain_freed_memory`
            (process-wide glibc setting) so that each batch reuses the memory of the previous
            one instead of page-faulting ~100 MB in afresh; that halves the CPU cost here.

    On CPU the encodings use torch's intra-op threads; on a small machine shared with the
    DataLoader workers, one thread in the consuming process (``torch.set_num_threads(1)``) is
    usually fastest. Calling it on a batch that is not raw (float images) raises a TypeError,
    so a batch cannot be encoded twice by mistake. Picklable, so it can travel with a dataset
    to other processes. ``pose_mask_potgan`` starts from the side's ``pose_mask_pg2`` when both
    are requested with equal parameters (:data:`REUSES`).
    """

    def __init__(self, size: tuple[int, int], encodings: Mapping[str, Sequence[str]],
                 params: Optional[Mapping[str, Mapping[str, Any]]] = None, *,
                 retain_memory: bool = True) -> None:
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"size must be (H, W) with positive ints, got {size!r}")
        self.size: tuple[int, int] = (int(size[0]), int(size[1]))
        self.encodings: dict[str, tuple[str, ...]] = {}
        for name, sides in encodings.items():
            get_encoding(name)  # raises on unknown names, listing the known ones
            bad = [s for s in sides if s not in SIDES]
            if bad:
                raise ValueError(f"encoding {name!r}: sides must be among {SIDES}, got {bad}")
            self.encodings[name] = tuple(sides)
        self.params: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (params or {}).items()}
        stray = set(self.params) - set(self.encodings)
        if stray:
            raise ValueError(f"params given for encodings not requested: {sorted(stray)}")
        self.retain_memory = bool(retain_memory)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Raw batch (``<side>_image`` uint8 ``[N, 3, H, W]``, ``<side>_keypoints`` ``[N, 18, 2]``,
        optional ``<side>_parsing`` uint8 ``[N, H, W]``) -> model batch, on the batch's device."""
        out = dict(batch)
        for side in SIDES:
            key = f"{side}_image"
            if key not in out:
                raise KeyError(f"batch has no {key!r}; keys: {sorted(out)}")
            image = out[key]
            if image.dim() != 4 or image.shape[1] != 3 or tuple(image.shape[-2:]) != self.size:
                raise ValueError(f"{key} must be [N, 3, {self.size[0]}, {self.size[1]}], "
                                 f"got {list(image.shape)}")
            if self.retain_memory and image.device.type == "cpu":
                retain_freed_memory()
            out[key] = images_to_float(image)
            if f"{side}_parsing" in out:
                out[f"{side}_parsing"] = out[f"{side}_parsing"].long()
        # Encodings that reuse another come after it.
        for name in sorted(self.encodings, key=lambda n: n in REUSES):
            fn, kwargs = get_encoding(name), self.params.get(name, {})
            base, keyword = REUSES.get(name, (None, None))
            for side in self.encodings[name]:
                if f"{side}_keypoints" not in out:
                    raise KeyError(f"batch has no {side + '_keypoints'!r} for {name!r}; "
                                   f"keys: {sorted(out)}")
                extra = {}
                if side in self.encodings.get(base, ()) and self.params.get(base, {}) == kwargs:
                    extra[keyword] = out[f"{side}_{base}"]
                out[f"{side}_{name}"] = fn(out[f"{side}_keypoints"], self.size, **kwargs, **extra)
        return out

    def __repr__(self) -> str:
        return f"BatchEncoder(size={self.size}, encodings={self.encodings}, params={self.params})"
