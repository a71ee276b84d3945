"""Model inputs and datasets: normalizing, slicing rows, building the model, flattening outputs."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import torch

from . import user_model
from .protocol import ModelError

Inputs = tuple[torch.Tensor, ...]


def as_inputs(value: Any, origin: str) -> Inputs:
    """Normalize a tensor or a tuple/list of tensors into a tuple of tensors."""
    items = (value,) if isinstance(value, torch.Tensor) else value
    if not isinstance(items, (tuple, list)) or not items or not all(isinstance(t, torch.Tensor) for t in items):
        raise ModelError(
            f"{origin} returned inputs of type {type(value).__name__}; "
            "expected a tensor or a non-empty tuple of tensors"
        )
    return tuple(items)


def load_split(module: ModuleType, params: dict[str, Any], split: str) -> tuple[Inputs, torch.Tensor]:
    """Call dataset(params, split) and check it returns (inputs, targets) with matching row counts."""
    where = f"dataset(params, {split!r}) in {module.__file__}"
    value = user_model.call(module, "dataset", params, split)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ModelError(f"{where} returned {type(value).__name__}; expected a pair (inputs, targets)")
    inputs = as_inputs(value[0], where)
    targets = value[1]
    if not isinstance(targets, torch.Tensor):
        raise ModelError(f"{where} returned targets of type {type(targets).__name__}; expected a tensor")
    rows = {t.shape[0] if t.dim() else None for t in inputs + (targets,)}
    if len(rows) != 1 or None in rows or 0 in rows:
        raise ModelError(
            f"{where} returned row counts {sorted(map(str, rows))}; "
            "expected inputs and targets with the same non-zero first dimension"
        )
    return inputs, targets


def build(module: ModuleType, params: dict[str, Any]) -> torch.nn.Module:
    """Call build_model(params) and check it returns a torch.nn.Module."""
    model = user_model.call(module, "build_model", params)
    if not isinstance(model, torch.nn.Module):
        raise ModelError(
            f"build_model(params) in {module.__file__} returned {type(model).__name__}; expected a torch.nn.Module"
        )
    return model


def take(inputs: Inputs, index: torch.Tensor) -> Inputs:
    """Select rows of every input tensor."""
    return tuple(t.index_select(0, index) for t in inputs)


def first_rows(inputs: Inputs, n: int) -> Inputs:
    """The first n rows, repeated cyclically when there are fewer."""
    count = inputs[0].shape[0]
    return take(inputs, torch.arange(n) % count)


def flatten(value: Any, origin: str) -> list[torch.Tensor]:
    """Flatten a tensor or nested tuple/list of tensors into a list, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        out: list[torch.Tensor] = []
        for item in value:
            out.extend(flatten(item, origin))
        return out
    raise ModelError(f"{origin} returned {type(value).__name__}; expected a tensor or a tuple/list of tensors")
