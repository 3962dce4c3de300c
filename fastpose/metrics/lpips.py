"""LPIPS (Zhang et al. 2018, version 0.1) with AlexNet or VGG16 features.

distance(x, y) = sum over 5 layers l of mean_{h,w} w_l · (f̂_l(x) - f̂_l(y))², where f̂ are the
backbone's ReLU activations unit-normalised over channels (eps 1e-10) and w_l the learned 1x1
"lin" weights. Inputs in [0, 1] are mapped to [-1, 1] and then through LPIPS' scaling layer
(shift [-.030, -.088, -.188], scale [.458, .448, .450]). SPGNet scores with
``lpips.LPIPS(net='alex')`` (registered as ``lpips``); ``lpips_vgg`` is the VGG16 variant.

Weights: the backbones use torchvision's key names (``features.<i>.weight``) so the standard
``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth`` load unchanged (classifier keys are
ignored); the lin layers use the lpips package's key names (``lin<k>.model.1.weight``) and are
read from its wheel (``lpips/weights/v0.1/<net>.pth``) without importing it.
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor, nn

from fastpose.metrics import weights
from fastpose.metrics.batch import EvalBatch, unit
from fastpose.metrics.inception import init_variance_preserving
from fastpose.metrics.options import MetricOptions
from fastpose.metrics.registry import Metric, MetricResult, register_metric
from fastpose.metrics.weights import PathLike

# backbone -> (torchvision features layout, indices of the tapped ReLUs, tapped channels)
_ALEX = [("conv", 3, 64, 11, 4, 2), ("relu",), ("max",), ("conv", 64, 192, 5, 1, 2), ("relu",),
         ("max",), ("conv", 192, 384, 3, 1, 1), ("relu",), ("conv", 384, 256, 3, 1, 1), ("relu",),
         ("conv", 256, 256, 3, 1, 1), ("relu",)]
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
BACKBONES = {
    "alex": dict(taps=(1, 4, 7, 9, 11), channels=(64, 192, 384, 256, 256), weights="alexnet"),
    "vgg": dict(taps=(3, 8, 15, 22, 29), channels=(64, 128, 256, 512, 512), weights="vgg16"),
}
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def _vgg16_layout() -> list[tuple]:
    layers, cin = [], 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(("max2",))
        else:
            layers += [("conv", cin, v, 3, 1, 1), ("relu",)]
            cin = v
    return layers


class Backbone(nn.Module):
    """The convolutional part of torchvision's AlexNet / VGG16 up to the last tapped ReLU;
    ``forward`` returns the activations at the 5 LPIPS taps."""

    def __init__(self, net: str) -> None:
        super().__init__()
        if net not in BACKBONES:
            raise ValueError(f"net must be one of {sorted(BACKBONES)}, got {net!r}")
        self.net = net
        self.taps = BACKBONES[net]["taps"]
        layout = _ALEX if net == "alex" else _vgg16_layout()
        mods = []
        for spec in layout[:self.taps[-1] + 1]:
            if spec[0] == "conv":
                _, cin, cout, k, s, p = spec
                mods.append(nn.Conv2d(cin, cout, k, stride=s, padding=p))
            elif spec[0] == "relu":
                mods.append(nn.ReLU())
            elif spec[0] == "max":
                mods.append(nn.MaxPool2d(3, stride=2))
            else:
                mods.append(nn.MaxPool2d(2, stride=2))
        self.features = nn.Sequential(*mods)
        init_variance_preserving(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class _Lin(nn.Module):
    """1x1 conv without bias; index 0 stands where lpips has its Dropout, so the key is
    ``model.1.weight`` as in the lpips weight files."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS distance: ``forward(x, y)`` with images ``[N, 3, H, W]`` in [0, 1] -> ``[N]``."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        self.backbone = Backbone(net)
        for k, c in enumerate(BACKBONES[net]["channels"]):
            setattr(self, f"lin{k}", _Lin(c))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS: x and y must be [N, 3, H, W] of one shape, got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        fx = self.backbone(((2 * x - 1) - self.shift) / self.scale)
        fy = self.backbone(((2 * y - 1) - self.shift) / self.scale)
        total = x.new_zeros(x.shape[0])
        for k, (a, b) in enumerate(zip(fx, fy)):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + getattr(self, f"lin{k}")((a - b) ** 2).mean((1, 2, 3))
        return total


