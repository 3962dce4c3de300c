"""fastpose.losses: SSIM, pSSIM and pSSIM* losses against the published formulas."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.autograd import gradcheck

from conftest import TOL, devices_for
from fastpose.losses import (SSIM_LOSSES, PSSIMConfig, PSSIMLoss, PSSIMStarLoss, SSIMLoss, pssim,
                             pssim_loss, pssim_star, pssim_star_loss, ssim_loss)
from fastpose.ops import part_ssim_ref, ssim_ref
from fastpose.pose import part_masks

DEVICES = devices_for("part_stats")
ONE = PSSIMConfig(empty="one")


def standing_keypoints(n: int) -> torch.Tensor:
    kp = torch.tensor([[14, 32], [28, 32], [30, 22], [48, 18], [64, 16], [30, 42], [47, 47],
                       [62, 50], [66, 26], [90, 25], [114, 24], [66, 38], [90, 40], [115, 42],
                       [12, 35], [12, 29], [13, 38], [13, 26]], dtype=torch.float32)
    return (kp + torch.randn(n, 18, 2) * 3).round()


def inputs(n=3, dtype=torch.float64, device="cpu", missing=True):
    kp = standing_keypoints(n)
    if missing and n > 1:
        kp[1, 9] = -1  # right knee: right thigh and shin empty
    x = torch.rand(n, 3, 128, 64, dtype=dtype, device=device)
    y = (0.7 * x + 0.3 * torch.rand_like(x)).clamp(0, 1)
    return x, y, part_masks(kp, (128, 64), dtype=dtype).to(device)


def published_pssim(x, y, masks):
    """FPart_BSSIM of the authors' code, transcribed from official-code-facts.md section 2:
    the global weighted part SSIM averaged over batch, parts and channels (empty parts score 1),
    plus the window-7/sigma-0.8 valid SSIM of the background-masked images, halved."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    parts = masks[:, 1:]
    w = parts / (parts.sum(dim=(2, 3), keepdim=True) + 1e-6)
    w, xs, ys = w[:, :, None], x[:, None], y[:, None]
    mx, my = (w * xs).sum((3, 4)), (w * ys).sum((3, 4))
    vx = (w * xs * xs).sum((3, 4)) - mx ** 2
    vy = (w * ys * ys).sum((3, 4)) - my ** 2
    cxy = (w * xs * ys).sum((3, 4)) - mx * my
    f = (((2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)) * ((2 * cxy + c2) / (vx + vy + c2))).mean()
    b = masks[:, :1]
    bssim = ssim_ref(b * x, b * y, window=7, sigma=0.8)
    return (f + bssim) / 2


@pytest.mark.parametrize("device", DEVICES)
def test_pssim_matches_published_with_empty_one(device):
    x, y, m = inputs(device=device)
    ours = pssim(x, y, m, config=ONE, impl="ext")
    torch.testing.assert_close(ours, published_pssim(x, y, m), **TOL[torch.float64])


