"""An LSTM over variable-length sequences: padded sequences and their lengths (int64) in, a score out from the LSTM's
output at each row's last real step (a gather by length, which both a trace and torch.export keep as tensor ops;
pack_padded_sequence would hand export a data-dependent size).

params: rows (training rows, default 256), steps (padded length, default 24), features (default 8), hidden (default 64),
layers (default 2).
"""

from typing import Any, Dict, Tuple

import torch
from torch import nn


class LastStepLSTM(nn.Module):
    """LSTM (batch first), the output at step lengths - 1 of each row, linear."""

    def __init__(self, features: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, out.shape[2])
        return self.head(out.gather(1, index).squeeze(1))


def build_model(params: Dict[str, Any]) -> nn.Module:
    """The LSTM at the sizes params give."""
    return LastStepLSTM(int(params.get("features", 8)), int(params.get("hidden", 64)), int(params.get("layers", 2)))


def dataset(params: Dict[str, Any], split: str) -> Tuple[Tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Sequences of 2..steps real steps, zero-padded; the target is the sum of feature 0 over the real steps."""
    rows = int(params.get("rows", 256))
    rows = rows if split == "train" else max(8, rows // 4)
    steps, features = int(params.get("steps", 24)), int(params.get("features", 8))
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    lengths = torch.randint(2, steps + 1, (rows,), generator=gen)
    mask = (torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)
    x = torch.randn(rows, steps, features, generator=gen) * mask
    return (x, lengths), x[:, :, 0].sum(1, keepdim=True)
