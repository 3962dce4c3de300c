"""fastpose.ops.part_stats / part_ssim: kernel against reference and the published formula,
gradients, opcheck, degenerate masks and images, errors."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from conftest import TOL, assert_close_as_reference, devices_for
from fastpose.ops import PartSSIM, part_ssim, part_ssim_ref, part_stats, part_stats_ref

DEVICES = devices_for("part_stats")
# (N, C, H, W, K): odd sizes, size-1 dims, one chunk and several chunks (H*W > 4096), K = 1, 10, 11.
SHAPES = [(2, 3, 23, 17, 10), (1, 1, 1, 1, 1), (2, 2, 65, 64, 11), (1, 3, 128, 64, 10),
          (2, 1, 5, 1, 1), (1, 4, 33, 129, 3)]
EPS = 1e-6


def make_inputs(shape, dtype, device, mask_grad=False, kind="soft"):
    n, c, h, w, k = shape
    x = torch.rand(n, c, h, w, dtype=dtype, device=device)
    y = (0.6 * x + 0.4 * torch.rand_like(x)).clamp(0, 1)
    if kind == "soft":
        m = torch.rand(n, k, h, w, dtype=dtype, device=device) ** 3
    else:  # hard masks with some empty parts
        m = (torch.rand(n, k, h, w, dtype=dtype, device=device) > 0.7).to(dtype)
        m[:, ::3] = 0
    return x.requires_grad_(True), y.requires_grad_(True), m.requires_grad_(mask_grad)


def published_stats(x, y, m, eps=EPS):
    """Direct transcription of the published weighted-moment formula (the repeat-and-multiply
    code of shyern/Pose-Transfer-pSSIM, written with broadcasting): w = m / (sum m + eps),
    mu = sum w x, var = sum w x^2 - mu^2, cov = sum w x y - mu_x mu_y."""
    w = m / (m.sum(dim=(2, 3), keepdim=True) + eps)
    w, xs, ys = w[:, :, None], x[:, None], y[:, None]
    mx, my = (w * xs).sum((3, 4)), (w * ys).sum((3, 4))
    vx = (w * xs * xs).sum((3, 4)) - mx * mx
    vy = (w * ys * ys).sum((3, 4)) - my * my
    cxy = (w * xs * ys).sum((3, 4)) - mx * my
    return torch.stack([mx, my, vx, vy, cxy], dim=-1), m.sum(dim=(2, 3))


def grads(outs, inputs, upstream):
    loss = sum((o * g).sum() for o, g in zip(outs, upstream))
    return torch.autograd.grad(loss, [t for t in inputs if t.requires_grad])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mask_grad", [False, True])
@pytest.mark.parametrize("kind", ["soft", "hard"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_values_and_grads_match_reference(device, dtype, mask_grad, kind, shape):
    x, y, m = make_inputs(shape, dtype, device, mask_grad, kind)
    x64, y64, m64 = (t.detach().double().requires_grad_(t.requires_grad) for t in (x, y, m))
    out = part_stats(x, y, m, impl="ext")
    ref = part_stats_ref(x, y, m)
    ref64 = part_stats_ref(x64, y64, m64)
    for a, b, c in zip(out, ref, ref64):
        assert a.dtype == b.dtype
        assert_close_as_reference(a, b, c)
    upstream = [torch.randn_like(t) for t in out]
    g = grads(out, (x, y, m), upstream)
    g_ref = grads(ref, (x, y, m), upstream)
    g_ref64 = grads(ref64, (x64, y64, m64), [u.double() for u in upstream])
    assert len(g) == (3 if mask_grad else 2)
    for a, b, c in zip(g, g_ref, g_ref64):
        assert_close_as_reference(a, b, c)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["soft", "hard"])
def test_reference_matches_published_formula(device, kind):
    x, y, m = make_inputs((2, 3, 37, 29, 11), torch.float64, device, mask_grad=True, kind=kind)
    ref = part_stats_ref(x, y, m)
    pub = published_stats(x, y, m)
    for a, b in zip(ref, pub):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    upstream = [torch.randn_like(t) for t in ref]
    for a, b in zip(grads(ref, (x, y, m), upstream), grads(pub, (x, y, m), upstream)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_kernel_matches_published_formula_with_mask_grads(device):
    x, y, m = make_inputs((2, 2, 19, 23, 4), torch.float64, device, mask_grad=True)
    out = part_stats(x, y, m, impl="ext")
    pub = published_stats(x, y, m)
    for a, b in zip(out, pub):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    upstream = [torch.randn_like(t) for t in out]
    for a, b in zip(grads(out, (x, y, m), upstream), grads(pub, (x, y, m), upstream)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1, 3])
def test_gradcheck_float64(device, k):
    x, y, m = make_inputs((1, 2, 5, 4, k), torch.float64, device, mask_grad=True)
    m = (m.detach() + 0.1).requires_grad_(True)  # keep the finite differences away from m = 0
    assert gradcheck(lambda a, b, c: part_stats(a, b, c, impl="ext"), (x, y, m), eps=1e-6, atol=1e-6)
    assert gradcheck(lambda a, b, c: part_ssim(a, b, c, impl="ext"), (x, y, m), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask_grad", [True, False])
def test_opcheck(device, mask_grad):
    x, y, m = make_inputs((2, 3, 9, 8, 4), torch.float64, device, mask_grad)
    torch.library.opcheck(torch.ops.fastpose.part_stats.default, (x, y, m, EPS))
    stats, msum = torch.ops.fastpose.part_stats(x.detach(), y.detach(), m.detach(), EPS)
    args = (torch.randn_like(stats), torch.randn_like(msum), x.detach(), y.detach(), m.detach(), stats,
            msum, EPS)
    for flags in [(True, True, mask_grad), (True, False, False), (False, True, True)]:
        torch.library.opcheck(torch.ops.fastpose.part_stats_backward.default, args + flags)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_inputs(device):
    x = torch.rand(2, 21, 30, 3, dtype=torch.float64, device=device).permute(0, 3, 1, 2)
    y = torch.rand(2, 3, 40, 30, dtype=torch.float64, device=device)[:, :, 10:31]
    m = torch.rand(2, 30, 21, 5, dtype=torch.float64, device=device).permute(0, 3, 2, 1)
    assert not (x.is_contiguous() or y.is_contiguous() or m.is_contiguous())
    x, y, m = (t.requires_grad_(True) for t in (x, y, m))
    out = part_stats(x, y, m, impl="ext")
    ref = part_stats_ref(x, y, m)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, **TOL[torch.float64])
    # An expanded (stride-0) upstream gradient, as a mean reduction produces.
    up = [torch.ones((), dtype=torch.float64, device=device).expand_as(t) for t in out]
    for a, b in zip(grads(out, (x, y, m), up), grads(ref, (x, y, m), up)):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_zero_masks(device, dtype):
    x, y, m = make_inputs((2, 3, 12, 10, 4), dtype, device, mask_grad=False)
    m = torch.zeros_like(m)
    m[0, 1, 3, 4] = 1.0  # one part of one image is present
    m.requires_grad_(True)
    stats, msum = part_stats(x, y, m, impl="ext")
    empty = msum == 0
    assert empty.sum() == 7
    assert torch.equal(stats[empty], torch.zeros_like(stats[empty]))
    assert torch.equal(part_ssim(x, y, m.detach(), impl="ext")[empty],
                       torch.ones(7, 3, dtype=dtype, device=device))
    # Gradients to m at m = 0 are finite and equal the published formula's (x/eps-sized terms).
    x64, y64, m64 = (t.detach().double().requires_grad_(True) for t in (x, y, m))
    up = [torch.randn_like(stats).double(), torch.randn_like(msum).double()]
    g = grads(part_stats(x64, y64, m64, impl="ext"), (x64, y64, m64), up)
    g_pub = grads(published_stats(x64, y64, m64), (x64, y64, m64), up)
    for a, b in zip(g, g_pub):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_single_pixel_masks(device, dtype):
    x, y, m = make_inputs((2, 3, 65, 70, 5), dtype, device)  # several chunks
    m = torch.zeros_like(m)
    pos = [(0, 0), (64, 69), (40, 3), (63, 10), (0, 69)]
    for k, (i, j) in enumerate(pos):
        m[:, k, i, j] = 0.5 + k
    stats, msum = part_stats(x, y, m, impl="ext")
    # float32: the shifted sums leave rounding of ~eps32 * (x - shift)^2, far below C2 = 9e-4.
    vtol = 1e-12 if dtype == torch.float64 else 1e-6
    for k, (i, j) in enumerate(pos):
        s = 0.5 + k
        rho = s / (s + EPS)
        xv, yv = x[:, :, i, j].detach(), y[:, :, i, j].detach()
        torch.testing.assert_close(msum[:, k], torch.full_like(msum[:, k], s))
        torch.testing.assert_close(stats[:, k, :, 0], rho * xv)
        torch.testing.assert_close(stats[:, k, :, 1], rho * yv)
        # sum w x^2 - mu^2 = rho (1 - rho) x^2: tiny but non-negative, as published.
        torch.testing.assert_close(stats[:, k, :, 2], rho * (1 - rho) * xv * xv, rtol=1e-3, atol=vtol)
        torch.testing.assert_close(stats[:, k, :, 4], rho * (1 - rho) * xv * yv, rtol=1e-3, atol=vtol)
    ref = part_stats_ref(x, y, m)
    for a, b in zip((stats, msum), ref):
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("value", [0.0, 0.6, 1.0, 0.123456])
def test_images_of_one_value(device, dtype, value):
    x = torch.full((2, 3, 80, 70), value, dtype=dtype, device=device)
    m = torch.rand(2, 10, 80, 70, dtype=dtype, device=device)
    stats, msum = part_stats(x, x.clone(), m, impl="ext")
    rho = (msum / (msum + EPS)).unsqueeze(-1)
    torch.testing.assert_close(stats[..., 0], (rho * value).expand(2, 10, 3), rtol=1e-6, atol=0)
    # No cancellation: the variance is rho (1 - rho) v^2 (<= 1e-9 here), not rounding noise.
    assert (stats[..., 2:] >= 0).all() and stats[..., 2:].max() <= 1e-9
    s = part_ssim(x, x.clone(), m, impl="ext")
    assert torch.equal(s, torch.ones_like(s))


@pytest.mark.parametrize("device", DEVICES)
def test_no_cancellation_in_float32(device):
    # Bright, nearly flat parts: E[x^2] - E[x]^2 in float32 loses everything here.
    x = 0.9 + 1e-3 * torch.rand(4, 3, 128, 64, device=device)
    y = 0.9 + 1e-3 * torch.rand(4, 3, 128, 64, device=device)
    m = torch.rand(4, 10, 128, 64, device=device)
    stats, _ = part_stats(x, y, m, impl="ext")
    exact, _ = part_stats_ref(x.double(), y.double(), m.double())
    naive, _ = published_stats(x, y, m)
    rel = ((stats.double() - exact).abs() / exact.abs())[..., 2:4].max().item()
    rel_naive = ((naive.double() - exact).abs() / exact.abs())[..., 2:4].max().item()
    assert rel < 1e-4 and rel_naive > 1e-2, (rel, rel_naive)


def test_deterministic_across_thread_counts():
    x, y, m = make_inputs((3, 3, 128, 96, 10), torch.float32, "cpu", mask_grad=True)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = part_stats(x, y, m, impl="ext")
            g = grads(out, (x, y, m), [torch.ones_like(t) for t in out])
            results.append(list(out) + list(g))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float32(device, dtype):
    x, y, m = make_inputs((2, 3, 40, 30, 10), torch.float32, device)
    xh, yh, mh = (t.detach().to(dtype) for t in (x, y, m))
    stats, msum = part_stats(xh, yh, mh, impl="ext")
    assert stats.dtype == msum.dtype == torch.float32
    exact = part_stats_ref(xh.float(), yh.float(), mh.float())
    for a, b in zip((stats, msum), exact):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    xg = xh.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(part_ssim(xg, yh, mh, impl="ext").mean(), (xg,))
    x32 = xh.float().requires_grad_(True)
    (g32,) = torch.autograd.grad(part_ssim_ref(x32, yh.float(), mh.float()).mean(), (x32,))
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(g.float(), g32, rtol=2 * eps, atol=2 * eps * g32.abs().max().item())


@pytest.mark.parametrize("device", DEVICES)
def test_part_ssim_matches_reference_and_formula(device):
    x, y, m = make_inputs((2, 3, 30, 20, 11), torch.float64, device, mask_grad=True)
    out = part_ssim(x, y, m, impl="ext")
    ref = part_ssim_ref(x, y, m)
    assert out.shape == (2, 11, 3)
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    st, _ = published_stats(x, y, m)
    mx, my, vx, vy, cxy = st.unbind(-1)
    c1, c2 = 1e-4, 9e-4
    pub = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    torch.testing.assert_close(out, pub, rtol=1e-9, atol=1e-12)
    g = torch.autograd.grad(out.sum(), (x, y, m))
    g_ref = torch.autograd.grad(ref.sum(), (x, y, m))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, **TOL[torch.float64])
    assert torch.equal(PartSSIM(impl="ext")(x, y, m), out)


@pytest.mark.parametrize("device", DEVICES)
def test_identical_images_score_one(device):
    x, _, m = make_inputs((2, 3, 64, 48, 10), torch.float32, device)
    for impl in ("ext", "ref"):
        s = part_ssim(x, x.detach().clone(), m, impl=impl)
        assert torch.equal(s, torch.ones_like(s)), impl
    assert (part_ssim(x, 1 - x.detach(), m, impl="ext") < 0.99).all()


@pytest.mark.parametrize("impl", ["ext", "ref"])
def test_bad_inputs(impl):
    x, y, m = (t.detach() for t in make_inputs((2, 3, 16, 12, 4), torch.float32, "cpu"))
    cases = [
        ((x, y, m[:1]), ValueError, r"m must be \[N, K, H, W\] = \[2, K, 16, 12\].*\(1, 4, 16, 12\)"),
        ((x, y, m[..., :11]), ValueError, r"m must be \[N, K, H, W\].*\(2, 4, 16, 11\)"),
        ((x, y, m[0]), ValueError, r"m must be \[N, K, H, W\]"),
        ((x, y[:, :2], m), ValueError, r"y must have the shape of x"),
        ((x, y, m.double()), TypeError, r"m must have the dtype of x"),
        ((x, y.double(), m), TypeError, r"x and y must share a dtype"),
        ((x[0], y[0], m), ValueError, r"x must be \[N, C, H, W\]"),
        ((x.long(), y.long(), m), TypeError, r"x must be a floating-point tensor"),
    ]
    for args, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            part_stats(*args, impl=impl)
    with pytest.raises(ValueError, match="eps must be positive"):
        part_stats(x, y, m, eps=0.0, impl=impl)
    neg = m.clone()
    neg[1, 2, 3, 4] = -0.5
    with pytest.raises((ValueError, RuntimeError), match="m must be non-negative"):
        part_stats(x, y, neg, impl=impl)


def test_kernel_rejects_bad_inputs_directly():
    x, y, m = (t.detach() for t in make_inputs((2, 3, 16, 12, 4), torch.float32, "cpu"))
    with pytest.raises(RuntimeError, match=r"m must be \[N, K, H, W\]"):
        torch.ops.fastpose.part_stats(x, y, m[:1], EPS)
    with pytest.raises(RuntimeError, match="non-negative"):
        torch.ops.fastpose.part_stats(x, y, -m, EPS)
    stats, msum = torch.ops.fastpose.part_stats(x, y, m, EPS)
    with pytest.raises(RuntimeError, match="grad_stats must be"):
        torch.ops.fastpose.part_stats_backward(stats[:1], msum, x, y, m, stats, msum, EPS, True, True,
                                               False)


def test_torch_compile_traces_the_op():
    # aot_eager runs the fake kernels and the registered autograd formula without compiling C++.
    x, y, m = make_inputs((2, 3, 16, 12, 4), torch.float64, "cpu", mask_grad=True)
    fn = torch.compile(lambda a, b, c: part_ssim(a, b, c, impl="ext").mean(), backend="aot_eager",
                       fullgraph=True)
    out = fn(x, y, m)
    ref = part_ssim_ref(x, y, m).mean()
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    for a, b in zip(torch.autograd.grad(out, (x, y, m)), torch.autograd.grad(ref, (x, y, m))):
        torch.testing.assert_close(a, b, **TOL[torch.float64])
