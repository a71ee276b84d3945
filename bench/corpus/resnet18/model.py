"""ResNet-18 as torchvision lays it out (BasicBlock x [2, 2, 2, 2], BatchNorm, residual adds; 11.7 M parameters with
1000 classes), written out because torchvision from PyPI does not import beside the CPU torch here.

params: images (training images, default 64), size (side in pixels, default 64), classes (default 1000).
Inputs are random images; the label is the brightest of `classes` fixed regions' colour sums, so one epoch moves the
loss a little and the numbers stay finite (the corpus measures the pipeline, not accuracy).
"""

from typing import Any, Dict, Tuple

import torch
from torch import nn


class BasicBlock(nn.Module):
    """conv3x3 bn relu conv3x3 bn, plus the identity (or a 1x1 conv + bn when the shape changes), relu."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision.models.resnet18's modules and forward."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_model(params: Dict[str, Any]) -> nn.Module:
    """ResNet-18 with params['classes'] outputs."""
    return ResNet18(int(params.get("classes", 1000)))


def dataset(params: Dict[str, Any], split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """params['images'] training (a quarter of that, at least 8, for validation) 3 x size x size images."""
    size, classes = int(params.get("size", 64)), int(params.get("classes", 1000))
    rows = int(params.get("images", 64))
    rows = rows if split == "train" else max(8, rows // 4)
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    x = torch.randn(rows, 3, size, size, generator=gen)
    return x, x.flatten(1).sum(1).abs().long() % classes
