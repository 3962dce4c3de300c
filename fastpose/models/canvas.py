"""Centred padding to a model's canvas and cropping back.

The authors of PG2 and SPGNet trained DeepFashion on 256x256 images, while PATN's layout holds
256x176 crops; models pad the crops to their canvas (white for images, 0 for maps and labels) and
crop the output back, so a run on PATN's layout sees what the authors' networks saw.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def pad_to_canvas(x: Tensor, canvas: tuple[int, int], value: float) -> Tensor:
    """Pad ``[..., h, w]`` symmetrically (extra pixel at the bottom/right) to ``canvas`` (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = canvas[0] - h, canvas[1] - w
    if ph < 0 or pw < 0:
        raise ValueError(f"input of size {(h, w)} is larger than the canvas {tuple(canvas)}")
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=value)


def crop_from_canvas(x: Tensor, size: tuple[int, int]) -> Tensor:
    """The centred ``size`` (h, w) window of ``[..., H, W]``: the inverse of :func:`pad_to_canvas`."""
    ph, pw = x.shape[-2] - size[0], x.shape[-1] - size[1]
    return x[..., ph // 2: ph // 2 + size[0], pw // 2: pw // 2 + size[1]]
