"""PATN with selectable losses: networks, discriminator inputs, loss combinations, image pool, and
one training step per loss combination of the paper's Tables 1-4 (tiny widths, CPU)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fastpose.experiments.loss_study import TABLES, combinations, markdown
from fastpose.losses import pssim_loss
from fastpose.models import BuildContext, get_model
from fastpose.models.discriminators import ResnetDiscriminator
from fastpose.models.image_pool import ImagePool
from fastpose.models.patn import PATN, PATNConfig, epochs_to_steps
from fastpose.models.patn_losses import (LOSS_NAMES, LossSpecError, loss_label, parse_loss_names,
                                         parse_loss_weights, resolve_losses)
from fastpose.models.vgg import VGGFeatures
from fastpose.pose import heatmaps, part_masks
from fastpose.train.config import apply_overrides, default_config

SIZE = (32, 16)


def tiny(**kw) -> PATNConfig:
    base = dict(ngf=4, n_blocks=2, ndf=4, d_blocks=1, pool_size=4, constant_steps=3, decay_steps=2)
    return PATNConfig(**{**base, **kw})


def batch(n: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    h, w = SIZE
    kp = torch.stack([torch.rand(n, 18, generator=g) * (h - 1), torch.rand(n, 18, generator=g) * (w - 1)], -1)
    kp2 = torch.stack([torch.rand(n, 18, generator=g) * (h - 1), torch.rand(n, 18, generator=g) * (w - 1)], -1)
    kp2[0, 4] = -1  # a missing joint: its part mask is empty
    return {"source_image": torch.rand(n, 3, h, w, generator=g) * 2 - 1,
            "target_image": torch.rand(n, 3, h, w, generator=g) * 2 - 1,
            "source_keypoints": kp, "target_keypoints": kp2,
            "source_heatmaps": heatmaps(kp, SIZE), "target_heatmaps": heatmaps(kp2, SIZE)}


_FEATURES: dict = {}


def features(arch, layers):
    """One shared random VGG (building VGG19's layers costs ~0.5 s each time)."""
    key = (arch, tuple(layers))
    if key not in _FEATURES:
        _FEATURES[key] = VGGFeatures(arch, layers, weights=None)
    return _FEATURES[key]


def build(cfg: PATNConfig, impl: str = "auto") -> PATN:
    return get_model("patn")(cfg, BuildContext(SIZE, impl=impl, feature_net=features))


def stepper(model: PATN):
    opts, scheds = model.configure_optimizers()
    order = []

    def update(name, loss):
        order.append(name)
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()

    return update, order, opts


# -- networks ----------------------------------------------------------------------------------

def test_generator_reads_image_and_both_poses_and_outputs_an_image():
    m = build(tiny())
    g = m.nets["g"]
    assert g.image_encoder[1].in_channels == 3 and g.pose_encoder[1].in_channels == 36
    out = m.generate(batch())
    assert out.shape == (2, 3, *SIZE) and out.abs().max() <= 1
    # The generator sees cat(source pose, target pose): changing the target pose changes the output.
    m = build(tiny(dropout=False))
    m.train()  # batch statistics: at initialisation the pose stream's effect is small but visible
    b = batch()
    b2 = dict(b, target_heatmaps=torch.roll(b["target_heatmaps"], 3, dims=-1))
    assert (m.generate(b) - m.generate(b2)).abs().max() > 1e-4


def test_market_scale_networks_follow_the_authors_code():
    m = get_model("patn")(PATNConfig(), BuildContext((128, 64)))
    assert len(m.nets["g"].blocks) == 9
    assert set(m.nets) == {"g", "d_pb", "d_pp"}
    assert m.nets["d_pb"].in_channels == 21 and m.nets["d_pp"].in_channels == 6
    d = m.nets["d_pb"]
    out = d(torch.randn(2, 21, 128, 64))
    assert out.shape == (2, 256, 32, 16)  # no final 1-channel conv
    assert sum(isinstance(x, torch.nn.Dropout) for x in d.modules()) == 3
    assert isinstance(d[2], torch.nn.BatchNorm2d) and d[1].bias is None
    df = ResnetDiscriminator(6, 8, norm="instance", dropout=False)
    assert isinstance(df[2], torch.nn.InstanceNorm2d) and df[1].bias is not None
    assert not any(isinstance(x, torch.nn.Dropout) for x in df.modules())


def test_presets_carry_the_authors_settings():
    mk = default_config("patn", "market:/x").model_cfg
    df_cfg = default_config("patn", "deepfashion:/x")
    df = df_cfg.model_cfg
    assert (mk.norm, mk.gan_loss, mk.pool_size, mk.lambda_gan, mk.lambda_per, mk.lambda_pssim) == \
        ("batch", "bce", 50, 5.0, 10.0, 10.0)
    assert (df.norm, df.gan_loss, df.pool_size, df.lambda_per, df.lambda_pssim, df_cfg.batch_size) == \
        ("instance", "lsgan", 0, 1.0, 1.0, 7)
    assert parse_loss_names(mk.losses) == ("gan", "per", "pssim")
    assert (mk.constant_steps, mk.decay_steps) == (62500, 25000)  # 500 + 200 epochs of 4000 at bs 32
    assert epochs_to_steps(700, 7) == 400400
    assert (df.constant_steps + df.decay_steps) == 400400


def test_lr_is_constant_then_decays_linearly():
    m = build(tiny(constant_steps=4, decay_steps=3))
    assert [m.lr_factor(s) for s in range(4)] == [1.0] * 4
    assert [round(m.lr_factor(s), 3) for s in (5, 6, 7)] == [0.75, 0.5, 0.25]
    assert m.total_steps() == 7


# -- discriminator inputs ----------------------------------------------------------------------

def test_discriminators_pair_real_and_fake_with_their_conditions(monkeypatch):
    m = build(tiny(pool_size=0))
    b = batch()
    seen: dict[str, list[torch.Tensor]] = {"d_pb": [], "d_pp": []}
    for name in seen:
        net = m.nets[name]
        orig = net.forward
        monkeypatch.setattr(net, "forward", lambda x, _o=orig, _n=name: (seen[_n].append(x.detach()), _o(x))[1])
    update, order, _ = stepper(m)
    m.train_step("train", b, update)
    assert order == ["g", "d_pp", "d_pb"]  # the authors' update order
    # D_PB: (G adversarial on fake, real, pooled fake), each cat(image, target heatmaps).
    fake_g, real, fake_d = seen["d_pb"]
    assert real.shape[1] == 21
    torch.testing.assert_close(real, torch.cat([b["target_image"], b["target_heatmaps"]], 1))
    torch.testing.assert_close(fake_g[:, 3:], b["target_heatmaps"])
    torch.testing.assert_close(fake_d[:, 3:], b["target_heatmaps"])
    # D_PP: cat(image, source image), 6 channels, real image = target.
    fake_g, real, fake_d = seen["d_pp"]
    assert real.shape[1] == 6
    torch.testing.assert_close(real, torch.cat([b["target_image"], b["source_image"]], 1))
    torch.testing.assert_close(fake_g[:, 3:], b["source_image"])
    torch.testing.assert_close(fake_d[:, :3], fake_g[:, :3])  # pool size 0: the fresh fake


def test_without_gan_there_are_no_discriminators():
    m = build(tiny(losses="l1,pssim"))
    assert set(m.nets) == {"g"} and m.stages()[0].trains == ("g",)
    assert set(build(tiny(with_d_pp=False)).nets) == {"g", "d_pb"}


# -- losses -------------------------------------------------------------------------------------

@pytest.mark.parametrize("label", combinations())
def test_one_training_step_per_table_row(label):
    torch.manual_seed(0)
    m = build(tiny(losses=label))
    update, order, _ = stepper(m)
    before = {n: [p.detach().clone() for p in net.parameters()] for n, net in m.nets.items()}
    logs = m.train_step("train", batch(), update)
    names = parse_loss_names(label)
    assert {f"g_{n}" for n in names} <= set(logs)
    assert all(torch.isfinite(v) for v in logs.values())
    assert order == (["g", "d_pp", "d_pb"] if "gan" in names else ["g"])
    for n, net in m.nets.items():  # every trained network moved
        assert any(not torch.equal(a, p) for a, p in zip(before[n], net.parameters())), n


def test_generator_loss_is_the_weighted_sum_and_pssim_uses_target_part_masks():
    m = build(tiny(losses="l1,pssim", loss_weights="l1=2,pssim=3"), impl="ref")
    m.eval()  # no dropout: the fake can be recomputed
    b = batch()
    got = {}
    m.train_step("train", b, lambda name, loss: got.setdefault(name, loss.detach()))
    fake = m._generate(b)
    masks = part_masks(b["target_keypoints"], SIZE)
    expected_pssim = pssim_loss((fake + 1) / 2, (b["target_image"] + 1) / 2, masks,
                                config=m.pssim_config, impl="ref")
    expected = 2 * (fake - b["target_image"]).abs().mean() + 3 * expected_pssim
    torch.testing.assert_close(got["g"], expected.detach())


def test_ext_and_ref_give_the_same_step():
    pytest.importorskip("fastpose._C")
    logs = {}
    for impl in ("ext", "ref"):
        torch.manual_seed(0)
        m = build(tiny(losses="gan,ssim,pssim,pssim_star"), impl=impl)
        update, _, _ = stepper(m)
        logs[impl] = m.train_step("train", batch(), update)
    for k in logs["ref"]:
        torch.testing.assert_close(logs["ext"][k], logs["ref"][k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spec,expected", [
    ("gan,per,pssim", ("gan", "per", "pssim")),
    ("GAN+Per+pSSIM*", ("gan", "per", "pssim_star")),
    (" l1 , ssim ", ("l1", "ssim")),
    ("perceptual+adv", ("per", "gan")),
])
def test_loss_names_parse(spec, expected):
    assert parse_loss_names(spec) == expected


@pytest.mark.parametrize("losses,weights,message", [
    ("", "", "empty"),
    (" , ", "", "empty"),
    ("gan,vgg", "", "unknown loss 'vgg'"),
    ("gan,gan", "", "listed twice"),
    ("gan,per", "pssim=10", "does not select"),
    ("gan,per", "per=-1", ">= 0"),
    ("gan,per", "per=nan", ">= 0"),
    ("gan,per", "per=ten", "not a number"),
    ("gan,per", "per", "NAME=WEIGHT"),
    ("gan,per", "per=1,per=2", "two weights"),
    ("gan,per", "foo=1", "unknown loss 'foo'"),
])
def test_bad_loss_combinations_error_naming_the_problem(losses, weights, message):
    defaults = {n: 1.0 for n in LOSS_NAMES}
    with pytest.raises(LossSpecError, match=message):
        resolve_losses(losses, weights, defaults)


def test_weights_resolve_from_lambdas_and_overrides():
    cfg = tiny(losses="gan,per,pssim", loss_weights="pssim=3")
    assert build(cfg).weights == {"gan": 5.0, "per": 10.0, "pssim": 3.0}
    assert parse_loss_weights("pSSIM*=2") == {"pssim_star": 2.0}
    with pytest.raises(ValueError, match="lambda_l1"):
        build(tiny(losses="l1", lambda_l1=-1.0))
    assert loss_label(("gan", "per", "l1", "pssim")) == "GAN+Per+L1+pSSIM"


def test_bad_losses_fail_before_the_data_is_built():
    cfg = default_config("patn")
    apply_overrides(cfg, {"losses": "gan,foo"})
    with pytest.raises(ValueError, match="unknown loss 'foo'"):
        get_model("patn").encodings_for(cfg.model_cfg)


def test_command_line_exposes_losses_and_weights():
    from fastpose.train.config import parse_args
    cfg, _, _ = parse_args(["--model", "patn", "--losses", "gan,l1", "--loss-weights", "l1=3"])
    assert (cfg.model_cfg.losses, cfg.model_cfg.loss_weights) == ("gan,l1", "l1=3")
    assert cfg.image_h == 64 and cfg.model_cfg.ngf == 16  # the synthetic preset by default


# -- image pool -----------------------------------------------------------------------------------

def test_image_pool_fills_then_mixes_old_and_new():
    pool = ImagePool(3)
    first = torch.arange(3.0).view(3, 1)
    assert torch.equal(pool.query(first), first) and len(pool) == 3  # filling: returns the input
    g = torch.Generator().manual_seed(0)
    new = torch.arange(100.0, 300.0).view(200, 1)
    out = pool.query(new, generator=g)
    swapped = out != new  # returned an older sample, stored the new one in its place
    assert 60 < swapped.sum().item() < 140  # about half
    assert (out[swapped] < new[swapped]).all()  # what comes back is always older
    assert len(pool) == 3 and set(out[swapped].tolist()) - set(range(0, 300)) == set()
    stored = {v.item() for v in pool.items}
    assert stored <= set(new.flatten().tolist()) | {0.0, 1.0, 2.0}
    assert torch.equal(ImagePool(0).query(new), new)
    with pytest.raises(ValueError, match=">= 0"):
        ImagePool(-1)


def test_image_pool_detaches():
    x = torch.randn(2, 3, requires_grad=True)
    assert not ImagePool(4).query(x * 2).requires_grad


# -- the study's table -----------------------------------------------------------------------------

def test_study_covers_the_tables_and_formats_them():
    labels = combinations()
    assert len(labels) == 12 and all(r in labels for rows in TABLES.values() for r in rows)
    res = {lbl: {"model": {"ssim": 0.3 + 0.01 * i, "mask_ssim": 0.6, "pssim": 0.5},
                 "copy_source": {"ssim": 0.2, "mask_ssim": 0.5, "pssim": 0.4}, "pairs": 8}
           for i, lbl in enumerate(labels)}
    import argparse
    text = markdown(res, argparse.Namespace(steps=10, batch_size=2, seed=0), 60.0)
    assert text.count("| copy source |") == 4 and "GAN+Per+pSSIM*" in text
    assert "directions agree" in text


def test_config_dataclass_fields_have_comments():
    from fastpose.train.config import _field_comments
    comments = _field_comments(PATNConfig)
    assert all(f.name in comments for f in dataclasses.fields(PATNConfig))


# -- the training loop ---------------------------------------------------------------------------

class _WithHeatmaps(torch.utils.data.Dataset):
    """The tests' tiny pairs plus PATN's heatmaps."""

    def __init__(self, base) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        s = dict(self.base[i])
        for side in ("source", "target"):
            s[f"{side}_heatmaps"] = heatmaps(s[f"{side}_keypoints"], tuple(s["source_image"].shape[-2:]))
        return s


def test_the_loop_trains_and_evaluates_patn(tmp_path):
    from _tiny_data import TinyPairs
    from fastpose.train.data import DataBundle
    from fastpose.train.loop import train
    cfg = default_config("patn", "synthetic")
    apply_overrides(cfg, dict(out=str(tmp_path), run_name="run", batch_size=4, ngf=4, n_blocks=1, ndf=4,
                              constant_steps=2, decay_steps=1, log_every=1, sample_every=0,
                              checkpoint_every=0, eval_pairs=4, eval_batch_size=4, sample_pairs=2,
                              device="cpu", workers=0))
    data = DataBundle(_WithHeatmaps(TinyPairs(16, 1)), _WithHeatmaps(TinyPairs(4, 2)), (32, 16), "synthetic")
    metrics = train(cfg, data=data, progress=False)
    assert metrics["step"] == 3 and set(metrics["model"]) >= {"ssim", "pssim"}
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()
