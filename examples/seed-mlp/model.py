"""The seed's MLP: three predictors, a noisy linear target, two dropout layers (see the R torch JIT post)."""

from typing import Any, Dict, Tuple

import torch
from torch import nn

SPLITS = {"train": (1000, 1), "validation": (200, 2)}  # rows, data seed


def build_model(params: Dict[str, Any]) -> nn.Module:
    """Linear(3, 8) relu dropout Linear(8, 16) relu dropout Linear(16, 1), as in the seed."""
    return nn.Sequential(
        nn.Linear(3, 8),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(8, 16),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(16, 1),
    )


def dataset(params: Dict[str, Any], split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """x ~ randn(n, 3); y = 0.2 x1 - 1.3 x2 - 0.5 x3 + noise, from a fixed generator per split."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}; expected one of {sorted(SPLITS)}")
    rows, seed = SPLITS[split]
    # A local generator keeps the data independent of the global RNG (and of the training seed).
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 3, generator=gen)
    y = x[:, 0:1] * 0.2 - x[:, 1:2] * 1.3 - x[:, 2:3] * 0.5 + torch.randn(rows, 1, generator=gen)
    return x, y


def example_inputs(params: Dict[str, Any]) -> Tuple[torch.Tensor]:
    """The seed's tracing example: one 1-D row."""
    return (torch.tensor([1.2, 3.0, 0.1]),)
