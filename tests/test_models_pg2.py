"""PG2's networks and losses, the DCGAN discriminator and the VGG feature extractors."""

from __future__ import annotations

import pytest
import torch

from fastpose.losses import PerceptualLoss, gan_loss, pose_mask_l1_loss
from fastpose.models import BuildContext, get_model
from fastpose.models.canvas import crop_from_canvas
from fastpose.models.discriminators import DCGANDiscriminator
from fastpose.models.pg2 import G1, G2, PG2Config
from fastpose.models.vgg import (IMAGENET_MEAN, IMAGENET_STD, VGGFeatures, VGGWeightsNotFound,
                                 layer_names, make_features)


def test_g1_widths_and_fc_bottleneck_follow_the_authors_market_net():
    g1 = G1(21, (128, 64), blocks=5, n=128, z_dim=64)
    assert g1.bottom == (8, 4)
    assert g1.fc_in.in_features == 8 * 4 * 640 and g1.fc_in.out_features == 64
    assert g1.fc_out.out_features == 8 * 4 * 128
    assert [b.c1.out_channels for b in g1.enc] == [128, 256, 384, 512, 640]
    # Decoder: (128 + 640), then 2 * skip width: 1024, 768, 512, 256.
    assert [b.c1.in_channels for b in g1.dec] == [768, 1024, 768, 512, 256]


def test_pg2_block_counts_from_image_size():
    cls = get_model("pg2")
    m = cls(PG2Config(base_channels=8, z_dim=8, d_base_channels=8), BuildContext((128, 64)))
    assert m.n_blocks == (5, 3)
    df = cls(PG2Config(base_channels=8, z_dim=8, d_base_channels=8, canvas_h=256, canvas_w=256),
             BuildContext((256, 176)))
    assert df.n_blocks == (6, 4) and df.nets["g1"].bottom == (8, 8)
    assert df.nets["d"].fc.in_features == 8 * 8 * 128  # 5 stride-2 convs at 256x256: 8..128 ch
    d256 = DCGANDiscriminator(3, (256, 256))  # the authors' DCGANDiscriminator_256
    assert [m.out_channels for m in d256.body if isinstance(m, torch.nn.Conv2d)] == [64, 128, 256, 512, 512]
    assert d256.fc.in_features == 8 * 8 * 512


def test_g2_skip_variants():
    market = G2(6, 3, 8, skip_first=False)  # UAE_noFC_After2Noise
    fashion = G2(6, 3, 8, skip_first=True)  # UAE_noFC_AfterNoise
    assert market.kept == [1, 2] and fashion.kept == [0, 1, 2]
    x = torch.randn(2, 6, 16, 8)
    assert market(x).shape == fashion(x).shape == (2, 3, 16, 8)


def test_generate_pads_to_the_canvas_and_crops_back():
    cls = get_model("pg2")
    m = cls(PG2Config(base_channels=4, z_dim=4, d_base_channels=4, canvas_h=64, canvas_w=32),
            BuildContext((64, 24)))
    b = {"source_image": torch.rand(2, 3, 64, 24) * 2 - 1, "target_disks": torch.zeros(2, 18, 64, 24)}
    out = m.generate(b)
    assert out.shape == (2, 3, 64, 24) and out.abs().max() <= 1
    m.current_stage = "stage1"  # before stage 2, generate returns G1's image
    src, pose = m._inputs(b)
    torch.testing.assert_close(m.generate(b), crop_from_canvas(m._stage1_output(src, pose), (64, 24)).clamp(-1, 1))


def test_dcgan_discriminator_shapes_and_init():
    d = DCGANDiscriminator(3, (128, 64))
    convs = [m for m in d.body if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)
    assert d.fc.in_features == 8 * 4 * 512
    assert d(torch.randn(3, 3, 128, 64)).shape == (3,)
    assert abs(convs[1].weight.std().item() - 0.02) < 0.002
    with pytest.raises(ValueError, match="divisible"):
        DCGANDiscriminator(3, (128, 60))


def test_pose_mask_l1_is_equation_1():
    x, y = torch.randn(2, 3, 8, 4), torch.randn(2, 3, 8, 4)
    m = (torch.rand(2, 1, 8, 4) > 0.5).float()
    expected = ((x - y).abs() * (1 + m)).mean()
    torch.testing.assert_close(pose_mask_l1_loss(x, y, m), expected)
    torch.testing.assert_close(pose_mask_l1_loss(x, y, m[:, 0]), expected)
    with pytest.raises(ValueError, match="mask must be"):
        pose_mask_l1_loss(x, y, m[:, :, :4])


