"""The 20 CIHP human-parsing labels (PGN/CIHP order), used by parsing maps and SPGNet."""

from __future__ import annotations

CIHP_LABELS: tuple[str, ...] = (
    "background", "hat", "hair", "glove", "sunglasses", "upper_clothes", "dress", "coat", "socks",
    "pants", "torso_skin", "scarf", "skirt", "face", "left_arm", "right_arm", "left_leg",
    "right_leg", "left_shoe", "right_shoe",
)
NUM_CIHP_LABELS = len(CIHP_LABELS)
CIHP_INDEX: dict[str, int] = {name: i for i, name in enumerate(CIHP_LABELS)}

# CIHP_FLIP[i] is the label that label i becomes after a horizontal flip.
CIHP_FLIP: tuple[int, ...] = tuple(
    CIHP_INDEX[n.replace("left", "right") if n.startswith("left") else
               n.replace("right", "left") if n.startswith("right") else n]
    for n in CIHP_LABELS)
