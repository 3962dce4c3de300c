"""What the metrics consume: a batch of generated images with their targets and keypoints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import torch
from torch import Tensor

from fastpose.pose import NUM_KEYPOINTS


class Memo:
    """Per-batch cache shared by the metrics (and by the rows of a table) of one batch.

    Keys contain ``id()`` of the batch's tensors; the memo lives no longer than the batch that
    holds those tensors, so ids cannot be reused while it exists.
    """

    def __init__(self) -> None:
        self._store: dict[tuple, Any] = {}

    def get(self, key: tuple, fn: Callable[[], Any]) -> Any:
        if key not in self._store:
            self._store[key] = fn()
        return self._store[key]

    def __len__(self) -> int:
        return len(self._store)


@dataclass
class EvalBatch:
    """N pairs to score. Images are ``[N, 3, H, W]``: uint8 in 0..255 (what files hold; the
    papers' scripts score saved images) or floating in [0, 1] (scored unquantised).

    Attributes:
        generated: the images being scored ``[N, 3, H, W]``.
        target: the ground-truth target images ``[N, 3, H, W]`` (SSIM, LPIPS, FID reference).
        source: the source images ``[N, 3, H, W]`` (only for the copy-source baseline row).
        target_keypoints: target pose ``[N, 18, 2]`` (y, x) pixels, -1 = missing (pose masks,
            part masks, PCKh reference).
        generated_keypoints: keypoints detected on ``generated`` ``[N, 18, 2]``; when absent,
            PCKh runs its pose estimator.
        target_mask: the target pose mask ``[N, 1, H, W]`` (0/1); when absent it is drawn from
            ``target_keypoints`` (:func:`pose_mask`).
        memo: cache shared by all metrics of this batch (pixels, masks, network outputs).
    """

    generated: Tensor
    target: Optional[Tensor] = None
    source: Optional[Tensor] = None
    target_keypoints: Optional[Tensor] = None
    generated_keypoints: Optional[Tensor] = None
    target_mask: Optional[Tensor] = None
    memo: Memo = field(default_factory=Memo, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_images("generated", self.generated)
        n, _, h, w = self.generated.shape
        for name in ("target", "source"):
            images = getattr(self, name)
            if images is not None:
                check_images(name, images)
                if images.shape != self.generated.shape:
                    raise ValueError(f"EvalBatch: {name} must have the shape of generated "
                                     f"{tuple(self.generated.shape)}, got {tuple(images.shape)}")
        for name in ("target_keypoints", "generated_keypoints"):
            kp = getattr(self, name)
            if kp is not None and tuple(kp.shape) != (n, NUM_KEYPOINTS, 2):
                raise ValueError(f"EvalBatch: {name} must be [N, {NUM_KEYPOINTS}, 2] = "
                                 f"[{n}, {NUM_KEYPOINTS}, 2] (y, x), got {tuple(kp.shape)}")
        if self.target_mask is not None and tuple(self.target_mask.shape) != (n, 1, h, w):
            raise ValueError(f"EvalBatch: target_mask must be [N, 1, H, W] = [{n}, 1, {h}, {w}], "
                             f"got {tuple(self.target_mask.shape)}")

    def __len__(self) -> int:
        return self.generated.shape[0]

    def with_generated(self, images: Tensor, keypoints: Optional[Tensor] = None) -> "EvalBatch":
        """The same pairs with other images in the generated role (copy-source and real-data rows);
        the memo is shared, so target-side work is done once for all rows."""
        return dataclasses.replace(self, generated=images, generated_keypoints=keypoints,
                                   memo=self.memo)

    def to(self, device: torch.device | str) -> "EvalBatch":
        moved = {f.name: (getattr(self, f.name).to(device)
                          if isinstance(getattr(self, f.name), Tensor) else getattr(self, f.name))
                 for f in dataclasses.fields(self) if f.name != "memo"}
        return EvalBatch(**moved)

    def require(self, metric: str, *names: str) -> None:
        for name in names:
            if getattr(self, name) is None:
                raise ValueError(f"metric {metric!r} needs EvalBatch.{name}, which is None")


def from_pair_batch(batch: Mapping[str, Any], generated: Tensor,
                    value_range: tuple[float, float] = (-1.0, 1.0)) -> EvalBatch:
    """The :class:`EvalBatch` of a collated batch of :class:`fastpose.data.PairDataset` samples
    and the images generated for it.

    Args:
        batch: ``"source_image"``, ``"target_image"`` ``[N, 3, H, W]`` in ``value_range``,
            ``"target_keypoints"`` ``[N, 18, 2]``, optionally the target pose mask
            ``"target_pose_mask_pg2"`` ``[N, 1, H, W]`` (:data:`TARGET_MASK_ENCODING`; else the
            mask metrics draw it from the keypoints).
        generated: ``[N, 3, H, W]`` uint8 (files), or floating in ``value_range`` (a model's
            output), which is quantised as saving it as PNG would (:func:`to_uint8`), so the
            scores are those of the saved images, as in the papers' scripts.
    """

    def as_uint8(images: Tensor) -> Tensor:
        return images if images.dtype == torch.uint8 else to_uint8(images, value_range)

    mask = batch.get(TARGET_MASK_ENCODING)
    if mask is not None and mask.dim() == 3:  # [N, H, W] masks of a custom dataset
        mask = mask.unsqueeze(1)
    keypoints = batch.get("target_keypoints")
    source = batch.get("source_image")
    return EvalBatch(as_uint8(generated), as_uint8(batch["target_image"]),
                     source=None if source is None else as_uint8(source),
                     target_keypoints=None if keypoints is None else keypoints.float(),
                     target_mask=mask)


def check_images(name: str, images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"EvalBatch: {name} must be [N, 3, H, W] RGB images, got {shape}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"EvalBatch: {name} must be uint8 (0..255) or floating in [0, 1], "
                         f"got {images.dtype}")


def to_uint8(images: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Quantise model outputs in ``value_range`` (generators: [-1, 1]) to uint8 the way saving
    them as PNG does (clamp, scale, round), so in-memory scores equal scores of saved files."""
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    # float64: float32 arithmetic would round some values just below a .5 the other way
    x = (images.detach().double() - lo) * (255.0 / (hi - lo))
    return x.round_().clamp_(0, 255).to(torch.uint8)


def pixels(images: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """Images as 0..255 values in ``dtype`` (uint8 exactly; floats times 255, not rounded), as a
    new tensor the caller may modify in place."""
    if images.dtype == torch.uint8:
        return images.to(dtype, copy=True)
    return images.to(dtype) * 255.0


def unit(images: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Images in [0, 1] in ``dtype``."""
    if images.dtype == torch.uint8:
        return images.to(dtype) / 255.0
    return images.to(dtype)


def white_border(pix: Tensor, width: int) -> Tensor:
    """Add ``width`` columns of white (255) on both sides of 0..255 images ``[N, C, H, W]``
    (PATN's ``addBounding(bound=40)`` for DeepFashion: 176 -> 256 wide)."""
    if width <= 0:
        return pix
    return torch.nn.functional.pad(pix, (width, width), value=255.0)


def pose_mask(batch: EvalBatch) -> Tensor:
    """The target pose mask ``[N, 1, H, W]`` (float 0/1): ``batch.target_mask`` or drawn from
    ``batch.target_keypoints`` by ``fastpose.pose.pose_mask_pg2`` (see :data:`POSE_MASK_FN`)."""
    if batch.target_mask is not None:
        return batch.target_mask.to(torch.float32)
    batch.require("mask metrics", "target_keypoints")
    draw = pose_function(POSE_MASK_FN)
    kp = batch.target_keypoints
    h, w = batch.generated.shape[-2:]
    return batch.memo.get(("pose_mask", id(kp)),
                          lambda: draw(kp, (h, w)).to(batch.generated.device, torch.float32)
                          .reshape(len(batch), 1, h, w))


def part_masks(batch: EvalBatch) -> Tensor:
    """The target part masks of the part-SSIM paper ``[N, 11, H, W]`` (background first),
    drawn from ``batch.target_keypoints`` by ``fastpose.pose``."""
    batch.require("pssim", "target_keypoints")
    draw = pose_function(PART_MASK_FN)
    kp = batch.target_keypoints
    h, w = batch.generated.shape[-2:]
    return batch.memo.get(("part_masks", id(kp)),
                          lambda: draw(kp, (h, w)).to(batch.generated.device, torch.float32))


# Names of the mask functions in fastpose.pose (written by the pose-encodings and part-SSIM
# issues): keypoints [N, 18, 2] (y, x) and the image size (H, W) in, masks out. The pose mask is
# the PG2/PATN limb mask (23 limbs, radius 4, 5x5 closing) -> [N, 1, H, W]. PATN's evaluation
# (produce_ma_mask) draws each limb as an 8-pixel-wide polygon plus radius-4 joint disks where
# PG2's mask chains radius-4 disks along it; the pose-encodings README measures the two to differ
# on about 4% of the mask's pixels. The part masks are the background + 10 Gaussian parts of the part-SSIM paper ->
# [N, 11, H, W].
POSE_MASK_FN = "pose_mask_pg2"
PART_MASK_FN = "part_masks"
# The same mask as a PairDataset encoding of the target (computed in the loader workers).
TARGET_MASK_ENCODING = f"target_{POSE_MASK_FN}"


def pose_function(name: str) -> Callable:
    import fastpose.pose as pose  # the module is light; imported here to read the current names

    fn = getattr(pose, name, None)
    if fn is None:
        from fastpose.metrics.weights import MetricUnavailable
        raise MetricUnavailable(f"fastpose.pose.{name} is not available in this build "
                                f"(the pose-mask functions are not installed)")
    return fn
