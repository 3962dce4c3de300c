"""region_avg_pool / region_broadcast at SPGNet shapes, R=20 (CIHP classes).

Implementations per row (one table row per op, shape and pass):
  ext         the kernel on a uint8 label map (the fast path)
  ext_onehot  the kernel on one-hot float masks [N, R, H, W] (batched matmul path)
  ref         the pure-PyTorch reference on the label map (one-hot + bmm)
  einsum      the dense formulation on precomputed one-hot masks: einsum, then / area
  sean_loop   SEAN's per-(n, r) loop (masked_select / masked_scatter_) on one-hot masks

fwd+bwd clears x.grad before each backward, as training does (zero_grad sets grads to None), so
the timings do not include adding into an existing gradient. SEAN's loop takes seconds per call on
CPU: deselect it with -k "not sean_loop" for a quick run.
"""

from __future__ import annotations

import pytest
import torch

from fastpose.ops import region_avg_pool, region_avg_pool_ref, region_broadcast, region_broadcast_ref
from fastpose.ops.ref.region_pool import (label_masks, sean_region_broadcast_loop,
                                          sean_region_pool_loop)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHAPES = [(32, 128, 64, 32), (4, 128, 128, 128)]  # Market decoder scale, DeepFashion 128² scale
R = 20
IMPLS = ["ext", "ext_onehot", "ref", "einsum", "sean_loop"]


def einsum_pool(feat, masks):
    area = masks.sum((2, 3))
    sums = torch.einsum("nrhw,nchw->nrc", masks, feat)
    return torch.where(area[..., None] > 0, sums / area.clamp(min=1e-12)[..., None], 0)


def einsum_broadcast(codes, masks):
    return torch.einsum("nrc,nrhw->nchw", codes, masks)


def pool_impls(labels, masks):
    return {
        "ext": lambda f: region_avg_pool(f, labels, R, impl="ext").codes,
        "ext_onehot": lambda f: region_avg_pool(f, masks, R, impl="ext").codes,
        "ref": lambda f: region_avg_pool_ref(f, labels, R).codes,
        "einsum": lambda f: einsum_pool(f, masks),
        "sean_loop": lambda f: sean_region_pool_loop(f, masks),
    }


def broadcast_impls(labels, masks):
    return {
        "ext": lambda q: region_broadcast(q, labels, impl="ext"),
        "ext_onehot": lambda q: region_broadcast(q, masks, impl="ext"),
        "ref": lambda q: region_broadcast_ref(q, labels),
        "einsum": lambda q: einsum_broadcast(q, masks),
        "sean_loop": lambda q: sean_region_broadcast_loop(q, masks),
    }


def parsing_like_labels(n, h, w, device):
    """Blocky label maps with long runs, like nearest-resized parsings; all 20 labels occur."""
    coarse = torch.randint(0, R, (n, 1, max(1, h // 8), max(1, w // 4)), device=device).float()
    labels = torch.nn.functional.interpolate(coarse, size=(h, w), mode="nearest")[:, 0]
    return labels.to(torch.uint8)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("op", ["region_avg_pool", "region_broadcast"])
@pytest.mark.parametrize("impl", IMPLS)
def test_region_pool(record, device, shape, pass_, op, impl):
    n, c, h, w = shape
    if impl == "sean_loop" and device == "cpu" and shape != SHAPES[0]:
        pytest.skip("SEAN's loop on CPU is timed at the first shape only (seconds per call)")
    labels = parsing_like_labels(n, h, w, device)
    masks = label_masks(labels, R, torch.float32)
    if op == "region_avg_pool":
        x = torch.randn(n, c, h, w, device=device)
        fn = pool_impls(labels, masks)[impl]
        grad = torch.randn(n, R, c, device=device)
    else:
        x = torch.randn(n, R, c, device=device)
        fn = broadcast_impls(labels, masks)[impl]
        grad = torch.randn(n, c, h, w, device=device)
    if pass_ == "fwd":
        def run():
            with torch.no_grad():
                return fn(x)
    else:
        x.requires_grad_(True)

        def run():
            # as after optimizer.zero_grad() (set_to_none): the gradient is stored, not added
            x.grad = None
            fn(x).backward(grad)
    record(op, f"{'x'.join(map(str, shape))} R{R}", device, pass_, impl, run)
