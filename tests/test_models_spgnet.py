"""SPGNet: SPATN, the SEAN generator, its training step, stage-1 accuracy and the inference path."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from fastpose.models import BuildContext, get_model, list_models
from fastpose.models.patchgan import PatchGANDiscriminator
from fastpose.models.spgnet import SPGNet, SPGNetConfig, parsing_accuracy
from fastpose.models.spgnet_sean import SEANNorm, SPGBlock, StyleEncoder
from fastpose.models.spgnet_unet import SPGGenerator, warp
from fastpose.train.config import default_config

H, W, N = 32, 16, 2
TINY = dict(spatn_ngf=4, spatn_blocks=1, spatn_dropout=False, nf=4, max_nf=8, num_scales=3,
            num_warp_scales=2, res_blocks=1, spg_blocks=1, style_dim=4, style_nf=2, sean_hidden=4,
            flow_nf=4, flow_down=2, d_ndf=4, d_layers=2, perc_layers="relu1_1",
            gan_start_step=1, total_steps=2)


def tiny_model(size=(H, W), impl="auto", **over) -> SPGNet:
    cfg = SPGNetConfig(**{**TINY, **over})
    return get_model("spgnet")(cfg, BuildContext(size, impl=impl))


def batch_for(size=(H, W), n=N, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    h, w = size
    b = {"source_image": torch.rand(n, 3, h, w, generator=g) * 2 - 1,
         "target_image": torch.rand(n, 3, h, w, generator=g) * 2 - 1}
    for side in ("source", "target"):
        b[f"{side}_heatmaps"] = torch.rand(n, 18, h, w, generator=g)
        b[f"{side}_distance_maps"] = torch.rand(n, 12, h, w, generator=g)
        b[f"{side}_parsing"] = torch.randint(0, 20, (n, h, w), generator=g)
    return b


def _updater(model):
    opts, _ = model.configure_optimizers()

    def update(name, loss):
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()
    return update


# --- shapes and construction ------------------------------------------------------------------

def test_registered_with_presets_and_encodings():
    assert "spgnet" in list_models()
    cfg = default_config("spgnet", "synthetic")
    assert (cfg.image_h, cfg.image_w) == (64, 32) and cfg.model_cfg.gan_start_step < cfg.model_cfg.total_steps
    assert default_config("spgnet", "market:/x").model_cfg.spatn_input == "image"  # SPATN*
    df = default_config("spgnet", "deepfashion:/x").model_cfg
    assert (df.canvas_h, df.canvas_w, df.num_scales, df.sean_kernel) == (256, 256, 7, 5)
    assert SPGNet.encodings_for(cfg.model_cfg) == ("heatmaps", "distance_maps", "parsing")


def test_network_shapes():
    m = tiny_model()
    b = batch_for()
    inp = m._common(b)
    assert m.parsing_logits(inp).shape == (N, 20, H, W)
    assert m.nets["spatn"].image_encoder[1].in_channels == 20  # source parsing one-hot
    assert tiny_model(spatn_input="image").nets["spatn"].image_encoder[1].in_channels == 3  # SPATN*
    out = m._generate(inp, b["target_parsing"])
    assert out.shape == (N, 3, H, W) and out.abs().max() <= 1
    assert m.nets["d"](m._d_input(inp, out, b)).shape[:2] == (N, 1)
    codes = m.nets["g"].style(inp["src"], inp["src_seg"])
    assert codes.shape == (N, 20, 4)
    assert m.generate(b).shape == (N, 3, H, W)
    assert m.predict_parsing(b).shape == (N, H, W) and m.predict_parsing(b).dtype == torch.int64


def test_unet_widths_follow_the_authors_rule():
    g = SPGGenerator(num_scales=5, nf=32, max_nf=128)
    assert g.widths == [32, 64, 96, 128, 128]
    with pytest.raises(ValueError, match="divisible"):
        g(torch.zeros(1, 3, 24, 16), torch.zeros(1, 30, 24, 16), torch.zeros(1, 60, 24, 16),
          torch.zeros(1, 24, 16, dtype=torch.long), torch.zeros(1, 24, 16, dtype=torch.long))


def test_canvas_padding_crops_back():
    m = tiny_model(size=(32, 12), canvas_h=32, canvas_w=16).eval()
    b = batch_for((32, 12))
    assert m.generate(b).shape == (N, 3, 32, 12)
    assert m.predict_parsing(b).shape == (N, 32, 12)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="spatn_input"):
        tiny_model(spatn_input="pose")
    with pytest.raises(ValueError, match="gan_start_step"):
        tiny_model(gan_start_step=5, total_steps=2)
    with pytest.raises(ValueError, match="num_warp_scales"):
        SPGGenerator(num_scales=3, num_warp_scales=4)


def test_patchgan_layout():
    d = PatchGANDiscriminator(24, ndf=64, n_layers=3)
    convs = [m for m in d.body if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert d(torch.randn(2, 24, 128, 64)).shape == (2, 1, 14, 6)


def test_warp_zero_flow_is_identity_and_integer_flow_shifts():
    x = torch.randn(2, 3, 8, 6)
    torch.testing.assert_close(warp(x, torch.zeros(2, 2, 8, 6)), x)
    flow = torch.zeros(2, 2, 8, 6)
    flow[:, 0] = 1.0  # sample one pixel to the right
    out = warp(x, flow)
    torch.testing.assert_close(out[..., :-1], x[..., 1:])
    assert out[..., -1].abs().max() == 0  # zero padding outside


# --- SEAN ---------------------------------------------------------------------------------------

def test_sean_style_map_is_each_regions_transformed_code():
    norm = SEANNorm(3, num_labels=4, style_dim=2, hidden=2, kernel=1)
    codes = torch.randn(1, 4, 2)
    seg = torch.tensor([[[0, 1], [3, 3]]])
    style = norm.style_map(seg, codes)
    for (y, x), r in {(0, 0): 0, (0, 1): 1, (1, 0): 3, (1, 1): 3}.items():
        expected = torch.relu(norm.style_weight[r] @ codes[0, r] + norm.style_bias[r])
        torch.testing.assert_close(style[0, :, y, x], expected)


def test_sean_blend_follows_equation_7():
    norm = SEANNorm(2, num_labels=3, style_dim=2, hidden=2, kernel=1).eval()
    x, seg, codes = torch.randn(1, 2, 4, 4), torch.randint(0, 3, (1, 4, 4)), torch.randn(1, 3, 2)
    with torch.no_grad():
        norm.blend_gamma.fill_(50.0)  # theta -> 1: only the semantic (SPADE) branch
        norm.blend_beta.fill_(50.0)
        sem = norm.label_shared(torch.nn.functional.one_hot(seg, 3).permute(0, 3, 1, 2).float())
        expected = norm.norm(x) * (1 + norm.label_gamma(sem)) + norm.label_beta(sem)
        torch.testing.assert_close(norm(x, seg, codes), expected)


@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("block", ["norm", "spg", "style"])
def test_sean_blocks_kernel_matches_reference(requires_ext, block, kernel):
    """impl="ext" (region ops, region_conv for the convs of region-constant maps) and impl="ref"
    (the literal dense convs on the broadcast and one-hot maps) are one function: same output,
    same gradients to the inputs and to every parameter."""
    if block == "style" and kernel != 3:
        pytest.skip("the style encoder has no SEAN kernel")
    torch.manual_seed(1)
    seg = torch.randint(0, 20, (2, 16, 8))
    seg[1, :8] = 3  # a large region, so some pixels see one label in every tap
    codes = torch.randn(2, 20, 6, requires_grad=True)
    x = torch.randn(2, 5, 8, 4, requires_grad=True)
    skip = torch.randn(2, 7, 8, 4, requires_grad=True)
    img = torch.rand(2, 3, 16, 8, requires_grad=True)
    if block == "norm":
        make = lambda impl: SEANNorm(5, 20, 6, hidden=4, kernel=kernel, impl=impl)  # noqa: E731
        run = lambda mod: mod(x, seg, codes)  # noqa: E731
    elif block == "spg":
        make = lambda impl: SPGBlock(5, 7, 20, 6, hidden=4, kernel=kernel, impl=impl)  # noqa: E731
        run = lambda mod: mod(x, skip, seg, codes)  # noqa: E731
    else:
        make = lambda impl: StyleEncoder(6, nf=2, impl=impl)  # noqa: E731
        run = lambda mod: mod(img, seg)  # noqa: E731
    ext = make("ext")
    ref = make("ref")
    with torch.no_grad():  # blend factors away from 1/2 and noise on, so every term counts
        for name, p in ext.named_parameters():
            if "blend" in name or "noise_var" in name:
                p.copy_(torch.randn_like(p))
    ref.load_state_dict(ext.state_dict())
    assert list(ext.state_dict()) == list(ref.state_dict())
    results = []
    for mod in (ext, ref):
        for t in (x, skip, img, codes):
            t.grad = None
        mod.zero_grad(set_to_none=True)
        torch.manual_seed(2)  # the same SEAN noise in both
        out = run(mod)
        out.square().sum().backward()
        inputs = [t.grad.clone() for t in (x, skip, img, codes) if t.grad is not None]
        params = {n: p.grad.clone() for n, p in mod.named_parameters() if p.grad is not None}
        results.append((out.detach(), inputs, params))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
    assert len(results[0][1]) == len(results[1][1]) >= 1
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert results[0][2].keys() == results[1][2].keys()
    if block != "style":
        assert any("style_gamma" in n for n in results[0][2]) and any("label_shared" in n for n in results[0][2])
    for name in results[0][2]:
        torch.testing.assert_close(results[0][2][name], results[1][2][name], rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("kernel", [1, 3])
def test_sean_kernel_path_builds_no_one_hot_or_broadcast_map(requires_ext, monkeypatch, kernel):
    import fastpose.models.spgnet_sean as sean

    def forbidden(*args, **kwargs):
        raise AssertionError("the kernel path must not build a one-hot or broadcast map")
    for name in ("one_hot_labels", "region_broadcast"):
        monkeypatch.setattr(sean, name, forbidden)
    monkeypatch.setattr(torch.nn.functional, "one_hot", forbidden)
    norm = SEANNorm(5, 20, 6, hidden=4, kernel=kernel, impl="ext")
    out = norm(torch.randn(2, 5, 8, 4), torch.randint(0, 20, (2, 16, 8)), torch.randn(2, 20, 6))
    out.sum().backward()
    assert norm.style_gamma.weight.grad is not None and norm.label_shared[0].weight.grad is not None
    with pytest.raises(AssertionError, match="must not build"):  # the literal path does build them
        SEANNorm(5, 20, 6, hidden=4, kernel=kernel, impl="ref")(
            torch.randn(2, 5, 8, 4), torch.randint(0, 20, (2, 16, 8)), torch.randn(2, 20, 6))


def test_sean_checkpoint_keys_are_unchanged():
    # The parameter layout of the authors' ACE (and of checkpoints written before region_conv).
    assert set(SEANNorm(5, 20, 6, hidden=4, kernel=3).state_dict()) == {
        "noise_var", "style_weight", "style_bias", "blend_gamma", "blend_beta",
        "norm.running_mean", "norm.running_var", "norm.num_batches_tracked",
        "style_gamma.weight", "style_gamma.bias", "style_beta.weight", "style_beta.bias",
        "label_shared.0.weight", "label_shared.0.bias", "label_gamma.weight", "label_gamma.bias",
        "label_beta.weight", "label_beta.bias"}


def test_generator_kernel_matches_reference(requires_ext):
    b = batch_for()
    ext = tiny_model(impl="ext").eval()
    ref = tiny_model(impl="ref").eval()
    ref.load_state_dict(ext.state_dict())
    torch.testing.assert_close(ext.generate(b), ref.generate(b), rtol=1e-4, atol=1e-5)


# --- training -------------------------------------------------------------------------------------

def test_stages_follow_the_gan_warmup():
    m = tiny_model(gan_start_step=3, total_steps=10)
    assert [(s.name, s.steps, s.trains) for s in m.stages()] == [
        ("warmup", 3, ("spatn", "g")), ("adversarial", 7, ("spatn", "g", "d"))]
    assert [s.name for s in tiny_model(gan_start_step=0, total_steps=4).stages()] == ["adversarial"]
    opts, _ = m.configure_optimizers()
    assert opts["d"].param_groups[0]["lr"] == 2e-5 and opts["d"].param_groups[0]["weight_decay"] == 4e-4
    assert opts["g"].param_groups[0]["lr"] == opts["spatn"].param_groups[0]["lr"] == 2e-4


@pytest.mark.parametrize("stage", ["warmup", "adversarial"])
def test_one_training_step_updates_the_stage_networks(stage):
    m = tiny_model()
    for net in m.nets.values():
        net.train()
    update = _updater(m)
    before = {n: copy.deepcopy(net.state_dict()) for n, net in m.nets.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # random VGG without a feature_net
        logs = m.train_step(stage, batch_for(), update)
    assert all(torch.isfinite(v).all() for v in logs.values())
    assert {"spatn_ce", "g_l1", "g_perc"} <= set(logs)
    assert ("d" in logs) == (stage == "adversarial")

    def changed(name):
        return any(not torch.equal(before[name][k], v) for k, v in m.nets[name].state_dict().items()
                   if v.is_floating_point() and "running" not in k)
    assert changed("spatn") and changed("g")
    assert changed("d") == (stage == "adversarial")
    with pytest.raises(ValueError, match="stages"):
        m.train_step("stage3", batch_for(), update)


def test_training_uses_the_ground_truth_target_parsing(monkeypatch):
    m = tiny_model()
    seen = []
    orig = m._generate
    monkeypatch.setattr(m, "_generate", lambda inp, seg: seen.append(seg) or orig(inp, seg))
    b = batch_for()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m.train_step("warmup", b, _updater(m))
    assert len(seen) == 1 and torch.equal(seen[0], b["target_parsing"])


# --- stage-1 accuracy -------------------------------------------------------------------------------

def test_parsing_accuracy_on_hand_made_labels():
    target = torch.tensor([[[0, 1], [2, 3]], [[5, 5], [5, 5]]])
    pred = torch.tensor([[[0, 1], [2, 0]], [[5, 0], [0, 0]]])
    torch.testing.assert_close(parsing_accuracy(pred, target), torch.tensor([0.75, 0.25]))
    torch.testing.assert_close(parsing_accuracy(target, target), torch.ones(2))
    with pytest.raises(ValueError, match="same shape"):
        parsing_accuracy(pred, target[:, :1])


def test_extra_metrics_compare_spatn_with_copying_the_source(monkeypatch):
    m = tiny_model().eval()
    samples = []
    for i in range(3):
        s = {k: v[0] for k, v in batch_for(seed=i, n=1).items()}
        s["source_parsing"] = torch.zeros(H, W, dtype=torch.long)
        s["target_parsing"] = torch.zeros(H, W, dtype=torch.long)
        s["target_parsing"][: H // 4] = 2  # copying the source gets 3/4 of the pixels right
        samples.append(s)
    # A stage 1 that predicts the target exactly gives accuracy 1.
    monkeypatch.setattr(m, "predict_parsing", lambda b: b["target_parsing"].clone())
    res = m.extra_metrics(samples, pairs=0, batch_size=2, device="cpu")
    assert res["model"]["parsing_acc"] == pytest.approx(1.0)
    assert res["copy_source"]["parsing_acc"] == pytest.approx(0.75)
    assert m.extra_metrics(samples, pairs=-1, batch_size=2, device="cpu") == {}


# --- inference path -----------------------------------------------------------------------------------

def test_generate_uses_spatns_prediction_not_the_ground_truth():
    m = tiny_model().eval()
    b = batch_for()
    out = m.generate(b)
    # The generator does depend on the target parsing it is given ...
    inp = m._common(b)
    with torch.no_grad():
        g_gt = m._generate(inp, b["target_parsing"])
        g_pred = m._generate(inp, m.parsing_logits(inp).argmax(1))
    assert not torch.allclose(g_gt, g_pred)
    # ... and generate() gives exactly its output on SPATN's prediction,
    torch.testing.assert_close(out, g_pred.clamp(-1, 1))
    # whatever the batch's target parsing says, even when it is absent.
    other = dict(b, target_parsing=(b["target_parsing"] + 7) % 20)
    torch.testing.assert_close(m.generate(other), out)
    del other["target_parsing"]
    torch.testing.assert_close(m.generate(other), out)


def test_generate_follows_a_forced_spatn_prediction():
    m = tiny_model().eval()
    b = batch_for()
    last = m.nets["spatn"].decoder[-1]  # SPATN's logits conv
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[9] = 1.0  # SPATN now predicts "pants" everywhere
    assert (m.predict_parsing(b) == 9).all()
    inp = m._common(b)
    with torch.no_grad():
        expected = m._generate(inp, torch.full((N, H, W), 9, dtype=torch.long)).clamp(-1, 1)
    torch.testing.assert_close(m.generate(b), expected)


# --- through the loop and the CLIs ---------------------------------------------------------------------

def test_cli_trains_spgnet_on_a_parsing_folder_and_reports_parsing_accuracy(tmp_path, capsys):
    """PATN-layout Market folder with parsing PNGs (SPATN* preset), both loop stages, the final table
    with stage 1's parsing accuracy next to copying the source parsing, then evaluate from the run."""
    import json

    from fastpose import evaluate
    from fastpose.train.__main__ import main
    from patn_folder import make_patn_folder
    root = tmp_path / "market"
    make_patn_folder(root, "train", parsing=True)
    make_patn_folder(root, "test", parsing=True)
    tiny = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    args = ["--model", "spgnet", "--data", f"market:{root}", "--out", str(tmp_path / "runs"), "--run-name", "r",
            "--image-h", "32", "--image-w", "16", "--batch-size", "2", "--eval-pairs", "0", "--workers", "0",
            "--device", "cpu", "--sample-pairs", "2", "--allow-random-features", "true", "--log-every", "1", *tiny]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # random VGG19 offline
        assert main(args) == 0
    run = tmp_path / "runs" / "r"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 2 and metrics["pairs"] == 4
    for who in ("model", "copy_source"):
        assert 0 <= metrics[who]["parsing_acc"] <= 1 and "ssim" in metrics[who]
    assert "parsing_acc" in capsys.readouterr().out
    log = (run / "log.csv").read_text().splitlines()
    assert "warmup" in log[1] and "adversarial" in log[-1]
    capsys.readouterr()
    assert evaluate.main(["--run", str(run), "--metrics", "ssim", "--json", str(tmp_path / "e.json")]) == 0
    assert "parsing_acc" in capsys.readouterr().out  # the model's own metric, also in evaluate
    report = json.loads((tmp_path / "e.json").read_text())
    # The checkpointed model in evaluate and the trainer's in-memory one agree: both score in eval mode.
    for who in ("model", "copy_source"):
        assert report[who]["parsing_acc"] == pytest.approx(metrics[who]["parsing_acc"])

    # fastpose.generate needs the source parsing for SPGNet, and says so when it is missing.
    from fastpose import generate
    from fastpose.data.layout import Layout
    from patn_folder import NAMES
    layout = Layout.for_preset(root, "market")
    ann = layout.annotations("test")
    base = ["--checkpoint", str(run), "--source", str(layout.images("test") / NAMES[0]),
            "--source-pose", f"{ann}:{NAMES[0]}", "--target-pose", f"{ann}:{NAMES[1]}",
            "--device", "cpu"]
    capsys.readouterr()
    assert generate.main([*base, "--out", str(tmp_path / "no.png")]) == 2
    assert "--source-parsing" in capsys.readouterr().err and not (tmp_path / "no.png").exists()
    parsing = layout.parsing("test", NAMES[0])
    assert generate.main([*base, "--source-parsing", str(parsing), "--out", str(tmp_path / "g.png")]) == 0
    from PIL import Image
    assert Image.open(tmp_path / "g.png").size == (16, 32)
