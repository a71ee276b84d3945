"""A small CNN: three conv blocks (3x3 conv, BatchNorm, ReLU, 2x2 max pool), global average pool, linear; about
25 k parameters at width 16. The capacity bench's conv model (bench/capacity.mjs, CAP_SPEC): CPU work of a few
seconds per pipeline, spread over many small batches as a team's image classifier would be.

params: images (default 256), size (default 32), classes (default 10), width (default 16).
"""

from typing import Any, Dict, List, Tuple

import torch
from torch import nn


def block(inp: int, out: int) -> List[nn.Module]:
    """3x3 conv (no bias), batch norm, ReLU, 2x2 max pool: halves the image."""
    return [nn.Conv2d(inp, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]


class SmallCNN(nn.Module):
    """conv blocks of width, 2 x width and 4 x width channels, global average pool, linear."""

    def __init__(self, classes: int, width: int) -> None:
        super().__init__()
        self.features = nn.Sequential(*block(3, width), *block(width, 2 * width), *block(2 * width, 4 * width))
        self.classifier = nn.Linear(4 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


def build_model(params: Dict[str, Any]) -> nn.Module:
    """SmallCNN with params['width'] channels in the first block and params['classes'] outputs."""
    return SmallCNN(int(params.get("classes", 10)), int(params.get("width", 16)))


def dataset(params: Dict[str, Any], split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """params['images'] training (a quarter, at least 8, for validation) 3 x size x size images; class from colour."""
    size, classes = int(params.get("size", 32)), int(params.get("classes", 10))
    rows = int(params.get("images", 256))
    rows = rows if split == "train" else max(8, rows // 4)
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    x = torch.randn(rows, 3, size, size, generator=gen)
    return x, x.mean(dim=(2, 3)).argmax(1) * (classes // 3)