def load_lpips(net: str = "alex", *, backbone_weights: Optional[PathLike] = None,
               lin_weights: Optional[PathLike] = None) -> LPIPS:
    """LPIPS with pretrained backbone and lin layers (never downloaded).

    Args:
        net: ``"alex"`` or ``"vgg"``.
        backbone_weights: torchvision's ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``
            (default: ``$FASTPOSE_ALEXNET`` / ``$FASTPOSE_VGG16``, then the torch hub cache).
        lin_weights: the lpips ``<net>.pth`` file or a folder holding it (default:
            ``$FASTPOSE_LPIPS_DIR``, then the installed lpips wheel).
    """
    model = LPIPS(net)
    key = BACKBONES[net]["weights"]
    state = weights.load_state_dict(key, backbone_weights)
    # the features the metric uses; later layers and the classifier are not needed
    used = {k: v for k, v in state.items()
            if k.startswith("features.") and int(k.split(".")[1]) <= model.backbone.taps[-1]}
    weights.load_into(model.backbone, used, f"LPIPS {net} backbone")
    load_lin(model, lin_weights)
    return model.eval()


def load_lin(model: LPIPS, path: Optional[PathLike] = None) -> None:
    """Load the lpips lin layers (``lin<k>.model.1.weight``) of ``model``'s backbone."""
    net = model.backbone.net
    file = weights.lpips_lin_file(net, path)
    state = torch.load(file, map_location="cpu", weights_only=True)
    lin_only = nn.ModuleDict({f"lin{k}": getattr(model, f"lin{k}") for k in range(5)})
    weights.load_into(lin_only, state, f"LPIPS {net} lin layers ({file})")


class LPIPSMetric(Metric):
    """Mean LPIPS distance between generated and target images (lower is better)."""

    higher_is_better = False

    def __init__(self, model: LPIPS, *, batch_size: int = 50) -> None:
        self.model, self.batch_size = model, batch_size
        self.reset()

    def reset(self) -> None:
        self._sum, self._count = 0.0, 0

    def update(self, batch: EvalBatch) -> None:
        batch.require(self.name or "lpips", "target")
        device = self.model.shift.device
        with torch.no_grad():
            for g, t in zip(batch.generated.split(self.batch_size),
                            batch.target.split(self.batch_size)):
                d = self.model(unit(g).to(device), unit(t).to(device))
                self._sum += float(d.double().sum())
                self._count += d.numel()

    def compute(self) -> MetricResult:
        if self._count == 0:
            raise RuntimeError(f"{self.name or 'lpips'}: no pairs were accumulated")
        return MetricResult(self._sum / self._count, self._count,
                            random_weights=self.random_weights)


def lpips_network(options: MetricOptions, net: str) -> tuple[LPIPS, bool]:
    """The shared LPIPS model for these options, and whether it is random (tests only)."""
    if options.random_weights_for_testing:
        return options.network(("lpips", net, "random"), lambda: _random(net)), True
    path = options.alexnet_weights if net == "alex" else options.vgg16_weights
    return options.network(("lpips", net, str(path), str(options.lpips_lin_weights)),
                           lambda: load_lpips(net, backbone_weights=path,
                                              lin_weights=options.lpips_lin_weights)), False


def _random(net: str) -> LPIPS:
    warnings.warn(f"LPIPS ({net}) with RANDOM weights (random_weights_for_testing): values are "
                  f"meaningless", stacklevel=3)
    return LPIPS(net)


def _build(options: MetricOptions, net: str) -> Metric:
    model, random = lpips_network(options, net)
    metric = LPIPSMetric(model, batch_size=options.network_batch)
    metric.random_weights = random
    return metric


@register_metric("lpips", higher_is_better=False,
                 description="LPIPS v0.1 with AlexNet features (SPGNet's setting)")
def _build_lpips(options: MetricOptions) -> Metric:
    return _build(options, "alex")


@register_metric("lpips_vgg", higher_is_better=False, description="LPIPS v0.1 with VGG16 features")
def _build_lpips_vgg(options: MetricOptions) -> Metric:
    return _build(options, "vgg")
