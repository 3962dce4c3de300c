"""fastpose.ops.region_avg_pool / region_broadcast: kernel against reference, SEAN's loop,
gradients, opcheck, label resizing, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from conftest import TOL, assert_close_as_reference, devices_for
from fastpose.ops import (RegionAvgPool, region_avg_pool, region_avg_pool_ref, region_broadcast,
                          region_broadcast_ref, resize_labels)
from fastpose.ops.ref.region_pool import (label_masks, sean_region_broadcast_loop,
                                          sean_region_pool_loop)

DEVICES = devices_for("region_avg_pool")
# (N, C, H, W, R): odd sizes, size-1 dims, R=1, and R=20 (the CIHP classes; several regions empty).
SHAPES = [(2, 5, 7, 6, 4), (1, 1, 1, 1, 1), (3, 4, 13, 9, 20), (2, 3, 33, 65, 5), (1, 2, 40, 1, 3)]
SEG_KINDS = ["uint8", "int32", "int64", "onehot", "soft"]
LABEL_TYPES = {"uint8": torch.uint8, "int32": torch.int32, "int64": torch.int64}


def blocky_labels(n, h, w, r, device="cpu", dtype=torch.int64):
    """Piecewise-constant label maps like parsings (runs of equal labels), leaving some regions
    out when r is large."""
    coarse = torch.randint(0, r, (n, max(1, h // 3), max(1, w // 2)))
    labels = F.interpolate(coarse[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()
    return labels.to(dtype).to(device)


def make_seg(kind, n, h, w, r, dtype, device, requires_grad=False):
    labels = blocky_labels(n, h, w, r)
    if kind in LABEL_TYPES:
        return labels.to(LABEL_TYPES[kind]).to(device)
    if kind == "onehot":
        masks = label_masks(labels, r, dtype)
    else:  # soft, positive, and some regions entirely zero
        masks = torch.rand(n, r, h, w, dtype=dtype) * (torch.rand(n, r, 1, 1) > 0.3)
    return masks.to(device).requires_grad_(requires_grad)


def grads(out, inputs, grad_out):
    wanted = [t for t in inputs if t.requires_grad]
    return torch.autograd.grad(out, wanted, grad_out)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", SEG_KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_pool_matches_reference(device, dtype, kind, shape):
    n, c, h, w, r = shape
    feat = torch.randn(n, c, h, w, dtype=dtype, device=device, requires_grad=True)
    seg = make_seg(kind, n, h, w, r, dtype, device, requires_grad=kind == "soft")
    out = region_avg_pool(feat, seg, r, impl="ext")
    ref = region_avg_pool_ref(feat, seg, r)
    feat64 = feat.detach().double().requires_grad_(True)
    seg64 = seg.detach().double().requires_grad_(True) if seg.is_floating_point() else seg
    ref64 = region_avg_pool_ref(feat64, seg64, r)
    assert out.codes.shape == (n, r, c) and out.area.shape == (n, r)
    assert out.codes.dtype == dtype and out.area.dtype == dtype
    assert not out.area.requires_grad
    assert_close_as_reference(out.codes, ref.codes, ref64.codes)
    torch.testing.assert_close(out.area, ref.area, **TOL[dtype])
    grad_out = torch.randn_like(out.codes)
    g = grads(out.codes, (feat, seg), grad_out)
    g_ref = grads(ref.codes, (feat, seg), grad_out)
    g_ref64 = grads(ref64.codes, (feat64, seg64), grad_out.double())
    assert len(g) == (2 if kind == "soft" else 1)
    for a, b, c64 in zip(g, g_ref, g_ref64):
        assert_close_as_reference(a, b, c64)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", SEG_KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_broadcast_matches_reference(device, dtype, kind, shape):
    n, c, h, w, r = shape
    codes = torch.randn(n, r, c, dtype=dtype, device=device, requires_grad=True)
    seg = make_seg(kind, n, h, w, r, dtype, device, requires_grad=kind == "soft")
    out = region_broadcast(codes, seg, impl="ext")
    ref = region_broadcast_ref(codes, seg)
    codes64 = codes.detach().double().requires_grad_(True)
    seg64 = seg.detach().double().requires_grad_(True) if seg.is_floating_point() else seg
    ref64 = region_broadcast_ref(codes64, seg64)
    assert out.shape == (n, c, h, w) and out.dtype == dtype
    assert_close_as_reference(out, ref, ref64)
    grad_out = torch.randn_like(out)
    g = grads(out, (codes, seg), grad_out)
    g_ref = grads(ref, (codes, seg), grad_out)
    g_ref64 = grads(ref64, (codes64, seg64), grad_out.double())
    for a, b, c64 in zip(g, g_ref, g_ref64):
        assert_close_as_reference(a, b, c64)


@pytest.mark.parametrize("device", DEVICES)
def test_label_map_gives_exact_gather_and_counts(device):
    # A label-map broadcast copies codes exactly; areas are exact pixel counts.
    labels = blocky_labels(2, 11, 7, 6, device)
    codes = torch.randn(2, 6, 3, dtype=torch.float32, device=device)
    out = region_broadcast(codes, labels, impl="ext")
    expected = codes.gather(1, labels.flatten(1)[:, :, None].expand(-1, -1, 3)).transpose(1, 2)
    assert torch.equal(out, expected.reshape(2, 3, 11, 7))
    area = region_avg_pool(torch.rand(2, 3, 11, 7, device=device), labels, 6, impl="ext").area
    counts = torch.stack([torch.bincount(labels[i].flatten(), minlength=6) for i in range(2)])
    assert torch.equal(area, counts.float())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["int64", "soft"])
def test_gradcheck_float64(device, kind):
    n, c, h, w, r = 2, 3, 6, 5, 4
    feat = torch.randn(n, c, h, w, dtype=torch.float64, device=device, requires_grad=True)
    codes = torch.randn(n, r, c, dtype=torch.float64, device=device, requires_grad=True)
    if kind == "soft":  # masks bounded away from 0 so every region is populated
        seg = (0.2 + torch.rand(n, r, h, w, dtype=torch.float64, device=device)).requires_grad_(True)
    else:
        seg = blocky_labels(n, h, w, r, device)
    if kind == "soft":
        pool_args, pool = (feat, seg), lambda f, s: region_avg_pool(f, s, r, impl="ext").codes
        bcast_args, bcast = (codes, seg), lambda q, s: region_broadcast(q, s, impl="ext")
    else:
        pool_args, pool = (feat,), lambda f: region_avg_pool(f, seg, r, impl="ext").codes
        bcast_args, bcast = (codes,), lambda q: region_broadcast(q, seg, impl="ext")
    assert gradcheck(pool, pool_args, eps=1e-6, atol=1e-7)
    assert gradcheck(bcast, bcast_args, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["uint8", "int32", "int64", "soft"])
@pytest.mark.parametrize("seg_grad", [False, True])
def test_opcheck(device, kind, seg_grad):
    if seg_grad and kind != "soft":
        pytest.skip("label maps have no gradient")
    n, c, h, w, r = 2, 3, 5, 7, 4
    feat = torch.randn(n, c, h, w, dtype=torch.float64, device=device, requires_grad=True)
    codes = torch.randn(n, r, c, dtype=torch.float64, device=device, requires_grad=True)
    seg = make_seg(kind, n, h, w, r, torch.float64, device, requires_grad=seg_grad)
    ops = torch.ops.fastpose
    torch.library.opcheck(ops.region_avg_pool.default, (feat, seg, r))
    torch.library.opcheck(ops.region_broadcast.default, (codes, seg))
    fc, area = ops.region_avg_pool(feat.detach(), seg.detach(), r)
    torch.library.opcheck(ops.region_avg_pool_backward.default,
                          (torch.randn_like(fc), feat.detach(), seg.detach(), fc, area, seg_grad))
    torch.library.opcheck(ops.region_broadcast_backward.default,
                          (torch.randn(n, c, h, w, dtype=torch.float64, device=device), codes.detach(),
                           seg.detach(), seg_grad))


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_inputs(device):
    n, c, h, w, r = 2, 4, 9, 11, 5
    feat = torch.randn(n, h, w, c, dtype=torch.float64, device=device).permute(0, 3, 1, 2)
    labels = blocky_labels(n, w, h, r, device).transpose(1, 2)  # [n, h, w], transposed strides
    codes = torch.randn(n, c, r, dtype=torch.float64, device=device).transpose(1, 2)
    masks = torch.rand(n, h, w, r, dtype=torch.float64, device=device).permute(0, 3, 1, 2)
    assert not any(t.is_contiguous() for t in (feat, labels, codes, masks))
    for seg in (labels, masks):
        f = feat.detach().requires_grad_(True)
        q = codes.detach().requires_grad_(True)
        out, ref = region_avg_pool(f, seg, r, impl="ext"), region_avg_pool_ref(f, seg, r)
        torch.testing.assert_close(out.codes, ref.codes, **TOL[torch.float64])
        b, b_ref = region_broadcast(q, seg, impl="ext"), region_broadcast_ref(q, seg)
        torch.testing.assert_close(b, b_ref, **TOL[torch.float64])
        # non-contiguous upstream gradients too
        g_codes = torch.randn(n, c, r, dtype=torch.float64, device=device).transpose(1, 2)
        g_map = torch.randn(n, w, h, c, dtype=torch.float64, device=device).permute(0, 3, 2, 1)
        torch.testing.assert_close(torch.autograd.grad(out.codes, f, g_codes)[0],
                                   torch.autograd.grad(ref.codes, f, g_codes)[0], **TOL[torch.float64])
        torch.testing.assert_close(torch.autograd.grad(b, q, g_map)[0],
                                   torch.autograd.grad(b_ref, q, g_map)[0], **TOL[torch.float64])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["ext", "ref"])
def test_empty_regions_are_zero_and_reported(device, impl):
    n, c, h, w, r = 2, 3, 8, 6, 20
    labels = torch.randint(0, 5, (n, h, w), device=device)  # regions 5..19 empty
    labels[1][labels[1] == 2] = 3  # region 2 empty in image 1 only
    feat = torch.randn(n, c, h, w, dtype=torch.float64, device=device, requires_grad=True)
    out = region_avg_pool(feat, labels, r, impl=impl)
    empty = out.area == 0
    assert empty[:, 5:].all() and empty[1, 2] and not empty[0, 2] and not empty[:, :2].any()
    assert torch.equal(out.codes[empty], torch.zeros_like(out.codes[empty]))
    g = torch.randn_like(out.codes)
    (gf,) = torch.autograd.grad(out.codes, feat, g)
    assert torch.isfinite(gf).all()
    # grads put on empty regions' codes change nothing
    g2 = g.clone()
    g2[empty] = 1e6
    (gf2,) = torch.autograd.grad(region_avg_pool(feat, labels, r, impl=impl).codes, feat, g2)
    torch.testing.assert_close(gf, gf2, **TOL[torch.float64])
    # soft masks with an all-zero region: code 0, finite gradients to the masks
    masks = label_masks(labels, r, torch.float64).requires_grad_(True)
    soft = region_avg_pool(feat, masks, impl=impl)
    torch.testing.assert_close(soft.codes, out.codes, **TOL[torch.float64])
    (gm,) = torch.autograd.grad(soft.codes, masks, g)
    assert torch.isfinite(gm).all() and torch.equal(gm[:, 5:], torch.zeros_like(gm[:, 5:]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["ext", "ref"])
def test_pool_then_broadcast_is_identity_on_region_constant_maps(device, impl):
    n, c, h, w, r = 3, 6, 17, 12, 20
    labels = blocky_labels(n, h, w, r, device, torch.uint8)
    x = region_broadcast(torch.randn(n, r, c, dtype=torch.float64, device=device), labels, impl=impl)
    pooled = region_avg_pool(x, labels, r, impl=impl)
    torch.testing.assert_close(region_broadcast(pooled.codes, labels, impl=impl), x, **TOL[torch.float64])
    # and broadcast then pool is the identity on the codes of present regions
    codes = torch.randn(n, r, c, dtype=torch.float64, device=device)
    back = region_avg_pool(region_broadcast(codes, labels, impl=impl), labels, r, impl=impl)
    present = back.area > 0
    assert (~present).any()
    torch.testing.assert_close(back.codes[present], codes[present], **TOL[torch.float64])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reference_matches_sean_loop(dtype):
    n, c, h, w, r = 3, 8, 16, 12, 20
    labels = blocky_labels(n, h, w, r)
    onehot = label_masks(labels, r, dtype)
    feat = torch.randn(n, c, h, w, dtype=dtype)
    expected = sean_region_pool_loop(feat, onehot)
    assert (expected == 0).all(dim=2).any()  # some regions absent, left at 0 by SEAN
    for seg in (labels, onehot):
        torch.testing.assert_close(region_avg_pool_ref(feat, seg, r).codes, expected, **TOL[dtype])
        torch.testing.assert_close(region_avg_pool(feat, seg, r, impl="ext").codes, expected, **TOL[dtype])
    codes = torch.randn(n, r, c, dtype=dtype)
    expected_map = sean_region_broadcast_loop(codes, onehot)
    for seg in (labels, onehot):
        torch.testing.assert_close(region_broadcast_ref(codes, seg), expected_map, **TOL[dtype])
        torch.testing.assert_close(region_broadcast(codes, seg, impl="ext"), expected_map, **TOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_and_thread_count_independent(device):
    feat = torch.randn(4, 16, 32, 24, device=device)
    labels = blocky_labels(4, 32, 24, 20, device)
    threads = torch.get_num_threads()
    try:
        runs = []
        for t in (1, max(2, threads)):
            torch.set_num_threads(t)
            pooled = region_avg_pool(feat, labels, 20, impl="ext")
            runs.append((pooled.codes, region_broadcast(pooled.codes, labels, impl="ext")))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("device", DEVICES)
def test_half_precision_accumulates_in_float32(device, dtype):
    feat = torch.randn(2, 4, 20, 16, device=device).to(dtype)
    labels = blocky_labels(2, 20, 16, 6, device)
    out = region_avg_pool(feat, labels, 6, impl="ext")
    exact = region_avg_pool_ref(feat.float(), labels, 6)
    assert out.codes.dtype == dtype and out.area.dtype == torch.float32
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out.codes.float(), exact.codes, rtol=eps, atol=eps)
    codes = torch.randn(2, 6, 4, device=device).to(dtype)
    assert torch.equal(region_broadcast(codes, labels, impl="ext"),
                       region_broadcast_ref(codes.float(), labels).to(dtype))


@pytest.mark.parametrize("device", DEVICES)
def test_num_regions_inference_and_module(device):
    feat = torch.randn(2, 3, 6, 5, device=device)
    labels = torch.randint(0, 7, (2, 6, 5), device=device)
    labels[0, 0, 0] = 6
    inferred = region_avg_pool(feat, labels, impl="ext")
    assert inferred.codes.shape == (2, 7, 3)
    assert torch.equal(inferred.codes, region_avg_pool(feat, labels, 7, impl="ext").codes)
    masks = label_masks(labels, 9, feat.dtype)
    assert region_avg_pool(feat, masks, impl="ext").codes.shape == (2, 9, 3)
    module = RegionAvgPool(9, impl="ext")
    assert "num_regions=9" in repr(module)
    torch.testing.assert_close(module(feat, labels).codes, region_avg_pool(feat, masks, impl="ext").codes)


def test_compiles_with_torch_compile():
    feat = torch.randn(2, 4, 10, 8, requires_grad=True)
    labels = blocky_labels(2, 10, 8, 5)

    def fn(f):
        return region_broadcast(region_avg_pool(f, labels, 5, impl="ext").codes * 2, labels, impl="ext")

    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    out = compiled(feat)
    torch.testing.assert_close(out, fn(feat))
    g = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, feat, g)[0],
                               torch.autograd.grad(fn(feat), feat, g)[0])


# --- label resizing -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(64, 32), (32, 16), (16, 8), (21, 13), (128, 64), (7, 3), (100, 50)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64])
def test_resize_labels_matches_one_hot_interpolate(size, dtype):
    labels = torch.randint(0, 20, (2, 64, 32)).to(dtype)
    onehot = label_masks(labels, 20, torch.float32)
    expected = F.interpolate(onehot, size=size, mode="nearest").argmax(1)
    out = resize_labels(labels, size)
    assert out.dtype == dtype and out.shape == (2, *size)
    assert torch.equal(out.long(), expected)
    assert torch.equal(resize_labels(labels[0], size), out[0])


def test_resize_labels_bad_input():
    with pytest.raises(TypeError, match="integer label map"):
        resize_labels(torch.rand(1, 4, 4), (2, 2))
    with pytest.raises(ValueError, match="size must be two positive integers"):
        resize_labels(torch.zeros(1, 4, 4, dtype=torch.long), (0, 2))
    with pytest.raises(ValueError, match=r"label map \[N, H, W\]"):
        resize_labels(torch.zeros(1, 1, 4, 4, dtype=torch.long), (2, 2))


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["ext", "ref"])
@pytest.mark.parametrize("case,exc,match", [
    ("resolution", ValueError, r"seg is 4x3 but the features are 8x6 .*resize_labels\(seg, \(8, 6\)\)"),
    ("label_high", (ValueError, RuntimeError), r"seg has label 5 at \(n=1, y=2, x=3\), outside \[0, num_regions=5\)"),
    ("label_negative", (ValueError, RuntimeError), r"seg has label -1 at \(n=0, y=0, x=1\)"),
    ("float_labels", TypeError, "label map seg .* must be uint8, int32 or int64"),
    ("mask_dtype", TypeError, "masks seg .* must have the dtype of feat"),
    ("mask_regions", ValueError, "masks seg have R=4 regions but num_regions is 5"),
    ("batch", ValueError, "seg must have N=2 like feat"),
    ("feat_dims", ValueError, r"feat must be \[N, C, H, W\]"),
    ("seg_dims", ValueError, r"seg must be a label map \[N, H, W\] or masks \[N, R, H, W\]"),
    ("num_regions", ValueError, "num_regions must be a positive integer"),
    ("int_feat", TypeError, "feat must be a floating-point tensor"),
])
def test_pool_bad_inputs_raise_clear_errors(impl, case, exc, match):
    feat = torch.randn(2, 3, 8, 6)
    seg = torch.randint(0, 5, (2, 8, 6))
    r = 5
    if case == "resolution":
        seg = seg[:, ::2, ::2]
    elif case == "label_high":
        seg[1, 2, 3] = 5
    elif case == "label_negative":
        seg = seg.int()
        seg[0, 0, 1] = -1
    elif case == "float_labels":
        seg = seg.float()
    elif case == "mask_dtype":
        seg = torch.rand(2, 5, 8, 6, dtype=torch.float64)
    elif case == "mask_regions":
        seg = torch.rand(2, 4, 8, 6)
    elif case == "batch":
        seg = seg[:1]
    elif case == "feat_dims":
        feat = feat[0]
    elif case == "seg_dims":
        seg = seg[0]
    elif case == "num_regions":
        r = 0
    elif case == "int_feat":
        feat = feat.long()
    fn = (lambda: region_avg_pool(feat, seg, r, impl="ext")) if impl == "ext" else (
        lambda: region_avg_pool_ref(feat, seg, r))
    with pytest.raises(exc, match=match):
        fn()


@pytest.mark.parametrize("impl", ["ext", "ref"])
def test_broadcast_bad_inputs_raise_clear_errors(impl):
    fn = (lambda q, s: region_broadcast(q, s, impl="ext")) if impl == "ext" else region_broadcast_ref
    codes = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match=r"codes must be \[N, R, C\]"):
        fn(codes[0], torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises((ValueError, RuntimeError), match=r"seg has label 7 .*num_regions=5"):
        fn(codes, torch.full((2, 4, 4), 7, dtype=torch.uint8))
    with pytest.raises(ValueError, match="masks seg have R=4 regions but codes have R=5"):
        fn(codes, torch.rand(2, 4, 4, 4))
    with pytest.raises(ValueError, match="seg must have N=2 like codes"):
        fn(codes, torch.zeros(3, 4, 4, dtype=torch.long))


@pytest.mark.parametrize("case,match", [
    ("resolution", "seg is 4x3 but the features are 8x6"),
    ("label", r"seg has label 9 at \(n=0, y=1, x=2\), outside \[0, num_regions=5\)"),
    ("seg_grad", "a label map has no gradient"),
    ("area", r"area must be \[2, 5\]"),
    ("mask_regions", "masks seg have R=4 regions but codes have R=5"),
])
def test_kernel_checks_name_the_argument(case, match):
    ops = torch.ops.fastpose
    feat = torch.randn(2, 3, 8, 6)
    seg = torch.randint(0, 5, (2, 8, 6))
    with pytest.raises(RuntimeError, match=match):
        if case == "resolution":
            ops.region_avg_pool(feat, seg[:, ::2, ::2], 5)
        elif case == "label":
            seg[0, 1, 2] = 9
            ops.region_broadcast(torch.randn(2, 5, 3), seg)
        elif case == "seg_grad":
            codes, area = ops.region_avg_pool(feat, seg, 5)
            ops.region_avg_pool_backward(codes, feat, seg, codes, area, True)
        elif case == "area":
            codes, area = ops.region_avg_pool(feat, seg, 5)
            ops.region_avg_pool_backward(codes, feat, seg, codes, area[:, :, None], False)
        else:
            ops.region_broadcast(torch.randn(2, 5, 3), torch.rand(2, 4, 8, 6))


def test_mismatched_devices_raise():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    with pytest.raises(ValueError, match="one device"):
        region_avg_pool(torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long, device="cuda"), 2,
                        impl="ext")
