"""fastpose.ops.tps_grid / tps_warp: kernel against reference, kornia, gradients, opcheck, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from conftest import TOL, assert_close_as_reference, devices_for
from fastpose.ops import (TPSLayout, TPSWarp, regular_target, tps_grid, tps_grid_ref, tps_layout,
                          tps_warp, tps_warp_ref)

DEVICES = devices_for("tps_warp")
KS = [4, 9, 16, 25]
# (input [N, C, Hin, Win], output (H, W)): odd sizes, size-1 dims, up- and downsampling.
CASES = [
    ((2, 3, 17, 13), (17, 13)),
    ((1, 1, 1, 9), (5, 1)),
    ((3, 2, 12, 20), (7, 9)),
    ((2, 5, 9, 8), (23, 19)),
    ((2, 3, 6, 1), (4, 3)),  # one-column input: the CPU kernel's single-slot path
    # >= 16 channels: the CPU kernel's channel-vector path (16 channels per task, 16-pixel
    # tiles): one full chunk, a partial second chunk, pixel counts off the tile size.
    ((2, 16, 9, 8), (11, 7)),
    ((1, 37, 10, 13), (9, 5)),
    ((2, 20, 5, 1), (6, 3)),  # one-column input with many channels: the planar path
    # Wide channel-vector tasks (V x 16 channels per task, chosen by shape): V = 2, and
    # V = 4 with a partial third and an empty fourth vector (40 channels).
    ((8, 32, 6, 5), (7, 9)),
    ((8, 40, 9, 8), (11, 7)),
]


def perturbed(k, n, dtype, device, scale=0.15):
    """Control points near the regular lattice: smooth, non-trivial warps."""
    t = regular_target(math.isqrt(k)).to(device, dtype)
    return (t[None] + scale * torch.randn(n, k, 2, dtype=dtype, device=device)).contiguous()


def grads(out, inputs, grad_out):
    return torch.autograd.grad(out, inputs, grad_out)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{'x'.join(map(str, c[0]))}-{c[1][0]}x{c[1][1]}")
def test_warp_matches_reference(device, dtype, align_corners, k, case):
    shape, size = case
    x = torch.rand(shape, dtype=dtype, device=device, requires_grad=True)
    ctrl = perturbed(k, shape[0], dtype, device).requires_grad_(True)
    x64, c64 = (t.detach().double().requires_grad_(True) for t in (x, ctrl))
    kw = dict(align_corners=align_corners)
    out = tps_warp(x, ctrl, size, impl="ext", **kw)
    ref = tps_warp_ref(x, ctrl, size, **kw)
    ref64 = tps_warp_ref(x64, c64, size, **kw)
    assert out.shape == (shape[0], shape[1], *size) and out.dtype == dtype
    assert_close_as_reference(out, ref, ref64)
    grad_out = torch.randn_like(out)
    for a, b, c in zip(grads(out, (x, ctrl), grad_out), grads(ref, (x, ctrl), grad_out),
                       grads(ref64, (x64, c64), grad_out.double())):
        assert_close_as_reference(a, b, c, slack=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("size", [(8, 6), (1, 1), (1, 7), (33, 4)])
def test_grid_matches_reference(device, dtype, align_corners, k, size):
    ctrl = perturbed(k, 3, dtype, device).requires_grad_(True)
    c64 = ctrl.detach().double().requires_grad_(True)
    out = tps_grid(ctrl, size, align_corners=align_corners, impl="ext")
    ref = tps_grid_ref(ctrl, size, align_corners=align_corners)
    ref64 = tps_grid_ref(c64, size, align_corners=align_corners)
    assert out.shape == (3, *size, 2)
    assert_close_as_reference(out, ref, ref64)
    g = torch.randn_like(out)
    assert_close_as_reference(grads(out, ctrl, g)[0], grads(ref, ctrl, g)[0],
                              grads(ref64, c64, g.double())[0])


@pytest.mark.parametrize("device", DEVICES)
def test_arbitrary_target_layout(device):
    # 7 scattered, non-collinear points: not a lattice, K not a square.
    target = torch.tensor([[-0.8, -0.7], [0.6, -0.9], [0.1, 0.2], [-0.5, 0.8], [0.9, 0.7],
                           [0.3, -0.2], [-0.9, 0.0]], dtype=torch.float64)
    x = torch.rand(2, 3, 15, 11, dtype=torch.float64, device=device, requires_grad=True)
    ctrl = (target.to(device)[None] + 0.1 * torch.randn(2, 7, 2, dtype=torch.float64,
                                                        device=device)).requires_grad_(True)
    out = tps_warp(x, ctrl, target=target, impl="ext")
    ref = tps_warp_ref(x, ctrl, target=target)
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    g = torch.randn_like(out)
    torch.testing.assert_close(grads(out, (x, ctrl), g), grads(ref, (x, ctrl), g),
                               **TOL[torch.float64])


@pytest.mark.parametrize("device", DEVICES)
def test_spline_interpolates_control_points(device):
    # An output pixel that sits on a target point maps exactly to its control point.
    target = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [0.0, 0.0]],
                          dtype=torch.float64)
    ctrl = (target[None] + 0.2 * torch.randn(2, 5, 2, dtype=torch.float64)).to(device)
    grid = tps_grid(ctrl, (5, 5), target, align_corners=True, impl="ext")
    on_target = grid[:, [0, 0, 4, 4, 2], [0, 4, 0, 4, 2]]  # (row, col) of each target point
    torch.testing.assert_close(on_target, ctrl, **TOL[torch.float64])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("k", [4, 25])
def test_identity_control_points_reproduce_input(device, dtype, align_corners, k):
    x = torch.rand(2, 3, 19, 14, dtype=dtype, device=device)
    ctrl = regular_target(math.isqrt(k)).to(device, dtype)[None].expand(2, -1, -1)
    out = tps_warp(x, ctrl, align_corners=align_corners, impl="ext")
    tol = 1e-10 if dtype == torch.float64 else 2e-4
    torch.testing.assert_close(out, x, rtol=0, atol=tol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_displacement_gives_affine_warp(device, align_corners):
    # Moving every control point by one affine map makes the spline that map exactly.
    theta = torch.tensor([[[0.9, 0.15, 0.05], [-0.1, 1.1, -0.08]],
                          [[1.2, 0.0, 0.1], [0.0, 0.8, 0.0]]], dtype=torch.float64)
    t = regular_target(4)
    ctrl = (t @ theta[:, :, :2].transpose(1, 2) + theta[:, None, :, 2]).to(device)
    x = torch.rand(2, 3, 16, 12, dtype=torch.float64, device=device)
    out = tps_warp(x, ctrl, (10, 13), align_corners=align_corners, impl="ext")
    grid = F.affine_grid(theta.to(device), [2, 3, 10, 13], align_corners=align_corners)
    expected = F.grid_sample(x, grid, align_corners=align_corners)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(tps_grid(ctrl, (10, 13), align_corners=align_corners, impl="ext"),
                               grid, rtol=0, atol=1e-12)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("k", [9, 25])
def test_matches_kornia_warp_image_tps(align_corners, k):
    kornia_tps = pytest.importorskip(
        "kornia.geometry.transform", reason="kornia is the external TPS check (pip install kornia)")
    x = torch.rand(2, 3, 20, 16, dtype=torch.float64)
    ctrl = perturbed(k, 2, torch.float64, "cpu")
    target = regular_target(math.isqrt(k))[None].expand(2, -1, -1)
    ours = tps_warp(x, ctrl, align_corners=align_corners, impl="ext")
    # kornia's warp maps output (destination) coordinates to input (source) ones. Its fit,
    # get_tps_transform, builds the kernel block from src-to-dst distances instead of
    # src-to-src ones (kornia 0.9), so it does not interpolate general control points;
    # evaluate kornia's warp with the coefficients of the exact TPS solve instead.
    coef = tps_layout(k=k).kinv @ ctrl  # [N, K+3, 2]: radial weights, then 1, x, y
    theirs = kornia_tps.warp_image_tps(x, target, coef[:, :k], coef[:, k:],
                                       align_corners=align_corners)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)


@pytest.mark.parametrize("align_corners", [False, True])
def test_matches_kornia_fit_for_affine_displacements(align_corners):
    kornia_tps = pytest.importorskip(
        "kornia.geometry.transform", reason="kornia is the external TPS check (pip install kornia)")
    # For an affine displacement the radial weights vanish, so kornia's fit is exact too.
    target = regular_target(5)[None].expand(2, -1, -1)
    a = torch.tensor([[[0.9, 0.2], [-0.1, 1.05]], [[1.1, 0.0], [0.05, 0.85]]], dtype=torch.float64)
    ctrl = target @ a + torch.tensor([[[0.05, -0.1]], [[0.0, 0.07]]], dtype=torch.float64)
    x = torch.rand(2, 3, 20, 16, dtype=torch.float64)
    kernel_w, affine_w = kornia_tps.get_tps_transform(target, ctrl)  # fitted destination -> source
    theirs = kornia_tps.warp_image_tps(x, target, kernel_w, affine_w, align_corners=align_corners)
    ours = tps_warp(x, ctrl, align_corners=align_corners, impl="ext")
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("k", [4, 9])
def test_gradcheck_float64(device, align_corners, k):
    x = torch.rand(2, 2, 7, 6, dtype=torch.float64, device=device, requires_grad=True)
    ctrl = perturbed(k, 2, torch.float64, device, scale=0.1).requires_grad_(True)
    assert gradcheck(lambda a, b: tps_warp(a, b, (5, 8), align_corners=align_corners, impl="ext"),
                     (x, ctrl), eps=1e-6, atol=1e-6)
    assert gradcheck(lambda b: tps_grid(b, (4, 3), align_corners=align_corners, impl="ext"),
                     (ctrl,), eps=1e-6, atol=1e-6)
    # 17 channels: the CPU kernel's channel-vector path, one full and one partial chunk.
    x = torch.rand(1, 17, 5, 4, dtype=torch.float64, device=device, requires_grad=True)
    assert gradcheck(lambda a, b: tps_warp(a, b[:1], (4, 3), align_corners=align_corners,
                                           impl="ext"), (x, ctrl), eps=1e-6, atol=1e-6)
    # 8 samples of 33 channels: wide tasks of 4 vectors (16, 16, 1 and 0 channels).
    x = torch.rand(8, 33, 3, 2, dtype=torch.float64, device=device, requires_grad=True)
    ctrl8 = perturbed(k, 8, torch.float64, device, scale=0.1).requires_grad_(True)
    assert gradcheck(lambda a, b: tps_warp(a, b, (2, 3), align_corners=align_corners, impl="ext"),
                     (x, ctrl8), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("need", [(True, True), (True, False), (False, True)])
# The CPU kernel's planar path, channel-vector path, and its wide tasks (4 vectors).
@pytest.mark.parametrize("batch,channels", [(2, 3), (2, 16), (8, 40)])
def test_opcheck(device, need, batch, channels):
    layout = tps_layout(k=9)
    t, kinv = layout.tensors(torch.device(device), torch.float64)
    x = torch.rand(batch, channels, 9, 7, dtype=torch.float64, device=device,
                   requires_grad=need[0])
    ctrl = perturbed(9, batch, torch.float64, device).requires_grad_(need[1])
    torch.library.opcheck(torch.ops.fastpose.tps_warp.default, (x, ctrl, t, kinv, 6, 5, False))
    torch.library.opcheck(torch.ops.fastpose.tps_grid.default, (ctrl, t, kinv, 6, 5, True))
    grad = torch.randn(batch, channels, 6, 5, dtype=torch.float64, device=device)
    torch.library.opcheck(torch.ops.fastpose.tps_warp_backward.default,
                          (grad, x.detach(), ctrl.detach(), t, kinv, False, *need))
    grad_grid = torch.randn(batch, 6, 5, 2, dtype=torch.float64, device=device)
    torch.library.opcheck(torch.ops.fastpose.tps_grid_backward.default,
                          (grad_grid, t, kinv, 6, 5, True))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("case", [
    ((2, 6, 9, 7), (9, 7)),
    ((2, 6, 5, 2), (6, 5)),  # two columns: every row pair is a whole row
    ((1, 3, 7, 1), (5, 4)),  # one column
    ((1, 6, 3, 4), (40, 37)),  # strong magnification: many pixels update one source pair
    ((2, 17, 9, 7), (9, 7)),  # the same on the channel-vector path
    ((1, 16, 3, 4), (50, 45)),  # ... with more output pixels than one chunk of taps (2048)
], ids=lambda c: f"{'x'.join(map(str, c[0]))}-{c[1][0]}x{c[1][1]}")
def test_large_displacements_match_reference(device, align_corners, case):
    # Samples that straddle every border or leave the image: the tap clamping and the
    # zero weights of taps outside the plane, values and both gradients.
    shape, size = case
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(shape, dtype=torch.float64, generator=gen).to(device).requires_grad_(True)
    ctrl = (regular_target(3).double()[None] * 1.3
            + 0.5 * torch.randn(shape[0], 9, 2, dtype=torch.float64, generator=gen))
    ctrl = ctrl.to(device).requires_grad_(True)
    out = tps_warp(x, ctrl, size, align_corners=align_corners, impl="ext")
    ref = tps_warp_ref(x, ctrl, size, align_corners=align_corners)
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    g = torch.randn(out.shape, dtype=torch.float64, generator=gen).to(device)
    for a, b in zip(grads(out, (x, ctrl), g), grads(ref, (x, ctrl), g)):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_inputs(device):
    x = torch.rand(2, 18, 14, 3, dtype=torch.float64, device=device).permute(0, 3, 1, 2)
    ctrl = perturbed(16, 2, torch.float64, device).transpose(1, 2).contiguous().transpose(1, 2)
    ctrl = ctrl[:, :, :]  # [2, 16, 2] with strides (32, 1, 16)
    assert not x.is_contiguous() and not ctrl.is_contiguous()
    x.requires_grad_(True)
    ctrl.requires_grad_(True)
    out = tps_warp(x, ctrl, (11, 9), impl="ext")
    ref = tps_warp_ref(x, ctrl, (11, 9))
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    g = torch.randn(9, 11, 3, 2, dtype=torch.float64, device=device).permute(3, 2, 1, 0)
    torch.testing.assert_close(grads(out, (x, ctrl), g), grads(ref, (x, ctrl), g),
                               **TOL[torch.float64])
    gg = torch.randn(2, 2, 11, 9, dtype=torch.float64, device=device).permute(0, 2, 3, 1)
    grid = tps_grid(ctrl, (11, 9), impl="ext")
    torch.testing.assert_close(grads(grid, ctrl, gg)[0],
                               grads(tps_grid_ref(ctrl, (11, 9)), ctrl, gg)[0], **TOL[torch.float64])


@pytest.mark.parametrize("device", DEVICES)
def test_only_one_input_requires_grad(device):
    x = torch.rand(2, 3, 10, 8, dtype=torch.float64, device=device)
    ctrl = perturbed(9, 2, torch.float64, device)
    for wants_x in (True, False):
        a, b = x.clone().requires_grad_(wants_x), ctrl.clone().requires_grad_(not wants_x)
        leaf = a if wants_x else b
        (g,) = torch.autograd.grad(tps_warp(a, b, impl="ext").sum(), leaf)
        (g_ref,) = torch.autograd.grad(tps_warp_ref(a, b).sum(), leaf)
        torch.testing.assert_close(g, g_ref, **TOL[torch.float64])


@pytest.mark.parametrize("device", DEVICES)
def test_far_outside_and_coincident_points_are_finite(device):
    # Output pixels on target points (r = 0) and control points far outside the image.
    target = regular_target(3)
    ctrl = (target * 40.0)[None].to(device).requires_grad_(True)
    x = torch.rand(1, 2, 3, 3, dtype=torch.float64, device=device, requires_grad=True)
    out = tps_warp(x, ctrl, (5, 5), target, align_corners=True, impl="ext")
    ref = tps_warp_ref(x, ctrl, (5, 5), target, align_corners=True)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    gx, gc = torch.autograd.grad(out.sum(), (x, ctrl))
    assert torch.isfinite(gx).all() and torch.isfinite(gc).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels", [3, 18])
@pytest.mark.parametrize("device", DEVICES)
def test_half_precision_accumulates_in_float32(device, dtype, channels):
    x = torch.rand(2, channels, 16, 12, device=device).to(dtype)
    # The lattice of 5x5 target points puts output pixels exactly on targets (r = 0).
    ctrl = perturbed(25, 2, torch.float32, device).to(dtype)
    out = tps_warp(x, ctrl, (17, 13), align_corners=True, impl="ext")
    exact = tps_warp_ref(x.float(), ctrl.float(), (17, 13), align_corners=True)
    assert out.dtype == dtype and torch.isfinite(out).all()
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out.float(), exact, rtol=0, atol=4 * eps)
    xh, ch = x.clone().requires_grad_(True), ctrl.clone().requires_grad_(True)
    gx, gc = torch.autograd.grad(tps_warp(xh, ch, (17, 13), align_corners=True, impl="ext").sum(),
                                 (xh, ch))
    assert gx.dtype == dtype and gc.dtype == dtype
    assert torch.isfinite(gx).all() and torch.isfinite(gc).all()


def test_layout_solve_is_cached_in_float64():
    a = tps_layout(k=16)
    assert tps_layout(k=16) is a and tps_layout(regular_target(4)).key == a.key
    assert a.kinv.dtype == torch.float64 and a.kinv.shape == (19, 16)
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.7]])
    b = tps_layout(pts)
    assert tps_layout(pts.clone()) is b and tps_layout(b) is b
    t32, k32 = b.tensors(torch.device("cpu"), torch.float32)
    assert b.tensors(torch.device("cpu"), torch.float32)[1] is k32 and k32.dtype == torch.float32
    assert b.tensors(torch.device("cpu"), torch.float16)[1] is k32  # half accumulates in float32


def test_regular_target_layout():
    t = regular_target(3)
    assert t.shape == (9, 2) and t.dtype == torch.float64
    torch.testing.assert_close(t[0], torch.tensor([-0.9, -0.9], dtype=torch.float64))
    torch.testing.assert_close(t[1], torch.tensor([0.0, -0.9], dtype=torch.float64))  # x varies first
    torch.testing.assert_close(t[8], torch.tensor([0.9, 0.9], dtype=torch.float64))
    assert regular_target((2, 4)).shape == (8, 2)


# --- module ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bound", [None, "tanh"])
def test_tpswarp_identity_initialisation(bound):
    warp = TPSWarp(grid_size=4, bound=bound, impl="ext")
    head = warp.init_identity_(torch.nn.Linear(32, 2 * warp.num_points))
    assert torch.count_nonzero(head.weight) == 0
    features = torch.randn(3, 32)
    x = torch.rand(3, 4, 20, 12)
    out = warp(x, head(features))
    torch.testing.assert_close(out, x, rtol=0, atol=2e-4)
    # Gradients reach the regressor.
    out.mul(torch.randn_like(out)).sum().backward()
    assert head.weight.grad is not None and torch.count_nonzero(head.weight.grad) > 0
    assert "K=16" in repr(warp) and f"bound={bound!r}" in repr(warp)


def test_tpswarp_output_size_and_bound():
    warp = TPSWarp(grid_size=3, size=(7, 5), bound="tanh")
    theta = 5.0 * torch.randn(2, 9, 2)
    x = torch.rand(2, 3, 12, 10)
    out = warp(x, theta)
    assert out.shape == (2, 3, 7, 5)
    torch.testing.assert_close(out, tps_warp(x, torch.tanh(theta), (7, 5), regular_target(3)))
    with pytest.raises(ValueError, match=r"theta must be \[N, 9, 2\] or \[N, 18\]"):
        warp(x, torch.zeros(2, 10))
    with pytest.raises(ValueError, match="bound must be one of"):
        TPSWarp(bound="sigmoid")


def test_compiles_with_torch_compile():
    x = torch.rand(2, 3, 12, 10, requires_grad=True)
    ctrl = perturbed(9, 2, torch.float32, "cpu").requires_grad_(True)
    fn = torch.compile(lambda a, b: tps_warp(a, b, (8, 6), impl="ext").square().mean(),
                       backend="aot_eager", fullgraph=True)
    out = fn(x, ctrl)
    torch.testing.assert_close(out, tps_warp(x, ctrl, (8, 6), impl="ext").square().mean())
    g = torch.autograd.grad(out, (x, ctrl))
    g_ref = torch.autograd.grad(tps_warp_ref(x, ctrl, (8, 6)).square().mean(), (x, ctrl))
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)


# The CPU kernel's planar path, channel-vector path, and its wide tasks (4 vectors).
@pytest.mark.parametrize("batch,channels", [(3, 5), (3, 20), (8, 64)])
def test_ctrl_gradient_is_deterministic_across_thread_counts(batch, channels):
    x = torch.rand(batch, channels, 24, 16, requires_grad=True)
    ctrl = perturbed(25, batch, torch.float32, "cpu").requires_grad_(True)
    g_out = torch.randn(batch, channels, 24, 16)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(torch.autograd.grad(tps_warp(x, ctrl, impl="ext"), (x, ctrl), g_out))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["ext", "ref"])
@pytest.mark.parametrize("case,exc,match", [
    ("collinear", ValueError, "collinear"),
    ("duplicated", ValueError, "target points 1 and 3 are duplicated"),
    ("too_few", ValueError, "at least 3 control points"),
    ("non_square_k", ValueError, "K must be a square"),
    ("k_mismatch", ValueError, "ctrl has K=9 control points but target has 4"),
    ("ctrl_rank", ValueError, r"ctrl must be \[N, K, 2\]"),
    ("ctrl_last_dim", ValueError, r"ctrl must be \[N, K, 2\]"),
    ("x_rank", ValueError, r"x must be \[N, C, H, W\]"),
    ("batch", ValueError, "same batch size"),
    ("dtype", TypeError, "must share a dtype"),
    ("integer", TypeError, "x must be a floating-point tensor"),
    ("size", ValueError, r"size must be \(H, W\)"),
    ("target_shape", ValueError, r"target must be \[K, 2\]"),
    ("not_tensor", TypeError, "ctrl must be a torch.Tensor"),
])
def test_bad_inputs_raise_clear_errors(impl, case, exc, match):
    x = torch.rand(2, 3, 8, 8)
    ctrl = perturbed(9, 2, torch.float32, "cpu")
    args, kw = [x, ctrl], {}
    if case == "collinear":
        kw["target"] = torch.tensor([[-1.0, -1.0], [0.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
        args[1] = ctrl[:, :4]
    elif case == "duplicated":
        kw["target"] = torch.tensor([[-1.0, -1.0], [0.3, 0.2], [1.0, -1.0], [0.3, 0.2], [0.0, 1.0]])
        args[1] = ctrl[:, :5]
    elif case == "too_few":
        kw["target"] = torch.tensor([[-1.0, -1.0], [1.0, 0.0]])
        args[1] = ctrl[:, :2]
    elif case == "non_square_k":
        args[1] = ctrl[:, :5]
    elif case == "k_mismatch":
        kw["target"] = regular_target(2)
    elif case == "ctrl_rank":
        args[1] = ctrl[0]
    elif case == "ctrl_last_dim":
        args[1] = torch.rand(2, 9, 3)
    elif case == "x_rank":
        args[0] = x[0]
    elif case == "batch":
        args[1] = ctrl[:1]
    elif case == "dtype":
        args[1] = ctrl.double()
    elif case == "integer":
        args[0] = (x * 255).to(torch.uint8)
    elif case == "size":
        kw["size"] = (0, 5)
    elif case == "target_shape":
        kw["target"] = torch.rand(9, 3)
    elif case == "not_tensor":
        args[1] = ctrl.numpy()
    fn = tps_warp if impl == "ext" else tps_warp_ref
    if impl == "ext":
        kw["impl"] = "ext"
    with pytest.raises(exc, match=match):
        fn(*args, **kw)


@pytest.mark.parametrize("case,match", [
    ("k", "ctrl must be \\[N, K, 2\\] with the layout's K=9"),
    ("kinv", "kinv must be \\[K\\+3, K\\]"),
    ("dtype", "target and kinv must be Float"),
    ("size", "size must be positive"),
    ("batch", "same batch size"),
    ("grad", "grad must be \\[N, 6, 5, 2\\]"),
])
def test_kernel_checks_name_the_argument(case, match):
    t, kinv = tps_layout(k=9).tensors(torch.device("cpu"), torch.float32)
    x = torch.rand(2, 3, 8, 8)
    ctrl = perturbed(9, 2, torch.float32, "cpu")
    with pytest.raises(RuntimeError, match=match):
        if case == "k":
            torch.ops.fastpose.tps_warp(x, ctrl[:, :4], t, kinv, 6, 5, False)
        elif case == "kinv":
            torch.ops.fastpose.tps_grid(ctrl, t, kinv[:, :4], 6, 5, False)
        elif case == "dtype":
            torch.ops.fastpose.tps_grid(ctrl, t.double(), kinv.double(), 6, 5, False)
        elif case == "size":
            torch.ops.fastpose.tps_grid(ctrl, t, kinv, 0, 5, False)
        elif case == "batch":
            torch.ops.fastpose.tps_warp(x[:1], ctrl, t, kinv, 6, 5, False)
        else:
            torch.ops.fastpose.tps_grid_backward(torch.rand(2, 6, 4, 2), t, kinv, 6, 5, False)


def test_layout_rejects_nearly_singular_and_non_finite_points():
    with pytest.raises(ValueError, match="must be finite"):
        TPSLayout(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, float("nan")]]))
    with pytest.raises(ValueError, match="coincide"):
        TPSLayout(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="give target points"):
        tps_layout()


def test_mismatched_devices_raise():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="one device"):
        tps_warp(x, perturbed(9, 1, torch.float32, "cuda"), impl="ext")
