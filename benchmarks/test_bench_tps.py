"""tps_warp: kernel vs reference vs kornia at PoT-GAN's shapes, forward and forward+backward."""

from __future__ import annotations

import pytest
import torch

from fastpose.ops import regular_target, tps_warp, tps_warp_ref

try:
    from kornia.geometry.transform import get_tps_transform, warp_image_tps
except ImportError:  # optional external baseline
    get_tps_transform = warp_image_tps = None

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# PoT-GAN's pose transform module warps appearance features at 4 scales and the image
# (Market 128x64); 32x3x256x256 is the GPU roofline case.
SHAPES = [(32, 64, 64, 32), (32, 128, 32, 16), (32, 256, 16, 8), (32, 3, 128, 64),
          (32, 3, 256, 256)]
GRID = 5  # K = 25 control points


def kornia_warp(x, ctrl):
    target = regular_target(GRID).to(x.device, x.dtype)[None].expand(x.shape[0], -1, -1)
    # kornia maps output (destination) coordinates to input (source) ones: fit target -> ctrl.
    kernel_w, affine_w = get_tps_transform(target, ctrl)
    return warp_image_tps(x, target, kernel_w, affine_w, align_corners=False)


IMPLS = {
    "ext": lambda x, ctrl: tps_warp(x, ctrl, impl="ext"),
    "ref": lambda x, ctrl: tps_warp_ref(x, ctrl),
    "kornia": kornia_warp,
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("impl", list(IMPLS))
def test_tps_warp(record, device, shape, pass_, impl):
    if shape == (32, 3, 256, 256) and device == "cpu":
        pytest.skip("the 256x256 shape is the GPU roofline case")
    if impl == "kornia" and get_tps_transform is None:
        pytest.skip("kornia is not installed")
    fn = IMPLS[impl]
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=gen).to(device)
    target = regular_target(GRID).float()
    ctrl = (target[None] + 0.1 * torch.randn(shape[0], GRID * GRID, 2, generator=gen)).to(device)
    if pass_ == "fwd":
        def run():
            with torch.no_grad():
                return fn(x, ctrl)
    else:
        x.requires_grad_(True)
        ctrl.requires_grad_(True)
        grad = torch.rand(shape[0], shape[1], shape[2], shape[3], generator=gen).to(device)

        def run():
            # autograd.grad, not .backward(): in PoT-GAN the warped features are not leaves, so
            # nothing accumulates into a .grad there (that add pass over x would be timed alike
            # for every implementation and blur the ratios).
            torch.autograd.grad(fn(x, ctrl), (x, ctrl), grad)
    case = f"{'x'.join(map(str, shape))} K={GRID * GRID}"
    record("tps_warp", case, device, pass_, impl, run)
