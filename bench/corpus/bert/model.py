"""A BERT sequence classifier from Hugging Face transformers (BertForSequenceClassification), random weights from a
config (nothing is downloaded): token ids and an attention mask in, logits out. Sequences are padded to one length,
with a different number of real tokens per row.

params: rows (training rows, default 64), seq (default 32), vocab (default 30522), hidden (default 256), layers
(default 4), heads (default 4), classes (default 2).
"""

from typing import Any, Dict, Tuple

import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification


class Classifier(nn.Module):
    """(input_ids, attention_mask) -> logits; the model's tuple output (return_dict=False) keeps tracing simple."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.bert = BertForSequenceClassification(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]


def build_model(params: Dict[str, Any]) -> nn.Module:
    """BERT at the sizes params give; eager attention, as a TorchScript trace needs no SDPA mask shortcuts."""
    hidden = int(params.get("hidden", 256))
    config = BertConfig(
        vocab_size=int(params.get("vocab", 30522)),
        hidden_size=hidden,
        num_hidden_layers=int(params.get("layers", 4)),
        num_attention_heads=int(params.get("heads", 4)),
        intermediate_size=hidden * 4,
        max_position_embeddings=max(64, int(params.get("seq", 32))),
        num_labels=int(params.get("classes", 2)),
        attn_implementation="eager",
    )
    return Classifier(config)


def dataset(params: Dict[str, Any], split: str) -> Tuple[Tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Random token ids, each row with 4 to seq real tokens then padding (id 0, mask 0); label: is token 1 present."""
    rows = int(params.get("rows", 64))
    rows = rows if split == "train" else max(8, rows // 4)
    seq, vocab = int(params.get("seq", 32)), int(params.get("vocab", 30522))
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    ids = torch.randint(1, vocab, (rows, seq), generator=gen)
    lengths = torch.randint(4, seq + 1, (rows,), generator=gen)
    mask = (torch.arange(seq).unsqueeze(0) < lengths.unsqueeze(1)).long()
    ids = ids * mask
    return (ids, mask), (ids < vocab // 2).sum(1).gt(lengths // 2).long()
