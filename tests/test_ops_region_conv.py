"""fastpose.ops.region_conv: kernel against the dense conv of the broadcast, gradients to codes,
weight and bias, the kernel-level op (gradcheck, opcheck), one-hot convolution, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from conftest import TOL, assert_close_as_reference, devices_for
from fastpose.ops import region_broadcast_ref, region_conv, region_conv_ref, region_tap_table

DEVICES = devices_for("region_conv")
# (N, R, S, C, H, W, kh, kw): odd sizes, H or W = 1, R = 1, 1x1 / 3x3 / 5x5 / 1x3 / 3x1 kernels,
# a kernel larger than the image, R = 20 with several labels absent.
SHAPES = [
    (2, 4, 3, 5, 7, 6, 3, 3),
    (1, 1, 2, 3, 5, 4, 3, 3),
    (3, 20, 6, 17, 13, 9, 1, 1),
    (2, 6, 4, 7, 9, 11, 5, 5),
    (2, 5, 3, 4, 1, 9, 1, 3),
    (1, 5, 3, 4, 8, 1, 3, 1),
    (2, 3, 2, 3, 2, 3, 5, 5),
    (2, 20, 5, 33, 16, 8, 3, 3),
]
LABEL_TYPES = [torch.uint8, torch.int32, torch.int64]


def blocky_labels(n, h, w, r, device="cpu", dtype=torch.int64):
    """Piecewise-constant label maps like parsings (runs of equal labels); with r large, some
    labels are absent."""
    coarse = torch.randint(0, r, (n, max(1, h // 3), max(1, w // 2)))
    labels = F.interpolate(coarse[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()
    return labels.to(dtype).to(device)


def make_inputs(shape, dtype, device, bias=True, label_dtype=torch.int64, random_labels=False):
    n, r, s, c, h, w, kh, kw = shape
    codes = torch.randn(n, r, s, dtype=dtype, device=device, requires_grad=True)
    weight = torch.randn(c, s, kh, kw, dtype=dtype, device=device, requires_grad=True)
    b = torch.randn(c, dtype=dtype, device=device, requires_grad=True) if bias else None
    labels = (torch.randint(0, r, (n, h, w)) if random_labels else blocky_labels(n, h, w, r)).to(label_dtype)
    return codes, labels.to(device), weight, b


def grads(out, inputs, grad_out):
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    return torch.autograd.grad(out, wanted, grad_out)


def detached64(*ts):
    return [None if t is None else t.detach().double().requires_grad_(True) for t in ts]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(device, dtype, shape):
    codes, seg, weight, bias = make_inputs(shape, dtype, device, random_labels=shape[2] % 2 == 0)
    out = region_conv(codes, seg, weight, bias, impl="ext")
    ref = region_conv_ref(codes, seg, weight, bias)
    codes64, weight64, bias64 = detached64(codes, weight, bias)
    ref64 = region_conv_ref(codes64, seg, weight64, bias64)
    n, _, _, c, h, w, _, _ = shape
    assert out.shape == (n, c, h, w) and out.dtype == dtype
    assert_close_as_reference(out, ref, ref64)
    grad_out = torch.randn_like(out)
    g = grads(out, (codes, weight, bias), grad_out)
    g_ref = grads(ref, (codes, weight, bias), grad_out)
    g_ref64 = grads(ref64, (codes64, weight64, bias64), grad_out.double())
    assert len(g) == 3
    for a, b, c64 in zip(g, g_ref, g_ref64):
        assert_close_as_reference(a, b, c64)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("label_dtype", LABEL_TYPES)
def test_no_bias_label_dtypes_and_exact_1x1(device, label_dtype):
    # A 1x1 region_conv is the broadcast of codes @ weight^T; without bias, with every label dtype.
    codes, seg, weight, _ = make_inputs((2, 6, 4, 5, 9, 7, 1, 1), torch.float64, device, bias=False,
                                        label_dtype=label_dtype)
    out = region_conv(codes, seg, weight, impl="ext")
    expected = region_broadcast_ref(codes @ weight[:, :, 0, 0].T, seg)
    torch.testing.assert_close(out, expected, **TOL[torch.float64])
    torch.testing.assert_close(out, region_conv_ref(codes, seg, weight), **TOL[torch.float64])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (5, 5), (1, 3)])
def test_one_hot_convolution_with_identity_codes(device, kernel):
    # conv(one_hot(seg)) == region_conv(eye(R), seg): SPADE's first conv on the parsing.
    n, r, c, h, w = 2, 20, 6, 11, 7
    seg = torch.randint(0, 5, (n, h, w), device=device)  # labels 5..19 absent
    weight = torch.randn(c, r, *kernel, dtype=torch.float64, device=device)
    bias = torch.randn(c, dtype=torch.float64, device=device)
    onehot = F.one_hot(seg, r).permute(0, 3, 1, 2).double()
    expected = F.conv2d(onehot, weight, bias, padding=(kernel[0] // 2, kernel[1] // 2))
    eye = torch.eye(r, dtype=torch.float64, device=device).expand(n, r, r)
    torch.testing.assert_close(region_conv(eye, seg, weight, bias, impl="ext"), expected, **TOL[torch.float64])


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_inputs_and_gradients(device):
    n, r, s, c, h, w = 2, 5, 4, 6, 9, 7
    codes = torch.randn(n, s, r, dtype=torch.float64, device=device).transpose(1, 2).requires_grad_(True)
    weight = torch.randn(3, 3, s, c, dtype=torch.float64, device=device).permute(3, 2, 0, 1).requires_grad_(True)
    bias = torch.randn(2 * c, dtype=torch.float64, device=device)[::2].requires_grad_(True)
    seg = blocky_labels(n, w, h, r, device).transpose(1, 2)
    assert not (codes.is_contiguous() or weight.is_contiguous() or bias.is_contiguous() or seg.is_contiguous())
    out = region_conv(codes, seg, weight, bias, impl="ext")
    ref = region_conv_ref(codes, seg, weight, bias)
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    g_map = torch.randn(n, w, h, c, dtype=torch.float64, device=device).permute(0, 3, 2, 1)
    for a, b in zip(grads(out, (codes, weight, bias), g_map), grads(ref, (codes, weight, bias), g_map)):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernel", [(3, 3), (1, 3), (5, 1)])
def test_gradcheck_kernel_level_op(device, kernel):
    n, r, c, h, w = 2, 4, 3, 5, 4
    kh, kw = kernel
    table = torch.randn(n, kh * kw, r, c, dtype=torch.float64, device=device, requires_grad=True)
    seg = blocky_labels(n, h, w, r, device)
    assert gradcheck(lambda t: torch.ops.fastpose.region_conv(t, seg, kh, kw), (table,))


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_composite(device):
    codes, seg, weight, bias = make_inputs((2, 4, 3, 3, 5, 4, 3, 3), torch.float64, device)
    assert gradcheck(lambda q, wt, b: region_conv(q, seg, wt, b, impl="ext"), (codes, weight, bias))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    table = torch.randn(2, 9, 4, 3, device=device, requires_grad=True)
    seg = blocky_labels(2, 6, 5, 4, device, torch.uint8)
    torch.library.opcheck(torch.ops.fastpose.region_conv.default, (table, seg, 3, 3))
    grad = torch.randn(2, 3, 6, 5, device=device)
    torch.library.opcheck(torch.ops.fastpose.region_conv_backward.default, (grad, seg, 3, 3, 4))


@pytest.mark.parametrize("device", DEVICES)
def test_tap_table_puts_bias_on_the_centre_tap(device):
    codes = torch.randn(2, 3, 4, device=device)
    weight = torch.randn(5, 4, 3, 1, device=device)
    bias = torch.randn(5, device=device)
    table = region_tap_table(codes, weight, bias)
    plain = region_tap_table(codes, weight)
    assert table.shape == (2, 3, 3, 5)
    torch.testing.assert_close(plain[:, 0], codes @ weight[:, :, 0, 0].T)
    centre = torch.zeros(3, 1, 1, device=device)
    centre[1] = 1.0  # the 3x1 kernel's centre tap
    torch.testing.assert_close(table - plain, (centre * bias).expand_as(table))


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_and_thread_count_independent(device):
    codes, seg, weight, bias = make_inputs((4, 20, 8, 40, 32, 16, 3, 3), torch.float32, device)
    grad = torch.randn(4, 40, 32, 16, device=device)
    threads = torch.get_num_threads()
    try:
        runs = []
        for t in (1, max(2, threads)):
            torch.set_num_threads(t)
            out = region_conv(codes, seg, weight, bias, impl="ext")
            runs.append((out, *torch.autograd.grad(out, (codes, weight, bias), grad)))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(*runs))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("device", DEVICES)
def test_half_precision_accumulates_in_float32(device, dtype):
    table = torch.randn(2, 9, 6, 4, device=device).to(dtype)
    seg = blocky_labels(2, 10, 8, 6, device)
    out = torch.ops.fastpose.region_conv(table, seg, 3, 3)
    exact = torch.ops.fastpose.region_conv(table.float(), seg, 3, 3)
    assert out.dtype == dtype
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out.float(), exact, rtol=eps, atol=eps * 4)
    grad = torch.randn(2, 4, 10, 8, device=device).to(dtype)
    dt = torch.ops.fastpose.region_conv_backward(grad, seg, 3, 3, 6)
    exact_dt = torch.ops.fastpose.region_conv_backward(grad.float(), seg, 3, 3, 6)
    assert dt.dtype == dtype
    torch.testing.assert_close(dt.float(), exact_dt, rtol=eps, atol=eps * 8)


def test_compiles_with_torch_compile():
    codes, seg, weight, bias = make_inputs((2, 5, 3, 4, 8, 6, 3, 3), torch.float32, "cpu")

    def fn(q, wt, b):
        return region_conv(q * 2, seg, wt, b, impl="ext")

    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    out = compiled(codes, weight, bias)
    torch.testing.assert_close(out, fn(codes, weight, bias))
    g = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, (codes, weight, bias), g),
                    torch.autograd.grad(fn(codes, weight, bias), (codes, weight, bias), g)):
        torch.testing.assert_close(a, b)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["ext", "ref"])
@pytest.mark.parametrize("case,exc,match", [
    ("even_kernel", ValueError, r"weight must have an odd kernel size \(kh, kw\).*\(2, 3\)"),
    ("masks", TypeError, r"seg must be an integer label map \[N, H, W\]"),
    ("float_labels", TypeError, r"seg must be an integer label map .*torch.float32"),
    ("seg_batch", ValueError, "seg must have N=2 like codes"),
    ("label_high", (ValueError, RuntimeError), r"seg has label 5 at \(n=1, y=2, x=3\), outside \[0, num_regions=5\)"),
    ("label_negative", (ValueError, RuntimeError), r"seg has label -1 at \(n=0, y=0, x=1\)"),
    ("weight_s", ValueError, r"weight \[C, S, kh, kw\] must have S=4 like codes"),
    ("weight_dtype", TypeError, "codes and weight must share a dtype"),
    ("weight_dims", ValueError, r"weight must be \[C, S, kh, kw\]"),
    ("bias_shape", ValueError, r"bias must be \[C=6\]"),
    ("bias_dtype", TypeError, "codes and bias must share a dtype"),
    ("codes_dims", ValueError, r"codes must be \[N, R, S\]"),
    ("int_codes", TypeError, "codes must be a floating-point tensor"),
])
def test_bad_inputs_raise_clear_errors(impl, case, exc, match):
    codes = torch.randn(2, 5, 4)
    seg = torch.randint(0, 5, (2, 8, 6))
    weight = torch.randn(6, 4, 3, 3)
    bias = torch.randn(6)
    if case == "even_kernel":
        weight = torch.randn(6, 4, 2, 3)
    elif case == "masks":
        seg = torch.rand(2, 5, 8, 6)
    elif case == "float_labels":
        seg = seg.float()
    elif case == "seg_batch":
        seg = seg[:1]
    elif case == "label_high":
        seg[1, 2, 3] = 5
    elif case == "label_negative":
        seg = seg.int()
        seg[0, 0, 1] = -1
    elif case == "weight_s":
        weight = torch.randn(6, 3, 3, 3)
    elif case == "weight_dtype":
        weight = weight.double()
    elif case == "weight_dims":
        weight = weight[0]
    elif case == "bias_shape":
        bias = bias[:5]
    elif case == "bias_dtype":
        bias = bias.double()
    elif case == "codes_dims":
        codes = codes[0]
    elif case == "int_codes":
        codes = codes.long()
    fn = region_conv_ref if impl == "ref" else (lambda *a: region_conv(*a, impl="ext"))
    with pytest.raises(exc, match=match):
        fn(codes, seg, weight, bias)


@pytest.mark.parametrize("case,match", [
    ("even", r"kernel must have odd positive sizes \(kh, kw\).*\(3, 2\)"),
    ("taps", r"table must have kh\*kw=9 taps in dim 1"),
    ("table_dims", r"table must be \[N, kh\*kw, R, C\]"),
    ("seg_dims", r"seg must be a label map \[N, H, W\]"),
    ("seg_dtype", "seg must be a uint8, int32 or int64 label map"),
    ("label", r"seg has label 9 at \(n=0, y=1, x=2\), outside \[0, num_regions=4\)"),
    ("grad_size", r"seg is 6x5 but grad is 6x4"),
    ("grad_label", r"region_conv_backward: seg has label 4 at \(n=1, y=0, x=0\)"),
    ("num_regions", "num_regions must be at least 1"),
])
def test_kernel_checks_name_the_argument(case, match):
    ops = torch.ops.fastpose
    table = torch.randn(2, 9, 4, 3)
    seg = torch.randint(0, 4, (2, 6, 5))
    grad = torch.randn(2, 3, 6, 5)
    with pytest.raises(RuntimeError, match=match):
        if case == "even":
            ops.region_conv(table, seg, 3, 2)
        elif case == "taps":
            ops.region_conv(table[:, :8], seg, 3, 3)
        elif case == "table_dims":
            ops.region_conv(table[0], seg, 3, 3)
        elif case == "seg_dims":
            ops.region_conv(table, seg[0], 3, 3)
        elif case == "seg_dtype":
            ops.region_conv(table, seg.float(), 3, 3)
        elif case == "label":
            seg[0, 1, 2] = 9
            ops.region_conv(table, seg, 3, 3)
        elif case == "grad_size":
            ops.region_conv_backward(grad[..., :4], seg, 3, 3, 4)
        elif case == "grad_label":
            seg[1, 0, 0] = 4
            ops.region_conv_backward(grad, seg, 3, 3, 4)
        else:
            ops.region_conv_backward(grad, seg, 3, 3, 0)


def test_mismatched_devices_raise():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    with pytest.raises(ValueError, match="one device"):
        region_conv(torch.randn(1, 2, 3), torch.zeros(1, 4, 4, dtype=torch.long, device="cuda"),
                    torch.randn(2, 3, 3, 3), impl="ext")
    with pytest.raises(ValueError, match="codes and weight must be on one device"):
        region_conv(torch.randn(1, 2, 3), torch.zeros(1, 4, 4, dtype=torch.long),
                    torch.randn(2, 3, 3, 3, device="cuda"), impl="ext")
