"""Inception-v3 for FID and the Inception Score, with torchvision's state_dict key names.

Two variants of one architecture (Szegedy et al. 2016, as laid out by torchvision):

* ``"fid"``: the network of the FID reference implementation, i.e. TensorFlow's 2015-12-05
  Inception graph (the one OpenAI's Inception Score code uses) ported to PyTorch by pytorch-fid
  as ``pt_inception-2015-12-05-6726825d.pth``. It differs from torchvision's network in four
  places: the average pools of the A, C and first E blocks exclude padding from the count, the
  last E block pools with a 3x3 max instead of an average, and the classifier has 1008 classes.
* ``"torchvision"``: torchvision's ImageNet network (``inception_v3_google-0cc3c7bd.pth``,
  1000 classes; the auxiliary classifier in that file is not used and its keys are ignored).

Both take images in [0, 1], resize them to 299x299 bilinearly (align_corners=False), map them to
[-1, 1] (torchvision's ``transform_input`` does the same for its weights) and return the 2048-d
pool features and the class logits. Written from the architecture description; no code copied.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastpose.metrics import weights
from fastpose.metrics.weights import PathLike

VARIANTS = {"fid": 1008, "torchvision": 1000}  # variant -> number of classes
INPUT_SIZE = 299


class BasicConv2d(nn.Module):
    """conv (no bias) + BatchNorm(eps 1e-3) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _pool3(x: Tensor, mode: str) -> Tensor:
    """The branch-pool 3x3 stride-1 pooling: "avg" (padding counted), "avg_exclude_pad", "max"."""
    if mode == "max":
        return F.max_pool2d(x, 3, stride=1, padding=1)
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=(mode == "avg"))


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_pool3(x, self.pool))
        return torch.cat([self.branch1x1(x), b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        bp = self.branch_pool(_pool3(x, self.pool))
        return torch.cat([self.branch1x1(x), b7, d, bp], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        bp = self.branch_pool(_pool3(x, self.pool))
        return torch.cat([self.branch1x1(x), b3, d, bp], 1)


def init_variance_preserving(module: nn.Module) -> None:
    """He-normal conv weights, zero biases: a randomly initialised deep network keeps its
    activations O(1) (PyTorch's default init shrinks them layer by layer until they become
    denormal floats, which makes CPU inference orders of magnitude slower). Pretrained weights
    overwrite all of it; this matters only for the random networks of the tests."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class InceptionV3(nn.Module):
    """Inception-v3 feature extractor: ``forward(images [N, 3, H, W] in [0, 1])`` returns
    ``(pool [N, 2048], logits [N, classes])``.

    Args:
        variant: ``"fid"`` or ``"torchvision"`` (see the module docstring).
        logits_bias: add the classifier bias to the logits. OpenAI's Inception Score code reads
            the TF graph's logits as ``pool @ W`` without the bias, so the ``"fid"`` variant
            leaves it out by default; torchvision's classifier includes it.
    """

    def __init__(self, variant: str = "fid", *, logits_bias: Optional[bool] = None) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        self.variant = variant
        self.logits_bias = (variant == "torchvision") if logits_bias is None else logits_bias
        fid = variant == "fid"
        a_pool = "avg_exclude_pad" if fid else "avg"
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32, a_pool)
        self.Mixed_5c = InceptionA(256, 64, a_pool)
        self.Mixed_5d = InceptionA(288, 64, a_pool)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128, a_pool)
        self.Mixed_6c = InceptionC(768, 160, a_pool)
        self.Mixed_6d = InceptionC(768, 160, a_pool)
        self.Mixed_6e = InceptionC(768, 192, a_pool)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, a_pool)
        self.Mixed_7c = InceptionE(2048, "max" if fid else "avg")
        self.fc = nn.Linear(2048, VARIANTS[variant])
        init_variance_preserving(self)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"InceptionV3: images must be [N, 3, H, W] in [0, 1], got "
                             f"{tuple(images.shape)}")
        x = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                          align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):
            x = block(x)
        pool = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        logits = F.linear(pool, self.fc.weight, self.fc.bias if self.logits_bias else None)
        return pool, logits


# variant -> key of its file in weights.WEIGHTS
WEIGHT_KEYS = {"fid": "fid_inception", "torchvision": "inception_v3"}


def load_inception(variant: str = "fid", path: Optional[PathLike] = None) -> InceptionV3:
    """An :class:`InceptionV3` with its standard pretrained weights (never downloaded).

    ``path`` overrides the search (``$FASTPOSE_FID_INCEPTION`` / ``$FASTPOSE_INCEPTION_V3``,
    then ``$TORCH_HOME/hub/checkpoints``); the file's sha256 prefix is checked. Raises
    :class:`~fastpose.metrics.weights.WeightsUnavailable` when the file is missing or wrong.
    """
    if variant not in WEIGHT_KEYS:
        raise ValueError(f"variant must be one of {sorted(WEIGHT_KEYS)}, got {variant!r}")
    state = weights.load_state_dict(WEIGHT_KEYS[variant], path)  # a missing file fails first
    net = InceptionV3(variant)
    weights.load_into(net, state, f"Inception-v3 ({variant})", ignore_prefixes=("AuxLogits.",))
    return net.eval()
