"""PG2: Pose Guided Person Image Generation (Ma et al., NeurIPS 2017), as the authors' code does it.

Stage 1 trains G1 alone with the pose-mask L1 loss (equation (1)). Stage 2 freezes G1 and trains
G2, which predicts a difference map added to G1's output, against a DCGAN discriminator, with the
loss ``GAN + lambda * pose-mask L1`` (equation (4)). Settings follow the authors' released code
(charliememory/Pose-Guided-Person-Image-Generation, see the facts file §5):

- G1: conv3x3 to n=128 channels, N residual blocks (two conv3x3+ReLU, identity shortcut) at
  ``n*(idx+1)`` channels each followed (except the last) by a stride-2 conv3x3 to ``n*(idx+2)``;
  a fully connected bottleneck (flattened map -> 64 -> ``8x4x128`` or ``8x8x128``); a decoder that
  concatenates the mirrored encoder skip, applies a residual block at the concatenated width,
  upsamples x2 (nearest) and applies a 1x1 conv to ``n*(N-idx-1)``; a linear conv3x3 output.
  N = log2(H) - 2: 5 at 128x64, 6 at 256x256. Input: source image + 18 target-pose disks of radius 4
  in {-1, 1}. No normalisation in G.
- G2: N-2 blocks of two conv3x3+ReLU (no residual, no FC), encoder widths ``n*(idx+1)``, stride-2
  conv3x3 between blocks, decoder at n channels with skips; Market's variant (``UAE_noFC_After2Noise``)
  keeps skips only from the second block on, DeepFashion's (``UAE_noFC_AfterNoise``) all of them.
  Input: G1's output and the source image. ``G2 = G1 + DiffMap``.
- D: DCGAN, unconditional (3-channel input); the batch fed to it is the authors' "triplet"
  (target = real, source image and G2 = fake, weights 0.5 / 0.25 / 0.25).
- Adam(2e-5, beta1 0.5) for every network: the authors' dcgan mode hard-codes this rate; their
  --g_lr/--d_lr flags and lr halving do not reach the optimisers.
- lambda = 10 (Market), 50 (DeepFashion); batch 16 (Market), 1 (DeepFashion, their run script);
  G1-only until step 22,000, then one D step and one G2 step per iteration until 60,000 (Market) or
  80,000 (DeepFashion).

Deviations (also in the README): ``d_mode="pair"`` gives the paper's conditional D on (image,
condition) pairs (equation (2)) instead of the code's triplet; DeepFashion images in PATN's 256x176
layout are padded with white to the 256x256 canvas the authors trained on, and the output is
cropped back; G2's output convolution starts at zero (``g2_zero_init``), so that stage 2 starts from
G1's result as the paper describes instead of G1 plus a random difference map; left-right flips with probability 0.5 as the paper says (the code's loaders may not);
the synthetic preset uses a smaller network, a higher learning rate and a short schedule so that it
finishes on a 2-core CPU in minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastpose.losses import gan_loss, pose_mask_l1_loss
from fastpose.models.canvas import crop_from_canvas, pad_to_canvas
from fastpose.models.base import Batch, BuildContext, PoseTransferModel, Stage, Update
from fastpose.models.discriminators import DCGANDiscriminator
from fastpose.models.registry import register_model

NUM_JOINTS = 18


@dataclass
class PG2Config:
    g1_blocks: int = 0  # N, residual blocks of G1; 0 = log2(H) - 2 of the (padded) canvas
    g2_blocks: int = 0  # blocks of G2; 0 = N - 2
    base_channels: int = 128  # n: width of the first block; block i has n*(i+1) channels
    z_dim: int = 64  # width of G1's fully connected bottleneck
    g2_skip_first: bool = False  # G2 also concatenates the first encoder block (DeepFashion variant)
    g2_zero_init: bool = True  # zero G2's output conv, so stage 2 starts exactly at G1's result
    d_base_channels: int = 64  # width of D's first convolution
    d_mode: str = "triplet"  # "triplet": the code's unconditional D, source image as extra fake;
    #                          "pair": the paper's D on (condition, image) pairs, equation (2)
    gan_loss: str = "bce"  # adversarial loss of stage 2 (bce = the paper's)
    lr: float = 2e-5  # Adam learning rate of G1, G2 and D
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    stage1_steps: int = 22000  # iterations training G1 alone
    stage2_steps: int = 38000  # iterations training G2 and D (G1 frozen)
    lambda_l1: float = 10.0  # weight of the pose-mask L1 term in G2's loss (lambda in eq. (4))
    mask_weight: float = 1.0  # weight of the masked term inside the pose-mask L1 loss
    pose_encoding: str = "disks"  # encoding fed to G1 (18 disks of radius 4)
    mask_encoding: str = "pose_mask_pg2"  # body mask of the pose-mask loss
    canvas_h: int = 0  # pad inputs to this height before the networks (0 = the image height)
    canvas_w: int = 0  # pad inputs to this width (0 = the image width); DeepFashion: 256
    pad_value: float = 1.0  # image value of the padding (1 = white, as DeepFashion's backgrounds)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


class _ConvPair(nn.Module):
    """Two conv3x3 + ReLU, optionally with an identity shortcut (PG2's simplified residual block)."""

    def __init__(self, cin: int, cout: int, residual: bool) -> None:
        super().__init__()
        if residual and cin != cout:
            raise ValueError("a residual block needs equal input and output widths")
        self.c1, self.c2, self.residual = _conv(cin, cout), _conv(cout, cout), residual

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.c2(F.relu(self.c1(x))))
        return x + h if self.residual else h


