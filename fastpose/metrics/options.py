"""Settings shared by the metrics built from the registry, and the papers' conventions as presets."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Union

import torch

from fastpose.metrics.weights import PathLike


@dataclass
class MetricOptions:
    device: Union[str, torch.device] = "cpu"  # where the networks and the SSIM kernels run
    ssim_data_range: str = "fixed"  # "fixed": L = 255; "generated": L = max - min of each generated image (PATN's scripts)
    ssim_dtype: torch.dtype = torch.float64  # SSIM arithmetic; float64 equals scikit-image to 1e-15
    white_border: int = 0  # white columns added on each side before SSIM and IS (PATN DeepFashion: 40, 176 -> 256 wide)
    impl: str = "auto"  # fastpose.ops implementation for SSIM / pSSIM: "auto", "ext" or "ref"
    pssim_empty: str = "one"  # pSSIM's empty parts: "one" scores them 1 (the published script), "exclude" drops them
    is_splits: int = 10  # Inception Score splits (OpenAI's code: 10)
    inception: str = "fid"  # IS network: "fid" (2015-12-05 TF graph, 1008 classes, as the papers) or "torchvision" (ImageNet, 1000)
    fid_inception_weights: Optional[PathLike] = None  # pt_inception-2015-12-05-6726825d.pth (else $FASTPOSE_FID_INCEPTION, torch hub cache)
    inception_v3_weights: Optional[PathLike] = None  # inception_v3_google-0cc3c7bd.pth (else $FASTPOSE_INCEPTION_V3, torch hub cache)
    alexnet_weights: Optional[PathLike] = None  # alexnet-owt-7be5be79.pth (else $FASTPOSE_ALEXNET, torch hub cache)
    vgg16_weights: Optional[PathLike] = None  # vgg16-397923af.pth (else $FASTPOSE_VGG16, torch hub cache)
    lpips_lin_weights: Optional[PathLike] = None  # folder with alex.pth / vgg.pth (else $FASTPOSE_LPIPS_DIR, the lpips wheel)
    network_batch: int = 50  # images per forward pass of Inception / LPIPS networks
    pckh_alpha: float = 0.5  # PCKh threshold as a fraction of the head box (per axis)
    pckh_reference: str = "annotations"  # PCKh reference keypoints: "annotations" (PATN) or "detected" (re-detected on the target)
    pose_estimator: Any = "mediapipe"  # PCKh keypoint detector: a registered name or a PoseEstimator object
    random_weights_for_testing: bool = False  # TESTS ONLY: randomly initialised networks; values are meaningless and marked so
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # networks built so far, shared by metrics

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
