"""PATN (Zhu et al., CVPR 2019) trained with the loss combinations of Shi et al. 2020 ("Loss
Functions for Person Image Generation"), the part-based SSIM loss among them.

Settings follow the authors' code (tengteng95/Pose-Transfer and shyern/Pose-Transfer-PSSIM, facts
file §1-2):

- G: :class:`fastpose.models.patn_blocks.PATNetwork` — image stream = source image (3 ch), pose stream
  = source + target heatmaps (36 ch, Gaussian sigma 6); ngf 64, 2 downsamplings, 9 PATBlocks,
  dropout 0.5 on, BatchNorm (Market) / InstanceNorm (DeepFashion), tanh output, N(0, 0.02) init.
- D_PB (shape) on ``cat(image, target heatmaps)`` (21 ch) and D_PP (appearance) on
  ``cat(image, source image)`` (6 ch): :class:`ResnetDiscriminator` (no final 1-channel conv, the
  256-channel map is judged), dropout on, default PyTorch init. Real = the target image, fake = G's
  output, taken through an :class:`ImagePool` per discriminator (50; 0 on DeepFashion).
- GAN loss BCE (Market, ``--no_lsgan``) or LSGAN (DeepFashion).
- Generator loss ``sum_k w_k L_k``; the GAN term is ``(L_G(D_PB) + L_G(D_PP)) / 2``; each D loss is
  ``w_gan * (L(real, 1) + L(fake, 0)) / 2``. Updates per iteration: G, then D_PP, then D_PB.
- Losses: any combination of L1, perceptual (VGG19 relu1_2), GAN, SSIM, pSSIM, pSSIM*
  (:mod:`fastpose.models.patn_losses`); default the paper's best GAN + Per + pSSIM with the authors'
  weights (Market 5 / 10 / 10, DeepFashion 5 / 1 / 1; pixel L1 off, ``lambda_A = 0`` in their runs).
  Part masks come from the target keypoints on the fly (:func:`fastpose.pose.part_masks`); the
  SSIM-family losses run on [0, 1] images through fastpose's kernels (``--impl``).
- Adam(2e-4, (0.5, 0.999)) for G and both Ds; lr constant, then linear decay to 0. The authors'
  "epoch" is 4000 random pairs: 500 + 200 epochs = 62,500 + 25,000 iterations at batch 32 (Market),
  286,000 + 114,400 at batch 7 (DeepFashion, 572 batches per epoch). No flips.

Deviations (also in the README): the schedule is counted in iterations (linear decay per iteration
instead of per 4000-pair epoch); the synthetic preset is a reduced network on 64x32 images with a
short schedule; the image pools are not checkpointed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from fastpose.losses import (PerceptualLoss, PSSIMConfig, gan_loss, l1_loss, pssim_loss, pssim_star_loss,
                             ssim_loss)
from fastpose.models.base import Batch, BuildContext, PoseTransferModel, Stage, Update
from fastpose.models.discriminators import ResnetDiscriminator
from fastpose.models.image_pool import ImagePool
from fastpose.models.patn_blocks import NORMS, PATNetwork
from fastpose.models.patn_losses import LOSS_NAMES, resolve_losses
from fastpose.models.registry import register_model
from fastpose.pose import part_masks
from fastpose.pose.encodings.registry import ENCODING_CHANNELS

# "Epochs" of the authors' loader: 4000 random pairs each.
PAIRS_PER_EPOCH = 4000


def epochs_to_steps(epochs: int, batch_size: int) -> int:
    """Iterations of ``epochs`` of 4000 pairs (the last batch of an epoch may be partial)."""
    return epochs * -(-PAIRS_PER_EPOCH // batch_size)


@dataclass
class PATNConfig:
    # -- generator --
    ngf: int = 64  # width after G's first convolution (the bottleneck is ngf * 2**n_down)
    n_down: int = 2  # stride-2 convolutions of each encoder (--G_n_downsampling)
    n_blocks: int = 9  # pose-attentional transfer blocks
    norm: str = "batch"  # batch (Market) | instance (DeepFashion), in G and both Ds
    dropout: bool = True  # dropout 0.5 in G's blocks (the authors' runs do not pass --no_dropout)
    pose_encoding: str = "heatmaps"  # pose maps of G and D_PB: heatmaps (sigma 6) | peaks (DF 1-pixel maps)
    # -- discriminators --
    ndf: int = 64  # width of the discriminators' first convolution
    d_down: int = 2  # stride-2 convolutions of each discriminator (--D_n_downsampling)
    d_blocks: int = 3  # residual blocks of each discriminator (--n_layers_D)
    d_dropout: bool = True  # dropout 0.5 in D's blocks (not --no_dropout_D)
    with_d_pb: bool = True  # train the shape discriminator D_PB on (image, target pose)
    with_d_pp: bool = True  # train the appearance discriminator D_PP on (image, source image)
    gan_loss: str = "bce"  # bce (Market, --no_lsgan) | lsgan (DeepFashion) | hinge
    pool_size: int = 50  # fakes kept per discriminator's image pool (0 = no pool, DeepFashion)
    # -- losses --
    losses: str = "gan,per,pssim"  # combination of gan, per, l1, ssim, pssim, pssim_star ("," or "+")
    loss_weights: str = ""  # weight overrides for selected losses, e.g. gan=5,per=10,pssim=10
    lambda_gan: float = 5.0  # weight of the GAN loss (also scales the D losses), lambda_GAN
    lambda_per: float = 10.0  # weight of the VGG19 relu1_2 perceptual L1, lambda_B
    lambda_l1: float = 10.0  # weight of the pixel L1 (when selected), lambda_A
    lambda_ssim: float = 10.0  # weight of the SSIM loss, equation (7)
    lambda_pssim: float = 10.0  # weight of the part-based SSIM loss, lambda_SSIM, equation (10)
    lambda_pssim_star: float = 10.0  # weight of pSSIM*, equation (11)
    ssim_window: int = 7  # Gaussian window of the SSIM loss and of pSSIM's background term
    ssim_sigma: float = 0.8  # its standard deviation (the pSSIM scripts' --win_size 7 --win_sigma 0.8)
    pssim_empty: str = "one"  # pSSIM parts with a missing joint: one (scored 1, as published) | exclude
    perceptual_arch: str = "vgg19"  # perceptual network
    perceptual_layer: str = "relu1_2"  # its layer (--perceptual_layers 3)
    # -- optimisation --
    lr: float = 2e-4  # Adam learning rate of G and both Ds
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    constant_steps: int = 62500  # iterations at constant lr (niter = 500 epochs of 4000 pairs, batch 32)
    decay_steps: int = 25000  # iterations of linear decay to 0 after them (niter_decay = 200 epochs)


def _gan_term(model: "PATN", fake: Tensor, batch: Batch, masks: Callable[[], Tensor]) -> Tensor:
    return model.generator_adversarial(fake, batch)


def _unit(x: Tensor) -> Tensor:
    return (x + 1) * 0.5


# Generator loss terms by name: (model, fake, batch, part masks thunk) -> scalar.
GENERATOR_TERMS: dict[str, Callable[["PATN", Tensor, Batch, Callable[[], Tensor]], Tensor]] = {
    "gan": _gan_term,
    "per": lambda m, f, b, _: m.perceptual(f, b["target_image"]),
    "l1": lambda m, f, b, _: l1_loss(f, b["target_image"]),
    "ssim": lambda m, f, b, _: ssim_loss(_unit(f), _unit(b["target_image"]), window=m.cfg.ssim_window,
                                         sigma=m.cfg.ssim_sigma, impl=m.ctx.impl),
    "pssim": lambda m, f, b, masks: pssim_loss(_unit(f), _unit(b["target_image"]), masks(),
                                               config=m.pssim_config, impl=m.ctx.impl),
    "pssim_star": lambda m, f, b, masks: pssim_star_loss(_unit(f), _unit(b["target_image"]), masks(),
                                                         config=m.pssim_config, impl=m.ctx.impl),
}
assert set(GENERATOR_TERMS) == set(LOSS_NAMES)


def check_config(cfg: PATNConfig) -> dict[str, float]:
    """Validate the options that do not depend on the data; returns the selected losses' weights."""
    weights = resolve_losses(cfg.losses, cfg.loss_weights,
                             {n: getattr(cfg, f"lambda_{n}") for n in LOSS_NAMES})
    if cfg.norm not in NORMS:
        raise ValueError(f"patn: unknown norm {cfg.norm!r}; known: {', '.join(sorted(NORMS))}")
    if cfg.pose_encoding not in ENCODING_CHANNELS or ENCODING_CHANNELS[cfg.pose_encoding] != 18:
        raise ValueError(f"patn: pose_encoding must be an 18-channel encoding (heatmaps, peaks), got "
                         f"{cfg.pose_encoding!r}")
    if cfg.pssim_empty not in ("one", "exclude"):
        raise ValueError(f"patn: pssim_empty must be 'one' or 'exclude', got {cfg.pssim_empty!r}")
    if "gan" in weights and not (cfg.with_d_pb or cfg.with_d_pp):
        raise ValueError("patn: the gan loss needs a discriminator (with_d_pb or with_d_pp)")
    if cfg.pool_size < 0 or cfg.constant_steps < 0 or cfg.decay_steps < 0:
        raise ValueError("patn: pool_size, constant_steps and decay_steps must be >= 0")
    if cfg.constant_steps + cfg.decay_steps == 0:
        raise ValueError("patn: the schedule is empty (constant_steps + decay_steps = 0)")
    return weights


