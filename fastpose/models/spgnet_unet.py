"""SPGNet's stage-2 generator: a dual-path U-Net with feature deformation and SPGBlocks.

Layout of the authors' ``DualUnetGenerator_SEAN`` (facts file §3), widths ``min(nf*(l+1), max_nf)``
at scale ``l`` (resolution ``H / 2**l``):

- pose path (PEBlocks) on the target pose (18 heatmaps + 12 distance maps), appearance path
  (AEBlocks) on the source image: 1x1 conv + BN, then per scale two residual blocks
  (ReLU -> conv3x3 -> BN, + x) and a downsample (ReLU -> stride-2 conv3x3 -> BN);
- feature deformation: at the first ``num_warp_scales`` scales the appearance features are warped
  by a flow (bilinear ``grid_sample``, zero padding, align_corners=True as ``warp_acc_flow``) and
  refined by a residual block gated by a visibility map, ``[x_w * v, x_w * (1 - v)]``;
- bottleneck ``1x1 conv + BN`` on ``cat(f_p, f_a^w)``; decoder: per scale (deepest first) an
  UpBlock (except at the deepest) and ``spg_blocks`` SPGBlocks fed ``cat(f_p, f_a^w)`` of that
  scale; output ReflPad(3) + conv7x7 + tanh.

Deviation (documented in the README): the authors' flow and visibility come from Intr-Flow's
FlowReg network, pretrained on 3D-body-model flow and frozen. That network and its training data
cannot be had, so :class:`FlowNet` predicts the flow (pixels) and a soft visibility map from the
source and target poses and is trained end to end by the generator's losses; its flow starts at
zero (identity warp) and its visibility at 0.5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastpose.models.spgnet_sean import SEANUpBlock, SPGBlock, StyleEncoder


class ResidualBlock(nn.Module):
    """ReLU -> conv3x3 -> BN, plus the input (the code's ``ResidualBlock``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class PathEncoder(nn.Module):
    """One path of the dual U-Net: its blocks (PEBlocks for the pose, AEBlocks for the appearance)
    of ``res_blocks`` residual blocks per scale, with stride-2 downsampling between scales.

    ``[N, cin, H, W]`` -> list of ``[N, widths[l], H / 2**l, W / 2**l]``.
    """

    def __init__(self, cin: int, widths: list[int], res_blocks: int) -> None:
        super().__init__()
        self.pre = nn.Sequential(nn.Conv2d(cin, widths[0], 1, bias=False), nn.BatchNorm2d(widths[0]))
        self.blocks = nn.ModuleList(nn.Sequential(*[ResidualBlock(c) for _ in range(res_blocks)])
                                    for c in widths)
        self.down = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1, bias=False),
                          nn.BatchNorm2d(widths[i + 1]))
            for i in range(len(widths) - 1))

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        h = self.pre(x)
        for i, block in enumerate(self.blocks):
            h = block(h)
            feats.append(h)
            if i < len(self.down):
                h = self.down[i](h)
        return feats


