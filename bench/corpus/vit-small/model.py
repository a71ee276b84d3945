"""A small Vision Transformer: patch embedding (a strided conv), a class token, learned position embeddings, pre-norm
encoder blocks (multi-head self-attention through scaled_dot_product_attention, GELU MLP), LayerNorm, a linear head.
About 0.85 M parameters at the defaults.

params: images (default 64), size (default 32), patch (default 4), dim (default 160), depth (default 4),
heads (default 4), classes (default 10).
"""

from typing import Any, Dict, Tuple

import torch
from torch import nn
from torch.nn import functional as F


class Attention(nn.Module):
    """Multi-head self-attention: one qkv projection, scaled dot product, an output projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Patches, class token, positions, blocks, norm, head on the class token."""

    def __init__(self, size: int, patch: int, dim: int, depth: int, heads: int, classes: int) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


def build_model(params: Dict[str, Any]) -> nn.Module:
    """The ViT at the sizes params give."""
    return ViT(
        int(params.get("size", 32)),
        int(params.get("patch", 4)),
        int(params.get("dim", 160)),
        int(params.get("depth", 4)),
        int(params.get("heads", 4)),
        int(params.get("classes", 10)),
    )


def dataset(params: Dict[str, Any], split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """params['images'] training (a quarter, at least 8, for validation) 3 x size x size images; class from colour."""
    size, classes = int(params.get("size", 32)), int(params.get("classes", 10))
    rows = int(params.get("images", 64))
    rows = rows if split == "train" else max(8, rows // 4)
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    x = torch.randn(rows, 3, size, size, generator=gen)
    return x, x.mean(dim=(2, 3)).argmax(1) * (classes // 3)