@register_model("patn", PATNConfig)
class PATN(PoseTransferModel):
    """PATN with selectable losses (see the module docstring). Networks: ``g``, ``d_pb``, ``d_pp``
    (the discriminators only when the GAN loss is selected)."""

    presets: dict[str, dict[str, Any]] = {
        # scripts/train_market.sh of the pSSIM code: lambda_A 0, B 10, SSIM 10, GAN 5, bs 32, BCE, BN.
        "market": dict(batch_size=32, flip_prob=0.0, norm="batch", gan_loss="bce", pool_size=50,
                       lambda_gan=5.0, lambda_per=10.0, lambda_l1=10.0, lambda_pssim=10.0,
                       lambda_ssim=10.0, lambda_pssim_star=10.0, pose_encoding="heatmaps",
                       constant_steps=epochs_to_steps(500, 32), decay_steps=epochs_to_steps(200, 32)),
        # scripts/train_fashion.sh: lambda_A 0, B 1, SSIM 1, GAN 5, bs 7, LSGAN, IN, pool 0; PATN's
        # DeepFashion pose files hold 1-pixel maps (uint8-truncated Gaussians).
        "deepfashion": dict(batch_size=7, flip_prob=0.0, norm="instance", gan_loss="lsgan", pool_size=0,
                            lambda_gan=5.0, lambda_per=1.0, lambda_l1=1.0, lambda_pssim=1.0,
                            lambda_ssim=1.0, lambda_pssim_star=1.0, pose_encoding="peaks",
                            constant_steps=epochs_to_steps(500, 7), decay_steps=epochs_to_steps(200, 7)),
        # A quarter-width, 3-block PATN (D: ndf 16, 1 block) on 64x32 images, batch 8, Market's
        # losses, weights and GAN type, 900 + 300 steps: minutes on 2 CPU cores.
        "synthetic": dict(batch_size=8, flip_prob=0.0, image_h=64, image_w=32, workers=1,
                          ngf=16, n_blocks=3, ndf=16, d_blocks=1, norm="batch", gan_loss="bce",
                          pool_size=50, constant_steps=900, decay_steps=300,
                          sample_every=200, checkpoint_every=500, eval_pairs=512),
    }

    def __init__(self, cfg: PATNConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        self.weights = check_config(cfg)
        h, w = ctx.image_size
        f = 2 ** max(cfg.n_down, cfg.d_down)
        if h % f or w % f:
            raise ValueError(f"patn: image size {h}x{w} must be divisible by {f} (2**n_down)")
        pose_ch = ENCODING_CHANNELS[cfg.pose_encoding]
        self.nets["g"] = PATNetwork(3, 2 * pose_ch, 3, cfg.ngf, cfg.n_down, cfg.n_blocks, cfg.norm,
                                    cfg.dropout, tanh=True)
        self.pools: dict[str, ImagePool] = {}
        if "gan" in self.weights:
            d_in = {"d_pb": 3 + pose_ch, "d_pp": 3 + 3}
            for name, on in (("d_pb", cfg.with_d_pb), ("d_pp", cfg.with_d_pp)):
                if on:
                    self.nets[name] = ResnetDiscriminator(d_in[name], cfg.ndf, cfg.d_down, cfg.d_blocks,
                                                          cfg.norm, cfg.d_dropout)
                    self.pools[name] = ImagePool(cfg.pool_size)
        self.pssim_config = PSSIMConfig(window=cfg.ssim_window, sigma=cfg.ssim_sigma, empty=cfg.pssim_empty)
        self.perceptual = self._build_perceptual(ctx) if "per" in self.weights else None

    def _build_perceptual(self, ctx: BuildContext) -> PerceptualLoss:
        layers = (self.cfg.perceptual_layer,)
        if ctx.feature_net is not None:
            return PerceptualLoss(ctx.feature_net(self.cfg.perceptual_arch, layers))
        # Built outside the training loop (inference, benchmarks, tests): random features, loudly.
        from fastpose.models.vgg import VGGFeatures
        self._random_features = True
        return PerceptualLoss(VGGFeatures(self.cfg.perceptual_arch, layers, weights=None))

    @classmethod
    def encodings_for(cls, cfg: PATNConfig) -> tuple[str, ...]:
        # Called before the data are built: a bad loss combination fails before any data work.
        check_config(cfg)
        return (cfg.pose_encoding,)

    def configure_optimizers(self):
        c = self.cfg
        opts = {name: torch.optim.Adam(net.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))
                for name, net in self.nets.items()}
        scheds = {name: torch.optim.lr_scheduler.LambdaLR(opt, self.lr_factor) for name, opt in opts.items()}
        return opts, scheds

    def lr_factor(self, step: int) -> float:
        """lr multiplier at iteration ``step``: 1 for ``constant_steps``, then linear to 0 (PATN's
        ``lambda`` policy, ``1 - max(0, e - niter) / (niter_decay + 1)``, per iteration)."""
        return 1.0 - max(0, step - self.cfg.constant_steps) / float(self.cfg.decay_steps + 1)

    def stages(self) -> list[Stage]:
        return [Stage("train", self.cfg.constant_steps + self.cfg.decay_steps, tuple(self.nets.keys()))]

    # -- networks' inputs ----------------------------------------------------------------------
    def _poses(self, batch: Batch) -> tuple[Tensor, Tensor]:
        e = self.cfg.pose_encoding
        dtype = batch["source_image"].dtype
        return batch[f"source_{e}"].to(dtype), batch[f"target_{e}"].to(dtype)

    def _generate(self, batch: Batch) -> Tensor:
        bp1, bp2 = self._poses(batch)
        return self.net("g")(batch["source_image"], torch.cat([bp1, bp2], 1))

    def discriminator_input(self, name: str, image: Tensor, batch: Batch) -> Tensor:
        """D_PB judges ``cat(image, target pose)``, D_PP ``cat(image, source image)``."""
        if name == "d_pb":
            return torch.cat([image, self._poses(batch)[1]], 1)
        if name == "d_pp":
            return torch.cat([image, batch["source_image"]], 1)
        raise KeyError(f"patn has discriminators d_pb and d_pp, not {name!r}")

    def generator_adversarial(self, fake: Tensor, batch: Batch) -> Tensor:
        """The mean over the discriminators of ``L_G(D(cat(fake, condition)))`` (PATN's ``/2``)."""
        names = list(self.pools)
        return sum(gan_loss(self.net(n)(self.discriminator_input(n, fake, batch)), True, self.cfg.gan_loss,
                            for_generator=True) for n in names) / len(names)

    # -- training ------------------------------------------------------------------------------
    def train_step(self, stage: str, batch: Batch, update: Update) -> dict[str, Tensor]:
        if getattr(self, "_random_features", False) and not getattr(self, "_warned", False):
            warnings.warn("patn: the perceptual loss uses a randomly initialised VGG (no feature_net in "
                          "the BuildContext)", RuntimeWarning)
            self._warned = True
        fake = self._generate(batch)
        cache: dict[str, Tensor] = {}

        def masks() -> Tensor:
            if "m" not in cache:
                cache["m"] = part_masks(batch["target_keypoints"].float(), tuple(fake.shape[-2:]),
                                        dtype=fake.dtype)
            return cache["m"]

        terms = {n: GENERATOR_TERMS[n](self, fake, batch, masks) for n in self.weights}
        g_loss = sum(self.weights[n] * t for n, t in terms.items())
        update("g", g_loss)
        logs = {"g": g_loss.detach(), **{f"g_{n}": t.detach() for n, t in terms.items()}}
        # D_PP then D_PB, each on the real target and a pooled fake, scaled by lambda_GAN.
        fake = fake.detach()
        for name in ("d_pp", "d_pb"):
            if name not in self.pools:
                continue
            d = self.net(name)
            real_in = self.discriminator_input(name, batch["target_image"], batch)
            fake_in = self.pools[name].query(self.discriminator_input(name, fake, batch))
            d_loss = 0.5 * (gan_loss(d(real_in), True, self.cfg.gan_loss)
                            + gan_loss(d(fake_in), False, self.cfg.gan_loss)) * self.weights["gan"]
            update(name, d_loss)
            logs[name] = d_loss.detach()
        return logs

    @torch.no_grad()
    def generate(self, batch: Batch) -> Tensor:
        return self._generate(batch).clamp(-1, 1)
