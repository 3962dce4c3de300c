"""Preparing DeepFashion In-shop images the way PATN's ``tool/generate_fashion_datasets.py`` does.

The 256x256 in-shop images are cropped to their central 176 columns (PIL box (40, 0, 216, 256))
and saved flat under ``train/`` or ``test/`` with names like
``fashionMENShortsid0000341201_6flat.jpg`` (from ``MEN/Shorts/id_00003412/01_6_flat.jpg``), split
by PATN's ``train.lst`` / ``test.lst``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from PIL import Image

from fastpose.data.errors import DataError
from fastpose.data.layout import PRESET_SIZE

PathLike = Union[str, Path]
CROP_WIDTH = PRESET_SIZE["deepfashion"][1]  # 176
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp"}


def crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """PIL box of the central ``CROP_WIDTH`` columns of a ``width`` x ``height`` image
    ((40, 0, 216, 256) for PATN's 256x256 images)."""
    if width < CROP_WIDTH:
        raise ValueError(f"image is {width} px wide, narrower than the {CROP_WIDTH} px crop")
    left = (width - CROP_WIDTH) // 2
    return left, 0, left + CROP_WIDTH, height


def crop_image(image: Image.Image) -> Image.Image:
    """Crop one DeepFashion image to its central 176 columns (256x256 -> 176 wide x 256 high)."""
    return image.crop(crop_box(*image.size))


def flat_name(relative_path: Union[str, Path]) -> str:
    """PATN's flat file name of an in-shop image given its path below the image root.

    ``MEN/Shorts/id_00003412/01_6_flat.jpg`` -> ``fashionMENShortsid0000341201_6flat.jpg``: the
    id folder loses its underscores and the file keeps only its first one.
    """
    parts = list(Path(relative_path).parts)
    if len(parts) != 4:
        raise ValueError(f"expected <gender>/<category>/<id>/<file>, got {relative_path!s}")
    gender, category, identity, file = parts
    head, *rest = file.split("_")
    file = head + "_" + "".join(rest) if rest else head
    return "fashion" + gender + category + identity.replace("_", "") + file


def _read_list(path: PathLike) -> set[str]:
    path = Path(path)
    if not path.is_file():
        raise DataError("image list not found", path)
    return {line.strip() for line in path.read_text().splitlines() if line.strip().endswith(".jpg")}


def crop_deepfashion(source: PathLike, destination: PathLike, train_list: PathLike,
                     test_list: PathLike, *, overwrite: bool = False) -> dict[str, int]:
    """Crop and flatten every in-shop image listed in ``train_list`` / ``test_list``.

    Args:
        source: the in-shop image root (holding ``MEN/``, ``WOMEN/``).
        destination: the dataset folder to fill (``train/`` and ``test/`` are created); it must
            not be inside ``source``.
        train_list, test_list: PATN's ``train.lst`` / ``test.lst`` of flat names.
        overwrite: replace images already in ``destination``.
    Returns:
        ``{"train": n, "test": n, "unlisted": n}`` counts of the source images.
    """
    source, destination = Path(source).resolve(), Path(destination).resolve()
    if not source.is_dir():
        raise DataError("DeepFashion image folder not found", source)
    if destination == source or source in destination.parents:
        raise ValueError(f"destination {destination} must not be inside the source {source}")
    splits = {"train": _read_list(train_list), "test": _read_list(test_list)}
    counts = {"train": 0, "test": 0, "unlisted": 0}
    for path in sorted(source.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        name = flat_name(path.relative_to(source))
        split: Optional[str] = next((s for s, names in splits.items() if name in names), None)
        if split is None:
            counts["unlisted"] += 1
            continue
        out = destination / split / name
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            with Image.open(path) as image:
                crop_image(image).save(out)
        except (OSError, SyntaxError, ValueError) as e:
            raise DataError(f"cannot crop image: {e}", path) from None
        counts[split] += 1
    return counts
