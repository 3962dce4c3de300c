"""Networks of PoT-GAN (Li et al., TIP 2021, Sec. III-B): encoders, the pose transform module, the
U-Net decoder and the discriminator on image-pose pairs. :mod:`fastpose.models.pot_gan` assembles
them and documents the choices the paper leaves open."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastpose.ops import TPSWarp


def _norm_act(ch: int, act: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.InstanceNorm2d(ch, affine=True)]
    if act:
        layers.append(nn.LeakyReLU(0.2))
    return layers


def widths(base: int, max_channels: int, n: int) -> list[int]:
    """Channel widths of the n scales: base, 2 base, 4 base, ... capped at ``max_channels``."""
    return [min(base * 2 ** i, max_channels) for i in range(n)]


class DownBlock(nn.Sequential):
    """conv3x3 stride 2, IN, LeakyReLU, conv3x3, IN, LeakyReLU: halves H and W."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, stride=2, padding=1), *_norm_act(cout),
                         nn.Conv2d(cout, cout, 3, padding=1), *_norm_act(cout))


class Encoder(nn.Module):
    """N down-sampling blocks; returns the N feature maps ``[N, w_j, H / 2^j, W / 2^j]``, j = 1..N.

    Used twice with separate weights: the appearance encoder (source image) and the pose encoder
    (target pose maps).
    """

    def __init__(self, in_channels: int, chans: Sequence[int]) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, chans[0], 3, padding=1), *_norm_act(chans[0]))
        cins = [chans[0]] + list(chans[:-1])
        self.blocks = nn.ModuleList(DownBlock(a, b) for a, b in zip(cins, chans))

    def forward(self, x: Tensor) -> list[Tensor]:
        h = self.stem(x)
        out = []
        for block in self.blocks:
            h = block(h)
            out.append(h)
        return out


class PoTEncoder(nn.Sequential):
    """PoT encoder Phi^{m x n}: conv (m in, stride 2), IN, LeakyReLU, conv (n out), IN (eq. (1)).

    The encoders are chained (scale j reads scale j-1's output through a LeakyReLU), so the pose
    difference is discerned progressively at the four scales of Fig. 3.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, stride=2, padding=1), *_norm_act(cout),
                         nn.Conv2d(cout, cout, 3, padding=1), *_norm_act(cout, act=False))


class CoordinatesNet(nn.Module):
    """Coordinates generation net F^CGN_j (eq. (2)): ``n_down`` stride-2 conv blocks bring the
    differential feature to the deepest scale, one more conv block, then the regression network:
    two fully connected layers, the second followed by tanh (applied by :class:`TPSWarp`), giving
    the K control points. The last layer starts at the identity warp."""

    def __init__(self, cin: int, ch: int, n_down: int, map_size: tuple[int, int], hidden: int,
                 warp: TPSWarp) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = cin
        for _ in range(n_down):
            layers += [nn.Conv2d(c, ch, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c = ch
        layers += [nn.Conv2d(c, ch, 3, padding=1), nn.LeakyReLU(0.2)]
        self.convs = nn.Sequential(*layers)
        self.fc1 = nn.Linear(ch * map_size[0] * map_size[1], hidden)
        self.fc2 = warp.init_identity_(nn.Linear(hidden, 2 * warp.num_points))

    def forward(self, d: Tensor) -> Tensor:
        """d ``[N, C, h, w]`` -> pre-tanh control points ``[N, 2K]``."""
        h = self.convs(F.leaky_relu(d, 0.2)).flatten(1)
        return self.fc2(F.leaky_relu(self.fc1(h), 0.2))


class PoseTransformModule(nn.Module):
    """Four pathways (Fig. 3): PoT encoder -> coordinates generation net -> TPS grid generator ->
    grid sampler. ``forward(masks, feats)`` warps each appearance feature map ``feats[j]`` with the
    control points predicted from the concatenated source/target pose masks at scale j.

    Args:
        mask_channels: channels of the concatenated masks (2: M_a, M_b).
        pot_chans: output widths of the PoT encoders per scale.
        image_size: (H, W) of the input; scale j is (H / 2^j, W / 2^j).
        cgn_channels, cgn_hidden: width of the CGN conv blocks and of its first FC layer.
        grid: (gy, gx) regular lattice of target control points, spanning [-span, span]^2.
        impl: fastpose ops implementation of the TPS warp (``--impl``).
    """

    def __init__(self, mask_channels: int, pot_chans: Sequence[int], image_size: tuple[int, int],
                 cgn_channels: int, cgn_hidden: int, grid: tuple[int, int], span: float,
                 impl: str = "auto") -> None:
        super().__init__()
        n = len(pot_chans)
        h, w = image_size
        self.warp = TPSWarp(grid_size=grid, span=span, bound="tanh", impl=impl)
        cins = [mask_channels] + list(pot_chans[:-1])
        self.encoders = nn.ModuleList(PoTEncoder(a, b) for a, b in zip(cins, pot_chans))
        deepest = (h >> n, w >> n)
        self.cgns = nn.ModuleList(CoordinatesNet(pot_chans[j], cgn_channels, n - 1 - j, deepest,
                                                 cgn_hidden, self.warp) for j in range(n))

    def thetas(self, masks: Tensor) -> list[Tensor]:
        """Pre-tanh control-point parameters ``[N, 2K]`` per scale, from the masks ``[N, 2, H, W]``."""
        out, d = [], masks
        for j, (enc, cgn) in enumerate(zip(self.encoders, self.cgns)):
            d = enc(d if j == 0 else F.leaky_relu(d, 0.2))
            out.append(cgn(d))
        return out

    def control_points(self, masks: Tensor) -> list[Tensor]:
        """The bounded control points ``[N, K, 2]`` per scale: source positions (x, y) in [-1, 1]
        of the target lattice points (a backward map)."""
        return [self.warp.control_points(t) for t in self.thetas(masks)]

    def forward(self, masks: Tensor, feats: Sequence[Tensor]) -> list[Tensor]:
        return [self.warp(f, t.to(f.dtype)) for f, t in zip(feats, self.thetas(masks))]


class UpBlock(nn.Module):
    """conv3x3, IN, ReLU on the concatenated input, x2 nearest upsampling, conv3x3, IN, ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.InstanceNorm2d(cout, affine=True),
                                nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(cout, cout, 3, padding=1), nn.InstanceNorm2d(cout, affine=True),
                                nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.c2(F.interpolate(self.c1(x), scale_factor=2, mode="nearest"))


