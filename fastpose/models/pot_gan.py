"""PoT-GAN: Pose Transform GAN for Person Image Synthesis (Li et al., TIP 2021), from the paper.

No code was published (facts file §4), so this follows §III of the paper and fills its gaps with
choices written down here and in the README's Models table.

Generator ``G(X_a, M_a, M_b, P_b)`` (eq. (3), Fig. 2):

- appearance encoder: a stem conv3x3 then N = 4 down-sampling blocks (conv3x3 stride 2, IN,
  LeakyReLU, conv3x3, IN, LeakyReLU) on the source image X_a, giving f_1..f_4 at H/2..H/16;
  widths base, 2 base, ... capped at ``max_channels``;
- pose encoder: the same architecture (own weights) on the target pose maps P_b, giving p_1..p_4;
- pose transform module (Fig. 3): per scale j a PoT encoder Phi_j (conv, IN, LeakyReLU, conv, IN)
  on the concatenated source and target full-body masks [M_a, M_b] (``pose_mask_potgan``), a
  coordinates generation net (conv blocks down to the deepest scale, two FC layers, tanh) giving the
  source positions of K target control points, and a TPS grid + bilinear sampler
  (:func:`fastpose.ops.tps_warp`, fused, with the run's ``--impl``) warping f_j -> f'_j. The last
  FC layer starts with zero weights and the bias at ``atanh(target points)``, so training starts
  from the identity warp (as spatial transformer networks do);
- U-Net decoder: N up-sampling blocks; the block of scale j reads [previous, f'_j, p_j]; then a
  conv3x3 and tanh;
- guided filter (He et al.) of the generated image with the target full-body mask M_b as the guide,
  box filter via cumulative sums (:mod:`fastpose.models.guided_filter`).

Discriminator: stride-2 convolutions and a dense layer on the image-pose pair [X, M_b] (eq. (6)).
Loss (eq. (8)): ``10 L1 + 1 perceptual(VGG16 relu1_2, eq. (5)) + 0.5 GAN`` (BCE, eq. (7)); Adam,
lr 2e-4, betas (0.5, 0.999), about 90k iterations; G then D per iteration (Algorithm 1).

Choices where the paper is silent (also in the README):

- the PoT encoders are chained (scale j reads scale j-1's differential feature; the first conv of
  each halves the resolution), the paper's "progressively discerned at four scales";
- the CGN convolutions have no normalisation (the deepest maps can be 4x2 pixels), its first FC
  layer has ``cgn_hidden`` units; one control-point layout for all scales, a regular gy x gx
  lattice spanning [-0.9, 0.9]^2 (``tps_grid_h`` x ``tps_grid_w``, default 5 x 3 for the tall
  person crops); ``align_corners=False`` and zero padding as ``grid_sample``;
- the pose encoder reads PG2's heat-map embedding (18 radius-4 disks, ``pose_encoding="disks"``), the
  "HME" of Sec. IV-C; Gaussian heatmaps are one option away (``--pose-encoding heatmaps``);
- the guided filter uses radius 1 and eps 1e-2 (images in [-1, 1]); the paper gives neither. With a
  binary guide it blurs everything away from the silhouette, and on the synthetic set it lowers
  SSIM (0.367 -> 0.320 with the pose transform); the presets keep it, as the paper's full model;
- the discriminator uses conv4x4 stride 2, instance norm (so real and fake batches may be judged
  separately) and a dense layer; widths 64, 128, ... 512;
- batch size 16 and no flips on Market and 8 on DeepFashion (the paper gives neither); a constant
  learning rate;
- no padding of DeepFashion: 256x176 is divisible by 2^N = 16;
- without the ImageNet VGG16 file (offline) the synthetic preset falls back to a randomly initialised
  VGG16 for the perceptual term, with a warning recorded in the run (the loop's policy);
- the synthetic preset is not the paper's: 64x32 images, narrower networks, a 4x3 lattice, 1,200
  steps, so that it trains on 2 CPU cores in minutes; no perceptual term (offline its VGG16 would
  be random, and relu1_2 at full resolution costs more than half a step) and a GAN weight of 0.05
  instead of 0.5 (at 0.5 the discriminator wins within the short schedule and the adversarial
  texture left SSIM below copying the source: 0.199 vs 0.217).

Ablations: ``pose_transform=False`` feeds the unwarped appearance features to the decoder (Table I's
"w/o pose transform": no PoT encoder, no CGN, no TPS call); ``guided_filter=False`` drops the filter
(Fig. 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from fastpose.losses import GAN_LOSSES, PerceptualLoss, gan_loss, l1_loss
from fastpose.models.base import Batch, BuildContext, PoseTransferModel, Stage, Update
from fastpose.models.guided_filter import GuidedFilter
from fastpose.models.pot_gan_blocks import (Decoder, Encoder, PairDiscriminator, PoseTransformModule,
                                            widths)
from fastpose.models.registry import register_model
from fastpose.pose.encodings.registry import ENCODING_CHANNELS


@dataclass
class PoTGANConfig:
    blocks: int = 4  # N: down-sampling blocks of each encoder (= up-sampling blocks of the decoder)
    base_channels: int = 64  # width of the first encoder scale; doubled per scale up to max_channels
    max_channels: int = 512  # cap of the encoder widths
    pose_channels: int = 0  # width of the pose encoder's first scale (0 = base_channels)
    pose_transform: bool = True  # the pose transform module; False = unwarped features (Table I "w/o")
    pot_channels: int = 32  # width of the first PoT encoder's output; doubled per scale up to max_channels
    cgn_channels: int = 64  # width of the coordinates generation nets' conv blocks
    cgn_hidden: int = 128  # units of the CGN's first fully connected layer
    tps_grid_h: int = 5  # rows of the regular lattice of TPS target control points
    tps_grid_w: int = 3  # columns of that lattice (K = rows x columns control points)
    tps_span: float = 0.9  # the lattice spans [-span, span]^2 in normalised coordinates
    guided_filter: bool = True  # filter the output with the target pose mask as guide (Fig. 10)
    gf_radius: int = 1  # guided filter window radius r (a (2r+1)^2 box)
    gf_eps: float = 1e-2  # guided filter regularisation eps (images in [-1, 1])
    d_base_channels: int = 64  # width of the discriminator's first convolution
    gan_loss: str = "bce"  # adversarial loss (bce = eq. (6)/(7))
    lambda_l1: float = 10.0  # lambda_1: weight of the L1 reconstruction loss (eq. (4))
    lambda_perceptual: float = 1.0  # lambda_2: weight of the perceptual loss (eq. (5))
    lambda_gan: float = 0.5  # lambda_3: weight of the generator's adversarial loss (eq. (7))
    perceptual_arch: str = "vgg16"  # feature network of the perceptual loss
    perceptual_layer: str = "relu1_2"  # its layer (the paper's relu1_2)
    lr: float = 2e-4  # Adam learning rate of G and D
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    steps: int = 90000  # training iterations ("around 90K")
    pose_encoding: str = "disks"  # target pose maps P_b fed to the pose encoder (PG2's heat-map embedding)
    mask_encoding: str = "pose_mask_potgan"  # full-body masks M_a, M_b (PoT module, guide, D)


def check_config(cfg: PoTGANConfig, image_size: tuple[int, int]) -> None:
    """Reject configs the networks cannot be built from, naming the field."""
    h, w = image_size
    positive = ("blocks", "base_channels", "max_channels", "pot_channels", "cgn_channels",
                "cgn_hidden", "d_base_channels", "steps")
    for name in positive:
        if getattr(cfg, name) < 1:
            raise ValueError(f"pot_gan: {name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.pose_channels < 0:
        raise ValueError(f"pot_gan: pose_channels must be >= 0, got {cfg.pose_channels}")
    f = 2 ** cfg.blocks
    if h % f or w % f:
        raise ValueError(f"pot_gan: with blocks={cfg.blocks} the image size must be divisible by {f}, "
                         f"got {h}x{w}")
    if cfg.tps_grid_h < 2 or cfg.tps_grid_w < 2:
        raise ValueError(f"pot_gan: tps_grid_h and tps_grid_w must be >= 2, got "
                         f"{cfg.tps_grid_h}x{cfg.tps_grid_w}")
    if not 0 < cfg.tps_span < 1:
        raise ValueError(f"pot_gan: tps_span must be in (0, 1) (tanh-bounded points), got {cfg.tps_span}")
    if cfg.gf_radius < 0 or cfg.gf_eps <= 0:
        raise ValueError(f"pot_gan: gf_radius must be >= 0 and gf_eps > 0, got {cfg.gf_radius}, {cfg.gf_eps}")
    if cfg.gan_loss not in GAN_LOSSES:
        raise ValueError(f"pot_gan: gan_loss must be one of {sorted(GAN_LOSSES)}, got {cfg.gan_loss!r}")
    for name in ("pose_encoding", "mask_encoding"):
        if getattr(cfg, name) not in ENCODING_CHANNELS:
            raise ValueError(f"pot_gan: unknown {name} {getattr(cfg, name)!r}; known: "
                             f"{sorted(ENCODING_CHANNELS)}")
    if ENCODING_CHANNELS[cfg.mask_encoding] != 1:
        raise ValueError(f"pot_gan: mask_encoding must be a 1-channel mask, {cfg.mask_encoding!r} has "
                         f"{ENCODING_CHANNELS[cfg.mask_encoding]}")


class PoTGenerator(nn.Module):
    """The generator of Fig. 2 (see the module docstring); ``forward(src, pose_b, m_a, m_b)``."""

    def __init__(self, cfg: PoTGANConfig, image_size: tuple[int, int], pose_in: int,
                 impl: str = "auto") -> None:
        super().__init__()
        n = cfg.blocks
        app = widths(cfg.base_channels, cfg.max_channels, n)
        pose = widths(cfg.pose_channels or cfg.base_channels, cfg.max_channels, n)
        self.appearance = Encoder(3, app)
        self.pose = Encoder(pose_in, pose)
        self.transform = (PoseTransformModule(2, widths(cfg.pot_channels, cfg.max_channels, n), image_size,
                                              cfg.cgn_channels, cfg.cgn_hidden,
                                              (cfg.tps_grid_h, cfg.tps_grid_w), cfg.tps_span, impl)
                          if cfg.pose_transform else None)
        self.decoder = Decoder(app, pose)
        self.filter = GuidedFilter(cfg.gf_radius, cfg.gf_eps) if cfg.guided_filter else None

    def forward(self, src: Tensor, pose_b: Tensor, m_a: Tensor, m_b: Tensor) -> Tensor:
        """src ``[N, 3, H, W]`` in [-1, 1], pose_b ``[N, P, H, W]``, masks ``[N, 1, H, W]`` in {0, 1}
        -> the generated target image ``[N, 3, H, W]``."""
        feats = self.appearance(src)
        if self.transform is not None:
            feats = self.transform(torch.cat([m_a, m_b], 1), feats)
        out = self.decoder(feats, self.pose(pose_b))
        return out if self.filter is None else self.filter(m_b, out)


def _mask(m: Tensor, dtype: torch.dtype) -> Tensor:
    return (m.unsqueeze(1) if m.dim() == 3 else m[:, :1]).to(dtype)


@register_model("pot_gan", PoTGANConfig)
class PoTGAN(PoseTransferModel):
    """PoT-GAN (see the module docstring). Networks: ``g``, ``d``."""

    # Presets per dataset kind: TrainConfig and PoTGANConfig fields (see fastpose.train.config).
    presets: dict[str, dict[str, Any]] = {
        "market": dict(batch_size=16, steps=90000, base_channels=64),
        "deepfashion": dict(batch_size=8, steps=90000, base_channels=64),
        # Narrow networks at 64x32 and a short schedule: minutes on 2 CPU cores. No perceptual
        # term: offline its VGG16 is random, and relu1_2 would be over half of each step's cost.
        # GAN weight 0.05: at the paper's 0.5 the discriminator wins within this short schedule and
        # the generator's adversarial noise made SSIM worse than copying the source (0.199 vs 0.217).
        "synthetic": dict(batch_size=16, image_h=64, image_w=32, workers=1, flip_prob=0.5,
                          lambda_perceptual=0.0, lambda_gan=0.05,
                          base_channels=16, max_channels=128, pot_channels=8, cgn_channels=16,
                          cgn_hidden=32, d_base_channels=16, tps_grid_h=4, tps_grid_w=3,
                          lr=2e-4, steps=1200, sample_every=200, checkpoint_every=500,
                          eval_pairs=512),
    }

    def __init__(self, cfg: PoTGANConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        size = tuple(ctx.image_size)
        check_config(cfg, size)
        self.nets["g"] = PoTGenerator(cfg, size, ENCODING_CHANNELS[cfg.pose_encoding], ctx.impl)
        self.nets["d"] = PairDiscriminator(3 + 1, size, cfg.d_base_channels)
        layers = (cfg.perceptual_layer,)
        if cfg.lambda_perceptual == 0:
            features = None  # the term is off: no feature network to build or run
        elif ctx.feature_net is not None:
            features = ctx.feature_net(cfg.perceptual_arch, layers)
        else:
            # Built without the loop (tests, benchmarks, inference): the perceptual term then runs
            # on a randomly initialised network; the trainer always passes its feature_net.
            from fastpose.models.vgg import VGGFeatures
            features = VGGFeatures(cfg.perceptual_arch, layers, weights=None)
        # Not in self.nets: frozen, never checkpointed.
        self.perceptual = PerceptualLoss(features) if features is not None else None

    @classmethod
    def encodings_for(cls, cfg: PoTGANConfig) -> tuple[str, ...]:
        return (cfg.pose_encoding, cfg.mask_encoding)

    def configure_optimizers(self):
        c = self.cfg
        opts = {name: torch.optim.Adam(self.nets[name].parameters(), lr=c.lr, betas=(c.beta1, c.beta2))
                for name in ("g", "d")}
        return opts, {}

    def stages(self) -> list[Stage]:
        return [Stage("train", self.cfg.steps, ("g", "d"))]

    def _generate(self, batch: Batch) -> tuple[Tensor, Tensor]:
        c = self.cfg
        src = batch["source_image"]
        m_a = _mask(batch[f"source_{c.mask_encoding}"], src.dtype)
        m_b = _mask(batch[f"target_{c.mask_encoding}"], src.dtype)
        pose_b = batch[f"target_{c.pose_encoding}"].to(src.dtype)
        return self.net("g")(src, pose_b, m_a, m_b), m_b

    def train_step(self, stage: str, batch: Batch, update: Update) -> dict[str, Tensor]:
        if stage != "train":
            raise ValueError(f"pot_gan has one stage, 'train', not {stage!r}")
        c = self.cfg
        tgt = batch["target_image"]
        fake, m_b = self._generate(batch)
        # Generator first, then the discriminator (Algorithm 1).
        g_adv = gan_loss(self.net("d")(torch.cat([fake, m_b], 1)), True, c.gan_loss, for_generator=True)
        g_l1 = l1_loss(fake, tgt)
        g_per = self.perceptual(fake, tgt) if self.perceptual is not None else fake.new_zeros(())
        g_loss = c.lambda_l1 * g_l1 + c.lambda_perceptual * g_per + c.lambda_gan * g_adv
        update("g", g_loss)
        n = tgt.shape[0]
        logits = self.net("d")(torch.cat([torch.cat([tgt, m_b], 1), torch.cat([fake.detach(), m_b], 1)], 0))
        d_loss = 0.5 * (gan_loss(logits[:n], True, c.gan_loss) + gan_loss(logits[n:], False, c.gan_loss))
        update("d", d_loss)
        return {"g_l1": g_l1, "g_per": g_per, "g_adv": g_adv, "d": d_loss}

    @torch.no_grad()
    def generate(self, batch: Batch) -> Tensor:
        return self._generate(batch)[0].clamp(-1, 1)
