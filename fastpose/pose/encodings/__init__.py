"""Pose encodings computed on the fly from keypoints ``[N, 18, 2]`` (y, x; -1 missing), CPU or GPU.

========================  ========  ==========================================================
name                      channels  what
========================  ========  ==========================================================
``heatmaps``              18        Gaussian joint maps, sigma 6 (PATN)
``peaks``                 18        1-pixel joint maps (PATN's uint8 DeepFashion files)
``disks``                 18        solid radius-4 disks (PG2)
``pose_mask_pg2``         1         disks along 23 limbs + 5x5 closing (PG2, PATN)
``pose_mask_potgan``      1         PG2 mask + head and torso polygons (PoT-GAN)
``distance_maps``         12        exp(-0.1 d) to 12 skeleton segments (SPGNet)
========================  ========  ==========================================================

Transforms: :func:`hflip` (image, keypoints and parsing together), :func:`resize_keypoints`,
:func:`crop_keypoints`.
"""

from fastpose.pose.encodings.disks import disks
from fastpose.pose.encodings.distance_maps import distance_maps
from fastpose.pose.encodings.heatmaps import heatmaps, peaks
from fastpose.pose.encodings.masks import binary_closing, pose_mask_pg2, pose_mask_potgan
from fastpose.pose.encodings.registry import (ENCODING_CHANNELS, ENCODINGS, encode, get_encoding,
                                              list_encodings, register_encoding)
from fastpose.pose.encodings.transforms import (crop_keypoints, hflip, hflip_image, hflip_keypoints,
                                                hflip_parsing, resize_keypoints)

__all__ = ["ENCODINGS", "ENCODING_CHANNELS", "binary_closing", "crop_keypoints", "disks",
           "distance_maps", "encode", "get_encoding", "heatmaps", "hflip", "hflip_image",
           "hflip_keypoints", "hflip_parsing", "list_encodings", "peaks", "pose_mask_pg2",
           "pose_mask_potgan", "register_encoding", "resize_keypoints"]
