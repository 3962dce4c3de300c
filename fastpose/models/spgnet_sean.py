"""SPGNet's region-adaptive parts: the style encoder, SEAN normalisation and the SPGBlock.

As in the authors' ``DualUnetGenerator_SEAN`` (facts file §3) and the paper's equations (6)-(7):

- :class:`StyleEncoder` (the code's ``Zencoder``): an encoder-decoder on the source image whose
  output, at half resolution, is averaged over each source parsing region (region-wise average
  pooling, :func:`fastpose.ops.region_avg_pool`) into one style code per CIHP class.
- :class:`SEANNorm` (the code's ``ACE``): per-channel noise, BatchNorm without affine, then
  ``norm * (1 + gamma) + beta`` where gamma/beta blend a *style* branch (each region's code through
  its own linear layer + ReLU, broadcast to the target parsing regions with
  :func:`fastpose.ops.region_broadcast`, then a conv) and a *semantic* branch (SPADE: conv on the
  target parsing one-hot + ReLU, then a conv) with learnable weights ``sigmoid(theta)``. The
  style convs and the semantic branch's first conv see region-constant maps, so on the kernel path
  they are :func:`fastpose.ops.region_conv` calls on the per-region codes (no broadcast map, no
  one-hot tensor); ``impl="ref"`` keeps the literal dense convolutions.
- :class:`SPGBlock` (the code's ``ResidualBlock_SEAN``): SEAN -> ReLU -> spectral-norm 1x1 on the
  skip features ``cat(f_p, f_a^w)``; concatenated with the decoder feature ``f_t``, SEAN -> ReLU ->
  spectral-norm 3x3, added to ``f_t``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from fastpose.ops import region_avg_pool, region_broadcast, region_conv, resize_labels


def one_hot_labels(seg: Tensor, num_labels: int, dtype: torch.dtype) -> Tensor:
    """Label map ``[N, H, W]`` -> one-hot ``[N, num_labels, H, W]`` of ``dtype``."""
    return F.one_hot(seg.long(), num_labels).permute(0, 3, 1, 2).to(dtype)


class StyleEncoder(nn.Module):
    """SEAN's ``Zencoder``: ReflPad + conv3x3 (3 -> nf) + IN + LReLU(0.2), two stride-2 convs
    (-> 2nf -> 4nf), a stride-2 ConvTranspose (-> 8nf), ReflPad + conv3x3 (-> style_dim), tanh;
    then region-wise average pooling over the source parsing.

    ``image [N, 3, H, W]``, ``seg [N, H, W]`` -> codes ``[N, num_labels, style_dim]``.
    """

    def __init__(self, style_dim: int = 128, nf: int = 32, num_labels: int = 20, impl: str = "auto") -> None:
        super().__init__()
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(3, nf, 3), nn.InstanceNorm2d(nf), act(),
            nn.Conv2d(nf, 2 * nf, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * nf), act(),
            nn.Conv2d(2 * nf, 4 * nf, 3, stride=2, padding=1), nn.InstanceNorm2d(4 * nf), act(),
            nn.ConvTranspose2d(4 * nf, 8 * nf, 3, stride=2, padding=1, output_padding=1),
            nn.InstanceNorm2d(8 * nf), act(),
            nn.ReflectionPad2d(1), nn.Conv2d(8 * nf, style_dim, 3), nn.Tanh())
        self.num_labels, self.impl = num_labels, impl

    def forward(self, image: Tensor, seg: Tensor) -> Tensor:
        feat = self.body(image)  # [N, S, H/2, W/2]
        seg = resize_labels(seg, tuple(feat.shape[-2:]))
        return region_avg_pool(feat, seg, self.num_labels, impl=self.impl).codes


class SEANNorm(nn.Module):
    """Semantic region-adaptive normalisation, equations (6)-(7).

    Args:
        channels: C of the normalised features.
        num_labels: R, parsing classes (20 CIHP labels).
        style_dim: width S of the style codes.
        hidden: width of the semantic (SPADE) branch's shared conv.
        kernel: kernel of the gamma/beta convs (5 DeepFashion, 3 Market in the authors' code).
        impl: fastpose ops implementation (auto | ext | ref); "ref" computes gamma/beta with the
            literal dense convolutions of the broadcast and one-hot maps.

    Shapes: ``x [N, C, h, w]``, ``seg [N, H, W]`` target labels (resized to h x w here),
    ``codes [N, R, S]`` -> ``[N, C, h, w]``.
    """

    def __init__(self, channels: int, num_labels: int, style_dim: int, hidden: int = 64, kernel: int = 3,
                 impl: str = "auto") -> None:
        super().__init__()
        pad = kernel // 2
        self.num_labels, self.impl = num_labels, impl
        # Noise strength per channel (SEAN's noise_var), 0 at start; added while training only.
        self.noise_var = nn.Parameter(torch.zeros(channels))
        self.norm = nn.BatchNorm2d(channels, affine=False)
        # One linear layer per region (SEAN's fc_mu0..fc_mu19), as one batched weight.
        self.style_weight = nn.Parameter(torch.empty(num_labels, style_dim, style_dim))
        self.style_bias = nn.Parameter(torch.empty(num_labels, style_dim))
        bound = 1.0 / math.sqrt(style_dim)  # nn.Linear's default initialisation
        nn.init.uniform_(self.style_weight, -bound, bound)
        nn.init.uniform_(self.style_bias, -bound, bound)
        self.style_gamma = nn.Conv2d(style_dim, channels, kernel, padding=pad)
        self.style_beta = nn.Conv2d(style_dim, channels, kernel, padding=pad)
        self.label_shared = nn.Sequential(nn.Conv2d(num_labels, hidden, kernel, padding=pad), nn.ReLU())
        self.label_gamma = nn.Conv2d(hidden, channels, kernel, padding=pad)
        self.label_beta = nn.Conv2d(hidden, channels, kernel, padding=pad)
        # theta_alpha, theta_beta of equation (7) as sigmoid(.) of these; 0 = an even blend.
        self.blend_gamma = nn.Parameter(torch.zeros(()))
        self.blend_beta = nn.Parameter(torch.zeros(()))

    def style_codes(self, codes: Tensor) -> Tensor:
        """Each region's code through its own linear layer + ReLU: ``[N, R, S]``."""
        return F.relu(torch.einsum("nrs,rts->nrt", codes, self.style_weight) + self.style_bias)

    def style_map(self, seg: Tensor, codes: Tensor) -> Tensor:
        """Each region's transformed code broadcast to its target pixels: ``[N, S, h, w]``."""
        return region_broadcast(self.style_codes(codes), seg, impl=self.impl)

    def forward(self, x: Tensor, seg: Tensor, codes: Tensor) -> Tensor:
        n, c, h, w = x.shape
        if self.training:
            x = x + torch.randn(n, 1, h, w, device=x.device, dtype=x.dtype) * self.noise_var.view(1, c, 1, 1)
        normalized = self.norm(x)
        seg = resize_labels(seg, (h, w))
        modulation = self._dense_modulation if self.impl == "ref" else self._region_modulation
        gamma, beta = modulation(seg, codes.to(x.dtype), x.dtype)
        return normalized * (1 + gamma) + beta

    def _dense_modulation(self, seg: Tensor, codes: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """gamma, beta ``[N, C, h, w]`` as written: dense convs on the broadcast style map and on
        the one-hot parsing."""
        style = self.style_map(seg, codes)
        semantic = self.label_shared(one_hot_labels(seg, self.num_labels, dtype))
        t_g, t_b = torch.sigmoid(self.blend_gamma), torch.sigmoid(self.blend_beta)
        gamma = t_g * self.label_gamma(semantic) + (1 - t_g) * self.style_gamma(style)
        beta = t_b * self.label_beta(semantic) + (1 - t_b) * self.style_beta(style)
        return gamma, beta

    def _region_modulation(self, seg: Tensor, codes: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """The same gamma, beta from per-region codes with :func:`fastpose.ops.region_conv`.

        The style convs are one region_conv (gamma's and beta's weights stacked along C), and the
        semantic branch's first conv is a region_conv of identity codes (conv(one_hot(seg)) =
        region_conv(eye(R), seg)). With 1x1 kernels the semantic features are region-constant
        too, ``relu(W_shared[:, r] + b_shared)`` for region r, so the whole blend of equation (7)
        is one region_conv of the concatenated codes ``[style, semantic]`` whose weights carry the
        blend factors.
        """
        n, r, c = codes.shape[0], self.num_labels, self.style_gamma.out_channels
        style = self.style_codes(codes)  # [N, R, S]
        shared = self.label_shared[0]
        t_g, t_b = torch.sigmoid(self.blend_gamma), torch.sigmoid(self.blend_beta)
        if shared.kernel_size == (1, 1):
            semantic = F.relu(shared.weight[:, :, 0, 0].t() + shared.bias)  # [R, hidden]
            both = torch.cat([style, semantic.expand(n, r, -1)], 2)
            weight = torch.cat([
                torch.cat([(1 - t_g) * self.style_gamma.weight, t_g * self.label_gamma.weight], 1),
                torch.cat([(1 - t_b) * self.style_beta.weight, t_b * self.label_beta.weight], 1)])
            bias = torch.cat([(1 - t_g) * self.style_gamma.bias + t_g * self.label_gamma.bias,
                              (1 - t_b) * self.style_beta.bias + t_b * self.label_beta.bias])
            gamma, beta = region_conv(both, seg, weight, bias, impl=self.impl).split(c, 1)
            return gamma, beta
        weight = torch.cat([self.style_gamma.weight, self.style_beta.weight])
        bias = torch.cat([self.style_gamma.bias, self.style_beta.bias])
        style_gamma, style_beta = region_conv(style, seg, weight, bias, impl=self.impl).split(c, 1)
        eye = torch.eye(r, dtype=dtype, device=codes.device).expand(n, r, r)
        semantic = F.relu(region_conv(eye, seg, shared.weight, shared.bias, impl=self.impl))
        gamma = t_g * self.label_gamma(semantic) + (1 - t_g) * style_gamma
        beta = t_b * self.label_beta(semantic) + (1 - t_b) * style_beta
        return gamma, beta


class SPGBlock(nn.Module):
    """Two SEAN normalisations: the first turns the skip features ``cat(f_p, f_a^w)`` into a
    preliminary target feature, the second fuses it with the decoder feature ``f_t`` into a
    residual of ``f_t``.

    Shapes: ``x [N, C, h, w]``, ``skip [N, C_skip, h, w]`` -> ``[N, C, h, w]``.
    """

    def __init__(self, channels: int, skip_channels: int, num_labels: int, style_dim: int, hidden: int,
                 kernel: int, impl: str = "auto") -> None:
        super().__init__()
        self.norm_skip = SEANNorm(skip_channels, num_labels, style_dim, hidden, kernel, impl)
        self.conv_skip = spectral_norm(nn.Conv2d(skip_channels, channels, 1))
        self.norm_mix = SEANNorm(2 * channels, num_labels, style_dim, hidden, kernel, impl)
        self.conv_mix = spectral_norm(nn.Conv2d(2 * channels, channels, 3, padding=1))

    def forward(self, x: Tensor, skip: Tensor, seg: Tensor, codes: Tensor) -> Tensor:
        s = self.conv_skip(F.relu(self.norm_skip(skip, seg, codes)))
        return x + self.conv_mix(F.relu(self.norm_mix(torch.cat([s, x], 1), seg, codes)))


class SEANUpBlock(nn.Module):
    """The decoder's UpBlock: SEAN -> ReLU -> conv3x3 (C_in -> 4 C_out) -> PixelShuffle(2) -> BN.

    ``[N, C_in, h, w] -> [N, C_out, 2h, 2w]``.
    """

    def __init__(self, cin: int, cout: int, num_labels: int, style_dim: int, hidden: int, kernel: int,
                 impl: str = "auto") -> None:
        super().__init__()
        self.norm = SEANNorm(cin, num_labels, style_dim, hidden, kernel, impl)
        self.conv = nn.Conv2d(cin, 4 * cout, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor, seg: Tensor, codes: Tensor) -> Tensor:
        return self.bn(self.shuffle(self.conv(F.relu(self.norm(x, seg, codes)))))
