"""Per-epoch training checkpoints: writing them atomically, reading them back, checking they fit a request."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

from . import archive_limits
from .protocol import BadRequest

# Fields of the train spec that must match for a resume; epochs may grow (a resumed run may train longer).
MATCHED_FIELDS = ("batch_size", "optimizer", "lr", "loss", "seed")
FLOAT, TUPLE = "__ttd_float__", "__ttd_tuple__"
KEYS = ("model", "optimizer", "rng_state", "epoch", "losses", "train", "params", "rows")


def path_for(out_dir: str, epoch: int) -> str:
    """The checkpoint path of an epoch: <out_dir>/checkpoint-<epoch>.pt."""
    return os.path.join(out_dir, f"checkpoint-{epoch}.pt")


def shuffle_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffle generator of an epoch, seeded from (seed, epoch) only, so a resumed run shuffles alike."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**64)


def map_dict(value: dict[Any, Any], fn: Callable[[Any], Any]) -> dict[Any, Any]:
    """A dict (or OrderedDict, keeping a state_dict's _metadata) with fn applied to every value."""
    out = (
        OrderedDict((k, fn(v)) for k, v in value.items())
        if isinstance(value, OrderedDict)
        else {k: fn(v) for k, v in value.items()}
    )
    if hasattr(value, "_metadata"):  # a state_dict's per-module versions
        out._metadata = value._metadata  # type: ignore[attr-defined]
    return out


def encode(value: Any) -> Any:
    """Replace floats (and mark tuples) so that torch.load(weights_only=True) reads the result on torch 1.13 too."""
    if isinstance(value, float):
        return (FLOAT, value.hex())  # exact, NaN and infinities included
    if isinstance(value, tuple):
        return (TUPLE, [encode(v) for v in value])
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return map_dict(value, encode)
    return value


def decode(value: Any) -> Any:
    """Undo encode."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == FLOAT:
        return float.fromhex(value[1])
    if isinstance(value, tuple) and len(value) == 2 and value[0] == TUPLE:
        return tuple(decode(v) for v in value[1])
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        return map_dict(value, decode)
    return value


def save(out_dir: str, state: dict[str, Any]) -> str:
    """Write the checkpoint of state["epoch"] atomically, then remove the previous epoch's; returns its path."""
    path = path_for(out_dir, state["epoch"])
    partial = os.path.join(out_dir, f".checkpoint-{state['epoch']}.pt.partial")
    torch.save(encode(state), partial)
    os.replace(partial, path)  # a kill mid-write never leaves a truncated checkpoint-<k>.pt
    previous = path_for(out_dir, state["epoch"] - 1)
    if os.path.exists(previous):
        os.remove(previous)
    return path


def read(path: str) -> dict[str, Any]:
    """Load a checkpoint file (tensors and plain values only) and check it has every key."""
    archive_limits.check(path, "checkpoint")
    try:
        # Tensors and plain values only (torch 1.13 and 2.x both have weights_only): never unpickle what the store has.
        state = decode(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise BadRequest(
            f"args.resume_path = {path!r} cannot be read as a checkpoint ({type(exc).__name__}: "
            f"{exc}); expected a checkpoint-<epoch>.pt written by train, or omit resume_path"
        ) from exc
    missing = [key for key in KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise BadRequest(
            f"args.resume_path = {path!r} lacks {missing}; expected a checkpoint-<epoch>.pt written "
            "by train, or omit resume_path"
        )
    return state


def differing_fields(state: dict[str, Any], spec: dict[str, Any], params: dict[str, Any], rows: int) -> list[str]:
    """The names of what differs between a checkpoint and this request, each with both values."""
    made = state["train"]
    out = [
        f"train.{key} (checkpoint {made.get(key)!r}, request {spec[key]!r})"
        for key in MATCHED_FIELDS
        if made.get(key) != spec[key]
    ]
    if state["params"] != params:
        out.append(f"params (checkpoint {state['params']!r}, request {params!r})")
    if state["rows"] != rows:
        out.append(f"training rows (checkpoint {state['rows']}, dataset now {rows})")
    return out


def check_fits(path: str, state: dict[str, Any], spec: dict[str, Any], params: dict[str, Any], rows: int) -> None:
    """Raise bad_request unless the checkpoint was made by the same training as this request."""
    differing = differing_fields(state, spec, params, rows)
    if differing:
        raise BadRequest(
            f"args.resume_path = {path!r} was made with a different training: {'; '.join(differing)}; "
            "expected the same train spec (epochs may differ) and params, or omit resume_path"
        )
    if not 1 <= state["epoch"] <= spec["epochs"]:
        raise BadRequest(
            f"args.resume_path = {path!r} is at epoch {state['epoch']}; expected 1..train.epochs "
            f"({spec['epochs']}); raise train.epochs or omit resume_path"
        )
