"""VGG16 / VGG19 feature extractors for perceptual losses, with torchvision's key names.

fastpose builds the VGG ``features`` stack itself (conv3x3 + ReLU layers and 2x2 max-pools,
the layer list of torchvision's ``vgg16``/``vgg19`` configurations "D"/"E"), so torchvision is not
a dependency. The parameters are named ``features.{i}.weight`` / ``features.{i}.bias`` exactly as
in torchvision, so torchvision's ImageNet files ``vgg16-397923af.pth`` and ``vgg19-dcbb9e9d.pth``
load unchanged (their ``classifier.*`` keys are ignored). Nothing is ever downloaded: the file is
taken from an explicit path, from ``$FASTPOSE_VGG16_WEIGHTS`` / ``$FASTPOSE_VGG19_WEIGHTS``, or from
torch's hub cache ``$TORCH_HOME/hub/checkpoints/<file>`` (where torchvision would have put it).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

# Layer lists of torchvision's VGG configurations: channel counts, "M" = 2x2 max-pool.
_CFG = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}
# torchvision's ImageNet weight files (torch.hub naming: the hash prefix is part of the name).
WEIGHT_FILES = {"vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth"}
WEIGHT_URLS = {a: f"https://download.pytorch.org/models/{f}" for a, f in WEIGHT_FILES.items()}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGWeightsNotFound(FileNotFoundError):
    """The ImageNet weight file of a VGG network is not on this machine."""


def layer_names(arch: str) -> list[str]:
    """Names of the entries of ``features`` in order: conv{b}_{i}, relu{b}_{i}, pool{b}."""
    if arch not in _CFG:
        raise ValueError(f"unknown VGG architecture {arch!r}; expected one of {sorted(_CFG)}")
    names, block, idx = [], 1, 1
    for v in _CFG[arch]:
        if v == "M":
            names.append(f"pool{block}")
            block, idx = block + 1, 1
        else:
            names += [f"conv{block}_{idx}", f"relu{block}_{idx}"]
            idx += 1
    return names


def make_features(arch: str, upto: Optional[int] = None) -> nn.Sequential:
    """torchvision's ``vgg*.features`` stack (same indices), truncated after index ``upto``."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in _CFG[arch]:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            in_ch = v
    if upto is not None:
        layers = layers[: upto + 1]
    return nn.Sequential(*layers)


def weight_search_paths(arch: str) -> list[Path]:
    """Where :func:`find_weights` looks, in order (explicit paths come first, see there)."""
    env = os.environ.get(f"FASTPOSE_{arch.upper()}_WEIGHTS")
    paths = [Path(env)] if env else []
    paths.append(Path(torch.hub.get_dir()) / "checkpoints" / WEIGHT_FILES[arch])
    return paths


def find_weights(arch: str, path: Optional[str | os.PathLike] = None) -> Path:
    """The ImageNet weight file of ``arch``, or :class:`VGGWeightsNotFound` naming the file and
    every place it may be put."""
    if path:
        p = Path(path)
        if not p.is_file():
            raise VGGWeightsNotFound(f"{arch} weights: {p} does not exist")
        return p
    candidates = weight_search_paths(arch)
    for p in candidates:
        if p.is_file():
            return p
    where = "\n".join(f"  - {p}" for p in candidates)
    raise VGGWeightsNotFound(
        f"the ImageNet weights of {arch} ({WEIGHT_FILES[arch]}, torchvision's file) are not on this "
        f"machine and fastpose never downloads them. Get {WEIGHT_URLS[arch]} and put it at\n{where}\n"
        f"or pass its path (--vgg-weights PATH, or ${'FASTPOSE_' + arch.upper() + '_WEIGHTS'}).")


@dataclass
class FeatureSource:
    """What a feature extractor was initialised from (recorded in the run's config)."""
    arch: str  # "vgg16" or "vgg19"
    weights: str  # path of the weight file, or "random" for the offline fallback


class VGGFeatures(nn.Module):
    """Frozen VGG features at named layers, from images in [-1, 1].

    Inputs ``[N, 3, H, W]`` in [-1, 1] are mapped to [0, 1] and normalised with the ImageNet
    mean/std, then run through ``features`` up to the deepest requested layer.

    Args:
        arch: ``"vgg16"`` or ``"vgg19"``.
        layers: layer names such as ``"relu1_2"``, ``"relu4_1"``, ``"conv3_1"``, ``"pool2"``.
        weights: ``"imagenet"`` (find torchvision's file, see :func:`find_weights`), a path to a
            ``.pth`` state dict, or ``None`` for a random initialisation (tests only).
        allow_random: with ``weights="imagenet"``, fall back to a random initialisation with a loud
            warning when the file is missing, instead of raising (only for the synthetic demo).
    """

    def __init__(self, arch: str = "vgg19", layers: Sequence[str] = ("relu1_2",),
                 weights: Optional[str] = "imagenet", allow_random: bool = False) -> None:
        super().__init__()
        names = layer_names(arch)
        unknown = [n for n in layers if n not in names]
        if unknown or not layers:
            raise ValueError(f"unknown {arch} layers {unknown or '(none given)'}; available: {names}")
        self.arch = arch
        self.layers = tuple(layers)
        self._index = {n: names.index(n) for n in self.layers}
        self.features = make_features(arch, max(self._index.values()))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.source = FeatureSource(arch, "random")
        if weights is not None:
            try:
                path = find_weights(arch, None if weights == "imagenet" else weights)
            except VGGWeightsNotFound as exc:
                if not allow_random:
                    raise
                warnings.warn(f"!!! {exc}\n!!! FALLING BACK TO A RANDOMLY INITIALISED {arch}: the "
                              f"perceptual loss will not be the paper's. This is recorded in the "
                              f"run's config.", RuntimeWarning, stacklevel=2)
            else:
                self.load_torchvision(path)
                self.source = FeatureSource(arch, str(path))
        self.requires_grad_(False)
        self.eval()

    def load_torchvision(self, path: str | os.PathLike) -> None:
        """Load torchvision's ``vgg*.pth`` (or a state dict of this module) from ``path``."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        keep = {k: v for k, v in state.items()
                if k.startswith("features.") and int(k.split(".")[1]) < len(self.features)}
        missing, _ = self.load_state_dict(keep, strict=False)
        missing = [k for k in missing if k.startswith("features.")]
        if missing:
            raise RuntimeError(f"{path} is not a {self.arch} state dict: missing {missing[:4]}...")

    def train(self, mode: bool = True) -> "VGGFeatures":
        # Always in eval mode: the extractor is frozen (no dropout/BN, but keep it explicit).
        return super().train(False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x ``[N, 3, H, W]`` in [-1, 1] -> {layer name: features ``[N, C_l, H_l, W_l]``}."""
        h = ((x + 1) * 0.5 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out, want = {}, {i: n for n, i in self._index.items()}
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in want:
                out[want[i]] = h
        return out