class Decoder(nn.Module):
    """U-Net decoder: N up-sampling blocks from the deepest scale; block i reads the concatenation
    of the previous block's output, the (warped) appearance feature and the pose feature of its
    scale; a conv3x3 + tanh gives the image."""

    def __init__(self, app_chans: Sequence[int], pose_chans: Sequence[int], out_channels: int = 3) -> None:
        super().__init__()
        n = len(app_chans)
        blocks, prev = [], 0
        for j in reversed(range(n)):
            cout = app_chans[j - 1] if j > 0 else app_chans[0]
            blocks.append(UpBlock(prev + app_chans[j] + pose_chans[j], cout))
            prev = cout
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv2d(prev, out_channels, 3, padding=1)

    def forward(self, app: Sequence[Tensor], pose: Sequence[Tensor]) -> Tensor:
        h: Optional[Tensor] = None
        for i, block in enumerate(self.blocks):
            j = len(app) - 1 - i
            parts = [app[j], pose[j]] if h is None else [h, app[j], pose[j]]
            h = block(torch.cat(parts, 1))
        return torch.tanh(self.out(h))


class PairDiscriminator(nn.Module):
    """Discriminator on image-pose pairs (eq. (6)): stride-2 conv4x4 layers (LeakyReLU 0.2, instance
    norm from the second layer on) down to a map about 8 rows high, then a dense layer to a logit.
    Weights from N(0, 0.02) as in DCGAN.

    Args:
        in_channels: image + pose channels (3 + 1 for the pose mask).
        image_size: (H, W) of the inputs (any size; no divisibility needed).
        base, max_channels: width of the first layer, doubled per layer up to the cap.
    """

    def __init__(self, in_channels: int, image_size: tuple[int, int], base: int = 64,
                 max_channels: int = 512) -> None:
        super().__init__()
        h, w = image_size
        layers: list[nn.Module] = []
        c = in_channels
        i = 0
        while i == 0 or h > 8:
            ch = min(base * 2 ** i, max_channels)
            layers.append(nn.Conv2d(c, ch, 4, stride=2, padding=1))
            if i > 0:
                layers.append(nn.InstanceNorm2d(ch, affine=True))
            layers.append(nn.LeakyReLU(0.2))
            c, h, w, i = ch, h // 2, w // 2, i + 1
            if min(h, w) < 2:
                break
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(c * h * w, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """x ``[N, C, H, W]`` -> logits ``[N]``."""
        return self.fc(self.body(x).flatten(1)).squeeze(1)
