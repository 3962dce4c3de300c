"""PoT-GAN: networks, pose transform module, guided filter, losses, ablation switches, config errors."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import fastpose.ops.tps as tps_module
from fastpose import _ext
from fastpose.losses import gan_loss
from fastpose.models import BuildContext, get_model
from fastpose.models.guided_filter import GuidedFilter, box_filter, guided_filter
from fastpose.models.pot_gan import PoTGANConfig
from fastpose.ops import regular_target
from fastpose.train.config import TrainConfig, default_config, parse_args

IMPLS = ["ref"] + (["ext"] if _ext.load() else [])

# Narrow networks: the tests check wiring and maths, not capacity.
TINY = dict(base_channels=4, max_channels=16, pot_channels=4, cgn_channels=4, cgn_hidden=8,
            d_base_channels=4)


def _model(size=(64, 32), impl="ref", feature_net=None, **over):
    cfg = PoTGANConfig(**{**TINY, **over})
    return get_model("pot_gan")(cfg, BuildContext(size, impl=impl, feature_net=feature_net))


def _batch(n=2, size=(64, 32), seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = size
    b = {"source_image": torch.rand(n, 3, h, w, generator=g) * 2 - 1,
         "target_image": torch.rand(n, 3, h, w, generator=g) * 2 - 1}
    for side in ("source", "target"):
        b[f"{side}_disks"] = (torch.rand(n, 18, h, w, generator=g) > 0.9).float()
        b[f"{side}_pose_mask_potgan"] = (torch.rand(n, 1, h, w, generator=g) > 0.5).float()
    return b


def _perturb_cgn(model, scale=0.3, seed=1):
    """Move every CGN's last layer away from the identity (weights and bias)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for cgn in model.nets["g"].transform.cgns:
            cgn.fc2.weight.copy_(torch.randn(cgn.fc2.weight.shape, generator=g) * scale)
            cgn.fc2.bias.add_(torch.randn(cgn.fc2.bias.shape, generator=g) * scale)


# --- shapes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(128, 64), (256, 176)])
def test_shapes_at_market_and_deepfashion_sizes(size):
    m = _model(size)
    g = m.nets["g"]
    b = _batch(1, size)
    h, w = size
    feats = g.appearance(b["source_image"])
    assert [tuple(f.shape[2:]) for f in feats] == [(h >> j, w >> j) for j in range(1, 5)]
    assert [f.shape[1] for f in feats] == [4, 8, 16, 16]  # doubling, capped at max_channels
    pose = g.pose(b["target_disks"])
    assert [p.shape for p in pose] == [f.shape for f in feats]
    masks = torch.cat([b["source_pose_mask_potgan"], b["target_pose_mask_potgan"]], 1)
    ctrl = g.transform.control_points(masks)
    assert len(ctrl) == 4 and all(c.shape == (1, 15, 2) for c in ctrl)  # default 5 x 3 lattice
    warped = g.transform(masks, feats)
    assert [x.shape for x in warped] == [f.shape for f in feats]
    out = m.generate(b)
    assert out.shape == (1, 3, h, w) and out.abs().max() <= 1
    pair = torch.cat([out, b["target_pose_mask_potgan"]], 1)
    assert m.nets["d"](pair).shape == (1,)


def test_four_scales_and_n_blocks():
    m = _model((64, 32))
    g = m.nets["g"]
    assert len(g.appearance.blocks) == len(g.pose.blocks) == len(g.decoder.blocks) == 4
    assert len(g.transform.encoders) == len(g.transform.cgns) == 4
    # The CGN of scale j has 3 - j stride-2 blocks, so every one ends at the deepest map (4 x 2).
    for j, cgn in enumerate(g.transform.cgns):
        strided = [c for c in cgn.convs if isinstance(c, torch.nn.Conv2d) and c.stride == (2, 2)]
        assert len(strided) == 3 - j and cgn.fc1.in_features == 4 * 4 * 2


