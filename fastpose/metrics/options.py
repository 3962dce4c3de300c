"""Settings of the metrics built from the registry; the papers' conventions as a preset."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Union

import torch

from fastpose.metrics.weights import PathLike


@dataclass
class MetricOptions:
    # where the networks and the SSIM kernels run
    device: Union[str, torch.device] = "cpu"
    # SSIM range L: "fixed" (255) or "generated" (max - min of each generated image, PATN)
    ssim_data_range: str = "fixed"
    # SSIM arithmetic; float64 equals scikit-image to 1e-15
    ssim_dtype: torch.dtype = torch.float64
    # white columns added on each side before SSIM and IS (PATN DeepFashion: 40, 176 -> 256)
    white_border: int = 0
    # fastpose.ops implementation for SSIM / pSSIM: "auto", "ext" or "ref"
    impl: str = "auto"
    # pSSIM's empty parts: "one" scores them 1 (the published script), "exclude" drops them
    pssim_empty: str = "one"
    # Inception Score splits (OpenAI's code: 10)
    is_splits: int = 10
    # IS network: "fid" (TF 2015-12-05 graph, 1008 classes, as the papers) or "torchvision"
    inception: str = "fid"
    # pt_inception-2015-12-05-6726825d.pth (else $FASTPOSE_FID_INCEPTION, then torch hub cache)
    fid_inception_weights: Optional[PathLike] = None
    # inception_v3_google-0cc3c7bd.pth (else $FASTPOSE_INCEPTION_V3, then torch hub cache)
    inception_v3_weights: Optional[PathLike] = None
    # alexnet-owt-7be5be79.pth (else $FASTPOSE_ALEXNET, then torch hub cache)
    alexnet_weights: Optional[PathLike] = None
    # vgg16-397923af.pth (else $FASTPOSE_VGG16, then torch hub cache)
    vgg16_weights: Optional[PathLike] = None
    # folder with the lpips alex.pth / vgg.pth (else $FASTPOSE_LPIPS_DIR, then the lpips wheel)
    lpips_lin_weights: Optional[PathLike] = None
    # images per forward pass of the Inception / LPIPS networks
    network_batch: int = 50
    # PCKh threshold, a fraction of the head box per axis
    pckh_alpha: float = 0.5
    # PCKh reference: "annotations" (the papers) or "detected" (re-detected on the target)
    pckh_reference: str = "annotations"
    # keypoint detector for PCKh: a registered name, a PoseEstimator, or None (keypoints given)
    pose_estimator: Any = "mediapipe"
    # TESTS ONLY: randomly initialised networks; values are meaningless and marked as such
    random_weights_for_testing: bool = False
    # networks built so far, shared by the metrics built with these options
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def paper(cls, dataset: str, **overrides: Any) -> "MetricOptions":
        """The conventions of the published evaluation scripts (PATN's getMetrics_*.py):
        SSIM's data_range from the generated image and, for DeepFashion, a 40-column white
        border before SSIM and IS."""
        if dataset not in ("market", "deepfashion"):
            raise ValueError(f"dataset must be 'market' or 'deepfashion', got {dataset!r}")
        base = cls(ssim_data_range="generated", white_border=40 if dataset == "deepfashion" else 0)
        return replace(base, **overrides)

    def network(self, key: tuple, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
        """A network built once per options object (eval mode, on ``device``, no gradients)."""
        if key not in self.cache:
            net = build().to(self.device).eval()
            net.requires_grad_(False)
            self.cache[key] = net
        return self.cache[key]
