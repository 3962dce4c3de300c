"""SPGNet: semantic person image generation by region-adaptive normalisation (Lv et al., CVPR 2021).

Two stages, trained simultaneously as the paper does (one loop stage per GAN phase, below):

- Stage 1, SPATN (:class:`fastpose.models.patn_blocks.PATNetwork`): predicts the target parsing
  logits (20 CIHP classes) from the source parsing one-hot (or, SPATN* for Market, the source image)
  and the source + target poses as 30 channels each (18 heatmaps + 12 skeleton distance maps,
  kappa = -0.1); cross-entropy, lambda_ce = 10.
- Stage 2 (:class:`fastpose.models.spgnet_unet.SPGGenerator`): dual-path U-Net with feature
  deformation, style codes pooled over the source parsing and broadcast to the target parsing, SPGBlocks
  of SEAN normalisations. Trained on the ground-truth target parsing; :meth:`SPGNet.generate` feeds
  it SPATN's prediction instead (the paper's inference).
- D: PatchGAN on ``cat(source image, image, target heatmaps)`` (24 channels), BCE.

Losses and optimisation as the authors' code (facts file §3): ``1 * L1 + 1 * perceptual
(0.125 * L1 over VGG19 relu1_1, relu2_1, relu3_1, relu4_1, relu5_1) + 0.01 * GAN``, the GAN term
and D only after a warm-up (the code's ``epoch_add_gan = 6``: five epochs), Adam(2e-4, 0.5, 0.999)
for SPATN and the generator, Adam(2e-5, weight decay 4e-4) for D.

Loop stages: ``warmup`` (trains spatn, g) for ``gan_start_step`` steps, then ``adversarial``
(spatn, g, d) until ``total_steps``.

Deviations (also in the README): the flow is learned end to end from the pose pair instead of the
authors' frozen 3D-trained FlowReg (not obtainable); the visibility is a soft learned gate instead
of FlowReg's 3-class map; SEAN's noise is added in training only (generate() is deterministic);
SPATN* is trained on the data's own parsing maps (the paper trains it on DeepFashion to predict
Market's); the Market variant keeps the BN after PixelShuffle and applies SEAN before the upsampling
(the authors' Market file drops that BN and normalises after); DeepFashion images in PATN's 256x176
layout are padded with white to the authors' 256x256 canvas and cropped back; the synthetic preset
uses small widths, fewer scales and VGG layers, a higher learning rate and a short schedule.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastpose.data.cihp import NUM_CIHP_LABELS
from fastpose.losses import PerceptualLoss, gan_loss, l1_loss
from fastpose.models.canvas import crop_from_canvas, pad_to_canvas
from fastpose.models.base import Batch, BuildContext, PoseTransferModel, Stage, Update
from fastpose.models.patchgan import PatchGANDiscriminator
from fastpose.models.patn_blocks import PATNetwork
from fastpose.models.registry import register_model
from fastpose.models.spgnet_sean import one_hot_labels
from fastpose.models.spgnet_unet import SPGGenerator

POSE_ENCODINGS = ("heatmaps", "distance_maps")  # 18 + 12 = 30 channels per pose (paper, §3.1)
POSE_CHANNELS = 30
D_POSE_ENCODING = "heatmaps"  # D's pose condition (the code's joint_2: 18 channels)
SPATN_INPUTS = ("parsing", "image")  # SPATN (source parsing) | SPATN* (source image, Market)


@dataclass
class SPGNetConfig:
    # --- stage 1: SPATN -------------------------------------------------------------------
    spatn_input: str = "parsing"  # parsing: SPATN on the source parsing; image: SPATN* (Market)
    spatn_ngf: int = 64  # SPATN's width after its first conv (PATN: 64)
    spatn_down: int = 2  # stride-2 steps of SPATN's encoders
    spatn_blocks: int = 9  # PATBlocks of SPATN
    spatn_norm: str = "batch"  # SPATN's norm: batch (Market) | instance (DeepFashion), as PATN
    spatn_dropout: bool = True  # dropout(0.5) inside SPATN's blocks, as PATN's runs
    lambda_ce: float = 10.0  # weight of SPATN's cross-entropy (lambda_ce)
    # --- stage 2: the generator -------------------------------------------------------------
    nf: int = 32  # width nf: scale l has min(nf * (l + 1), max_nf) channels
    max_nf: int = 128  # width cap of the U-Net
    num_scales: int = 5  # U-Net scales (Market 5, DeepFashion 7 at 256x256)
    num_warp_scales: int = 4  # scales whose appearance features are warped (Market 4, DeepFashion 5)
    res_blocks: int = 2  # residual blocks per PEBlock / AEBlock
    spg_blocks: int = 2  # SPGBlocks per decoder scale
    style_dim: int = 128  # width of the per-region style codes
    style_nf: int = 32  # width of the style encoder's first conv (Zencoder(3, 128): 32)
    sean_hidden: int = 64  # width of SEAN's semantic (SPADE) branch
    sean_kernel: int = 3  # SEAN's gamma/beta conv kernel (Market 3, DeepFashion 5)
    flow_nf: int = 32  # width of the learned flow network
    flow_down: int = 3  # stride-2 steps of the learned flow network
    # --- discriminator and losses --------------------------------------------------------------
    d_ndf: int = 64  # PatchGAN width
    d_layers: int = 3  # PatchGAN stride-2 layers
    gan_loss: str = "bce"  # adversarial loss (the code's dcgan: sigmoid + BCE)
    lambda_l1: float = 1.0  # weight of the L1 loss
    lambda_perc: float = 1.0  # weight of the perceptual loss
    lambda_gan: float = 0.01  # weight of the generator's GAN loss
    perc_layers: str = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"  # VGG19 layers of the perceptual loss
    perc_layer_weight: float = 0.125  # weight of each layer's L1 (the code's 'balance' mode)
    # --- optimisation ------------------------------------------------------------------------
    lr: float = 2e-4  # Adam learning rate of SPATN and the generator
    lr_d: float = 2e-5  # Adam learning rate of D
    d_weight_decay: float = 4e-4  # D's Adam weight decay
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    gan_start_step: int = 41190  # warm-up steps without D and GAN loss (Market: 5 epochs at batch 32)
    total_steps: int = 82380  # training steps (Market: 10 epochs of 263,632 pairs at batch 32)
    # --- geometry ------------------------------------------------------------------------------
    canvas_h: int = 0  # pad inputs to this height (0 = the image height)
    canvas_w: int = 0  # pad inputs to this width (0 = the image width); DeepFashion: 256
    pad_value: float = 1.0  # image value of the padding (1 = white, DeepFashion's background)


def parsing_accuracy(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image pixel accuracy of label maps ``pred``, ``target`` ``[N, H, W]`` -> ``[N]``."""
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"parsing_accuracy: pred and target must be label maps [N, H, W] of the same shape, "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")
    return (pred == target).flatten(1).float().mean(1)


