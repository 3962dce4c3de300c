"""SSIM / mask-SSIM / pSSIM metrics: equal to scikit-image (the papers' scripts) on uint8 images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fastpose.pose
from fastpose.metrics import (EvalBatch, MetricOptions, SSIMMetric, build_metric, ssim_per_image,
                              to_uint8)
from fastpose.metrics.batch import PART_MASK_FN, POSE_MASK_FN

structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity

HAS_POSE_MASK = hasattr(fastpose.pose, POSE_MASK_FN)
HAS_PART_MASKS = hasattr(fastpose.pose, PART_MASK_FN)
try:
    from fastpose.losses import pssim as _pssim  # noqa: F401
    HAS_PSSIM = True
except ImportError:
    HAS_PSSIM = False


def skimage_ssim(gen: torch.Tensor, ref: torch.Tensor, data_range) -> list[float]:
    """PATN's getMetrics_*.py call, one image at a time, on HWC uint8 arrays."""
    out = []
    for g, r in zip(gen, ref):
        g = g.permute(1, 2, 0).numpy()
        r = r.permute(1, 2, 0).numpy()
        L = float(g.max()) - float(g.min()) if data_range == "generated" else data_range
        out.append(structural_similarity(r, g, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, channel_axis=-1,
                                         data_range=L))
    return out


def image_pairs(n: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Structured uint8 images (smooth gradients + blobs) and noisy, shifted versions of them."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = []
    for i in range(n):
        c = torch.rand(3, 3, generator=g)
        img = c[:, 0, None, None] * yy + c[:, 1, None, None] * xx + c[:, 2, None, None] * torch.sin(
            7 * (xx + i) * yy)
        base.append(img)
    x = torch.stack(base)
    x = (x - x.amin()) / (x.amax() - x.amin()) * 200 + 20
    y = x.roll(2, dims=-1) + torch.randn(x.shape, generator=g) * 15
    return x.round().clamp(0, 255).to(torch.uint8), y.round().clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("h,w", [(128, 64), (37, 29)])
@pytest.mark.parametrize("data_range", [255.0, "generated"])
def test_ssim_equals_skimage_uint8(h, w, data_range):
    gen, ref = image_pairs(4, h, w)
    noise = torch.randint(0, 256, (2, 3, h, w), dtype=torch.uint8)
    gen, ref = torch.cat([gen, noise]), torch.cat([ref, noise.flip(-1)])
    ours, _ = ssim_per_image(gen, ref, data_range="fixed" if data_range == 255.0 else data_range)
    expected = torch.tensor(skimage_ssim(gen, ref, data_range), dtype=torch.float64)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)


def test_ssim_float32_close_to_skimage():
    gen, ref = image_pairs(3, 128, 64, seed=1)
    ours, _ = ssim_per_image(gen, ref, data_range="generated", dtype=torch.float32)
    expected = torch.tensor(skimage_ssim(gen, ref, "generated"))
    torch.testing.assert_close(ours.double(), expected.double(), rtol=0, atol=1e-5)


def test_white_border_equals_padded_skimage():
    gen, ref = image_pairs(2, 64, 44, seed=2)
    ours, _ = ssim_per_image(gen, ref, data_range="generated", white_border_width=10)
    pad = lambda t: torch.nn.functional.pad(t, (10, 10), value=255)  # noqa: E731
    expected = torch.tensor(skimage_ssim(pad(gen), pad(ref), "generated"), dtype=torch.float64)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    plain, _ = ssim_per_image(gen, ref, data_range="generated")
    assert (ours > plain).all()  # the white columns are identical in both images


def test_mask_ssim_masks_both_images_as_patn():
    gen, ref = image_pairs(3, 48, 32, seed=3)
    mask = torch.zeros(3, 1, 48, 32)
    mask[:, :, 10:40, 8:24] = 1
    batch = EvalBatch(gen, ref, target_mask=mask)
    metric = SSIMMetric(masked=True, data_range="generated")
    metric.update(batch)
    masked = lambda t: (t * mask.to(torch.uint8))  # noqa: E731  (uint8 image * bool mask)
    expected = np.mean(skimage_ssim(masked(gen), masked(ref), "generated"))
    assert metric.compute().value == pytest.approx(expected, abs=1e-12)