class G1(nn.Module):
    """Stage-I U-Net of residual blocks with the fully connected bottleneck."""

    def __init__(self, in_channels: int, size: tuple[int, int], blocks: int, n: int, z_dim: int,
                 out_channels: int = 3) -> None:
        super().__init__()
        h, w = size
        f = 2 ** (blocks - 1)
        if h % f or w % f:
            raise ValueError(f"G1 with {blocks} blocks needs H, W divisible by {f}, got {size}")
        self.blocks, self.bottom = blocks, (h // f, w // f)
        self.inp = _conv(in_channels, n)
        self.enc = nn.ModuleList(_ConvPair(n * (i + 1), n * (i + 1), True) for i in range(blocks))
        self.down = nn.ModuleList(_conv(n * (i + 1), n * (i + 2), stride=2) for i in range(blocks - 1))
        bh, bw = self.bottom
        self.fc_in = nn.Linear(n * blocks * bh * bw, z_dim)
        self.fc_out = nn.Linear(z_dim, n * bh * bw)
        self.n = n
        dec, up = [], []
        for i in range(blocks):
            width = (n if i == 0 else n * (blocks - i)) + n * (blocks - i)
            dec.append(_ConvPair(width, width, True))
            if i < blocks - 1:
                up.append(nn.Conv2d(width, n * (blocks - i - 1), 1))
        self.dec, self.up = nn.ModuleList(dec), nn.ModuleList(up)
        self.out = _conv(2 * n, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.inp(x))
        skips = []
        for i, block in enumerate(self.enc):
            h = block(h)
            skips.append(h)
            if i < self.blocks - 1:
                h = F.relu(self.down[i](h))
        z = self.fc_in(h.flatten(1))
        h = self.fc_out(z).view(-1, self.n, *self.bottom)
        for i, block in enumerate(self.dec):
            h = block(torch.cat([h, skips[-1 - i]], 1))
            if i < self.blocks - 1:
                h = F.relu(self.up[i](F.interpolate(h, scale_factor=2, mode="nearest")))
        return self.out(h)


class G2(nn.Module):
    """Stage-II fully convolutional U-Net producing the difference map."""

    def __init__(self, in_channels: int, blocks: int, n: int, skip_first: bool,
                 out_channels: int = 3) -> None:
        super().__init__()
        if blocks < 1:
            raise ValueError(f"G2 needs at least one block, got {blocks}")
        self.blocks, self.skip_first = blocks, skip_first
        self.inp = _conv(in_channels, n)
        self.enc = nn.ModuleList(_ConvPair(n if i == 0 else n * i, n * (i + 1), False)
                                 for i in range(blocks))
        self.down = nn.ModuleList(_conv(n * (i + 1), n * (i + 1), stride=2) for i in range(blocks - 1))
        # Encoder outputs kept as skips: all blocks, or (the Market variant) all but the first.
        self.kept = list(range(blocks)) if skip_first else list(range(1, blocks))
        dec = []
        h_ch = n * blocks
        for i in range(blocks):
            src = blocks - 1 - i
            width = h_ch + (n * (src + 1) if src in self.kept else 0)
            dec.append(_ConvPair(width, n, False))
            h_ch = n
        self.dec = nn.ModuleList(dec)
        self.out = _conv(n, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.inp(x))
        skips = {}
        for i, block in enumerate(self.enc):
            h = block(h)
            skips[i] = h
            if i < self.blocks - 1:
                h = F.relu(self.down[i](h))
        for i, block in enumerate(self.dec):
            src = self.blocks - 1 - i
            if src in self.kept:
                h = torch.cat([h, skips[src]], 1)
            h = block(h)
            if i < self.blocks - 1:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.out(h)


def _as_mask(m: Tensor) -> Tensor:
    return m.unsqueeze(1) if m.dim() == 3 else m[:, :1]


@register_model("pg2", PG2Config)
class PG2(PoseTransferModel):
    """PG2 (see the module docstring). Networks: ``g1``, ``g2``, ``d``."""

    # Presets per dataset kind: TrainConfig and PG2Config fields (see fastpose.train.config).
    presets: dict[str, dict[str, Any]] = {
        "market": dict(batch_size=16, flip_prob=0.5, stage1_steps=22000, stage2_steps=38000, lambda_l1=10.0,
                       g2_skip_first=False),
        "deepfashion": dict(batch_size=1, flip_prob=0.5, stage1_steps=22000, stage2_steps=58000, lambda_l1=50.0,
                            g2_skip_first=True, canvas_h=256, canvas_w=256, pad_value=1.0),
        # An eighth-width network on 64x32 images, lr 10x the authors', a few minutes on 2 CPU cores.
        "synthetic": dict(batch_size=16, flip_prob=0.5, image_h=64, image_w=32, workers=1,
                          base_channels=16, z_dim=64, d_base_channels=16, lr=2e-4,
                          stage1_steps=1600, stage2_steps=600, lambda_l1=10.0, g2_skip_first=False,
                          sample_every=200, checkpoint_every=500, eval_pairs=512),
    }

    def __init__(self, cfg: PG2Config, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        h, w = ctx.image_size
        self.canvas = (cfg.canvas_h or h, cfg.canvas_w or w)
        if self.canvas[0] < h or self.canvas[1] < w:
            raise ValueError(f"pg2: canvas {self.canvas} is smaller than the images {(h, w)}")
        n1 = cfg.g1_blocks or int(round(math.log2(self.canvas[0]))) - 2
        n2 = cfg.g2_blocks or n1 - 2
        if cfg.d_mode not in ("triplet", "pair"):
            raise ValueError(f"pg2: d_mode must be 'triplet' or 'pair', got {cfg.d_mode!r}")
        self.n_blocks = (n1, n2)
        self.nets["g1"] = G1(3 + NUM_JOINTS, self.canvas, n1, cfg.base_channels, cfg.z_dim)
        self.nets["g2"] = G2(6, n2, cfg.base_channels, cfg.g2_skip_first)
        if cfg.g2_zero_init:
            nn.init.zeros_(self.nets["g2"].out.weight)
            nn.init.zeros_(self.nets["g2"].out.bias)
        d_in = 3 if cfg.d_mode == "triplet" else 6
        self.nets["d"] = DCGANDiscriminator(d_in, self.canvas, cfg.d_base_channels)

    @classmethod
    def encodings_for(cls, cfg: PG2Config) -> tuple[str, ...]:
        return (cfg.pose_encoding, cfg.mask_encoding)

    def configure_optimizers(self):
        c = self.cfg
        opts = {name: torch.optim.Adam(self.nets[name].parameters(), lr=c.lr, betas=(c.beta1, c.beta2))
                for name in ("g1", "g2", "d")}
        return opts, {}

    def stages(self) -> list[Stage]:
        return [Stage("stage1", self.cfg.stage1_steps, ("g1",)),
                Stage("stage2", self.cfg.stage2_steps, ("g2", "d"))]

    # -- helpers -----------------------------------------------------------------------------
    def _pad(self, x: Tensor, value: float) -> Tensor:
        return pad_to_canvas(x, self.canvas, value)

    def _inputs(self, batch: Batch) -> tuple[Tensor, Tensor]:
        src = self._pad(batch["source_image"], self.cfg.pad_value)
        # Disks in {0, 1} are fed as {-1, 1}, as the authors' loader does (poses * 2 - 1).
        pose = self._pad(batch[f"target_{self.cfg.pose_encoding}"].to(src.dtype) * 2 - 1, -1.0)
        return src, pose

    def _stage1_output(self, src: Tensor, pose: Tensor) -> Tensor:
        return self.net("g1")(torch.cat([src, pose], 1))

    def _refine(self, g1_out: Tensor, src: Tensor) -> Tensor:
        return g1_out + self.net("g2")(torch.cat([g1_out, src], 1))

    def _d_logits(self, tgt: Tensor, src: Tensor, fake: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Logits of (target, source, fake) for the triplet D, or of the (src, x) pairs."""
        n = tgt.shape[0]
        if self.cfg.d_mode == "triplet":
            logits = self.net("d")(torch.cat([tgt, src, fake], 0))
            return logits[:n], logits[n:2 * n], logits[2 * n:]
        logits = self.net("d")(torch.cat([torch.cat([src, tgt], 1), torch.cat([src, fake], 1)], 0))
        return logits[:n], logits[:0], logits[n:]

    # -- training ----------------------------------------------------------------------------
    def train_step(self, stage: str, batch: Batch, update: Update) -> dict[str, Tensor]:
        c = self.cfg
        src, pose = self._inputs(batch)
        tgt = self._pad(batch["target_image"], c.pad_value)
        mask = self._pad(_as_mask(batch[f"target_{c.mask_encoding}"]).to(src.dtype), 0.0)
        if stage == "stage1":
            g1_out = self._stage1_output(src, pose)
            loss = pose_mask_l1_loss(g1_out, tgt, mask, c.mask_weight)
            update("g1", loss)
            return {"g1_pose_l1": loss}
        if stage != "stage2":
            raise ValueError(f"pg2 has stages stage1 and stage2, not {stage!r}")
        with torch.no_grad():
            g1_out = self._stage1_output(src, pose)
        fake = self._refine(g1_out, src)
        # Discriminator: real target vs fake G2 output (and, in the code's triplet, the source).
        real_l, src_l, fake_l = self._d_logits(tgt, src, fake.detach())
        if c.d_mode == "triplet":
            d_loss = (0.5 * gan_loss(real_l, True, c.gan_loss) + 0.25 * gan_loss(src_l, False, c.gan_loss)
                      + 0.25 * gan_loss(fake_l, False, c.gan_loss))
        else:
            d_loss = gan_loss(real_l, True, c.gan_loss) + gan_loss(fake_l, False, c.gan_loss)
        update("d", d_loss)
        # Generator: fool D (same batch composition, so BatchNorm sees what it saw above) + L1.
        _, _, fake_l = self._d_logits(tgt, src, fake)
        g_adv = gan_loss(fake_l, True, c.gan_loss, for_generator=True)
        g_l1 = pose_mask_l1_loss(fake, tgt, mask, c.mask_weight)
        g_loss = g_adv + c.lambda_l1 * g_l1
        update("g2", g_loss)
        return {"d": d_loss, "g2_adv": g_adv, "g2_pose_l1": g_l1}

    @torch.no_grad()
    def generate(self, batch: Batch) -> Tensor:
        size = batch["source_image"].shape[-2:]
        src, pose = self._inputs(batch)
        out = self._stage1_output(src, pose)
        if self.current_stage != "stage1":  # G2 is untrained before stage 2
            out = self._refine(out, src)
        return crop_from_canvas(out, size).clamp(-1, 1)
