"""The train stage: deterministic training of the user's model."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from . import checkpoint, codes, data, hello, protocol, user_model
from .protocol import BadRequest


def parse_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The train spec (checked by the contract: positive epochs, batch_size and lr, known optimizer and loss) with
    integers as ints and lr as a float (JSON Schema counts 3.0 as an integer)."""
    return {
        "epochs": int(spec["epochs"]),
        "batch_size": int(spec["batch_size"]),
        "optimizer": spec["optimizer"],
        "lr": float(spec["lr"]),
        "loss": spec["loss"],
        "seed": int(spec["seed"]),
    }


def make_optimizer(name: str, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """Build the named optimizer over the model's parameters."""
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    return torch.optim.SGD(model.parameters(), lr=lr)


def loss_function(name: str, module: Any) -> Callable[[Any, torch.Tensor], torch.Tensor]:
    """The model file's loss(outputs, targets) when defined, else the named loss."""
    custom = user_model.optional(module, "loss")
    if custom is not None:
        return custom
    return F.mse_loss if name == "mse" else F.cross_entropy


def restore(
    path: str,
    spec: dict[str, Any],
    params: dict[str, Any],
    rows: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
) -> tuple[int, list[float]]:
    """Load a checkpoint into model, optimizer and the global RNG; returns (its epoch, its losses)."""
    state = checkpoint.read(path)
    checkpoint.check_fits(path, state, spec, params, rows)
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise BadRequest(
            f"args.resume_path = {path!r} does not fit the model built from params "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); "
            "expected a checkpoint of this model file, or omit resume_path"
        ) from exc
    torch.set_rng_state(state["rng_state"])
    return int(state["epoch"]), [float(v) for v in state["losses"]]


@protocol.op("train")
def train(args: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Train the model described by a train request, checkpointing every epoch, and save its state_dict."""
    model_path = args["model_path"]
    params = args["params"]
    spec = parse_spec(args["train"])
    out_dir = args["out_dir"]
    module = user_model.load(model_path)
    torch.manual_seed(spec["seed"])
    model = data.build(module, params)
    inputs, targets = data.load_split(module, params, "train")
    rows = int(targets.shape[0])
    optimizer = make_optimizer(spec["optimizer"], model, spec["lr"])
    criterion = loss_function(spec["loss"], module)
    resumed_from, losses = 0, []
    if args.get("resume_path"):
        resumed_from, losses = restore(args["resume_path"], spec, params, rows, model, optimizer)
    checkpoint_path = None
    model.train()
    for epoch in range(resumed_from + 1, spec["epochs"] + 1):
        order = torch.randperm(rows, generator=checkpoint.shuffle_generator(spec["seed"], epoch))
        total = 0.0
        for step, start in enumerate(range(0, rows, spec["batch_size"]), start=1):
            index = order[start : start + spec["batch_size"]]
            with user_model.user_code(model_path, f"training step {step} of epoch {epoch}"):
                optimizer.zero_grad()
                loss = criterion(model(*data.take(inputs, index)), targets.index_select(0, index))
                value = float(loss.detach())
                if math.isfinite(value):
                    loss.backward()
                    optimizer.step()
            if not math.isfinite(value):
                return {
                    "status": "rejected",
                    "code": codes.NON_FINITE_LOSS,
                    "message": (
                        f"loss became {value} at epoch {epoch}, step {step}; check the learning rate "
                        f"(train.lr = {spec['lr']:g}) and the data"
                    ),
                    "epoch": epoch,
                    "step": step,
                }
            total += value * int(index.numel())
        losses.append(total / rows)
        checkpoint_path = checkpoint.save(
            out_dir,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng_state": torch.get_rng_state(),
                "epoch": epoch,
                "losses": list(losses),
                "train": spec,
                "params": params,
                "rows": rows,
            },
        )
        emit({"epoch": epoch, "epochs": spec["epochs"], "loss": losses[-1], "checkpoint_path": checkpoint_path})
    weights_path = os.path.join(out_dir, "weights.pt")
    torch.save(model.state_dict(), weights_path)
    return {
        "status": "ok",
        "weights_path": weights_path,
        "losses": losses,
        "epochs_completed": spec["epochs"],
        "rows": rows,
        "resumed_from_epoch": resumed_from,
        "checkpoint_path": checkpoint_path,
        "packages": hello.installed_packages(),
    }
