"""An embedding-bag recommender in the DLRM style: dense features (float) through a bottom MLP, categorical features
(int64 ids, a fixed-size bag per table) through one EmbeddingBag per table (sum), pairwise dot-product interactions
of all of them, a top MLP to one click logit.

params: rows (default 512), dense (features, default 13), tables (default 8), table_rows (default 10000), bag (ids per
table and row, default 4), dim (default 16).
"""

from typing import Any, Dict, Tuple

import torch
from torch import nn


class Recommender(nn.Module):
    """bottom MLP + embedding bags, dot interactions (upper triangle), top MLP."""

    def __init__(self, dense: int, tables: int, table_rows: int, dim: int) -> None:
        super().__init__()
        self.bottom = nn.Sequential(nn.Linear(dense, 64), nn.ReLU(), nn.Linear(64, dim), nn.ReLU())
        self.bags = nn.ModuleList(nn.EmbeddingBag(table_rows, dim, mode="sum") for _ in range(tables))
        features = tables + 1
        self.pairs = torch.triu_indices(features, features, offset=1)
        self.top = nn.Sequential(nn.Linear(dim + features * (features - 1) // 2, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, dense: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        x = self.bottom(dense)
        vectors = torch.stack([x] + [bag(ids[:, i]) for i, bag in enumerate(self.bags)], dim=1)
        dots = torch.bmm(vectors, vectors.transpose(1, 2))[:, self.pairs[0], self.pairs[1]]
        return self.top(torch.cat([x, dots], dim=1))


def build_model(params: Dict[str, Any]) -> nn.Module:
    """The recommender at the sizes params give."""
    return Recommender(
        int(params.get("dense", 13)),
        int(params.get("tables", 8)),
        int(params.get("table_rows", 10000)),
        int(params.get("dim", 16)),
    )


def dataset(params: Dict[str, Any], split: str) -> Tuple[Tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Dense features, ids (rows x tables x bag); the click target depends on feature 0 and the first table's ids."""
    rows = int(params.get("rows", 512))
    rows = rows if split == "train" else max(8, rows // 4)
    tables, table_rows, bag = (
        int(params.get("tables", 8)),
        int(params.get("table_rows", 10000)),
        int(params.get("bag", 4)),
    )
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    dense = torch.randn(rows, int(params.get("dense", 13)), generator=gen)
    ids = torch.randint(0, table_rows, (rows, tables, bag), generator=gen)
    click = ((dense[:, 0] > 0) & (ids[:, 0, 0] % 2 == 0)).float().unsqueeze(1)
    return (dense, ids), click
