"""Discriminators shared by the models."""

from __future__ import annotations

import math

from torch import Tensor, nn


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
