"""Locating pretrained weight files for the metrics' networks, checking them, and saying what is
missing.

fastpose never downloads anything. Each network file is looked up, in order, at

1. a path given explicitly (a function argument / :class:`~fastpose.metrics.options.MetricOptions`
   field),
2. the path in the file's environment variable (``FASTPOSE_FID_INCEPTION`` etc.),
3. ``$TORCH_HOME/hub/checkpoints/<file name>`` (torch.hub's cache, where torchvision and
   pytorch-fid put them when they download on a connected machine).

A missing file raises :class:`WeightsUnavailable`, whose message names the file, the places
searched, the environment variable and the address to fetch it from on a connected machine; the
evaluation reports that metric as unavailable instead of computing it with random weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

PathLike = Union[str, os.PathLike]


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (missing weights or optional dependency)."""


class WeightsUnavailable(MetricUnavailable):
    """A pretrained weight file is missing or does not match its expected checksum."""


@dataclass(frozen=True)
class WeightSpec:
    filename: str  # the standard file name (torch.hub cache convention)
    sha256_prefix: Optional[str]  # leading hex digits of the file's sha256 (None: not checked)
    env: str  # environment variable that may hold the file's path
    url: str  # where to download it on a machine with internet access
    description: str  # what the file is, for messages
    used_by: str  # metrics that need it, for messages


WEIGHTS: dict[str, WeightSpec] = {
    "fid_inception": WeightSpec(
        "pt_inception-2015-12-05-6726825d.pth", "6726825d", "FASTPOSE_FID_INCEPTION",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        "the FID Inception-v3 (TensorFlow 2015-12-05 graph ported by pytorch-fid)",
        "fid, is, mask_is"),
    "inception_v3": WeightSpec(
        "inception_v3_google-0cc3c7bd.pth", "0cc3c7bd", "FASTPOSE_INCEPTION_V3",
        "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        "torchvision's ImageNet Inception-v3", "is, mask_is with inception='torchvision'"),
    "alexnet": WeightSpec(
        "alexnet-owt-7be5be79.pth", "7be5be79", "FASTPOSE_ALEXNET",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "torchvision's ImageNet AlexNet (LPIPS backbone)", "lpips"),
    "vgg16": WeightSpec(
        "vgg16-397923af.pth", "397923af", "FASTPOSE_VGG16",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        "torchvision's ImageNet VGG16 (LPIPS backbone)", "lpips_vgg"),
}

# a folder holding alex.pth / vgg.pth (as the lpips wheel's weights/v0.1)
LPIPS_LIN_ENV = "FASTPOSE_LPIPS_DIR"
SKIP_HASH_ENV = "FASTPOSE_SKIP_HASH_CHECK"  # set to 1 to accept a file whose sha256 differs

_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, per process


def checkpoint_dir() -> Path:
    """torch.hub's checkpoint folder: ``$TORCH_HOME/hub/checkpoints`` (default ~/.cache/torch)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def locate(key: str, path: Optional[PathLike] = None) -> Path:
    """The file of weight ``key`` (see :data:`WEIGHTS`), or :class:`WeightsUnavailable`."""
    spec = WEIGHTS[key]
    searched = []
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            return p
        raise WeightsUnavailable(f"{spec.used_by}: the weight file given for {spec.description} "
                                 f"does not exist: {p}")
    env = os.environ.get(spec.env)
    if env:
        p = Path(env).expanduser()
        if p.is_file():
            return p
        searched.append(f"${spec.env}={p}")
    p = checkpoint_dir() / spec.filename
    if p.is_file():
        return p
    searched.append(str(p))
    raise WeightsUnavailable(
        f"{spec.used_by}: {spec.filename} ({spec.description}) not found; looked at "
        f"{', '.join(searched)}. fastpose never downloads weights: fetch {spec.url} on a machine "
        f"with internet and place it at {checkpoint_dir() / spec.filename}, or set ${spec.env} "
        f"(or pass its path) to where it is.")


def sha256_of(path: PathLike) -> str:
    """Hex sha256 of a file, remembered per (path, size, mtime) for the process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _verified:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _verified[key] = h.hexdigest()
    return _verified[key]


def check_sha256(path: PathLike, prefix: Optional[str], what: str) -> None:
    """Raise :class:`WeightsUnavailable` unless the file's sha256 starts with ``prefix``."""
    if prefix is None or os.environ.get(SKIP_HASH_ENV, "") not in ("", "0"):
        return
    digest = sha256_of(path)
    if not digest.startswith(prefix):
        raise WeightsUnavailable(
            f"{what}: {path} has sha256 {digest[:16]}…, expected a digest starting with {prefix} "
            f"(torch.hub's naming convention); the file is corrupt or a different file. Set "
            f"{SKIP_HASH_ENV}=1 to use it anyway.")


def load_state_dict(key: str, path: Optional[PathLike] = None) -> dict[str, torch.Tensor]:
    """Locate, checksum and load (on CPU, tensors only) the state dict of weight ``key``."""
    spec = WEIGHTS[key]
    p = locate(key, path)
    check_sha256(p, spec.sha256_prefix, spec.used_by)
    return torch.load(p, map_location="cpu", weights_only=True)


def lpips_lin_file(net: str, path: Optional[PathLike] = None, version: str = "0.1") -> Path:
    """The LPIPS linear-layer file for backbone ``net`` ("alex" or "vgg").

    Order: ``path`` (a file, or a folder holding ``<net>.pth``), ``$FASTPOSE_LPIPS_DIR``, then
    the installed ``lpips`` wheel's ``weights/v<version>/<net>.pth``, located with importlib
    without importing the package (its import needs torchvision).
    """
    name = f"{net}.pth"
    searched = []
    candidates = []
    if path is not None:
        p = Path(path).expanduser()
        candidates.append(p / name if p.is_dir() else p)
    env = os.environ.get(LPIPS_LIN_ENV)
    if env:
        candidates.append(Path(env).expanduser() / name)
    spec = importlib.util.find_spec("lpips")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]) / "weights" /
                          f"v{version}" / name)
    for c in candidates:
        if c.is_file():
            return c
        searched.append(str(c))
    where = ", ".join(searched) if searched else "no candidate (lpips is not installed)"
    raise WeightsUnavailable(
        f"lpips ({net}): the LPIPS linear layers {name} (v{version}) were not found; looked at "
        f"{where}. They ship in the lpips wheel: `pip install --no-deps lpips==0.1.4`, or copy "
        f"lpips/weights/v{version}/{name} into a folder named by ${LPIPS_LIN_ENV}.")


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str,
              ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``module`` requiring every parameter and buffer to be present.

    Keys starting with one of ``ignore_prefixes`` (parts of the original network the metric
    does not use, e.g. a classifier) are dropped; BatchNorm's ``num_batches_tracked`` may be
    absent (files converted from TensorFlow lack it). Anything else missing or unexpected is an
    error listing the keys, so a wrong file never loads silently.
    """
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
             for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise WeightsUnavailable(
            f"{what}: the state dict does not match the architecture; missing {missing[:5]}"
            f"{'…' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'…' if len(unexpected) > 5 else ''}, wrong shapes {wrong[:5]}")
    module.load_state_dict(state, strict=False)
