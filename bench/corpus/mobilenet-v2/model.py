"""A MobileNet-v2-style network: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 linear projection), ReLU6,
BatchNorm, residual adds where the shape allows; torchvision's block layout at a reduced width (about 0.3 M
parameters at width 0.35 and 10 classes).

params: images (default 64), size (default 64), classes (default 10), width (default 0.35).
"""

from typing import Any, Dict, List, Tuple

import torch
from torch import nn

# (expansion t, channels c, repeats n, stride s) as in the MobileNetV2 paper.
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def conv_bn(inp: int, out: int, kernel: int, stride: int, groups: int = 1, relu: bool = True) -> List[nn.Module]:
    """conv (no bias), batch norm, and ReLU6 unless it is the linear bottleneck."""
    layers: List[nn.Module] = [
        nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
    ]
    return layers + [nn.ReLU6(inplace=True)] if relu else layers


class InvertedResidual(nn.Module):
    """expand (1x1), depthwise (3x3, groups = channels), project (1x1, linear); + x when stride 1 and same width."""

    def __init__(self, inp: int, out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = inp * expand
        layers: List[nn.Module] = conv_bn(inp, hidden, 1, 1) if expand != 1 else []
        layers += conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += conv_bn(hidden, out, 1, 1, relu=False)
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and inp == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


def channels(c: float) -> int:
    """Round to a multiple of 8, as torchvision's _make_divisible does."""
    return max(8, int(c + 4) // 8 * 8)


class MobileNetV2(nn.Module):
    """stem conv, the inverted residual stages, a 1x1 conv to the head width, global average pool, dropout, linear."""

    def __init__(self, classes: int, width: float) -> None:
        super().__init__()
        inp, head = channels(32 * width), channels(1280 * width)
        layers: List[nn.Module] = conv_bn(3, inp, 3, 2)
        for t, c, n, s in SETTINGS:
            out = channels(c * width)
            for i in range(n):
                layers.append(InvertedResidual(inp, out, s if i == 0 else 1, t))
                inp = out
        layers += conv_bn(inp, head, 1, 1)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(head, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


def build_model(params: Dict[str, Any]) -> nn.Module:
    """MobileNetV2 at params['width'] with params['classes'] outputs."""
    return MobileNetV2(int(params.get("classes", 10)), float(params.get("width", 0.35)))


def dataset(params: Dict[str, Any], split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """params['images'] training (a quarter, at least 8, for validation) 3 x size x size images; class from colour."""
    size, classes = int(params.get("size", 64)), int(params.get("classes", 10))
    rows = int(params.get("images", 64))
    rows = rows if split == "train" else max(8, rows // 4)
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    x = torch.randn(rows, 3, size, size, generator=gen)
    return x, x.mean(dim=(2, 3)).argmax(1) * (classes // 3)
