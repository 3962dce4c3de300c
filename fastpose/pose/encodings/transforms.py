"""Geometric transforms applied to an image, its keypoints and its parsing map together."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fastpose.pose.encodings._common import as_batch, check_size, present
from fastpose.pose.openpose import FLIP_INDEX, MISSING


def _restore(kp: Tensor, out: Tensor, unbatched: bool) -> Tensor:
    out = torch.where(present(kp)[..., None], out, torch.full_like(out, MISSING))
    return out[0] if unbatched else out


def hflip_keypoints(keypoints: Tensor, width: int) -> Tensor:
    """Mirror keypoints left-right in an image of ``width`` pixels and swap left/right joints.

    x -> width - 1 - x (pixel centres at integer x), then joint i takes the mirrored position of
    joint ``FLIP_INDEX[i]``; missing joints stay -1.

    Args:
        keypoints: ``[N, 18, 2]`` or ``[18, 2]`` (y, x).
        width: image width W.
    Returns:
        Float keypoints of the same shape.
    """
    kp, unbatched = as_batch(keypoints)
    mirrored = torch.stack([kp[..., 0], (width - 1) - kp[..., 1]], dim=-1)
    index = torch.tensor(FLIP_INDEX, device=kp.device)
    kp, mirrored = kp[:, index], mirrored[:, index]
    return _restore(kp, mirrored, unbatched)


def hflip_image(image: Tensor) -> Tensor:
    """Mirror an image ``[..., C, H, W]`` (any leading dims) along W."""
    return image.flip(-1)


def hflip_parsing(parsing: Tensor) -> Tensor:
    """Mirror a CIHP label map ``[..., H, W]`` along W and swap left/right labels (arms, legs, shoes)."""
    # Imported here: fastpose.data imports fastpose.pose, so a module-level import would be circular.
    from fastpose.data.cihp import CIHP_FLIP, NUM_CIHP_LABELS

    if parsing.is_floating_point() or parsing.dtype == torch.bool:
        raise TypeError(f"parsing must be an integer label map, got dtype {parsing.dtype}")
    table = torch.tensor(CIHP_FLIP, device=parsing.device, dtype=parsing.dtype)
    flipped = parsing.flip(-1)
    if flipped.numel() and (flipped.min() < 0 or flipped.max() >= NUM_CIHP_LABELS):
        raise ValueError(f"parsing labels must be in [0, {NUM_CIHP_LABELS}), "
                         f"got range [{int(flipped.min())}, {int(flipped.max())}]")
    return table[flipped.long()].to(parsing.dtype)


def hflip(image: Tensor, keypoints: Tensor, parsing: Optional[Tensor] = None
          ) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """Mirror an image ``[..., 3, H, W]``, its keypoints ``[..., 18, 2]`` and optional parsing ``[..., H, W]``.

    Flipping twice is the identity; left and right joints and parsing labels are swapped.
    """
    width = image.shape[-1]
    if parsing is not None and parsing.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"parsing is {list(parsing.shape[-2:])} but image is "
                         f"{list(image.shape[-2:])} (H, W)")
    return (hflip_image(image), hflip_keypoints(keypoints, width),
            None if parsing is None else hflip_parsing(parsing))


def resize_keypoints(keypoints: Tensor, from_size: tuple[int, int], to_size: tuple[int, int],
                     *, pixel_centers: bool = True) -> Tensor:
    """Map keypoints from an image of ``from_size`` (H, W) to one of ``to_size``.

    With ``pixel_centers`` (default) coordinates follow the resampling of PIL and
    ``F.interpolate(align_corners=False)``: ``y' = (y + 0.5) * H'/H - 0.5``; without, they are just
    scaled, ``y' = y * H'/H``. Missing joints stay -1; the result is float.
    """
    (h0, w0), (h1, w1) = check_size(from_size, "from_size"), check_size(to_size, "to_size")
    kp, unbatched = as_batch(keypoints)
    scale = kp.new_tensor([h1 / h0, w1 / w0])
    out = (kp + 0.5) * scale - 0.5 if pixel_centers else kp * scale
    return _restore(kp, out, unbatched)


def crop_keypoints(keypoints: Tensor, top: int, left: int) -> Tensor:
    """Shift keypoints into a crop whose top-left corner is (top, left); missing joints stay -1.

    Joints that fall outside the crop keep their (out-of-range) coordinates; the annotation
    checks reject them when the crop's size is known.
    """
    kp, unbatched = as_batch(keypoints)
    out = kp - kp.new_tensor([top, left])
    return _restore(kp, out, unbatched)