def test_gan_losses():
    logits = torch.tensor([2.0, -1.0])
    torch.testing.assert_close(gan_loss(logits, True), torch.nn.functional.softplus(-logits).mean())
    torch.testing.assert_close(gan_loss(logits, False, "lsgan"), (logits ** 2).mean())
    torch.testing.assert_close(gan_loss(logits, True, "hinge", for_generator=True), -logits.mean())
    with pytest.raises(ValueError, match="unknown GAN loss"):
        gan_loss(logits, True, "wgan")


# --- VGG ----------------------------------------------------------------------------------------

def test_vgg_layer_names_and_torchvision_keys():
    names = layer_names("vgg19")
    assert len(names) == 37 and names[3] == "relu1_2" and names[20] == "relu4_1" and names[-1] == "pool5"
    assert layer_names("vgg16")[29] == "relu5_3"
    tv = pytest.importorskip("torchvision")
    from torchvision.models.vgg import cfgs, make_layers
    for arch, key in (("vgg16", "D"), ("vgg19", "E")):
        theirs = make_layers(cfgs[key]).state_dict()
        ours = make_features(arch).state_dict()
        assert list(theirs) == list(ours)
        assert all(theirs[k].shape == ours[k].shape for k in ours)


def test_vgg_features_normalise_and_load_torchvision_files(tmp_path):
    torch.manual_seed(0)
    net = VGGFeatures("vgg19", ("relu1_2", "relu2_1"), weights=None)
    x = torch.rand(2, 3, 16, 8) * 2 - 1
    feats = net(x)
    assert feats["relu1_2"].shape == (2, 64, 16, 8) and feats["relu2_1"].shape == (2, 128, 8, 4)
    # ImageNet normalisation of the [-1, 1] input before the first conv.
    conv = net.features[0]
    expect = conv(((x + 1) / 2 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
                  / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)).relu()
    torch.testing.assert_close(net.features[1](conv(((x + 1) / 2 - net.mean) / net.std)), expect)
    # A torchvision-style file (features.* + classifier.*) loads; classifier keys are ignored.
    state = {f"features.{k}": v + 1 for k, v in make_features("vgg19").state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "vgg19-dcbb9e9d.pth")
    loaded = VGGFeatures("vgg19", ("relu1_2",), weights=str(tmp_path / "vgg19-dcbb9e9d.pth"))
    torch.testing.assert_close(loaded.features[0].weight, state["features.0.weight"])
    assert loaded.source.weights.endswith("vgg19-dcbb9e9d.pth")
    assert not any(p.requires_grad for p in loaded.parameters())
    # Gradients flow to the input through the frozen network (perceptual loss).
    y = torch.rand(2, 3, 16, 8, requires_grad=True)
    PerceptualLoss(loaded)(y * 2 - 1, x).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


def test_missing_vgg_weights_name_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("FASTPOSE_VGG19_WEIGHTS", raising=False)
    with pytest.raises(VGGWeightsNotFound) as exc:
        VGGFeatures("vgg19", ("relu1_2",))
    msg = str(exc.value)
    assert "vgg19-dcbb9e9d.pth" in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert "FASTPOSE_VGG19_WEIGHTS" in msg and "never downloads" in msg
    with pytest.warns(RuntimeWarning, match="RANDOMLY INITIALISED"):
        net = VGGFeatures("vgg19", ("relu1_2",), allow_random=True)
    assert net.source.weights == "random"
    # The environment variable is honoured.
    torch.save({f"features.{k}": v for k, v in make_features("vgg19", 3).state_dict().items()},
               tmp_path / "w.pth")
    monkeypatch.setenv("FASTPOSE_VGG19_WEIGHTS", str(tmp_path / "w.pth"))
    assert VGGFeatures("vgg19", ("relu1_2",)).source.weights == str(tmp_path / "w.pth")


def test_run_records_the_random_feature_fallback_and_real_data_refuses(tmp_path, monkeypatch):
    from _tiny_data import tiny_bundle, tiny_pg2_config
    from fastpose.train.loop import Trainer
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("FASTPOSE_VGG16_WEIGHTS", raising=False)
    t = Trainer(tiny_pg2_config(tmp_path, max_steps=1), data=tiny_bundle(), progress=False)
    assert t.cfg.allow_random_features  # synthetic preset
    with pytest.warns(RuntimeWarning):
        t._feature_net("vgg16", ("relu1_2",))
    assert any("RANDOMLY INITIALISED" in n for n in t.cfg.notes)
    t.save()
    import json
    assert any("vgg16" in n for n in json.loads((t.run_dir / "config.json").read_text())["notes"])
    t.cfg.allow_random_features = False  # what the real-data presets use
    with pytest.raises(VGGWeightsNotFound):
        t._feature_net("vgg16", ("relu1_2",))


def test_unknown_vgg_layer():
    with pytest.raises(ValueError, match="unknown vgg16 layers"):
        VGGFeatures("vgg16", ("relu9_9",), weights=None)
