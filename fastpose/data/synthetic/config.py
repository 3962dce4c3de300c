"""Configuration of a synthetic dataset and the per-preset style (framing, views, poses)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields

from fastpose.data.layout import PRESET_PREFIX, PRESET_SIZE

# Bump when the renderer changes what it draws: cached datasets of another version are rebuilt.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class PresetStyle:
    """How images of one preset are framed and what they show."""

    cameras: int  # distinct cameras (Market: 6 street cameras; DeepFashion: 1 studio)
    pose_p: dict[str, float]  # pose family -> probability
    view_p: dict[str, float]  # view (kinematics.VIEWS) -> probability
    fill: tuple[float, float]  # person height / image height
    bottom_margin: tuple[float, float]  # gap under the feet / image height
    shift: float  # horizontal jitter of the person / image width
    close_up_p: float  # probability of an upper-body close-up (legs out of frame)
    noise: float  # sensor noise standard deviation in [0, 1] units
    street: bool  # cluttered per-camera street scenes (else plain studio backdrops)


STYLES: dict[str, PresetStyle] = {
    "market": PresetStyle(
        cameras=6,
        pose_p={"walking": 0.65, "standing": 0.2, "gesture": 0.15},
        view_p={"front": 0.25, "three-quarter": 0.2, "side": 0.2, "back-three-quarter": 0.1,
                "back": 0.25},
        fill=(0.76, 0.9), bottom_margin=(0.01, 0.06), shift=0.06, close_up_p=0.0, noise=0.012,
        street=True),
    "deepfashion": PresetStyle(
        cameras=1,
        pose_p={"standing": 0.45, "gesture": 0.4, "walking": 0.15},
        view_p={"front": 0.5, "three-quarter": 0.2, "side": 0.12, "back-three-quarter": 0.05,
                "back": 0.13},
        fill=(0.82, 0.92), bottom_margin=(0.02, 0.05), shift=0.04, close_up_p=0.12,
        noise=0.004, street=False),
}


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. Identities 1..train_ids are the train split, the next test_ids the test
    split, so the splits never share a person."""

    preset: str = "market"  # market | deepfashion: size, backgrounds, framing, file names
    seed: int = 0  # everything is a function of (seed, identity, image index)
    train_ids: int = 420  # identities in the train split
    test_ids: int = 80  # identities in the test split
    images_per_id: int = 6  # images of each identity
    workers: int = 2  # rendering processes (does not change the output)
    contact_ids: int = 14  # rows of the contact sheet

    def __post_init__(self):
        if self.preset not in PRESET_PREFIX:
            raise ValueError(f"unknown preset {self.preset!r}; expected one of "
                             f"{sorted(PRESET_PREFIX)}")
        for name in ("train_ids", "test_ids", "images_per_id"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.contact_ids < 0:
            raise ValueError(f"contact_ids must be >= 0, got {self.contact_ids}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    @classmethod
    def for_preset(cls, preset: str, **overrides) -> "SyntheticConfig":
        """The default dataset of ``preset`` (a few thousand images), with ``overrides``."""
        defaults = {"market": dict(train_ids=420, test_ids=80, images_per_id=6),
                    "deepfashion": dict(train_ids=300, test_ids=60, images_per_id=5)}
        if preset not in defaults:
            raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(defaults)}")
        return cls(preset=preset, **{**defaults[preset], **overrides})

    @property
    def size(self) -> tuple[int, int]:
        return PRESET_SIZE[self.preset]

    @property
    def style(self) -> PresetStyle:
        return STYLES[self.preset]

    @property
    def num_images(self) -> int:
        return (self.train_ids + self.test_ids) * self.images_per_id

    def content(self) -> dict:
        """The fields that determine the generated files (not ``workers``), plus the version."""
        d = {f.name: getattr(self, f.name) for f in fields(self)
             if f.name != "workers"}
        d["version"] = GENERATOR_VERSION
        return d

    def digest(self) -> str:
        """Short hash of :meth:`content`: the cache key."""
        blob = json.dumps(self.content(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]
