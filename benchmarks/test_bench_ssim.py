"""ssim: kernel vs reference vs pytorch-msssim, forward and forward+backward."""

from __future__ import annotations

import pytest
import torch

from fastpose.ops import ssim, ssim_ref

try:
    import pytorch_msssim
except ImportError:  # optional external baseline
    pytorch_msssim = None

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHAPES = [(32, 3, 128, 64), (8, 3, 256, 176), (32, 3, 256, 256)]
WINDOWS = [(11, 1.5), (7, 0.8)]


def impls(window, sigma):
    out = {
        "ext": lambda x, y: ssim(x, y, window=window, sigma=sigma, impl="ext"),
        "ref": lambda x, y: ssim_ref(x, y, window=window, sigma=sigma),
    }
    if pytorch_msssim is not None:
        out["pytorch_msssim"] = lambda x, y: pytorch_msssim.ssim(
            x, y, data_range=1.0, win_size=window, win_sigma=sigma, size_average=True)
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("window,sigma", WINDOWS, ids=["w11", "w7"])
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("impl", ["ext", "ref", "pytorch_msssim"])
def test_ssim(record, device, shape, window, sigma, pass_, impl):
    if shape == (32, 3, 256, 256) and device == "cpu":
        pytest.skip("the 256x256 shape is the GPU roofline case")
    fns = impls(window, sigma)
    if impl not in fns:
        pytest.skip(f"{impl} is not installed")
    fn = fns[impl]
    x = torch.rand(shape, device=device)
    y = torch.rand(shape, device=device)
    if pass_ == "fwd":
        def run():
            with torch.no_grad():
                return fn(x, y)
    else:
        x.requires_grad_(True)

        def run():
            fn(x, y).backward()
    case = f"{'x'.join(map(str, shape))} w{window}/σ{sigma}"
    record("ssim", case, device, pass_, impl, run)
