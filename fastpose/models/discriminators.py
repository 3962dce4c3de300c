"""Discriminators shared by the models."""

from __future__ import annotations

import math

from torch import Tensor, nn

from fastpose.models.patn_blocks import make_norm


class DCGANDiscriminator(nn.Module):
    """The DCGAN discriminator as PG2's authors used it (``wgan_gp.DCGANDiscriminator``).

    Stride-2 5x5 convolutions (pad 2, no bias where BatchNorm follows) 64 -> 128 -> 256 -> 512
    (-> 512 ...), LeakyReLU(0.2), BatchNorm on every layer but the first, then one linear layer to
    a logit. The number of convolutions is chosen so that the last map is ``H/2^k = 8`` rows high:
    4 at 128x64 (map 8x4) and 5 at 256x256 (map 8x8), as in the authors' 128x64 and 256 variants.
    Weights are drawn from N(0, 0.02) as in their ``tflib`` initialisation.

    Args:
        in_channels: 3 for the authors' unconditional D, 6 for the paper's (image, condition) pairs.
        image_size: (H, W) of the inputs.
        base: channels of the first layer.
    """

    def __init__(self, in_channels: int, image_size: tuple[int, int], base: int = 64,
                 max_channels: int = 512) -> None:
        super().__init__()
        h, w = image_size
        n_layers = max(1, int(round(math.log2(h / 8))))
        if h % (2 ** n_layers) or w % (2 ** n_layers):
            raise ValueError(f"DCGANDiscriminator: image size {image_size} must be divisible by "
                             f"{2 ** n_layers} ({n_layers} stride-2 layers)")
        layers: list[nn.Module] = []
        ch_in = in_channels
        for i in range(n_layers):
            ch = min(base * 2 ** i, max_channels)
            layers.append(nn.Conv2d(ch_in, ch, 5, stride=2, padding=2, bias=(i == 0)))
            if i > 0:
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(0.2))
            ch_in = ch
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(ch_in * (h >> n_layers) * (w >> n_layers), 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """x ``[N, C, H, W]`` -> logits ``[N]``."""
        return self.fc(self.body(x).flatten(1)).squeeze(1)


class ResnetBlock(nn.Module):
    """CycleGAN's residual block: ``x + [pad, conv3x3, norm, ReLU, (dropout 0.5), pad, conv3x3, norm](x)``
    with reflection padding (PATN's ``networks.ResnetBlock``)."""

    def __init__(self, dim: int, norm: str, dropout: bool, bias: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias),
                                   make_norm(norm, dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(norm, dim)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetDiscriminator(nn.Sequential):
    """PATN's discriminator (``networks.ResnetDiscriminator``, ``which_model_netD='resnet'``).

    ReflectionPad(3) + conv7x7 to ``ndf``, norm, ReLU; ``n_down`` stride-2 conv3x3 doubling the
    width, each + norm + ReLU; ``n_blocks`` :class:`ResnetBlock` at ``ndf * 2**n_down`` channels.
    There is **no final 1-channel convolution**: the output is the ``ndf * 2**n_down``-channel map
    itself, every element of which the GAN loss judges (the authors' sigmoid, for BCE, is folded into
    :func:`fastpose.losses.gan_loss`, which takes logits). Convolutions have a bias only with
    instance norm (``use_bias = norm_layer == InstanceNorm2d``). The authors never pass D through
    their N(0, 0.02) ``init_weights``, so PyTorch's default initialisation is kept.

    Args:
        in_channels: 21 for the shape discriminator (image + 18 target heatmaps), 6 for the
            appearance discriminator (image + source image).
        ndf: width of the first convolution (64).
        n_down: stride-2 convolutions (``--D_n_downsampling``, 2).
        n_blocks: residual blocks (``--n_layers_D``, 3).
        norm: ``"batch"`` or ``"instance"`` (the generator's norm in the authors' runs).
        dropout: dropout(0.5) in the residual blocks (on: ``not opt.no_dropout_D``).
    Shapes: ``[N, in_channels, H, W] -> [N, ndf * 2**n_down, H / 2**n_down, W / 2**n_down]`` (logits).
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_down: int = 2, n_blocks: int = 3,
                 norm: str = "batch", dropout: bool = True) -> None:
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ndf, 7, bias=bias),
                                   make_norm(norm, ndf), nn.ReLU(True)]
        for i in range(n_down):
            c = ndf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), make_norm(norm, 2 * c),
                       nn.ReLU(True)]
        dim = ndf * 2 ** n_down
        layers += [ResnetBlock(dim, norm, dropout, bias) for _ in range(n_blocks)]
        super().__init__(*layers)
        self.in_channels, self.out_channels = in_channels, dim
