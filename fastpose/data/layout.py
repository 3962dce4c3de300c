"""Where files live in a PATN-format dataset folder (written by PATN's preparation scripts and by
:mod:`fastpose.data.synthetic`, read by the pair dataset).

    <root>/train/<name>                         images (Market 128x64, DeepFashion 256x176)
    <root>/test/<name>
    <root>/<prefix>-annotation-{train,test}.csv  ':'-separated: name:keypoints_y:keypoints_x
                                                 (JSON lists of 18 ints, -1 = missing)
    <root>/<prefix>-pairs-{train,test}.csv       ','-separated: from,to
    <root>/parsing/{train,test}/<stem>.png       optional 20-label CIHP parsing maps (SPGNet)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "test")

# CSV prefixes as the published preparation scripts name them (DeepFashion's typo included).
PRESET_PREFIX = {"market": "market", "deepfashion": "fasion-resize"}
# Image size (H, W) of each preset.
PRESET_SIZE = {"market": (128, 64), "deepfashion": (256, 176)}


@dataclass(frozen=True)
class Layout:
    root: Path  # the dataset folder
    prefix: str  # CSV name prefix, e.g. "market" or "fasion-resize"

    @classmethod
    def for_preset(cls, root: str | Path, preset: str) -> "Layout":
        if preset not in PRESET_PREFIX:
            raise ValueError(f"unknown dataset preset {preset!r}; expected one of "
                             f"{sorted(PRESET_PREFIX)}")
        return cls(Path(root), PRESET_PREFIX[preset])

    def _split(self, split: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return split

    def images(self, split: str) -> Path:
        return self.root / self._split(split)

    def annotations(self, split: str) -> Path:
        return self.root / f"{self.prefix}-annotation-{self._split(split)}.csv"

    def pairs(self, split: str) -> Path:
        return self.root / f"{self.prefix}-pairs-{self._split(split)}.csv"

    def parsing(self, split: str, image_name: str) -> Path:
        return self.root / "parsing" / self._split(split) / (Path(image_name).stem + ".png")