class FlowNet(nn.Module):
    """Flow and visibility from the pose pair (replaces the frozen FlowReg, see the module doc).

    A small U-Net: ``n_down`` stride-2 convs (ReLU, BN), nearest upsampling + conv back with skips.
    ``poses [N, cin, H, W]`` -> (flow ``[N, 2, H, W]`` (dx, dy) in pixels of the target grid,
    visibility ``[N, 1, H, W]`` in (0, 1)).
    """

    def __init__(self, cin: int, nf: int = 32, n_down: int = 3, max_nf: int = 128) -> None:
        super().__init__()
        widths = [min(nf * 2 ** i, max_nf) for i in range(n_down + 1)]
        self.inp = nn.Sequential(nn.Conv2d(cin, widths[0], 3, padding=1), nn.ReLU())
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1, bias=False),
                          nn.BatchNorm2d(widths[i + 1]), nn.ReLU()) for i in range(n_down))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i + 1] + widths[i], widths[i], 3, padding=1, bias=False),
                          nn.BatchNorm2d(widths[i]), nn.ReLU()) for i in reversed(range(n_down)))
        self.out = nn.Conv2d(widths[0], 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # identity warp and an even visibility gate at the start
        nn.init.zeros_(self.out.bias)
        self.n_down = n_down

    def forward(self, poses: Tensor) -> tuple[Tensor, Tensor]:
        h = self.inp(poses)
        skips = []
        for d in self.down:
            skips.append(h)
            h = d(h)
        for u in self.up:
            s = skips.pop()
            h = u(torch.cat([F.interpolate(h, size=s.shape[-2:], mode="nearest"), s], 1))
        out = self.out(h)
        return out[:, :2], torch.sigmoid(out[:, 2:])


def warp(x: Tensor, flow: Tensor) -> Tensor:
    """Sample ``x [N, C, h, w]`` at ``p + flow(p)`` for every target pixel ``p`` (bilinear, zero
    padding, align_corners=True, as the authors' ``warp_acc_flow``); flow ``[N, 2, h, w]`` (dx, dy)."""
    n, _, h, w = x.shape
    ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1
    return F.grid_sample(x, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="zeros",
                         align_corners=True)


class GatedRefine(nn.Module):
    """Residual refinement of warped features, gated by visibility (the code's vis-mode
    'residual'): ``x_w + BN(conv3x3(ReLU(conv1x1([x_w * v, x_w * (1 - v)]))))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(2 * channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, xw: Tensor, vis: Tensor) -> Tensor:
        return xw + self.body(torch.cat([xw * vis, xw * (1 - vis)], 1))


class SPGGenerator(nn.Module):
    """Stage 2 (see the module docstring).

    Args:
        pose_channels: target pose channels of the pose path (30: heatmaps + distance maps).
        num_labels: parsing classes (20).
        nf, max_nf: width ``min(nf * (l + 1), max_nf)`` at scale l.
        num_scales: scales of the U-Net (H and W divisible by ``2**(num_scales - 1)``).
        num_warp_scales: scales whose appearance features are warped.
        res_blocks: residual blocks per PEBlock / AEBlock (2).
        spg_blocks: SPGBlocks per decoder scale (2).
        style_dim, style_nf: width of the style codes and of the style encoder.
        sean_hidden, sean_kernel: SEAN's semantic-branch width and gamma/beta kernel.
        flow_nf, flow_down: width and depth of :class:`FlowNet`.
        impl: fastpose ops implementation (region pooling and broadcast).
    Shapes: ``source [N, 3, H, W]``, ``target_pose [N, pose_channels, H, W]``,
    ``pose_pair [N, 2 * pose_channels, H, W]``, ``source_seg``/``target_seg [N, H, W]`` labels
    -> ``[N, 3, H, W]`` in [-1, 1].
    """

    def __init__(self, pose_channels: int = 30, num_labels: int = 20, nf: int = 32, max_nf: int = 128,
                 num_scales: int = 5, num_warp_scales: int = 4, res_blocks: int = 2, spg_blocks: int = 2,
                 style_dim: int = 128, style_nf: int = 32, sean_hidden: int = 64, sean_kernel: int = 3,
                 flow_nf: int = 32, flow_down: int = 3, impl: str = "auto") -> None:
        super().__init__()
        if not 1 <= num_warp_scales <= num_scales:
            raise ValueError(f"num_warp_scales must be in [1, num_scales={num_scales}], got {num_warp_scales}")
        widths = [min(nf * (l + 1), max_nf) for l in range(num_scales)]
        self.widths, self.num_warp_scales = widths, num_warp_scales
        self.pose_path = PathEncoder(pose_channels, widths, res_blocks)
        self.app_path = PathEncoder(3, widths, res_blocks)
        self.flow = FlowNet(2 * pose_channels, flow_nf, flow_down)
        self.refine = nn.ModuleList(GatedRefine(widths[l]) for l in range(num_warp_scales))
        self.style = StyleEncoder(style_dim, style_nf, num_labels, impl)
        self.fuse = nn.Sequential(nn.Conv2d(2 * widths[-1], widths[-1], 1, bias=False), nn.BatchNorm2d(widths[-1]))
        sean = dict(num_labels=num_labels, style_dim=style_dim, hidden=sean_hidden, kernel=sean_kernel, impl=impl)
        self.up = nn.ModuleList(SEANUpBlock(widths[l + 1], widths[l], **sean) for l in range(num_scales - 1))
        self.spg = nn.ModuleList(nn.ModuleList(SPGBlock(widths[l], 2 * widths[l], **sean) for _ in range(spg_blocks))
                                 for l in range(num_scales))
        self.out = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(widths[0], 3, 7))
        self.divisor = 2 ** (num_scales - 1)

    def forward(self, source: Tensor, target_pose: Tensor, pose_pair: Tensor, source_seg: Tensor,
                target_seg: Tensor) -> Tensor:
        h, w = source.shape[-2:]
        if h % self.divisor or w % self.divisor:
            raise ValueError(f"SPGGenerator: image size {h}x{w} must be divisible by {self.divisor} "
                             f"(2**(num_scales - 1)); pad to a canvas or use fewer scales")
        codes = self.style(source, source_seg)
        flow, vis = self.flow(pose_pair)
        pose_feats = self.pose_path(target_pose)
        app_feats = self.app_path(source)
        for l in range(self.num_warp_scales):
            k = 2 ** l
            flow_l = F.avg_pool2d(flow, k) / k if k > 1 else flow
            vis_l = F.avg_pool2d(vis, k) if k > 1 else vis
            app_feats[l] = self.refine[l](warp(app_feats[l], flow_l), vis_l)
        x = self.fuse(torch.cat([pose_feats[-1], app_feats[-1]], 1))
        for l in reversed(range(len(self.widths))):
            if l < len(self.widths) - 1:
                x = self.up[l](x, target_seg, codes)
            skip = torch.cat([pose_feats[l], app_feats[l]], 1)
            for block in self.spg[l]:
                x = block(x, skip, target_seg, codes)
        return torch.tanh(self.out(x))
