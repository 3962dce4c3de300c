"""LPIPS: the formula, torchvision-compatible backbones and lpips-compatible lin layers, loaded from
saved state dicts. Backbones are RANDOMLY INITIALISED here (CI has no ImageNet weights)."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch
import torch.nn.functional as F

from fastpose.metrics import LPIPS, EvalBatch, LPIPSMetric, WeightsUnavailable, load_lpips
from fastpose.metrics import weights
from fastpose.metrics.lpips import BACKBONES, Backbone, load_lin

CHANNELS = {net: spec["channels"] for net, spec in BACKBONES.items()}


def lin_state(net: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A lin-layer file with the lpips package's key names and shapes (non-negative weights, as
    trained)."""
    g = torch.Generator().manual_seed(seed)
    return {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
            for k, c in enumerate(CHANNELS[net])}


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for spec in weights.WEIGHTS.values():
        monkeypatch.delenv(spec.env, raising=False)
    monkeypatch.delenv(weights.LPIPS_LIN_ENV, raising=False)
    return tmp_path


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_identical_images_give_zero_and_distances_are_symmetric(net, tmp_path):
    torch.save(lin_state(net), tmp_path / f"{net}.pth")
    model = LPIPS(net).eval()
    load_lin(model, tmp_path)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x, x).abs().max() == 0
        d = model(x, y)
        assert (d > 0).all()
        torch.testing.assert_close(d, model(y, x))


def test_formula_with_unit_lin_weights_is_the_cosine_distance_sum():
    model = LPIPS("alex").eval()
    with torch.no_grad():
        for k in range(5):
            getattr(model, f"lin{k}").model[1].weight.fill_(1.0)
        x, y = torch.rand(3, 3, 64, 64), torch.rand(3, 3, 64, 64)
        shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
        scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
        fx = model.backbone(((2 * x - 1) - shift) / scale)
        fy = model.backbone(((2 * y - 1) - shift) / scale)
        # |a/|a| - b/|b||^2 = 2 - 2 cos(a, b) per pixel; lin weights 1 sum over channels
        expected = sum((2 - 2 * F.cosine_similarity(a, b, dim=1, eps=0)).mean((1, 2))
                       for a, b in zip(fx, fy))
        torch.testing.assert_close(model(x, y), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("net,ctor", [("alex", "alexnet"), ("vgg", "vgg16")])
def test_backbone_taps_equal_torchvision(net, ctor):
    models = pytest.importorskip("torchvision.models")
    tv = getattr(models, ctor)(weights=None).eval()
    ours = Backbone(net).eval()
    used = {k: v for k, v in tv.state_dict().items()
            if k.startswith("features.") and int(k.split(".")[1]) <= ours.taps[-1]}
    ours.load_state_dict(used)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        outs, h, ref = ours(x), x, []
        for i, layer in enumerate(tv.features[:ours.taps[-1] + 1]):
            h = layer(h)
            if i in ours.taps:
                ref.append(h)
    assert [o.shape[1] for o in outs] == list(CHANNELS[net])
    for a, b in zip(outs, ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("net,key", [("alex", "alexnet"), ("vgg", "vgg16")])
def test_load_lpips_from_saved_state_dicts(net, key, clean_env, monkeypatch):
    src = LPIPS(net)
    backbone = {k: v for k, v in src.backbone.state_dict().items()}
    backbone["classifier.1.weight"] = torch.zeros(4, 4)  # torchvision files carry the classifier
    spec = weights.WEIGHTS[key]
    path = clean_env / "torch" / "hub" / "checkpoints" / spec.filename
    path.parent.mkdir(parents=True)
    torch.save(backbone, path)
    lin_dir = clean_env / "lpips"
    lin_dir.mkdir()
    torch.save(lin_state(net, 1), lin_dir / f"{net}.pth")
    with pytest.raises(WeightsUnavailable, match="sha256"):
        load_lpips(net, lin_weights=lin_dir)
    monkeypatch.setitem(weights.WEIGHTS, key, dataclasses.replace(
        spec, sha256_prefix=weights.sha256_of(path)[:8]))
    monkeypatch.setenv(weights.LPIPS_LIN_ENV, str(lin_dir))
    model = load_lpips(net)
    for k, v in lin_state(net, 1).items():
        torch.testing.assert_close(model.state_dict()[k], v)
    for k, v in src.backbone.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[k], v)
    # a lin file of the other backbone does not load silently
    other = "vgg" if net == "alex" else "alex"
    torch.save(lin_state(other), lin_dir / f"{net}.pth")
    with pytest.raises(WeightsUnavailable, match="wrong shapes"):
        load_lin(model, lin_dir)


def test_missing_lin_weights_say_how_to_get_them(clean_env, monkeypatch):
    if importlib.util.find_spec("lpips") is not None:
        pytest.skip("the lpips wheel is installed, so its lin weights are found")
    with pytest.raises(WeightsUnavailable, match=r"pip install --no-deps lpips==0\.1\.4"):
        weights.lpips_lin_file("alex")


def test_lin_weights_from_the_installed_lpips_wheel():
    if importlib.util.find_spec("lpips") is None:
        pytest.skip("lpips is not installed (pip install --no-deps lpips==0.1.4)")
    for net in ("alex", "vgg"):
        load_lin(LPIPS(net), None)  # real lin weights, random backbone


def test_equals_the_lpips_package():
    """Same backbone weights (random: pnet_rand avoids a download) and real lin layers."""
    lpips = pytest.importorskip("lpips")
    ref = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    ours = LPIPS("alex").eval()
    load_lin(ours, None)
    slices = [ref.net.slice1, ref.net.slice2, ref.net.slice3, ref.net.slice4, ref.net.slice5]
    state = {}
    for sl in slices:
        for name, mod in sl.named_children():
            if isinstance(mod, torch.nn.Conv2d):
                state[f"features.{name}.weight"] = mod.weight
                state[f"features.{name}.bias"] = mod.bias
    ours.backbone.load_state_dict(state)
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, y), ref(2 * x - 1, 2 * y - 1).flatten())


def test_metric_averages_over_pairs(tmp_path):
    model = LPIPS("alex").eval()
    torch.save(lin_state("alex"), tmp_path / "alex.pth")
    load_lin(model, tmp_path)
    g = torch.randint(0, 256, (5, 3, 64, 32), dtype=torch.uint8)
    t = torch.randint(0, 256, (5, 3, 64, 32), dtype=torch.uint8)
    metric = LPIPSMetric(model, batch_size=2)
    metric.update(EvalBatch(g, t))
    with torch.no_grad():
        expected = model(g.float() / 255, t.float() / 255).mean()
    assert metric.compute().value == pytest.approx(float(expected), rel=1e-5)
    assert metric.compute().count == 5
    with pytest.raises(ValueError, match="needs EvalBatch.target"):
        metric.update(EvalBatch(g))
