"""Keypoint conventions and pose encodings (heatmaps, disks, masks, part masks, distance maps)."""

from fastpose.pose.encodings import (ENCODING_CHANNELS, ENCODINGS, binary_closing, crop_keypoints,
                                     disks, distance_maps, encode, get_encoding, heatmaps, hflip,
                                     hflip_image, hflip_keypoints, hflip_parsing, list_encodings,
                                     peaks, pose_mask_pg2, pose_mask_potgan, register_encoding,
                                     resize_keypoints)
from fastpose.pose.openpose import (DISTANCE_MAP_LIMBS, FLIP_INDEX, HEAD_JOINTS,
                                    HEAD_POLYGON_JOINTS, KEYPOINT_INDEX, KEYPOINT_NAMES, LIMBS,
                                    MASK_LIMBS, MISSING, NUM_KEYPOINTS, PAIR_REQUIRED_JOINTS,
                                    TORSO_POLYGON_JOINTS)
from fastpose.pose.part_masks import (NUM_PARTS, PART_JOINTS, PART_NAMES, PartMaskConfig,
                                      part_gaussians, part_masks)

__all__ = [
    # the OpenPose-18 convention
    "DISTANCE_MAP_LIMBS", "FLIP_INDEX", "HEAD_JOINTS", "HEAD_POLYGON_JOINTS", "KEYPOINT_INDEX",
    "KEYPOINT_NAMES", "LIMBS", "MASK_LIMBS", "MISSING", "NUM_KEYPOINTS", "PAIR_REQUIRED_JOINTS",
    "TORSO_POLYGON_JOINTS",
    # encodings computed on the fly from keypoints
    "ENCODINGS", "ENCODING_CHANNELS", "binary_closing", "crop_keypoints", "disks",
    "distance_maps", "encode", "get_encoding", "heatmaps", "hflip", "hflip_image",
    "hflip_keypoints", "hflip_parsing", "list_encodings", "peaks", "pose_mask_pg2",
    "pose_mask_potgan", "register_encoding", "resize_keypoints",
    # part-SSIM part masks
    "NUM_PARTS", "PART_JOINTS", "PART_NAMES", "PartMaskConfig", "part_gaussians", "part_masks",
]