# --- the pose transform module ---------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_identity_initialisation_makes_the_warp_the_identity(impl):
    m = _model((64, 32), impl=impl)
    g = m.nets["g"]
    b = _batch(3)
    masks = torch.cat([b["source_pose_mask_potgan"], b["target_pose_mask_potgan"]], 1)
    target = regular_target((5, 3)).float()
    for c in g.transform.control_points(masks):
        torch.testing.assert_close(c, target.expand(3, -1, -1), atol=1e-6, rtol=0)
    sizes = ((32, 16), (16, 8), (8, 4), (4, 2))
    feats = [torch.randn(3, 5, h, w) for h, w in sizes]
    for x, y in zip(g.transform(masks, feats), feats):
        # float32: the spline evaluated at the lattice reproduces it up to rounding.
        torch.testing.assert_close(x, y, atol=5e-4, rtol=1e-4)
    g.double()
    for cgn in g.transform.cgns:  # the identity bias again, now in float64
        g.transform.warp.init_identity_(cgn.fc2)
    feats = [f.double() for f in feats]
    for x, y in zip(g.transform(masks.double(), feats), feats):
        torch.testing.assert_close(x, y, atol=1e-9, rtol=1e-9)


def test_warp_uses_the_runs_impl_and_gets_gradients(monkeypatch):
    calls = []
    real = tps_module.tps_warp

    def spy(*args, **kwargs):
        calls.append(kwargs.get("impl"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tps_module, "tps_warp", spy)
    m = _model((64, 32), impl="ref")
    _perturb_cgn(m)
    b = _batch()
    fake, _ = m._generate(b)
    assert calls == ["ref"] * 4
    fake.square().mean().backward()
    g = m.nets["g"]
    for cgn, enc in zip(g.transform.cgns, g.transform.encoders):
        assert cgn.fc2.weight.grad.abs().sum() > 0 and enc[0].weight.grad.abs().sum() > 0


@pytest.mark.skipif("ext" not in IMPLS, reason="extension not built")
def test_ext_and_ref_generators_agree():
    torch.manual_seed(0)
    ref = _model((64, 32), impl="ref")
    _perturb_cgn(ref)
    ext = _model((64, 32), impl="ext")
    ext.load_state_dict(ref.state_dict())
    b = _batch()
    torch.testing.assert_close(ext.generate(b), ref.generate(b), atol=1e-4, rtol=1e-4)


# --- ablation switches ----------------------------------------------------------------------

def test_without_the_pose_transform_module_nothing_is_warped(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("tps_warp called with pose_transform=False")

    monkeypatch.setattr(tps_module, "tps_warp", forbidden)
    m = _model((64, 32), pose_transform=False)
    g = m.nets["g"]
    assert g.transform is None
    assert not any("transform" in name for name, _ in g.named_parameters())
    b = _batch()
    # The decoder sees the appearance features unwarped.
    feats = g.appearance(b["source_image"])
    expect = g.filter(b["target_pose_mask_potgan"], g.decoder(feats, g.pose(b["target_disks"])))
    torch.testing.assert_close(m.generate(b), expect.clamp(-1, 1))
    _train_once(m, b)


def test_guided_filter_switch():
    torch.manual_seed(0)
    on = _model((64, 32), pose_transform=False)
    off = _model((64, 32), pose_transform=False, guided_filter=False)
    assert off.nets["g"].filter is None
    off.load_state_dict(on.state_dict())
    b = _batch()
    g = on.nets["g"]
    raw = g.decoder(g.appearance(b["source_image"]), g.pose(b["target_disks"]))
    torch.testing.assert_close(off.generate(b), raw)
    filtered = guided_filter(b["target_pose_mask_potgan"], raw, 1, 1e-2)
    torch.testing.assert_close(on.generate(b), filtered.clamp(-1, 1))
    assert not torch.allclose(filtered, raw)


# --- training -------------------------------------------------------------------------------

def _train_once(model, batch):
    opts, _ = model.configure_optimizers()
    order = []

    def update(name, loss):
        order.append((name, float(loss.detach())))
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()

    losses = model.train_step("train", batch, update)
    return order, losses


@pytest.mark.parametrize("stage_index", [0])
def test_one_training_step_per_stage_updates_g_then_d(stage_index):
    torch.manual_seed(0)
    m = _model((64, 32))
    stage = m.stages()[stage_index]
    assert (stage.name, stage.trains) == ("train", ("g", "d"))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    order, losses = _train_once(m, _batch())
    assert [n for n, _ in order] == ["g", "d"]  # Algorithm 1: G, then D
    c = m.cfg
    g_total = (c.lambda_l1 * losses["g_l1"] + c.lambda_perceptual * losses["g_per"]
               + c.lambda_gan * losses["g_adv"])
    assert order[0][1] == pytest.approx(float(g_total), rel=1e-5)
    assert all(torch.isfinite(v) for v in losses.values())
    assert float(losses["g_per"]) > 0
    after = m.state_dict()
    for net in ("g", "d"):
        changed = [k for k in after if k.startswith(f"nets.{net}.") and not torch.equal(after[k], before[k])]
        assert changed, f"{net} was not updated"
    # The frozen perceptual network is not trained and not checkpointed with the networks.
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith("perceptual."))
    with pytest.raises(ValueError, match="one stage"):
        m.train_step("stage2", _batch(), lambda *a: None)


def test_losses_are_the_papers_equation_8():
    torch.manual_seed(0)
    feats = []

    def feature_net(arch, layers):
        from fastpose.models.vgg import VGGFeatures
        feats.append((arch, tuple(layers)))
        return VGGFeatures(arch, layers, weights=None)

    m = _model((64, 32), feature_net=feature_net)
    assert feats == [("vgg16", ("relu1_2",))]
    c = m.cfg
    assert (c.lambda_l1, c.lambda_perceptual, c.lambda_gan) == (10.0, 1.0, 0.5)
    opts, _ = m.configure_optimizers()
    assert all(o.defaults["lr"] == 2e-4 and o.defaults["betas"] == (0.5, 0.999) for o in opts.values())
    b = _batch()
    fake, m_b = m._generate(b)
    tgt = b["target_image"]
    expect_l1 = (fake - tgt).abs().mean()
    f = m.perceptual.features
    expect_per = (f(fake)["relu1_2"] - f(tgt)["relu1_2"]).abs().mean()
    expect_adv = gan_loss(m.nets["d"](torch.cat([fake, m_b], 1)), True)
    order, losses = _train_once(m, b)
    torch.testing.assert_close(losses["g_l1"], expect_l1)
    torch.testing.assert_close(losses["g_per"], expect_per)
    torch.testing.assert_close(losses["g_adv"], expect_adv)
    # Without the perceptual term no feature network is built.
    assert _model((64, 32), lambda_perceptual=0.0).perceptual is None


# --- config ---------------------------------------------------------------------------------

@pytest.mark.parametrize("over, match", [
    (dict(blocks=0), "blocks must be >= 1"),
    (dict(tps_grid_h=1), "tps_grid_h and tps_grid_w"),
    (dict(tps_span=1.0), "tps_span"),
    (dict(gf_eps=0.0), "gf_eps"),
    (dict(gan_loss="wgan"), "gan_loss must be one of"),
    (dict(pose_encoding="nope"), "unknown pose_encoding"),
    (dict(mask_encoding="disks"), "1-channel mask"),
])
def test_bad_config_errors(over, match):
    with pytest.raises(ValueError, match=match):
        _model((64, 32), **over)


def test_image_size_must_divide_by_two_to_the_n():
    with pytest.raises(ValueError, match="divisible by 16"):
        _model((64, 40))
    _model((64, 48), blocks=3)  # 8 divides both


def test_presets_and_default_model():
    assert TrainConfig().model == "pot_gan"
    cfg, _, _ = parse_args(["--dry-run"])
    assert cfg.model == "pot_gan" and isinstance(cfg.model_cfg, PoTGANConfig)
    syn = default_config("pot_gan", "synthetic")
    assert (syn.image_h, syn.image_w) == (64, 32) and syn.allow_random_features
    market = default_config("pot_gan", "market:/x")
    fashion = default_config("pot_gan", "deepfashion:/x")
    for c in (market, fashion):
        assert c.model_cfg.steps == 90000 and c.model_cfg.lr == 2e-4 and not c.allow_random_features
        assert c.model_cfg.pose_transform and c.model_cfg.guided_filter
    cfg, _, _ = parse_args(["--pose-transform", "false", "--guided-filter", "off"])
    assert not cfg.model_cfg.pose_transform and not cfg.model_cfg.guided_filter


def test_main_job_command_trains_and_reports_on_a_tiny_synthetic_set(tmp_path, monkeypatch):
    from fastpose.train.__main__ import main
    monkeypatch.setenv("FASTPOSE_CACHE", str(tmp_path / "cache"))
    assert main(["--synthetic-train-ids", "2", "--synthetic-test-ids", "1", "--out", str(tmp_path),
                 "--run-name", "syn", "--max-steps", "2", "--batch-size", "2", "--base-channels", "4",
                 "--pot-channels", "4", "--cgn-channels", "4", "--cgn-hidden", "8",
                 "--d-base-channels", "4", "--max-channels", "8", "--eval-pairs", "2", "--workers", "0",
                 "--sample-pairs", "2", "--device", "cpu"]) == 0
    run = tmp_path / "syn"
    assert json.loads((run / "config.json").read_text())["model"] == "pot_gan"
    assert (run / "checkpoints" / "latest.pt").is_file() and any((run / "samples").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 2 and {"ssim", "mask_ssim"} <= set(metrics["model"])
    # The checkpoint generates from an image and two poses (encodings computed from keypoints).
    from PIL import Image

    from fastpose import generate
    Image.fromarray((torch.rand(64, 32, 3) * 255).byte().numpy()).save(tmp_path / "src.png")
    pose = [[8 + 2 * i, 10 + i % 12] for i in range(18)]
    (tmp_path / "pose.json").write_text(json.dumps(pose))
    assert generate.main(["--checkpoint", str(run), "--source", str(tmp_path / "src.png"),
                          "--source-pose", str(tmp_path / "pose.json"), "--target-pose",
                          json.dumps(pose[::-1]), "--out", str(tmp_path / "out.png")]) == 0
    assert Image.open(tmp_path / "out.png").size == (32, 64)


# --- the guided filter ----------------------------------------------------------------------

@pytest.mark.parametrize("r", [0, 1, 3, 40])
def test_box_filter_is_a_zero_padded_window_sum(r):
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    k = 2 * r + 1
    expect = F.conv2d(F.pad(x, (r, r, r, r)), torch.ones(3, 1, k, k, dtype=x.dtype), groups=3)
    torch.testing.assert_close(box_filter(x, r), expect)


def _guided_reference(guide, src, r, eps):
    k = 2 * r + 1

    def mean(t):
        c = t.shape[1]
        ones = torch.ones(c, 1, k, k, dtype=t.dtype)
        s = F.conv2d(F.pad(t, (r,) * 4), ones, groups=c)
        n = F.conv2d(F.pad(torch.ones_like(t[:, :1]), (r,) * 4), ones[:1])
        return s / n

    mi, mp = mean(guide.expand_as(src)), mean(src)
    a = (mean(guide * src) - mi * mp) / (mean(guide * guide).expand_as(src) - mi * mi + eps)
    b = mp - a * mi
    return mean(a) * guide + mean(b)


@pytest.mark.parametrize("guide_channels", [1, 3])
def test_guided_filter_matches_its_definition(guide_channels):
    g = torch.Generator().manual_seed(0)
    src = torch.randn(2, 3, 12, 10, generator=g, dtype=torch.float64)
    guide = (torch.rand(2, guide_channels, 12, 10, generator=g, dtype=torch.float64) > 0.5).double()
    out = guided_filter(guide, src, 2, 1e-2)
    torch.testing.assert_close(out, _guided_reference(guide, src, 2, 1e-2))
    # The guide's edges survive: filtering a guide with itself (tiny eps) returns it.
    torch.testing.assert_close(guided_filter(guide, guide, 1, 1e-8), guide, atol=1e-5, rtol=0)
    # A flat guide gives the local mean of the local mean.
    flat = guided_filter(torch.ones(2, 1, 12, 10, dtype=torch.float64), src, 1, 1e-2)
    n = box_filter(torch.ones(1, 1, 12, 10, dtype=torch.float64), 1)
    torch.testing.assert_close(flat, box_filter(box_filter(src, 1) / n, 1) / n)
    small = src[:1, :, :5, :4].detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: guided_filter(guide[:1, :, :5, :4], s, 1, 1e-2), (small,))


def test_guided_filter_errors():
    with pytest.raises(ValueError, match="guide must be"):
        guided_filter(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4), 1, 1e-2)
    with pytest.raises(ValueError, match="eps must be > 0"):
        GuidedFilter(1, 0.0)
    with pytest.raises(ValueError, match="radius must be >= 0"):
        box_filter(torch.zeros(1, 1, 4, 4), -1)
