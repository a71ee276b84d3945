"""More than 1 GB of weights: one embedding table of 270,000 x 1024 float32 (1.1 GB; recommenders and language models
carry tables like it), mean-pooled over a bag of ids, and a small MLP head. The compute is small; the weights are
what every stage has to move (training, checkpoints, archives, packages, the store and the runtimes).

params: rows (training rows, default 64), table_rows (default 270000), dim (default 1024), bag (default 8).
"""

from typing import Any, Dict, Tuple

import torch
from torch import nn


class BigTable(nn.Module):
    """EmbeddingBag (mean) over the ids, then Linear(dim, 64) relu Linear(64, 1)."""

    def __init__(self, table_rows: int, dim: int) -> None:
        super().__init__()
        self.table = nn.EmbeddingBag(table_rows, dim, mode="mean")
        self.head = nn.Sequential(nn.Linear(dim, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.table(ids))


def build_model(params: Dict[str, Any]) -> nn.Module:
    """The table and head at the sizes params give."""
    return BigTable(int(params.get("table_rows", 270000)), int(params.get("dim", 1024)))


def dataset(params: Dict[str, Any], split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Bags of ids; the target is whether most ids fall in the table's first half."""
    rows = int(params.get("rows", 64))
    rows = rows if split == "train" else max(8, rows // 4)
    table_rows, bag = int(params.get("table_rows", 270000)), int(params.get("bag", 8))
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    ids = torch.randint(0, table_rows, (rows, bag), generator=gen)
    return ids, (ids < table_rows // 2).float().mean(1, keepdim=True)