def test_background_term_matches_pytorch_msssim():
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    x, y, m = inputs(missing=False)
    b = m[:, :1]
    theirs = pytorch_msssim.ssim(b * x, b * y, data_range=1.0, win_size=7, win_sigma=0.8)
    ours_bg = 2 * pssim(x, y, m, config=ONE, impl="ext") - part_ssim_ref(x, y, m[:, 1:]).mean()
    torch.testing.assert_close(ours_bg, theirs, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_parts_exclude_vs_one(device):
    x, y, m = inputs(device=device)
    per_part = part_ssim_ref(x, y, m[:, 1:]).mean(-1)  # [N, 10]
    present = m[:, 1:].sum((2, 3)) > 0.5
    assert present[1].sum() == 8 and present[0].all()
    bg = ssim_ref(m[:, :1] * x, m[:, :1] * y, window=7, sigma=0.8, reduction="per_image")
    excl = pssim(x, y, m, config=PSSIMConfig(reduction="per_image"), impl="ext")
    one = pssim(x, y, m, config=dataclasses.replace(ONE, reduction="per_image"), impl="ext")
    fg_excl = torch.stack([per_part[i][present[i]].mean() for i in range(3)])
    torch.testing.assert_close(excl, 0.5 * (bg + fg_excl), **TOL[torch.float64])
    torch.testing.assert_close(one, 0.5 * (bg + per_part.mean(1)), **TOL[torch.float64])
    # The published rule scores the two missing parts 1, inflating image 1 only.
    assert one[1] > excl[1]
    torch.testing.assert_close(one[[0, 2]], excl[[0, 2]], **TOL[torch.float64])


def test_image_without_visible_parts_scores_one_on_the_foreground():
    x, y, m = inputs(n=2, missing=False)
    m[0, 1:] = 0
    m[0, 0] = 1
    out = pssim(x, y, m, config=PSSIMConfig(reduction="per_image"), impl="ext")
    bg = ssim_ref(x[:1], y[:1], window=7, sigma=0.8)
    torch.testing.assert_close(out[0], 0.5 * (bg + 1), **TOL[torch.float64])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("empty", ["exclude", "one"])
def test_identical_images_give_one(device, dtype, empty):
    x, _, m = inputs(n=2, dtype=dtype, device=device)
    cfg = PSSIMConfig(empty=empty)
    for impl in ("ext", "ref"):
        assert pssim(x, x.clone(), m, config=cfg, impl=impl).item() == 1.0
        assert pssim_star(x, x.clone(), m, config=cfg, impl=impl).item() == 1.0
        assert pssim_loss(x, x.clone(), m, config=cfg, impl=impl).item() == 0.0
    assert ssim_loss(x, x.clone()).item() == 0.0
    assert pssim_loss(x, 1 - x, m, impl="ext") > 0.1


@pytest.mark.parametrize("device", DEVICES)
def test_pssim_star_is_mean_part_ssim_over_all_masks(device):
    x, y, m = inputs(device=device, missing=False)
    out = pssim_star(x, y, m, config=ONE, impl="ext")
    torch.testing.assert_close(out, part_ssim_ref(x, y, m).mean(), **TOL[torch.float64])
    torch.testing.assert_close(pssim_star_loss(x, y, m, config=ONE, impl="ext"), 1 - out)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", [pssim_loss, pssim_star_loss])
def test_kernel_path_matches_reference_path_with_gradients(device, fn):
    x, y, m = inputs(device=device)
    x.requires_grad_(True)
    m.requires_grad_(True)
    out = fn(x, y, m, impl="ext")
    ref = fn(x, y, m, impl="ref")
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    for a, b in zip(torch.autograd.grad(out, (x, m)), torch.autograd.grad(ref, (x, m))):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_gradcheck_float64():
    x, y, m = inputs(n=1, missing=False)
    x, y = x[:, :1, 40:52, 22:32].contiguous(), y[:, :1, 40:52, 22:32].contiguous()
    m = m[..., 40:52, 22:32].contiguous()
    x.requires_grad_(True)
    assert gradcheck(lambda a: pssim_loss(a, y, m, impl="ext"), (x,), eps=1e-6, atol=1e-6)
    assert gradcheck(lambda a: pssim_star_loss(a, y, m, impl="ext"), (x,), eps=1e-6, atol=1e-6)


def test_float32_training_step_is_finite():
    x, y, m = inputs(dtype=torch.float32)
    x.requires_grad_(True)
    loss = PSSIMLoss()(x, y, m)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_modules_and_registry():
    x, y, m = inputs()
    assert torch.equal(PSSIMLoss(ONE)(x, y, m), pssim_loss(x, y, m, config=ONE))
    assert torch.equal(PSSIMStarLoss()(x, y, m), pssim_star_loss(x, y, m))
    assert torch.equal(SSIMLoss(window=7, sigma=0.8)(x, y), ssim_loss(x, y, window=7, sigma=0.8))
    assert SSIMLoss(reduction="per_image")(x, y).shape == (3,)
    assert pssim(x, y, m, config=PSSIMConfig(reduction="per_image")).shape == (3,)
    assert set(SSIM_LOSSES) == {"ssim", "pssim", "pssim_star"}
    assert not SSIM_LOSSES["ssim"].needs_masks and SSIM_LOSSES["pssim"].needs_masks
    assert "empty='exclude'" in repr(PSSIMLoss())


def test_bad_inputs():
    x, y, m = inputs(n=2)
    with pytest.raises(ValueError, match=r"masks must be \[N, 1 \+ L, H, W\] = \[2, 1 \+ L, 128, 64\]"):
        pssim(x, y, m[:1])
    with pytest.raises(ValueError, match=r"got shape \(2, 11, 128, 60\)"):
        pssim(x, y, m[..., :60])
    with pytest.raises(ValueError, match=r"L >= 1"):
        pssim(x, y, m[:, :1])
    with pytest.raises(ValueError, match=r"masks must be"):
        pssim(x, y, m[0])
    with pytest.raises(ValueError, match="empty must be one of"):
        pssim(x, y, m, config=PSSIMConfig(empty="drop"))
    with pytest.raises(ValueError, match="reduction must be one of"):
        pssim_star(x, y, m, config=PSSIMConfig(reduction="none"))
    with pytest.raises(ValueError, match=r"y must have the shape of x"):
        pssim(x, y[:, :2], m)
    neg = m.clone()
    neg[0, 3, 5, 5] = -1
    with pytest.raises((ValueError, RuntimeError), match="non-negative"):
        pssim(x, y, neg, impl="ext")
    with pytest.raises(TypeError, match="masks must be a floating-point"):
        pssim(x, y, m.long())
