"""PATN's pose-attentional transfer network (Zhu et al., CVPR 2019), as building blocks.

Shared by the PATN generator and SPGNet's stage 1 (SPATN, a PATN-style parsing predictor). Layout
as in the authors' ``models/model_variants.py`` (facts file §1):

- two encoders of the same shape, one on the image stream (source image, or source parsing for
  SPATN) and one on the pose stream (source + target pose maps): ReflectionPad(3) + conv7x7 to
  ``ngf``, norm, ReLU, then ``n_down`` stride-2 conv3x3 doubling the width, each + norm + ReLU;
- ``n_blocks`` PATBlocks at the bottleneck width ``dim``: the image stream goes through
  pad/conv3x3/norm/ReLU/[dropout]/pad/conv3x3/norm, the pose stream through the same shape with no
  final norm; ``att = sigmoid(pose_out)``, ``out = x + image_out * att``; the next block's pose input
  is ``cat(pose_out, out)`` (so every block but the first reads ``2 * dim`` pose channels);
- a decoder on the image stream only: ``n_down`` ConvTranspose3x3 stride 2 halving the width, each
  + norm + ReLU, ReflectionPad(3) + conv7x7 to ``out_channels``, optionally tanh.

Weights are drawn from N(0, 0.02) as ``init_weights(net, 'normal')`` does (norm weights N(1, 0.02)).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

# norm name -> factory(channels); "batch" = Market (affine BN), "instance" = DeepFashion (IN, no affine).
NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": lambda c: nn.BatchNorm2d(c, affine=True),
    "instance": lambda c: nn.InstanceNorm2d(c, affine=False),
}


def make_norm(name: str, channels: int) -> nn.Module:
    """A normalisation layer by name (see :data:`NORMS`); unknown names list the known ones."""
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; known: {', '.join(sorted(NORMS))}")
    return NORMS[name](channels)


def _conv_block(cin: int, cout: int, norm: str, dropout: bool, final_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cin, 3), make_norm(norm, cin),
                               nn.ReLU(True)]
    if dropout:
        layers.append(nn.Dropout(0.5))
    layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
    if final_norm:
        layers.append(make_norm(norm, cout))
    return nn.Sequential(*layers)


class PATBlock(nn.Module):
    """One pose-attentional transfer block.

    Args:
        dim: width of the image stream.
        pose_in: width of the pose stream entering the block (``dim`` for the first block,
            ``2 * dim`` after it, because the pose output is concatenated with the image output).
    Shapes: ``x [N, dim, h, w]``, ``p [N, pose_in, h, w]`` -> ``(x' [N, dim, h, w],
    p' [N, 2*dim, h, w])``.
    """

    def __init__(self, dim: int, pose_in: int, norm: str = "batch", dropout: bool = True) -> None:
        super().__init__()
        self.image = _conv_block(dim, dim, norm, dropout, final_norm=True)
        self.pose = _conv_block(pose_in, dim, norm, dropout, final_norm=False)

    def forward(self, x: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        p_out = self.pose(p)
        out = x + self.image(x) * torch.sigmoid(p_out)
        return out, torch.cat([p_out, out], dim=1)


class Encoder(nn.Sequential):
    """ReflectionPad(3) + conv7x7 + norm + ReLU, then ``n_down`` stride-2 conv3x3 doubling the width.

    ``[N, cin, H, W] -> [N, ngf * 2**n_down, H / 2**n_down, W / 2**n_down]``.
    """

    def __init__(self, cin: int, ngf: int, n_down: int, norm: str) -> None:
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7), make_norm(norm, ngf),
                                   nn.ReLU(True)]
        for i in range(n_down):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), make_norm(norm, 2 * c), nn.ReLU(True)]
        super().__init__(*layers)


class Decoder(nn.Sequential):
    """``n_down`` ConvTranspose3x3 stride 2 halving the width, then ReflectionPad(3) + conv7x7.

    ``[N, ngf * 2**n_down, h, w] -> [N, cout, h * 2**n_down, w * 2**n_down]`` (tanh if ``tanh``).
    """

    def __init__(self, cout: int, ngf: int, n_down: int, norm: str, tanh: bool) -> None:
        layers: list[nn.Module] = []
        for i in reversed(range(n_down)):
            c = ngf * 2 ** (i + 1)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                       make_norm(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cout, 7)]
        if tanh:
            layers.append(nn.Tanh())
        super().__init__(*layers)


class PATNetwork(nn.Module):
    """Two encoders, ``n_blocks`` PATBlocks, a decoder (see the module docstring).

    Args:
        image_in: channels of the image-stream input (3 for PATN, 20 parsing classes for SPATN).
        pose_in: channels of the pose-stream input (36 = source + target heatmaps for PATN).
        out_channels: decoder output channels (3 for an image, the class count for parsing logits).
        ngf: width after the first convolution (64 in the authors' code).
        n_down: stride-2 steps of each encoder (2); H and W must be divisible by ``2**n_down``.
        n_blocks: PATBlocks (9).
        norm: ``"batch"`` (Market) or ``"instance"`` (DeepFashion).
        dropout: dropout(0.5) inside the blocks (on in the authors' runs).
        tanh: tanh on the output (images); off for logits.
    Shapes: ``image [N, image_in, H, W]``, ``pose [N, pose_in, H, W]`` -> ``[N, out_channels, H, W]``.
    """

    def __init__(self, image_in: int, pose_in: int, out_channels: int, ngf: int = 64, n_down: int = 2,
                 n_blocks: int = 9, norm: str = "batch", dropout: bool = True, tanh: bool = True) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        self.n_down = n_down
        dim = ngf * 2 ** n_down
        self.image_encoder = Encoder(image_in, ngf, n_down, norm)
        self.pose_encoder = Encoder(pose_in, ngf, n_down, norm)
        self.blocks = nn.ModuleList(PATBlock(dim, dim if i == 0 else 2 * dim, norm, dropout)
                                    for i in range(n_blocks))
        self.decoder = Decoder(out_channels, ngf, n_down, norm, tanh)
        self.apply(init_normal)

    def forward(self, image: Tensor, pose: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        f = 2 ** self.n_down
        if h % f or w % f:
            raise ValueError(f"PATNetwork: image size {h}x{w} must be divisible by {f} (2**n_down)")
        if pose.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"PATNetwork: pose size {tuple(pose.shape[-2:])} differs from image size "
                             f"{(h, w)}")
        x, p = self.image_encoder(image), self.pose_encoder(pose)
        for block in self.blocks:
            x, p = block(x, p)
        return self.decoder(x)


def init_normal(m: nn.Module) -> None:
    """N(0, 0.02) conv / linear weights and N(1, 0.02) affine norm weights, zero biases (PATN's init)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
