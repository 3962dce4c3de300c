"""Identities: body proportions, skin, hair, clothing colours and patterns, accessories.

An identity is drawn once from its own seed and reused for every image of that person, so the
same person looks the same in every pose, view and camera.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fastpose.data.cihp import CIHP_INDEX
from fastpose.data.synthetic.kinematics import Body

# sRGB colours in [0, 1].
SKIN_TONES = np.array([
    [0.96, 0.83, 0.72], [0.92, 0.76, 0.62], [0.86, 0.67, 0.52], [0.78, 0.57, 0.42],
    [0.66, 0.46, 0.32], [0.52, 0.35, 0.24], [0.40, 0.27, 0.19], [0.30, 0.20, 0.15],
])
HAIR_COLOURS = np.array([
    [0.06, 0.05, 0.05], [0.16, 0.11, 0.08], [0.30, 0.20, 0.12], [0.48, 0.33, 0.18],
    [0.78, 0.62, 0.36], [0.55, 0.25, 0.12], [0.62, 0.60, 0.58], [0.85, 0.82, 0.74],
])
HAIR_WEIGHTS = np.array([0.26, 0.22, 0.16, 0.1, 0.09, 0.06, 0.07, 0.04])
GARMENT_COLOURS = np.array([
    [0.10, 0.10, 0.12], [0.93, 0.93, 0.92], [0.50, 0.51, 0.53], [0.13, 0.18, 0.36],
    [0.25, 0.40, 0.72], [0.55, 0.72, 0.88], [0.72, 0.12, 0.14], [0.45, 0.10, 0.16],
    [0.16, 0.42, 0.24], [0.40, 0.42, 0.20], [0.74, 0.66, 0.48], [0.90, 0.80, 0.30],
    [0.92, 0.55, 0.65], [0.45, 0.25, 0.55], [0.90, 0.48, 0.16], [0.42, 0.28, 0.18],
    [0.20, 0.56, 0.58], [0.88, 0.86, 0.78],
])
TROUSER_COLOURS = np.array([
    [0.10, 0.10, 0.12], [0.15, 0.20, 0.38], [0.28, 0.38, 0.58], [0.42, 0.44, 0.46],
    [0.70, 0.62, 0.46], [0.36, 0.30, 0.22], [0.88, 0.88, 0.86], [0.30, 0.34, 0.22],
    [0.55, 0.14, 0.16],
])
SHOE_COLOURS = np.array([
    [0.08, 0.08, 0.08], [0.92, 0.92, 0.92], [0.35, 0.22, 0.13], [0.50, 0.50, 0.52],
    [0.15, 0.18, 0.35], [0.65, 0.12, 0.12],
])

PATTERNS = ("solid", "stripes", "checks")


@dataclass(frozen=True)
class Material:
    """How a garment or skin region is painted and labelled."""

    color: tuple[float, float, float]  # main colour (sRGB, [0, 1])
    label: int  # CIHP label of the region
    pattern: str = "solid"  # solid | stripes | checks
    color2: tuple[float, float, float] = (0.0, 0.0, 0.0)  # second colour of the pattern
    period: float = 0.5  # pattern period in head units

    def with_label(self, label: int) -> "Material":
        return replace(self, label=label)


@dataclass(frozen=True)
class Hair:
    """Hair on the head sphere (thresholds on the head-frame surface normal) and its length."""

    color: tuple[float, float, float]  # sRGB
    top: float  # hair where normal.up > top (the hairline; lower = more fringe)
    back: float  # hair where normal.forward < back (how far it reaches around the sides)
    side: float  # hair where |normal.left| > side (above the ears)
    length: float  # hanging hair below the head in head units (0 = short)


@dataclass(frozen=True)
class Identity:
    """Everything that stays the same across the images of one person."""

    pid: int  # identity number
    body: Body  # proportions
    skin: tuple[float, float, float]  # skin colour
    hair: Hair | None  # None = bald
    top_kind: str  # tshirt | longsleeve | tank | coat | dress
    top: Material  # torso garment
    sleeve: float  # fraction of the arm (shoulder to wrist) covered by the sleeve
    bottom_kind: str  # pants | shorts | skirt | dress
    bottom: Material  # legs garment
    shoes: tuple[float, float, float]  # shoe colour
    hat: tuple[float, float, float] | None  # hat colour or None
    bag: str | None  # None | backpack | handbag
    bag_color: tuple[float, float, float]  # bag colour
    feminine: bool  # only used for DeepFashion-style file names (WOMEN / MEN)


def _pick(rng: np.random.Generator, colours: np.ndarray, jitter: float = 0.05,
          p: np.ndarray | None = None) -> tuple[float, float, float]:
    c = colours[rng.choice(len(colours), p=p)] + rng.normal(0.0, jitter, 3)
    return tuple(float(v) for v in np.clip(c, 0.02, 0.98))


def _contrast(rng: np.random.Generator, c: tuple[float, float, float]
              ) -> tuple[float, float, float]:
    """A second pattern colour that differs visibly from ``c``."""
    for _ in range(10):
        c2 = _pick(rng, GARMENT_COLOURS)
        if np.abs(np.subtract(c2, c)).sum() > 0.6:
            return c2
    return tuple(float(1.0 - v) for v in c)


def _garment(rng: np.random.Generator, colours: np.ndarray, label: int,
             pattern_p: tuple[float, float, float]) -> Material:
    c = _pick(rng, colours)
    pattern = str(rng.choice(PATTERNS, p=np.array(pattern_p)))
    c2 = _contrast(rng, c) if pattern != "solid" else c
    return Material(color=c, label=label, pattern=pattern, color2=c2,
                    period=float(rng.uniform(0.28, 0.6)))


def sample_identity(pid: int, rng: np.random.Generator) -> Identity:
    """Draw a person: proportions, colours, garments and accessories."""
    feminine = bool(rng.random() < 0.5)
    s = rng.normal(1.0, 0.04)
    body = Body(
        shoulder_half=float(rng.uniform(0.74, 0.84) if feminine else rng.uniform(0.84, 0.96)),
        hip_half=float(rng.uniform(0.44, 0.52) if feminine else rng.uniform(0.38, 0.46)),
        torso_len=float(2.25 * s), upper_arm=float(1.40 * s), forearm=float(1.15 * s),
        thigh=float(1.85 * s * rng.normal(1.0, 0.03)), shin=float(1.75 * s),
        build=float(np.clip(rng.normal(1.0, 0.12), 0.78, 1.3)),
        chest_depth=float(rng.uniform(0.48, 0.6)),
    )
    skin = _pick(rng, SKIN_TONES, 0.02)
    hair_roll = rng.random()
    if hair_roll < 0.05 and not feminine:
        hair = None
    else:
        long_hair = rng.random() < (0.65 if feminine else 0.08)
        hair = Hair(color=_pick(rng, HAIR_COLOURS, 0.03, HAIR_WEIGHTS),
                    top=float(rng.uniform(0.2, 0.42)),
                    side=float(rng.uniform(0.55, 0.7) if long_hair else rng.uniform(0.68, 0.8)),
                    back=float(rng.uniform(0.0, 0.25) if long_hair else rng.uniform(-0.3, -0.05)),
                    length=float(rng.uniform(1.0, 2.3) if long_hair else 0.0))
    top_kind = str(rng.choice(["tshirt", "longsleeve", "tank", "coat", "dress"],
                              p=[0.36, 0.26, 0.08, 0.18, 0.12] if feminine else
                              [0.42, 0.3, 0.06, 0.22, 0.0]))
    top_label = {"coat": CIHP_INDEX["coat"], "dress": CIHP_INDEX["dress"]}.get(
        top_kind, CIHP_INDEX["upper_clothes"])
    top = _garment(rng, GARMENT_COLOURS, top_label, (0.5, 0.3, 0.2))
    sleeve = {"tshirt": rng.uniform(0.2, 0.32), "longsleeve": 0.93, "tank": 0.0,
              "coat": 0.95, "dress": rng.choice([0.0, 0.25])}[top_kind]
    if top_kind == "dress":
        bottom_kind, bottom = "dress", top
    else:
        bottom_kind = str(rng.choice(["pants", "shorts", "skirt"],
                                     p=[0.55, 0.15, 0.3] if feminine else [0.8, 0.2, 0.0]))
        label = CIHP_INDEX["skirt"] if bottom_kind == "skirt" else CIHP_INDEX["pants"]
        bottom = _garment(rng, TROUSER_COLOURS, label, (0.85, 0.05, 0.1))
    hat = _pick(rng, GARMENT_COLOURS) if rng.random() < 0.15 else None
    bag_roll = rng.random()
    bag = "backpack" if bag_roll < 0.2 else "handbag" if bag_roll < 0.32 else None
    return Identity(pid=pid, body=body, skin=skin, hair=hair, top_kind=top_kind, top=top,
                    sleeve=float(sleeve), bottom_kind=bottom_kind, bottom=bottom,
                    shoes=_pick(rng, SHOE_COLOURS, 0.03), hat=hat, bag=bag,
                    bag_color=_pick(rng, GARMENT_COLOURS), feminine=feminine)
