"""Pretrained-network plumbing: torchvision-compatible key names, loading saved state dicts from the
places fastpose looks, checksum checks, and "unavailable" reporting. All networks here are
RANDOMLY INITIALISED (no pretrained weights exist in CI); nothing is ever downloaded."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from fastpose.metrics import (InceptionV3, MetricOptions, WeightsUnavailable, build_metrics,
                              load_inception)
from fastpose.metrics import inception as inception_module
from fastpose.metrics import weights


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty $TORCH_HOME and no weight environment variables."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for spec in weights.WEIGHTS.values():
        monkeypatch.delenv(spec.env, raising=False)
    monkeypatch.delenv(weights.LPIPS_LIN_ENV, raising=False)
    monkeypatch.delenv(weights.SKIP_HASH_ENV, raising=False)
    return tmp_path / "torch"


def accept_file_hash(monkeypatch, key: str, path) -> None:
    """Make the expected sha256 prefix of ``key`` that of ``path`` (a saved random network), so
    the success path of the checksum is exercised."""
    spec = weights.WEIGHTS[key]
    monkeypatch.setitem(weights.WEIGHTS, key, dataclasses.replace(
        spec, sha256_prefix=weights.sha256_of(path)[:8]))


def randomised_bn(net: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1)
    return net.eval()


def test_inception_outputs_and_key_names():
    net = InceptionV3("fid").eval()
    assert net.fc.out_features == 1008
    keys = net.state_dict().keys()
    for k in ("Conv2d_1a_3x3.conv.weight", "Conv2d_4a_3x3.bn.running_var",
              "Mixed_5b.branch_pool.conv.weight", "Mixed_6e.branch7x7dbl_5.bn.bias",
              "Mixed_7c.branch3x3dbl_3b.conv.weight", "fc.weight", "fc.bias"):
        assert k in keys
    params = sum(p.numel() for p in net.parameters())
    # torchvision documents 27,161,264 for inception_v3; minus AuxLogits (3,326,696), plus the
    # 8 extra classes of the FID network (8 x 2049)
    assert params == 27_161_264 - 3_326_696 + 8 * 2049
    with pytest.raises(ValueError, match="variant"):
        InceptionV3("tf")


def test_inception_key_names_equal_torchvision():
    models = pytest.importorskip("torchvision.models")
    tv = models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    ref = {k: tuple(v.shape) for k, v in tv.state_dict().items()}
    for variant, classes in (("torchvision", 1000), ("fid", 1008)):
        ours = {k: tuple(v.shape) for k, v in InceptionV3(variant).state_dict().items()}
        assert ours.keys() == ref.keys()
        assert ours["fc.weight"] == (classes, 2048)
        assert {k: v for k, v in ours.items() if not k.startswith("fc.")} == \
               {k: v for k, v in ref.items() if not k.startswith("fc.")}


def test_torchvision_variant_computes_what_torchvision_computes(monkeypatch):
    models = pytest.importorskip("torchvision.models")
    monkeypatch.setattr(inception_module, "INPUT_SIZE", 107)
    ours = randomised_bn(InceptionV3("torchvision"))
    tv = models.inception_v3(weights=None, aux_logits=False, init_weights=False,
                             transform_input=True).eval()
    tv.load_state_dict(ours.state_dict())
    x = torch.rand(2, 3, 128, 64)
    pooled = {}
    tv.avgpool.register_forward_hook(lambda m, i, o: pooled.setdefault("p", o.flatten(1)))
    with torch.no_grad():
        pool, logits = ours(x)
        resized = F.interpolate(x, size=(107, 107), mode="bilinear", align_corners=False)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        ref_logits = tv((resized - mean) / std)  # torchvision maps this back to 2x - 1
    scale = ref_logits.abs().max()
    torch.testing.assert_close(logits / scale, ref_logits / scale, rtol=0, atol=1e-5)
    torch.testing.assert_close(pool, pooled["p"], rtol=1e-4, atol=1e-5)


def test_load_inception_from_the_hub_cache(torch_home, monkeypatch):
    src = randomised_bn(InceptionV3("fid"))
    state = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = torch_home / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    with pytest.raises(WeightsUnavailable, match="sha256"):  # a random file is not the real one
        load_inception("fid")
    accept_file_hash(monkeypatch, "fid_inception", path)
    net = load_inception("fid")
    monkeypatch.setattr(inception_module, "INPUT_SIZE", 75)
    x = torch.rand(2, 3, 32, 24)
    with torch.no_grad():
        for a, b in zip(net(x), src(x)):
            torch.testing.assert_close(a, b)
    # lookup order: explicit path, then the environment variable, then the cache
    other = torch_home / "elsewhere.pth"
    other.write_bytes(b"")
    monkeypatch.setenv("FASTPOSE_FID_INCEPTION", str(other))
    assert weights.locate("fid_inception") == other
    assert weights.locate("fid_inception", path) == path
    monkeypatch.setenv("FASTPOSE_FID_INCEPTION", str(torch_home / "missing.pth"))
    assert weights.locate("fid_inception") == path
    path.unlink()
    with pytest.raises(WeightsUnavailable, match=r"not found; looked at \$FASTPOSE_FID_INCEPTION"):
        weights.locate("fid_inception")
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        load_inception("fid", torch_home / "nope.pth")


def test_torchvision_file_with_aux_logits_and_wrong_files(torch_home, monkeypatch):
    monkeypatch.setenv(weights.SKIP_HASH_ENV, "1")
    src = InceptionV3("torchvision")
    state = dict(src.state_dict())
    state["AuxLogits.fc.weight"] = torch.zeros(1000, 768)  # in torchvision's file, unused here
    path = torch_home / "inception_v3_google-0cc3c7bd.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    load_inception("torchvision", path)
    del state["Mixed_6a.branch3x3.conv.weight"]
    state["fc.weight"] = torch.zeros(10, 2048)
    torch.save(state, path)
    with pytest.raises(WeightsUnavailable, match=r"missing \['Mixed_6a.branch3x3.conv.weight'\]"
                                                 r".*wrong shapes \['fc.weight"):
        load_inception("torchvision", path)
    with pytest.raises(WeightsUnavailable, match="missing"):  # the FID file is not torchvision's
        load_inception("fid", path)


def test_missing_weights_say_which_file_and_where(torch_home):
    with pytest.raises(WeightsUnavailable) as info:
        load_inception("fid")
    msg = str(info.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in msg
    assert str(torch_home / "hub" / "checkpoints") in msg
    assert "FASTPOSE_FID_INCEPTION" in msg
    assert "https://github.com/mseitzer/pytorch-fid/releases" in msg
    assert "never downloads" in msg


def test_build_metrics_reports_unavailable_networks(torch_home, monkeypatch, tmp_path):
    monkeypatch.setenv(weights.LPIPS_LIN_ENV, str(tmp_path / "no-lpips"))
    names = ["ssim", "fid", "is", "lpips", "lpips_vgg"]
    built, unavailable = build_metrics(names, MetricOptions())
    assert "ssim" in built
    assert set(unavailable) == {"fid", "is", "lpips", "lpips_vgg"}
    assert "pt_inception-2015-12-05-6726825d.pth" in unavailable["fid"]
    assert "alexnet-owt-7be5be79.pth" in unavailable["lpips"]
    assert "vgg16-397923af.pth" in unavailable["lpips_vgg"]
    with pytest.warns(UserWarning, match="RANDOM weights"):
        built, unavailable = build_metrics(names, MetricOptions(random_weights_for_testing=True))
    assert not unavailable
    assert all(built[n].random_weights for n in ["fid", "is", "lpips", "lpips_vgg"])
    assert built["fid"].net is built["is"].net  # one shared network per options object
    with pytest.raises(KeyError, match="unknown metric 'ssim2'.*available: fid"):
        build_metrics(["ssim2"])
