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

# The 19 OpenPose limbs (joint index pairs) that PATN's pose_utils draws (LIMB_SEQ in
# tool/pose_utils.py, checked against tengteng95/Pose-Transfer). The last two join r_shoulder to
# joint 16 and l_shoulder to joint 17, which PATN's LABELS call the *other* side's ear; OpenPose's
# own documentation names joints 14-17 REye, LEye, REar, LEar, i.e. the opposite of PATN's labels,
# under which these limbs are same-side. fastpose keeps PATN's names (the annotation CSVs use them);
# flipping is unaffected because 14<->15 and 16<->17 swap under either naming.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)

# Head joints whose bounding box gives the PCKh head size (PATN's calPCKH_market.py).
HEAD_JOINTS: tuple[int, ...] = (0, 1, 14, 15, 16, 17)

# The 23 segments of the PG2/PATN pose mask (PG2 datasets/convert_market.py ``_getPoseMask`` and
# PATN tool/pose_utils.py ``produce_ma_mask`` share this list, written 1-based there). It is not
# LIMBS plus four: it has LIMBS[0:17], then neck-l_ear and neck-r_ear (instead of the two
# shoulder-ear limbs), r_hip-l_hip, l_hip-l_shoulder, r_hip-r_shoulder and l_ear-r_ear.
MASK_LIMBS: tuple[tuple[int, int], ...] = LIMBS[:17] + (
    (1, 16), (1, 17), (8, 11), (11, 5), (8, 2), (16, 17),
)

# The 12 skeleton segments of SPGNet's distance maps. The paper (Lv et al. 2021, Sec. 3.1) says
# "12 lines" without listing them and the released code never builds them, so fastpose takes the
# body part of the OpenPose skeleton: LIMBS[0:12] = neck-r_shoulder, neck-l_shoulder, r upper arm,
# r forearm, l upper arm, l forearm, neck-r_hip, r thigh, r shin, neck-l_hip, l thigh, l shin (the
# seven remaining limbs are the face connections, which the heatmaps already localise).
DISTANCE_MAP_LIMBS: tuple[tuple[int, int], ...] = LIMBS[:12]

# Joints whose convex hulls fill the head and the torso of PoT-GAN's full-body mask (Li et al. 2021,
# Sec. IV-C: "depicting head and torso areas as polygons"; no code was published, so the joint sets
# are fastpose's choice: the face points with the neck, and the shoulders and hips with the neck).
HEAD_POLYGON_JOINTS: tuple[int, ...] = (0, 1, 14, 15, 16, 17)
TORSO_POLYGON_JOINTS: tuple[int, ...] = (1, 2, 5, 8, 11)

# Joints that must be present for an image to enter a pair (PATN tool/create_pairs_dataset.py).
PAIR_REQUIRED_JOINTS: tuple[int, ...] = (8, 11, 5, 2)
