"""part_stats: kernel vs reference vs the published repeat-and-multiply approach.

Each case times the part SSIM of equation (8) averaged to a scalar (the foreground term of
the pSSIM loss): the part statistics plus the tiny [N, K, C] formula, forward and
forward+backward (gradient to x, as in training). Labels: ``ext`` (fastpose kernel),
``ref`` (fastpose.ops.ref), ``published`` (the authors' approach, below).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from fastpose.ops import part_ssim, part_ssim_ref

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHAPES = [(32, 3, 128, 64), (8, 3, 256, 176), (32, 3, 256, 256)]
C1, C2 = 0.01 ** 2, 0.03 ** 2


def published_part_ssim(x: Tensor, y: Tensor, part_mask: Tensor, eps: float = 1e-6) -> Tensor:
    """Benchmark-only transcription of the published ``part_ssim`` (official-code-facts.md §2,
    kernel-anchors.md (b)): every operand is repeated to ``[N, K*C, H, W]`` and multiplied,
    with global weighted statistics w = m / (sum m + eps), sigma^2 = sum w x^2 - mu^2."""
    n, c, h, w = x.shape
    k = part_mask.shape[1]
    x_repeat = x.repeat(1, k, 1, 1)
    y_repeat = y.repeat(1, k, 1, 1)
    part_mask_repeat = part_mask.repeat_interleave(c, dim=1)
    mask_sum = part_mask_repeat.sum(dim=(2, 3), keepdim=True).repeat(1, 1, h, w)
    part_mask_avg = part_mask_repeat / (mask_sum + eps)
    mu_x = (part_mask_avg * x_repeat).sum(dim=(2, 3))
    mu_y = (part_mask_avg * y_repeat).sum(dim=(2, 3))
    sigma_x = (part_mask_avg * x_repeat * x_repeat).sum(dim=(2, 3)) - mu_x * mu_x
    sigma_y = (part_mask_avg * y_repeat * y_repeat).sum(dim=(2, 3)) - mu_y * mu_y
    sigma_xy = (part_mask_avg * x_repeat * y_repeat).sum(dim=(2, 3)) - mu_x * mu_y
    lum = (2 * mu_x * mu_y + C1) / (mu_x * mu_x + mu_y * mu_y + C1)
    cs = (2 * sigma_xy + C2) / (sigma_x + sigma_y + C2)
    return (lum * cs).mean()


IMPLS = {
    "ext": lambda x, y, m: part_ssim(x, y, m, impl="ext").mean(),
    "ref": lambda x, y, m: part_ssim_ref(x, y, m).mean(),
    "published": published_part_ssim,
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("k", [10, 11])
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("impl", list(IMPLS))
def test_part_stats(record, device, shape, k, pass_, impl):
    if shape == (32, 3, 256, 256) and device == "cpu":
        pytest.skip("the 256x256 shape is the GPU roofline case")
    fn = IMPLS[impl]
    n, c, h, w = shape
    x = torch.rand(shape, device=device)
    y = torch.rand(shape, device=device)
    m = torch.rand(n, k, h, w, device=device)
    if pass_ == "fwd":
        def run():
            with torch.no_grad():
                return fn(x, y, m)
    else:
        x.requires_grad_(True)

        def run():
            fn(x, y, m).backward()
    record("part_stats", f"{'x'.join(map(str, shape))} K={k}", device, pass_, impl, run)
