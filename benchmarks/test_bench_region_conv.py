"""region_conv at SPGNet's SEAN shapes, R=20 (CIHP classes), batch 8.

Cases ``C<c> S<s> k<k> <h>x<w>``: the convolution of the broadcast style codes ``[N, R, S]`` to C
channels with a k x k kernel on an h x w feature map.
  * synthetic preset (64x32 images, 1x1 SEAN convs, style_dim 16 + semantic width 16 = S 32, as
    SEANNorm calls it: gamma and beta of the whole blend in one call): the 24-channel norms at
    64x32 (C 48) and the 96-channel ones at 8x4 (C 192);
  * Market preset widths (style_dim 128, 3x3): C 64 at 128x64, 128 at 64x32, 256 at 32x16.

Implementations per row:
  ext   the kernel (tap table einsum + gather-sum over taps) on a uint8 label map
  ref   the reference: region_broadcast_ref, then a dense conv2d (the literal formulation)

fwd+bwd clears the gradients before each backward, as training does (zero_grad sets them to None).
"""

from __future__ import annotations

import pytest
import torch

from fastpose.ops import region_conv, region_conv_ref

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
N, R = 8, 20
# (C, S, k, h, w)
SHAPES = [(48, 32, 1, 64, 32), (192, 32, 1, 8, 4), (64, 128, 3, 128, 64), (128, 128, 3, 64, 32),
          (256, 128, 3, 32, 16)]


def parsing_like_labels(n, h, w, device):
    """Blocky label maps with long runs, like nearest-resized parsings."""
    coarse = torch.randint(0, R, (n, 1, max(1, h // 8), max(1, w // 4)), device=device).float()
    labels = torch.nn.functional.interpolate(coarse, size=(h, w), mode="nearest")[:, 0]
    return labels.to(torch.uint8)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "C{}xS{}xk{}x{}x{}".format(*s))
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("impl", ["ext", "ref"])
def test_region_conv(record, device, shape, pass_, impl):
    c, s, k, h, w = shape
    labels = parsing_like_labels(N, h, w, device)
    codes = torch.randn(N, R, s, device=device)
    weight = torch.randn(c, s, k, k, device=device) / (s * k * k) ** 0.5
    bias = torch.randn(c, device=device)
    if impl == "ext":
        def fn():
            return region_conv(codes, labels, weight, bias, impl="ext")
    else:
        def fn():
            return region_conv_ref(codes, labels, weight, bias)
    if pass_ == "fwd":
        def run():
            with torch.no_grad():
                return fn()
    else:
        params = (codes, weight, bias)
        for t in params:
            t.requires_grad_(True)
        grad = torch.randn(N, c, h, w, device=device)

        def run():
            for t in params:
                t.grad = None
            fn().backward(grad)
    record("region_conv", f"C{c} S{s} k{k} {h}x{w} N{N} R{R}", device, pass_, impl, run)
