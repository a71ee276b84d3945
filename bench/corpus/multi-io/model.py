"""Several inputs and tuple outputs: an image (float), tabular features (float) and a category id (int64) in; a
tuple of class logits and a regression value out (a two-headed model, as multi-task serving runs it). Trained by the
loss below on one target tensor holding both the class and the value.

params: rows (default 256), size (image side, default 16), features (default 8), categories (default 32),
classes (default 4).
"""

from typing import Any, Dict, Tuple

import torch
from torch import nn
from torch.nn import functional as F


class TwoHeads(nn.Module):
    """conv tower (image) + MLP (features) + embedding (category) -> shared trunk -> (logits, value)."""

    def __init__(self, features: int, categories: int, classes: int) -> None:
        super().__init__()
        self.image = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.tabular = nn.Sequential(nn.Linear(features, 16), nn.ReLU())
        self.category = nn.Embedding(categories, 8)
        self.trunk = nn.Sequential(nn.Linear(40, 32), nn.ReLU())
        self.classify = nn.Linear(32, classes)
        self.regress = nn.Linear(32, 1)

    def forward(
        self, image: torch.Tensor, tabular: torch.Tensor, category: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(torch.cat([self.image(image), self.tabular(tabular), self.category(category)], dim=1))
        return self.classify(h), self.regress(h)


def build_model(params: Dict[str, Any]) -> nn.Module:
    """The two-headed model at the sizes params give."""
    return TwoHeads(int(params.get("features", 8)), int(params.get("categories", 32)), int(params.get("classes", 4)))


def dataset(params: Dict[str, Any], split: str) -> Tuple[Tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Targets (rows x 2): column 0 the class (from the category), column 1 the value (from the features)."""
    rows = int(params.get("rows", 256))
    rows = rows if split == "train" else max(8, rows // 4)
    size, features = int(params.get("size", 16)), int(params.get("features", 8))
    categories, classes = int(params.get("categories", 32)), int(params.get("classes", 4))
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    image = torch.randn(rows, 1, size, size, generator=gen)
    tabular = torch.randn(rows, features, generator=gen)
    category = torch.randint(0, categories, (rows,), generator=gen)
    targets = torch.stack([(category % classes).float(), tabular[:, 0] + image.mean(dim=(1, 2, 3))], dim=1)
    return (image, tabular, category), targets


def loss(outputs: Tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """Cross entropy on the class plus mean squared error on the value."""
    logits, value = outputs
    return F.cross_entropy(logits, targets[:, 0].long()) + F.mse_loss(value.squeeze(1), targets[:, 1])
