"""The evaluate stage: the validation loss of TorchScript archives on the model file's validation split."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List

import torch

from . import data, protocol, train, user_model
from .protocol import ModelError, bad_value, traceback_tail


def one_line(exc: BaseException) -> str:
    """An exception as one short line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"


def load_archive(name: str, path: str) -> torch.jit.ScriptModule:
    """torch.jit.load an artifact in eval mode (never pickle); a failure names the artifact."""
    try:
        return torch.jit.load(path, map_location="cpu").eval()
    except Exception as exc:
        raise ModelError(f"artifact {name!r} ({path}) failed to load: {one_line(exc)}; expected a TorchScript "
                         "archive (torch.jit.save) whose custom operators, if any, the model file registers",
                         traceback_tail(exc)) from exc


def validation_loss(name: str, path: str, inputs: data.Inputs, targets: torch.Tensor,
                    criterion: Callable[[Any, torch.Tensor], torch.Tensor]) -> Dict[str, Any]:
    """Run one archive on the validation inputs (eval, no_grad) and measure its loss."""
    module = load_archive(name, path)
    try:
        with torch.no_grad():
            outputs = module(*inputs)
    except Exception as exc:
        raise ModelError(f"artifact {name!r} ({path}) failed to run on the validation inputs "
                         f"({[list(t.shape) for t in inputs]}): {one_line(exc)}; expected it to accept the rows "
                         "of dataset(params, 'validation') as one batch", traceback_tail(exc)) from exc
    try:
        with torch.no_grad():
            value = float(criterion(outputs, targets))
    except Exception as exc:
        raise ModelError(f"loss of artifact {name!r} ({path}) on the validation targets raised {one_line(exc)}; "
                         "expected outputs the loss accepts (define loss(outputs, targets) in the model file "
                         "for outputs that are not a single tensor)", traceback_tail(exc)) from exc
    if math.isfinite(value):
        return {"name": name, "validation_loss": value, "message": None}
    return {"name": name, "validation_loss": None,
            "message": f"artifact {name!r}: validation loss is {value}; expected a finite number (the archive "
                       "produces NaN or infinite outputs, or the loss overflows)"}


def check_names(artifacts: List[Dict[str, str]]) -> None:
    """Raise bad_request when two artifacts share a name (the results are told apart by name)."""
    for i, item in enumerate(artifacts):
        if item["name"] in (a["name"] for a in artifacts[:i]):
            raise bad_value(f"args.artifacts[{i}].name", item["name"], "a non-empty name used once")


@protocol.op("evaluate")
def evaluate(args: Dict[str, Any]) -> Dict[str, Any]:
    """The validation loss of each artifact, with the model file's dataset and loss (else the named loss)."""
    check_names(args["artifacts"])
    module = user_model.load(args["model_path"])  # also registers custom operators the archives call
    inputs, targets = data.load_split(module, args["params"], "validation")
    criterion = train.loss_function(args["loss"], module)
    results: List[Dict[str, Any]] = []
    for artifact in args["artifacts"]:
        results.append(validation_loss(artifact["name"], artifact["path"], inputs, targets, criterion))
    return {"results": results, "rows": int(targets.shape[0])}

