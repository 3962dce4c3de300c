"""2D keypoint detectors behind one interface, for PCKh and for photos without keypoints.

A :class:`PoseEstimator` maps images ``[N, 3, H, W]`` (uint8, or float in [0, 1]) to OpenPose-18
keypoints ``[N, 18, 2]`` as (y, x) pixels (float), -1 for a missing joint, one person per image.

The one implementation is MediaPipe Pose (BlazePose, 33 landmarks), the optional extra
``pip install fastpose[pose]`` (``mediapipe==0.10.21``, the last release that ships its models in
the wheel and runs offline; complexity 1 = ``pose_landmark_full.tflite``). Its landmarks map to
OpenPose-18 with :data:`BLAZEPOSE_TO_OPENPOSE18`; a joint is missing when its visibility is below
0.5 or it lies outside the image (BlazePose extrapolates off-image landmarks). The mapping is
tested here; the MediaPipe call itself is not (mediapipe is not installed in fastpose's CI).
"""

from __future__ import annotations

import abc
from typing import Callable, Union

import torch
from torch import Tensor

from fastpose.metrics.weights import MetricUnavailable
from fastpose.pose import MISSING, NUM_KEYPOINTS

# OpenPose-18 joint i <- BlazePose landmark(s): nose, neck = mid-shoulders, R arm, L arm, R leg,
# L leg, then the eyes and ears with index 14/16 on the person's right side (the side of
# OpenPose's limb (2, 16) = right shoulder - 16).
BLAZEPOSE_TO_OPENPOSE18: tuple[Union[int, tuple[int, int]], ...] = (
    0, (11, 12), 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
NUM_BLAZEPOSE = 33


class PoseEstimator(abc.ABC):
    """images ``[N, 3, H, W]`` -> keypoints ``[N, 18, 2]`` (y, x) pixels, -1 = missing."""

    @abc.abstractmethod
    def __call__(self, images: Tensor) -> Tensor:
        ...


def blazepose_to_openpose18(landmarks: Tensor, size: tuple[int, int],
                            min_visibility: float = 0.5) -> Tensor:
    """Convert BlazePose landmarks to OpenPose-18 keypoints.

    Args:
        landmarks: ``[N, 33, 3]`` of (x, y) normalised to the image width / height and
            visibility in [0, 1]; a row of zeros is an image without a detection.
        size: image (H, W) in pixels.
        min_visibility: landmarks below this visibility are missing.

    Returns:
        ``[N, 18, 2]`` float64 (y, x) pixels, -1 for missing joints. The neck is the midpoint
        of the shoulders and is missing unless both are present.
    """
    if landmarks.dim() != 3 or tuple(landmarks.shape[1:]) != (NUM_BLAZEPOSE, 3):
        raise ValueError(f"landmarks must be [N, {NUM_BLAZEPOSE}, 3] (x, y, visibility), got "
                         f"{tuple(landmarks.shape)}")
    h, w = size
    lm = landmarks.double()
    yx = torch.stack([lm[..., 1] * h, lm[..., 0] * w], -1)  # [N, 33, 2]
    ok = ((lm[..., 2] >= min_visibility) & (yx[..., 0] >= 0) & (yx[..., 0] < h)
          & (yx[..., 1] >= 0) & (yx[..., 1] < w))
    out = yx.new_full((lm.shape[0], NUM_KEYPOINTS, 2), float(MISSING))
    for j, src in enumerate(BLAZEPOSE_TO_OPENPOSE18):
        if isinstance(src, tuple):
            a, b = src
            point, present = (yx[:, a] + yx[:, b]) / 2, ok[:, a] & ok[:, b]
        else:
            point, present = yx[:, src], ok[:, src]
        out[:, j] = torch.where(present[:, None], point, out[:, j])
    return out


class MediaPipePose(PoseEstimator):
    """MediaPipe Pose (legacy ``mp.solutions.pose``), one person per image, CPU.

    Args:
        model_complexity: 1 ships in the 0.10.21 wheel; 0 and 2 need their .tflite files
            copied in (see the README).
        min_detection_confidence: person detector threshold.
        min_visibility: landmark visibility below which a joint is missing.
    """

    def __init__(self, model_complexity: int = 1, min_detection_confidence: float = 0.5,
                 min_visibility: float = 0.5) -> None:
        try:
            import mediapipe as mp
        except ImportError:
            raise MetricUnavailable("the mediapipe pose estimator needs the optional extra: "
                                    "pip install 'fastpose[pose]' (mediapipe==0.10.21; see the "
                                    "README for the lean install)") from None
        self._pose = mp.solutions.pose.Pose(static_image_mode=True,
                                            model_complexity=model_complexity,
                                            min_detection_confidence=min_detection_confidence)
        self.min_visibility = min_visibility

    def __call__(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [N, 3, H, W], got {tuple(images.shape)}")
        rgb = images if images.dtype == torch.uint8 else (images.clamp(0, 1) * 255).round().byte()
        rgb = rgb.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        lms = torch.zeros(len(rgb), NUM_BLAZEPOSE, 3, dtype=torch.float64)
        for i, img in enumerate(rgb):
            result = self._pose.process(img)
            if result.pose_landmarks is not None:
                lms[i] = torch.tensor([(p.x, p.y, p.visibility)
                                       for p in result.pose_landmarks.landmark])
        return blazepose_to_openpose18(lms, tuple(images.shape[-2:]), self.min_visibility)


POSE_ESTIMATORS: dict[str, Callable[..., PoseEstimator]] = {"mediapipe": MediaPipePose}


def get_pose_estimator(name: str = "mediapipe", **kwargs) -> PoseEstimator:
    """Build a registered estimator; raises MetricUnavailable when its package is missing."""
    if name not in POSE_ESTIMATORS:
        raise KeyError(f"unknown pose estimator {name!r}; available: {sorted(POSE_ESTIMATORS)}")
    return POSE_ESTIMATORS[name](**kwargs)
