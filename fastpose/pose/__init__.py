"""Keypoint conventions and pose encodings (heatmaps, disks, masks, part masks, distance maps)."""

from fastpose.pose.openpose import (FLIP_INDEX, HEAD_JOINTS, KEYPOINT_INDEX, KEYPOINT_NAMES, LIMBS,
                                    MISSING, NUM_KEYPOINTS)

__all__ = ["FLIP_INDEX", "HEAD_JOINTS", "KEYPOINT_INDEX", "KEYPOINT_NAMES", "LIMBS", "MISSING",
           "NUM_KEYPOINTS"]
from fastpose.pose.part_masks import (NUM_PARTS, PART_JOINTS, PART_NAMES, PartMaskConfig,
                                      part_gaussians, part_masks)

__all__ += ["NUM_PARTS", "PART_JOINTS", "PART_NAMES", "PartMaskConfig", "part_gaussians",
            "part_masks"]