def test_float_images_equal_uint8_images():
    gen, ref = image_pairs(2, 40, 30, seed=4)
    a, _ = ssim_per_image(gen, ref)
    b, _ = ssim_per_image(gen.double() / 255, ref.double() / 255)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_to_uint8_quantises_like_saving_a_png():
    x = torch.tensor([-1.5, -1.0, -0.002, 0.0, 0.5, 1.0, 2.0]).view(1, 1, 1, 7).expand(1, 3, 1, 7)
    assert to_uint8(x)[0, 0, 0].tolist() == [0, 0, 127, 128, 191, 255, 255]
    assert to_uint8(torch.full((1, 3, 1, 1), 0.5), (0, 1)).flatten().tolist() == [128] * 3
    with pytest.raises(ValueError, match="value_range"):
        to_uint8(x, (1, 1))


def test_identical_images_score_one_and_constant_generated_falls_back():
    gen, _ = image_pairs(2, 32, 32, seed=5)
    values, constant = ssim_per_image(gen, gen, data_range="generated")
    torch.testing.assert_close(values, torch.ones(2, dtype=torch.float64))
    assert constant == 0
    flat = torch.full((1, 3, 32, 32), 128, dtype=torch.uint8)
    values, constant = ssim_per_image(flat, gen[:1], data_range="generated")
    assert constant == 1 and torch.isfinite(values).all()
    fixed, _ = ssim_per_image(flat, gen[:1], data_range="fixed")
    torch.testing.assert_close(values, fixed)  # L = 255 for a constant generated image


def test_metric_accumulates_the_mean_over_batches():
    gen, ref = image_pairs(5, 32, 24, seed=6)
    metric = build_metric("ssim", MetricOptions(ssim_data_range="generated"))
    metric.update(EvalBatch(gen[:2], ref[:2]))
    metric.update(EvalBatch(gen[2:], ref[2:]))
    result = metric.compute()
    assert result.count == 5
    assert result.value == pytest.approx(np.mean(skimage_ssim(gen, ref, "generated")), abs=1e-12)
    metric.reset()
    with pytest.raises(RuntimeError, match="no pairs"):
        metric.compute()


def test_bad_inputs_raise():
    gen, ref = image_pairs(1, 32, 24)
    with pytest.raises(ValueError, match="needs EvalBatch.target"):
        build_metric("ssim").update(EvalBatch(gen))
    with pytest.raises(ValueError, match="data_range"):
        ssim_per_image(gen, ref, data_range="max")
    with pytest.raises(ValueError, match=r"target must have the shape"):
        EvalBatch(gen, ref[..., :20])
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        EvalBatch(gen[:, :1])
    with pytest.raises(ValueError, match="ssim_data_range"):
        build_metric("ssim", MetricOptions(ssim_data_range="dynamic"))


def keypoints_in(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    kp = torch.stack([torch.randint(8, h - 8, (n, 18), generator=g),
                      torch.randint(4, w - 4, (n, 18), generator=g)], -1).float()
    kp[:, 15:] = -1  # some missing joints
    return kp


@pytest.mark.skipif(not HAS_POSE_MASK, reason=f"fastpose.pose.{POSE_MASK_FN} (pose masks) is not "
                                              f"in this build yet; enabled once it is merged")
def test_mask_ssim_from_keypoints_uses_the_pose_mask():
    gen, ref = image_pairs(3, 128, 64, seed=7)
    kp = keypoints_in(3, 128, 64)
    mask = getattr(fastpose.pose, POSE_MASK_FN)(kp, (128, 64))
    a = build_metric("mask_ssim")
    a.update(EvalBatch(gen, ref, target_keypoints=kp))
    b = SSIMMetric(masked=True)
    b.update(EvalBatch(gen, ref, target_mask=mask))
    assert a.compute().value == pytest.approx(b.compute().value, abs=1e-12)
    assert 0 < mask.mean() < 1


@pytest.mark.skipif(not (HAS_PART_MASKS and HAS_PSSIM),
                    reason="fastpose.losses.pssim / fastpose.pose.part_masks are not in this build "
                           "yet; enabled once they are merged")
def test_pssim_metric_is_the_mean_of_the_loss_function():
    from fastpose.losses import PSSIMConfig, pssim

    gen, ref = image_pairs(4, 128, 64, seed=8)
    kp = keypoints_in(4, 128, 64, seed=1)
    metric = build_metric("pssim")
    metric.update(EvalBatch(gen[:3], ref[:3], target_keypoints=kp[:3]))
    metric.update(EvalBatch(gen[3:], ref[3:], target_keypoints=kp[3:]))
    masks = getattr(fastpose.pose, PART_MASK_FN)(kp, (128, 64))
    expected = pssim(gen.float() / 255, ref.float() / 255, masks,
                     config=PSSIMConfig(empty="one"))
    assert metric.compute().value == pytest.approx(float(expected), abs=1e-6)
    same = build_metric("pssim")
    same.update(EvalBatch(gen, gen, target_keypoints=kp))
    assert same.compute().value == pytest.approx(1.0, abs=1e-6)