@register_model("spgnet", SPGNetConfig)
class SPGNet(PoseTransferModel):
    """SPGNet (see the module docstring). Networks: ``spatn``, ``g``, ``d``."""

    presets: dict[str, dict[str, Any]] = {
        # SPATN* (source image) as the paper does for Market; 10 epochs, GAN from epoch 6.
        "market": dict(batch_size=32, spatn_input="image", spatn_norm="batch", num_scales=5,
                       num_warp_scales=4, sean_kernel=3, gan_start_step=41190, total_steps=82380),
        # 45 epochs of 25,491 iterations at batch 4 (the authors' runs), GAN from epoch 6, 256x256.
        "deepfashion": dict(batch_size=4, spatn_input="parsing", spatn_norm="instance", num_scales=7,
                            num_warp_scales=5, sean_kernel=5, canvas_h=256, canvas_w=256, pad_value=1.0,
                            gan_start_step=127455, total_steps=1147095),
        # Small widths, 4 scales at 64x32, 1x1 SEAN convs, VGG relu1_1 only, lr 5x; minutes on 2 CPU cores.
        "synthetic": dict(batch_size=8, image_h=64, image_w=32, workers=1, spatn_ngf=8, spatn_blocks=2,
                          spatn_dropout=False, nf=12, max_nf=48, num_scales=4, num_warp_scales=3,
                          res_blocks=1, spg_blocks=1, style_dim=16, style_nf=8, sean_hidden=16, sean_kernel=1,
                          flow_nf=8, flow_down=2, d_ndf=16, d_layers=2, perc_layers="relu1_1",
                          lr=1e-3, lr_d=1e-4, gan_start_step=600, total_steps=1000,
                          sample_every=200, checkpoint_every=500, eval_pairs=512, log_every=20),
    }

    def __init__(self, cfg: SPGNetConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        if cfg.spatn_input not in SPATN_INPUTS:
            raise ValueError(f"spgnet: spatn_input must be one of {SPATN_INPUTS}, got {cfg.spatn_input!r}")
        if not 0 <= cfg.gan_start_step <= cfg.total_steps or cfg.total_steps < 1:
            raise ValueError(f"spgnet: need 0 <= gan_start_step ({cfg.gan_start_step}) <= total_steps "
                             f"({cfg.total_steps}) and total_steps >= 1")
        h, w = ctx.image_size
        self.canvas = (cfg.canvas_h or h, cfg.canvas_w or w)
        if self.canvas[0] < h or self.canvas[1] < w:
            raise ValueError(f"spgnet: canvas {self.canvas} is smaller than the images {(h, w)}")
        r = NUM_CIHP_LABELS
        self.nets["spatn"] = PATNetwork(r if cfg.spatn_input == "parsing" else 3, 2 * POSE_CHANNELS, r,
                                        ngf=cfg.spatn_ngf, n_down=cfg.spatn_down, n_blocks=cfg.spatn_blocks,
                                        norm=cfg.spatn_norm, dropout=cfg.spatn_dropout, tanh=False)
        self.nets["g"] = SPGGenerator(POSE_CHANNELS, r, cfg.nf, cfg.max_nf, cfg.num_scales, cfg.num_warp_scales,
                                      cfg.res_blocks, cfg.spg_blocks, cfg.style_dim, cfg.style_nf,
                                      cfg.sean_hidden, cfg.sean_kernel, cfg.flow_nf, cfg.flow_down, ctx.impl)
        self.nets["d"] = PatchGANDiscriminator(6 + 18, cfg.d_ndf, cfg.d_layers)
        self._perceptual: list = []  # [PerceptualLoss], built on the first training step (not for inference)

    @classmethod
    def encodings_for(cls, cfg: SPGNetConfig) -> tuple[str, ...]:
        # "parsing" makes PairDataset load source_parsing / target_parsing (int64 [H, W] labels).
        return POSE_ENCODINGS + ("parsing",)

    def configure_optimizers(self):
        c = self.cfg
        betas = (c.beta1, c.beta2)
        opts = {"spatn": torch.optim.Adam(self.nets["spatn"].parameters(), lr=c.lr, betas=betas),
                "g": torch.optim.Adam(self.nets["g"].parameters(), lr=c.lr, betas=betas),
                "d": torch.optim.Adam(self.nets["d"].parameters(), lr=c.lr_d, betas=betas,
                                      weight_decay=c.d_weight_decay)}
        return opts, {}

    def stages(self) -> list[Stage]:
        c = self.cfg
        stages = [Stage("warmup", c.gan_start_step, ("spatn", "g")),
                  Stage("adversarial", c.total_steps - c.gan_start_step, ("spatn", "g", "d"))]
        return [s for s in stages if s.steps > 0]

    # -- inputs ------------------------------------------------------------------------------
    def _pad(self, x: Tensor, value: float) -> Tensor:
        return pad_to_canvas(x, self.canvas, value)

    def _pose(self, batch: Batch, side: str, dtype: torch.dtype) -> Tensor:
        return self._pad(torch.cat([batch[f"{side}_{e}"].to(dtype) for e in POSE_ENCODINGS], 1), 0.0)

    def _labels(self, batch: Batch, key: str) -> Tensor:
        return self._pad(batch[key].long(), 0)  # padding is background (label 0)

    def _common(self, batch: Batch) -> dict[str, Tensor]:
        src = self._pad(batch["source_image"], self.cfg.pad_value)
        return {"src": src, "src_pose": self._pose(batch, "source", src.dtype),
                "tgt_pose": self._pose(batch, "target", src.dtype),
                "src_seg": self._labels(batch, "source_parsing")}

    def parsing_logits(self, inp: dict[str, Tensor]) -> Tensor:
        """SPATN's target parsing logits ``[N, 20, H, W]`` (on the canvas)."""
        first = (one_hot_labels(inp["src_seg"], NUM_CIHP_LABELS, inp["src"].dtype)
                 if self.cfg.spatn_input == "parsing" else inp["src"])
        return self.net("spatn")(first, torch.cat([inp["src_pose"], inp["tgt_pose"]], 1))

    def _generate(self, inp: dict[str, Tensor], target_seg: Tensor) -> Tensor:
        return self.net("g")(inp["src"], inp["tgt_pose"], torch.cat([inp["src_pose"], inp["tgt_pose"]], 1),
                             inp["src_seg"], target_seg)

    def _d_input(self, inp: dict[str, Tensor], image: Tensor, batch: Batch) -> Tensor:
        pose = self._pad(batch[f"target_{D_POSE_ENCODING}"].to(image.dtype), 0.0)
        return torch.cat([inp["src"], image, pose], 1)

    def _perceptual_loss(self, device: torch.device) -> nn.Module:
        if not self._perceptual:
            layers = [s.strip() for s in self.cfg.perc_layers.split(",") if s.strip()]
            if self.ctx.feature_net is not None:
                features = self.ctx.feature_net("vgg19", layers)
            else:  # tests and benchmarks build the model without the loop's weight policy
                from fastpose.models.vgg import VGGFeatures
                warnings.warn("spgnet: no feature_net in the BuildContext; the perceptual loss uses a "
                              "randomly initialised VGG19", RuntimeWarning, stacklevel=3)
                features = VGGFeatures("vgg19", layers, weights=None)
            # Kept out of self.nets (frozen, not checkpointed) and out of the module tree.
            self._perceptual = [PerceptualLoss(features, {n: self.cfg.perc_layer_weight for n in layers})
                                .to(device)]
        return self._perceptual[0]

    # -- training ----------------------------------------------------------------------------
    def train_step(self, stage: str, batch: Batch, update: Update) -> dict[str, Tensor]:
        if stage not in ("warmup", "adversarial"):
            raise ValueError(f"spgnet has stages warmup and adversarial, not {stage!r}")
        c = self.cfg
        inp = self._common(batch)
        tgt = self._pad(batch["target_image"], c.pad_value)
        tgt_seg = self._labels(batch, "target_parsing")
        # Stage 1: cross-entropy of the predicted target parsing.
        ce = F.cross_entropy(self.parsing_logits(inp).float(), tgt_seg)
        update("spatn", c.lambda_ce * ce)
        # Stage 2 on the ground-truth target parsing (the paper's training).
        fake = self._generate(inp, tgt_seg)
        logs: dict[str, Tensor] = {"spatn_ce": ce}
        g_adv = None
        if stage == "adversarial":
            real_l = self.net("d")(self._d_input(inp, tgt, batch))
            fake_l = self.net("d")(self._d_input(inp, fake.detach(), batch))
            d_loss = 0.5 * (gan_loss(real_l, True, c.gan_loss) + gan_loss(fake_l, False, c.gan_loss))
            update("d", d_loss)
            g_adv = gan_loss(self.net("d")(self._d_input(inp, fake, batch)), True, c.gan_loss, for_generator=True)
            logs.update(d=d_loss, g_adv=g_adv)
        g_l1 = l1_loss(fake, tgt)
        g_perc = self._perceptual_loss(fake.device)(fake, tgt)
        g_loss = c.lambda_l1 * g_l1 + c.lambda_perc * g_perc
        if g_adv is not None:
            g_loss = g_loss + c.lambda_gan * g_adv
        update("g", g_loss)
        logs.update(g_l1=g_l1, g_perc=g_perc)
        return logs

    # -- inference ---------------------------------------------------------------------------
    @torch.no_grad()
    def predict_parsing(self, batch: Batch) -> Tensor:
        """SPATN's target parsing ``[N, H, W]`` (int64 CIHP labels) at the batch's image size."""
        inp = self._common(batch)
        return crop_from_canvas(self.parsing_logits(inp).argmax(1), tuple(batch["source_image"].shape[-2:]))

    @torch.no_grad()
    def generate(self, batch: Batch) -> Tensor:
        """The target image from the source image, the poses, the source parsing and SPATN's
        predicted target parsing (the batch's ``target_parsing`` is not read)."""
        size = tuple(batch["source_image"].shape[-2:])
        inp = self._common(batch)
        pred = self.parsing_logits(inp).argmax(1)
        return crop_from_canvas(self._generate(inp, pred), size).clamp(-1, 1)

    @torch.no_grad()
    def extra_metrics(self, dataset, pairs: int, batch_size: int, device) -> dict[str, dict[str, float]]:
        """Stage 1's held-out pixel accuracy of the predicted target parsing (``parsing_acc``),
        and the copy-the-source-parsing baseline, over the same spread test pairs as the loop's
        metrics (``pairs`` = 0: all)."""
        from torch.utils.data import DataLoader, Subset

        from fastpose.train.data import collate, spread_indices
        if pairs < 0:
            return {}
        if pairs and pairs < len(dataset):
            dataset = Subset(dataset, spread_indices(len(dataset), pairs))
        sums, n = {"model": 0.0, "copy_source": 0.0}, 0
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate):
            batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
            target = batch["target_parsing"].long()
            sums["model"] += float(parsing_accuracy(self.predict_parsing(batch), target).sum())
            sums["copy_source"] += float(parsing_accuracy(batch["source_parsing"].long(), target).sum())
            n += target.shape[0]
        return {who: {"parsing_acc": s / max(n, 1)} for who, s in sums.items()}
