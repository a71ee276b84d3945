"""A GPT-2-style decoder from Hugging Face transformers (GPT2LMHeadModel), random weights from a config (nothing is
downloaded): token ids in, next-token logits out, with GPT-2's causal mask. Trained on next-token prediction by the
loss below.

params: rows (training rows, default 64), seq (default 32), vocab (default 50257), hidden (default 256), layers
(default 4), heads (default 4).
"""

from typing import Any, Dict, Tuple

import torch
from torch import nn
from torch.nn import functional as F
from transformers import GPT2Config, GPT2LMHeadModel


class Decoder(nn.Module):
    """input_ids -> logits (batch, seq, vocab); no key/value cache (one full forward pass per call)."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.gpt = GPT2LMHeadModel(config)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.gpt(input_ids=input_ids, use_cache=False, return_dict=False)[0]


def build_model(params: Dict[str, Any]) -> nn.Module:
    """GPT-2 at the sizes params give; eager attention (its causal mask is a buffer-free triangle per call)."""
    config = GPT2Config(
        vocab_size=int(params.get("vocab", 50257)),
        n_positions=max(64, int(params.get("seq", 32))),
        n_embd=int(params.get("hidden", 256)),
        n_layer=int(params.get("layers", 4)),
        n_head=int(params.get("heads", 4)),
        attn_implementation="eager",
    )
    return Decoder(config)


def dataset(params: Dict[str, Any], split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Token sequences that count up from a random start (mod vocab): the targets are the inputs themselves."""
    rows = int(params.get("rows", 64))
    rows = rows if split == "train" else max(8, rows // 4)
    seq, vocab = int(params.get("seq", 32)), int(params.get("vocab", 50257))
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    ids = (torch.randint(0, vocab, (rows, 1), generator=gen) + torch.arange(seq)) % vocab
    return ids, ids


def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Next-token cross entropy: position t predicts token t + 1."""
    return F.cross_entropy(outputs[:, :-1].reshape(-1, outputs.shape[-1]), targets[:, 1:].reshape(-1))
