"""The registry of pose encodings: name -> function of keypoints, so a model declares what it needs."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

from torch import Tensor

from fastpose.pose.encodings.disks import disks
from fastpose.pose.encodings.distance_maps import distance_maps
from fastpose.pose.encodings.heatmaps import heatmaps, peaks
from fastpose.pose.encodings.masks import pose_mask_pg2, pose_mask_potgan

# Every function maps (keypoints [N, 18, 2], size (H, W), **params) -> [N, C, H, W] float.
ENCODINGS: dict[str, Callable[..., Tensor]] = {}
# Channel count of each encoding (for building models before seeing data).
ENCODING_CHANNELS: dict[str, int] = {}


def register_encoding(name: str, channels: int) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Decorator adding an encoding function to :data:`ENCODINGS` under ``name``."""

    def add(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        if name in ENCODINGS:
            raise ValueError(f"encoding {name!r} is already registered")
        ENCODINGS[name] = fn
        ENCODING_CHANNELS[name] = channels
        return fn

    return add


for _name, _fn, _channels in [
    ("heatmaps", heatmaps, 18),  # PATN Gaussian joint maps, sigma 6
    ("peaks", peaks, 18),  # PATN's DeepFashion 1-pixel maps
    ("disks", disks, 18),  # PG2 radius-4 solid disks
    ("pose_mask_pg2", pose_mask_pg2, 1),  # PG2/PATN limb mask + 5x5 closing
    ("pose_mask_potgan", pose_mask_potgan, 1),  # PoT-GAN full-body mask
    ("distance_maps", distance_maps, 12),  # SPGNet skeleton distance maps
]:
    register_encoding(_name, _channels)(_fn)


def list_encodings() -> list[str]:
    """Names of the registered keypoint encodings."""
    return sorted(ENCODINGS)


def get_encoding(name: str) -> Callable[..., Tensor]:
    """The encoding function registered as ``name``; unknown names raise with the known ones."""
    try:
        return ENCODINGS[name]
    except KeyError:
        raise KeyError(f"unknown pose encoding {name!r}; known: {list_encodings()}") from None


def encode(keypoints: Tensor, names: Sequence[str], size: tuple[int, int],
           params: Optional[Mapping[str, Mapping[str, Any]]] = None) -> dict[str, Tensor]:
    """Compute several encodings of the same keypoints, on their device.

    Args:
        keypoints: ``[N, 18, 2]`` or ``[18, 2]`` (y, x), -1 = missing.
        names: registered encoding names, e.g. ``("heatmaps", "pose_mask_pg2")``.
        size: output (H, W).
        params: optional keyword arguments per name, e.g. ``{"heatmaps": {"sigma": 4}}``.
    Returns:
        ``{name: [N, C, H, W]}`` (``[C, H, W]`` for one pose).
    """
    params = dict(params or {})
    unknown = set(params) - set(names)
    if unknown:
        raise ValueError(f"params given for encodings not requested: {sorted(unknown)}")
    return {name: get_encoding(name)(keypoints, size, **params.get(name, {})) for name in names}
