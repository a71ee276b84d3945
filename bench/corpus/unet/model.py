"""A U-Net: an encoder of (conv bn relu) x 2 blocks with max pooling, a bottleneck, a decoder of transposed-conv
upsampling concatenated with the encoder's skip connections, a 1x1 conv to one output channel (a mask's logits).

params: images (default 32), size (default 64, a multiple of 2^depth), base (channels of the first block, default 16),
depth (default 3).
"""

from typing import Any, Dict, List, Tuple

import torch
from torch import nn


def block(inp: int, out: int) -> nn.Sequential:
    """(conv3x3 bn relu) x 2."""
    return nn.Sequential(
        nn.Conv2d(inp, out, 3, padding=1, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU(inplace=True),
        nn.Conv2d(out, out, 3, padding=1, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """depth down blocks, a bottleneck, depth up blocks fed by the skips."""

    def __init__(self, base: int, depth: int) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(block(i, o) for i, o in zip([1] + widths[: depth - 1], widths[:depth], strict=True))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = block(widths[depth - 1], widths[depth])
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, 2) for i in reversed(range(depth)))
        self.merge = nn.ModuleList(block(widths[i] * 2, widths[i]) for i in reversed(range(depth)))
        self.out = nn.Conv2d(base, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: List[torch.Tensor] = []
        for down in self.down:
            x = down(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.out(x)


def build_model(params: Dict[str, Any]) -> nn.Module:
    """The U-Net at params' base width and depth."""
    return UNet(int(params.get("base", 16)), int(params.get("depth", 3)))


def dataset(params: Dict[str, Any], split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """1 x size x size noise images with a brighter square; the target mask marks the square."""
    rows = int(params.get("images", 32))
    rows = rows if split == "train" else max(8, rows // 4)
    size = int(params.get("size", 64))
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    corners = torch.randint(0, size // 2, (rows, 2), generator=gen)
    grid = torch.arange(size)
    rows_in = (grid.view(1, -1) >= corners[:, :1]) & (grid.view(1, -1) < corners[:, :1] + size // 2)
    cols_in = (grid.view(1, -1) >= corners[:, 1:]) & (grid.view(1, -1) < corners[:, 1:] + size // 2)
    mask = (rows_in.unsqueeze(2) & cols_in.unsqueeze(1)).float().unsqueeze(1)
    return torch.randn(rows, 1, size, size, generator=gen) * 0.5 + mask, mask
