"""The OpenPose/COCO-18 keypoint convention used by every dataset and model in fastpose.

Keypoints are ``[..., 18, 2]`` tensors of (y, x) pixel coordinates, as in PATN's annotation
CSVs; a missing joint has both coordinates -1 (:data:`MISSING`).
"""

from __future__ import annotations

MISSING = -1  # coordinate value of a missing / occluded / out-of-frame joint

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "l_eye", "r_eye", "l_ear", "r_ear",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
KEYPOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(KEYPOINT_NAMES)}


def _mirror(name: str) -> str:
    if name.startswith("l_"):
        return "r_" + name[2:]
    if name.startswith("r_"):
        return "l_" + name[2:]
    return name


# FLIP_INDEX[i] is the joint that joint i becomes after a horizontal flip (left <-> right).
FLIP_INDEX: tuple[int, ...] = tuple(KEYPOINT_INDEX[_mirror(n)] for n in KEYPOINT_NAMES)

# The 19 OpenPose limbs (joint index pairs) that PATN's pose_utils draws.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)

# Head joints whose bounding box gives the PCKh head size (PATN's calPCKH_market.py).
HEAD_JOINTS: tuple[int, ...] = (0, 1, 14, 15, 16, 17)
