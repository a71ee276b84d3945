"""Probe inputs that take other paths than the tracing example: transformed validation inputs, example-shaped chunks."""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import data

Case = tuple[str, data.Inputs]
SHUFFLE_SEED = 20240607  # a fixed permutation: the same probe on every run
MAX_CHUNKS = 64  # example-shaped chunks per source case

TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "probe_neg": lambda t: -t,
    "probe_scale10": lambda t: t * 10,
    "probe_scale01": lambda t: t * 0.1,
    "probe_zeros": torch.zeros_like,
}


def has_floating(inputs: data.Inputs) -> bool:
    """True when at least one input tensor is floating point."""
    return any(t.is_floating_point() for t in inputs)


def transform(inputs: data.Inputs, fn: Callable[[torch.Tensor], torch.Tensor]) -> data.Inputs:
    """Apply fn to every floating-point input tensor; other inputs stay as they are."""
    return tuple(fn(t) if t.is_floating_point() else t for t in inputs)


def shuffle(inputs: data.Inputs) -> data.Inputs:
    """The rows of every input in one fixed permutation (rows stay aligned across inputs)."""
    rows = inputs[0].shape[0]
    perm = torch.randperm(rows, generator=torch.Generator().manual_seed(SHUFFLE_SEED))
    return data.take(inputs, perm)


def probe_cases(validation: data.Inputs) -> list[Case]:
    """probe_neg, probe_scale10, probe_scale01, probe_zeros, probe_shuffle (none without floating inputs)."""
    if not has_floating(validation):
        return []
    cases: list[Case] = [(name, transform(validation, fn)) for name, fn in TRANSFORMS.items()]
    cases.append(("probe_shuffle", shuffle(validation)))
    return cases


def chunk_layout(example: data.Inputs, source: data.Inputs) -> tuple[int, bool] | None:
    """(rows per chunk, unbatched) that cut source into the example's shapes, or None when impossible."""
    if len(example) != len(source):
        return None
    if all(
        e.dim() == s.dim() and e.dim() > 0 and e.shape[1:] == s.shape[1:] for e, s in zip(example, source, strict=True)
    ):
        rows = {e.shape[0] for e in example}
        return (rows.pop(), False) if len(rows) == 1 and 0 not in rows else None
    if all(e.dim() + 1 == s.dim() and e.shape == s.shape[1:] for e, s in zip(example, source, strict=True)):
        return 1, True  # an unbatched example (one row without its batch dimension)
    return None


def example_shaped(example: data.Inputs, source: data.Inputs, limit: int = MAX_CHUNKS) -> list[tuple[str, data.Inputs]]:
    """(label, chunk) pairs of source with exactly the example's shapes (at most limit); [] when none fit."""
    layout = chunk_layout(example, source)
    if layout is None:
        return []
    rows, unbatched = layout
    total = source[0].shape[0]
    chunks: list[tuple[str, data.Inputs]] = []
    for start in range(0, total - rows + 1, rows):
        chunk = tuple(t[start : start + rows] for t in source)
        label = f"row {start}" if rows == 1 else f"rows {start}-{start + rows - 1}"
        chunks.append((label, tuple(t[0] for t in chunk) if unbatched else chunk))
        if len(chunks) == limit:
            break
    return chunks


def case_name(source: str, label: str) -> str:
    """A reference case name for a chunk: ("validation", "row 3") -> validation_row_3; "rows 0-3" -> ..._rows_0_3."""
    return f"{source}_{label.replace(' ', '_').replace('-', '_')}"


def example_shaped_cases(example: data.Inputs, sources: list[Case], limit: int) -> list[Case]:
    """The first `limit` example-shaped chunks of each source, as named cases."""
    return [
        (case_name(name, label), chunk)
        for name, source in sources
        for label, chunk in example_shaped(example, source, limit)
    ]
