"""PatchGAN discriminator (pix2pix's ``NLayerDiscriminator``), as SPGNet's authors use it."""

from __future__ import annotations

from torch import Tensor, nn


class PatchGANDiscriminator(nn.Module):
    """k4 convs: stride 2 (in -> ndf, LeakyReLU 0.2), ``n_layers - 1`` more stride-2 convs doubling
    the width (capped at 8 ndf) + BN + LeakyReLU, one stride-1 conv + BN + LeakyReLU, a stride-1
    conv to one logit per patch. Weights N(0, 0.02).

    ``[N, in_channels, H, W] -> [N, 1, h, w]`` patch logits (70x70 receptive field for n_layers 3).
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"PatchGANDiscriminator: n_layers must be >= 1, got {n_layers}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        ch = ndf
        for i in range(1, n_layers + 1):
            nxt = ndf * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(ch, nxt, 4, stride=stride, padding=1, bias=False), nn.BatchNorm2d(nxt),
                       nn.LeakyReLU(0.2)]
            ch = nxt
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.body = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)
