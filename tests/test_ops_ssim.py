"""fastpose.ops.ssim: kernel against reference, scikit-image, gradients, opcheck, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from conftest import TOL, assert_close_as_reference, devices_for
from fastpose.ops import SSIM, SSIMLoss, ssim, ssim_loss, ssim_ref

DEVICES = devices_for("ssim")
WINDOWS = [(11, 1.5), (7, 0.8), (3, 0.5), (13, 2.0)]  # 13 takes the runtime-window path on CPU
SHAPES = [(2, 3, 23, 17), (1, 1, 13, 13), (3, 2, 40, 31), (1, 3, 14, 70)]


def rand_pair(shape, dtype, device, requires_grad=False):
    x = torch.rand(shape, dtype=dtype, device=device, requires_grad=requires_grad)
    y = (0.6 * x.detach() + 0.4 * torch.rand(shape, dtype=dtype, device=device)).requires_grad_(
        requires_grad)
    return x, y


def smooth_pair(shape, dtype, device):
    n, c, h, w = shape
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h, dtype=dtype), torch.linspace(0, 1, w, dtype=dtype),
                            indexing="ij")
    base = torch.stack([torch.sin(3 * xx + k) * torch.cos(2 * yy - k) for k in range(c)])
    x = (0.5 + 0.4 * base).expand(n, c, h, w).contiguous().to(device)
    y = (x + 0.05 * torch.sin(7 * xx.to(device) + 5 * yy.to(device))).clamp(0, 1)
    return x, y


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("window,sigma", WINDOWS)
@pytest.mark.parametrize("shape", SHAPES)
def test_values_and_grads_match_reference(device, dtype, padding, window, sigma, shape):
    x, y = rand_pair(shape, dtype, device, requires_grad=True)
    x64, y64 = (t.detach().double().requires_grad_(True) for t in (x, y))
    kw = dict(window=window, sigma=sigma, padding=padding, reduction="none")
    out = ssim(x, y, impl="ext", **kw)
    ref = ssim_ref(x, y, **kw)
    ref64 = ssim_ref(x64, y64, **kw)
    assert_close_as_reference(out, ref, ref64)
    grad_out = torch.randn_like(out)
    g = torch.autograd.grad(out, (x, y), grad_out)
    g_ref = torch.autograd.grad(ref, (x, y), grad_out)
    g_ref64 = torch.autograd.grad(ref64, (x64, y64), grad_out.double())
    for a, b, c in zip(g, g_ref, g_ref64):
        assert_close_as_reference(a, b, c)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "per_image", "none"])
def test_reductions(device, reduction):
    x, y = rand_pair((3, 2, 20, 18), torch.float64, device, requires_grad=True)
    out = ssim(x, y, reduction=reduction, impl="ext")
    ref = ssim_ref(x, y, reduction=reduction)
    assert out.shape == ref.shape == {"mean": (), "per_image": (3,), "none": (3, 2, 10, 8)}[reduction]
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    g = torch.autograd.grad(out.sum(), (x, y))
    g_ref = torch.autograd.grad(ref.sum(), (x, y))
    torch.testing.assert_close(g, g_ref, **TOL[torch.float64])


@pytest.mark.parametrize("device", DEVICES)
def test_structured_inputs(device):
    x, y = smooth_pair((2, 3, 32, 24), torch.float64, device)
    x.requires_grad_(True)
    out = ssim(x, y, reduction="none", impl="ext")
    ref = ssim_ref(x, y, reduction="none")
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    torch.testing.assert_close(torch.autograd.grad(out.sum(), x)[0],
                               torch.autograd.grad(ref.sum(), x)[0], **TOL[torch.float64])


@pytest.mark.parametrize("device", DEVICES)
def test_only_one_input_requires_grad(device):
    x, y = rand_pair((1, 3, 16, 16), torch.float64, device)
    y.requires_grad_(True)
    (gy,) = torch.autograd.grad(ssim(x, y, impl="ext"), (y,))
    (gy_ref,) = torch.autograd.grad(ssim_ref(x, y), (y,))
    torch.testing.assert_close(gy, gy_ref, **TOL[torch.float64])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("window,sigma", [(5, 1.0), (7, 0.8), (15, 2.5)])
def test_gradcheck_float64(device, padding, window, sigma):
    x, y = rand_pair((2, 2, 16, 17), torch.float64, device, requires_grad=True)
    fn = lambda a, b: ssim(a, b, window=window, sigma=sigma, padding=padding, reduction="none",
                           impl="ext")
    assert gradcheck(fn, (x, y), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("need_grad", [True, False])
@pytest.mark.parametrize("same", [True, False])
def test_opcheck(device, need_grad, same):
    x, y = rand_pair((2, 3, 15, 14), torch.float64, device, requires_grad=need_grad)
    torch.library.opcheck(torch.ops.fastpose.ssim.default, (x, y, 7, 0.8, 1e-4, 9e-4, same, need_grad))
    if need_grad:
        smap, dmaps = torch.ops.fastpose.ssim(x.detach(), y.detach(), 7, 0.8, 1e-4, 9e-4, same, True)
        grad = torch.randn_like(smap)
        torch.library.opcheck(torch.ops.fastpose.ssim_backward.default,
                              (grad, x.detach(), y.detach(), dmaps, 7, 0.8, same))


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_inputs(device):
    base_x = torch.rand(2, 20, 30, 3, dtype=torch.float64, device=device)
    base_y = torch.rand(2, 3, 30, 40, dtype=torch.float64, device=device)
    x = base_x.permute(0, 3, 1, 2).requires_grad_(False)  # [2, 3, 20, 30], channels-last strides
    y = base_y[:, :, 5:25, ::1][..., 3:33]  # sliced view
    assert not x.is_contiguous() and not y.is_contiguous()
    x = x.detach().requires_grad_(True)
    out = ssim(x, y, reduction="none", impl="ext")
    ref = ssim_ref(x, y, reduction="none")
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    grad = torch.randn(out.shape[::-1], dtype=out.dtype, device=device).permute(3, 2, 1, 0)
    torch.testing.assert_close(torch.autograd.grad(out, x, grad)[0],
                               torch.autograd.grad(ref, x, grad)[0], **TOL[torch.float64])


@pytest.mark.parametrize("window,sigma", [(11, 1.5), (7, 0.8)])
@pytest.mark.parametrize("data_range", [1.0, 255.0])
@pytest.mark.parametrize("hw", [(11, 11), (12, 11), (13, 40), (40, 13), (64, 48), (128, 64)])
@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_valid_equals_scikit_image(window, sigma, data_range, hw, kind):
    skimage_metrics = pytest.importorskip("skimage.metrics")
    if window > min(hw):
        pytest.skip("window larger than the image")
    shape = (2, 3, *hw)
    x, y = rand_pair(shape, torch.float64, "cpu") if kind == "random" else smooth_pair(shape, torch.float64, "cpu")
    x, y = x * data_range, y * data_range
    ours = ssim(x, y, window=window, sigma=sigma, data_range=data_range, reduction="per_image", impl="ext")
    # skimage derives its window from sigma (truncate=3.5): 11 taps for 1.5, 7 taps for 0.8.
    for i in range(shape[0]):
        theirs = skimage_metrics.structural_similarity(
            x[i].permute(1, 2, 0).numpy(), y[i].permute(1, 2, 0).numpy(), gaussian_weights=True,
            sigma=sigma, use_sample_covariance=False, data_range=data_range, channel_axis=-1)
        assert abs(float(ours[i]) - float(theirs)) < 1e-6


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("value", [0.0, 0.6, 1.0, 0.123456])
@pytest.mark.parametrize("impl", ["ext", "ref"])
def test_identical_constant_images_give_exactly_one(device, dtype, value, impl):
    x = torch.full((2, 3, 16, 20), value, dtype=dtype, device=device, requires_grad=True)
    smap = ssim(x, x.detach().clone(), padding="same", reduction="none", impl=impl)
    assert torch.equal(smap, torch.ones_like(smap))
    (g,) = torch.autograd.grad(smap.sum(), x)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_never_above_one_or_nan(device, dtype):
    x = torch.rand(4, 3, 32, 32, dtype=dtype, device=device)
    for y in (x.clone(), x + 1e-7 * torch.randn_like(x), torch.zeros_like(x), x.round()):
        smap = ssim(x, y, reduction="none", impl="ext")
        assert torch.isfinite(smap).all() and smap.max() <= 1.0
    assert torch.equal(ssim(x, x.clone(), reduction="none", impl="ext"),
                       torch.ones(4, 3, 22, 22, dtype=dtype, device=device))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("device", DEVICES)
def test_half_precision_accumulates_in_float32(device, dtype):
    x, y = rand_pair((2, 3, 32, 24), torch.float32, device)
    exact = ssim_ref(x.to(dtype).float(), y.to(dtype).float(), reduction="none")
    out = ssim(x.to(dtype), y.to(dtype), reduction="none", impl="ext")
    assert out.dtype == dtype
    # Only the output rounding differs from a float32 computation on the same inputs.
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out.float(), exact, rtol=0, atol=2 * eps)
    xh = x.to(dtype).requires_grad_(True)
    (g,) = torch.autograd.grad(ssim(xh, y.to(dtype), impl="ext"), (xh,))
    x32 = x.to(dtype).float().requires_grad_(True)
    (g32,) = torch.autograd.grad(ssim_ref(x32, y.to(dtype).float()), (x32,))
    torch.testing.assert_close(g.float(), g32, rtol=4 * eps, atol=4 * eps * g32.abs().max().item())


def test_loss_and_modules():
    x, y = rand_pair((2, 3, 20, 20), torch.float64, "cpu")
    assert torch.equal(ssim_loss(x, y), 1 - ssim(x, y))
    assert torch.equal(SSIM(window=7, sigma=0.8)(x, y), ssim(x, y, window=7, sigma=0.8))
    assert torch.equal(SSIMLoss(reduction="per_image")(x, y), 1 - ssim(x, y, reduction="per_image"))
    assert "window=7" in repr(SSIM(window=7, sigma=0.8))
    assert float(ssim_loss(x, x)) == 0.0


def test_no_grad_forward_skips_derivative_maps():
    x, y = rand_pair((1, 1, 12, 12), torch.float32, "cpu")
    _, dmaps = torch.ops.fastpose.ssim(x, y, 11, 1.5, 1e-4, 9e-4, False, False)
    assert dmaps.numel() == 0
    _, dmaps = torch.ops.fastpose.ssim(x, y, 11, 1.5, 1e-4, 9e-4, False, True)
    assert dmaps.shape == (1, 1, 5, 2, 2)


def test_compiles_with_torch_compile():
    x, y = rand_pair((2, 3, 24, 20), torch.float32, "cpu", requires_grad=True)
    fn = torch.compile(lambda a, b: ssim_loss(a, b, impl="ext"), backend="aot_eager", fullgraph=True)
    out = fn(x, y)
    torch.testing.assert_close(out, ssim_loss(x, y, impl="ext"))
    (g,) = torch.autograd.grad(out, (x,))
    (g_ref,) = torch.autograd.grad(ssim_loss(x, y, impl="ref"), (x,))
    torch.testing.assert_close(g, g_ref, **TOL[torch.float32])


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["ext", "ref"])
@pytest.mark.parametrize("case,exc,match", [
    ("window_too_large", ValueError, "window 11 is larger than the image"),
    ("even_window", ValueError, "window must be a positive odd integer"),
    ("three_dims", ValueError, r"x must be \[N, C, H, W\]"),
    ("shape_mismatch", ValueError, "y must have the shape of x"),
    ("dtype_mismatch", TypeError, "must share a dtype"),
    ("integer", TypeError, "x must be a floating-point tensor"),
    ("padding", ValueError, "padding must be one of"),
    ("reduction", ValueError, "reduction must be one of"),
    ("sigma", ValueError, "sigma must be positive"),
    ("not_tensor", TypeError, "x must be a torch.Tensor"),
])
def test_bad_inputs_raise_clear_errors(impl, case, exc, match):
    x = torch.rand(1, 3, 16, 16)
    args, kw = (x, x.clone()), {}
    if case == "window_too_large":
        args = (torch.rand(1, 3, 10, 30),) * 2
    elif case == "even_window":
        kw = dict(window=6)
    elif case == "three_dims":
        args = (x[0], x[0])
    elif case == "shape_mismatch":
        args = (x, torch.rand(1, 3, 16, 15))
    elif case == "dtype_mismatch":
        args = (x, x.double())
    elif case == "integer":
        args = ((x * 255).to(torch.uint8),) * 2
    elif case == "padding":
        kw = dict(padding="reflect")
    elif case == "reduction":
        kw = dict(reduction="sum")
    elif case == "sigma":
        kw = dict(sigma=0.0)
    elif case == "not_tensor":
        args = (x.numpy(), x)
    fn = ssim if impl == "ext" else ssim_ref
    if impl == "ext":
        kw["impl"] = "ext"
    with pytest.raises(exc, match=match):
        fn(*args, **kw)


def test_bad_impl_name():
    x = torch.rand(1, 1, 12, 12)
    with pytest.raises(ValueError, match="impl must be one of"):
        ssim(x, x, impl="cuda")


@pytest.mark.parametrize("case,match", [
    ("window", "window 11 is larger than the image"),
    ("shape", "y must have the shape of x"),
    ("even", "window must be a positive odd integer"),
    ("dmaps", "dmaps must be"),
])
def test_kernel_checks_name_the_argument(case, match):
    x = torch.rand(1, 2, 16, 16)
    with pytest.raises(RuntimeError, match=match):
        if case == "window":
            torch.ops.fastpose.ssim(x[..., :9, :], x[..., :9, :], 11, 1.5, 1e-4, 9e-4, False, False)
        elif case == "shape":
            torch.ops.fastpose.ssim(x, x[..., :15], 11, 1.5, 1e-4, 9e-4, False, False)
        elif case == "even":
            torch.ops.fastpose.ssim(x, x, 4, 1.5, 1e-4, 9e-4, False, False)
        else:
            smap, _ = torch.ops.fastpose.ssim(x, x, 11, 1.5, 1e-4, 9e-4, False, False)
            torch.ops.fastpose.ssim_backward(smap, x, x, torch.empty(0), 11, 1.5, False)


def test_mismatched_devices_raise():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises((ValueError, RuntimeError), match="one device"):
        ssim(x, x.cuda(), impl="ext")
