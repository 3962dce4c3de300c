"""Keypoint conventions and pose encodings (heatmaps, disks, masks, part masks, distance maps)."""

from fastpose.pose.openpose import (FLIP_INDEX, HEAD_JOINTS, KEYPOINT_INDEX, KEYPOINT_NAMES, LIMBS,
                                    MISSING, NUM_KEYPOINTS)

__all__ = ["FLIP_INDEX", "HEAD_JOINTS", "KEYPOINT_INDEX", "KEYPOINT_NAMES", "LIMBS", "MISSING",
           "NUM_KEYPOINTS"]

from fastpose.pose.encodings import (ENCODING_CHANNELS, ENCODINGS, binary_closing, crop_keypoints,
                                     disks, distance_maps, encode, get_encoding, heatmaps, hflip,
                                     hflip_image, hflip_keypoints, hflip_parsing, list_encodings,
                                     peaks, pose_mask_pg2, pose_mask_potgan, register_encoding,
                                     resize_keypoints)
from fastpose.pose.openpose import (DISTANCE_MAP_LIMBS, HEAD_POLYGON_JOINTS, MASK_LIMBS,
                                    PAIR_REQUIRED_JOINTS, TORSO_POLYGON_JOINTS)

__all__ += ["DISTANCE_MAP_LIMBS", "ENCODINGS", "ENCODING_CHANNELS", "HEAD_POLYGON_JOINTS",
            "MASK_LIMBS", "PAIR_REQUIRED_JOINTS", "TORSO_POLYGON_JOINTS", "binary_closing",
            "crop_keypoints", "disks", "distance_maps", "encode", "get_encoding", "heatmaps",
            "hflip", "hflip_image", "hflip_keypoints", "hflip_parsing", "list_encodings", "peaks",
            "pose_mask_pg2", "pose_mask_potgan", "register_encoding", "resize_keypoints"]

from fastpose.pose.part_masks import (NUM_PARTS, PART_JOINTS, PART_NAMES, PartMaskConfig,
                                      part_gaussians, part_masks)

__all__ += ["NUM_PARTS", "PART_JOINTS", "PART_NAMES", "PartMaskConfig", "part_gaussians",
            "part_masks"]
