"""Reading images and parsing maps from disk into tensors, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fastpose.data.cihp import NUM_CIHP_LABELS
from fastpose.data.errors import DataError

PathLike = Union[str, Path]
# What PIL raises on unreadable, truncated or hostile files.
_PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _open(path: PathLike, what: str) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file not found", path)
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so a truncated file fails here and not later
            return image
    except _PIL_ERRORS as e:
        raise DataError(f"cannot read {what}: {e}", path) from None


def _check_size(image: Image.Image, size: Optional[tuple[int, int]], path: PathLike, what: str) -> None:
    if size is not None and (image.height, image.width) != tuple(size):
        raise DataError(f"{what} is {image.height}x{image.width} (HxW), expected "
                        f"{size[0]}x{size[1]}", path)


def load_image(path: PathLike, size: Optional[tuple[int, int]] = None) -> Image.Image:
    """Open and decode an image as RGB; with ``size`` (H, W), check that it has that size."""
    image = _open(path, "image")
    _check_size(image, size, path, "image")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_parsing(path: PathLike, size: Optional[tuple[int, int]] = None) -> Image.Image:
    """Open a CIHP parsing PNG (single-channel 'L' or palette 'P' holding label indices)."""
    image = _open(path, "parsing map")
    _check_size(image, size, path, "parsing map")
    if image.mode not in ("L", "P"):
        raise DataError(f"parsing map must be a single-channel label image ('L' or 'P'), "
                        f"got mode {image.mode!r}", path)
    return image


def image_to_uint8(image: Image.Image) -> Tensor:
    """RGB PIL image -> uint8 ``[3, H, W]`` (contiguous), the raw form that crosses process boundaries."""
    array = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))
    return array.permute(2, 0, 1).contiguous()


def images_to_float(images: Tensor) -> Tensor:
    """uint8 images ``[..., 3, H, W]`` -> float32 in [-1, 1] (``x / 127.5 - 1``, PATN's
    ``Normalize(0.5, 0.5)``); works on any device."""
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (raw samples), got dtype {images.dtype}")
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def image_to_tensor(image: Image.Image) -> Tensor:
    """RGB PIL image -> float32 ``[3, H, W]`` in [-1, 1] (PATN's ``Normalize(0.5, 0.5)``)."""
    return images_to_float(image_to_uint8(image))


def parsing_to_uint8(image: Image.Image, path: PathLike = "<parsing>") -> Tensor:
    """Label PIL image -> uint8 ``[H, W]`` with labels checked to be CIHP's 0..19."""
    labels = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))
    top = int(labels.max()) if labels.numel() else 0
    if top >= NUM_CIHP_LABELS:
        raise DataError(f"parsing label {top} is outside the {NUM_CIHP_LABELS} CIHP labels", path)
    return labels


def parsing_to_tensor(image: Image.Image, path: PathLike = "<parsing>") -> Tensor:
    """Label PIL image -> int64 ``[H, W]`` with labels checked to be CIHP's 0..19."""
    return parsing_to_uint8(image, path).long()
