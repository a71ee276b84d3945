"""The evaluate stage: the validation loss of TorchScript archives on the model file's validation split."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from . import archive_limits, data, probes, protocol, sandbox, trace, train, user_model
from .protocol import ModelError, bad_value, traceback_tail


def one_line(exc: BaseException) -> str:
    """An exception as one short line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"


def load_archive(name: str, path: str) -> torch.jit.ScriptModule:
    """torch.jit.load an artifact in eval mode (never pickle); a failure names the artifact."""
    archive_limits.check(path, f"artifact {name!r}")
    try:
        return torch.jit.load(path, map_location="cpu").eval()
    except Exception as exc:
        raise ModelError(
            f"artifact {name!r} ({path}) failed to load: {one_line(exc)}; expected a TorchScript "
            "archive (torch.jit.save) whose custom operators, if any, the model file registers",
            traceback_tail(exc),
        ) from exc


def stacked(outputs: list[Any]) -> Any:
    """Per-row outputs (tensors, or tuples/lists of tensors) stacked into one batch of the same structure."""
    if isinstance(outputs[0], (tuple, list)):
        return type(outputs[0])(torch.stack([o[i] for o in outputs]) for i in range(len(outputs[0])))
    return torch.stack(outputs)


def run_archive(module: torch.jit.ScriptModule, inputs: data.Inputs, rows: tuple[int, bool] | None) -> Any:
    """The archive's outputs on the validation inputs: as one batch, or, for a graph checked only at its example's
    shape (trace.batch_sizes: []), in chunks of that shape (`rows` per chunk, each row unbatched or not)."""
    with torch.no_grad():
        if rows is None:
            return module(*inputs)
        size, unbatched = rows
        if unbatched:
            return stacked([module(*(t[i] for t in inputs)) for i in range(inputs[0].shape[0])])
        return torch.cat([module(*(t[i : i + size] for t in inputs)) for i in range(0, inputs[0].shape[0], size)])


def validation_loss(
    name: str,
    path: str,
    inputs: data.Inputs,
    targets: torch.Tensor,
    criterion: Callable[[Any, torch.Tensor], torch.Tensor],
    rows: tuple[int, bool] | None = None,
) -> dict[str, Any]:
    """Run one archive on the validation inputs (eval, no_grad) and measure its loss."""
    module = load_archive(name, path)
    try:
        outputs = run_archive(module, inputs, rows)
    except Exception as exc:
        sandbox.raise_if_refused(exc)
        raise ModelError(
            f"artifact {name!r} ({path}) failed to run on the validation inputs "
            f"({[list(t.shape) for t in inputs]}{'' if rows is None else ', in example-shaped chunks'}): "
            f"{one_line(exc)}; expected it to accept the rows of dataset(params, 'validation') "
            f"{'as one batch' if rows is None else 'in chunks of the example shape'}",
            traceback_tail(exc),
        ) from exc
    try:
        with torch.no_grad():
            value = float(criterion(outputs, targets))
    except Exception as exc:
        raise ModelError(
            f"loss of artifact {name!r} ({path}) on the validation targets raised {one_line(exc)}; "
            "expected outputs the loss accepts (define loss(outputs, targets) in the model file "
            "for outputs that are not a single tensor)",
            traceback_tail(exc),
        ) from exc
    if math.isfinite(value):
        return {"name": name, "validation_loss": value, "message": None}
    return {
        "name": name,
        "validation_loss": None,
        "message": f"artifact {name!r}: validation loss is {value}; expected a finite number (the archive "
        "produces NaN or infinite outputs, or the loss overflows)",
    }


def check_names(artifacts: list[dict[str, str]]) -> None:
    """Raise bad_request when two artifacts share a name (the results are told apart by name)."""
    for i, item in enumerate(artifacts):
        if item["name"] in (a["name"] for a in artifacts[:i]):
            raise bad_value(f"args.artifacts[{i}].name", item["name"], "a non-empty name used once")


@protocol.op("evaluate")
def evaluate(args: dict[str, Any]) -> dict[str, Any]:
    """The validation loss of each artifact, with the model file's dataset and loss (else the named loss)."""
    check_names(args["artifacts"])
    module = user_model.load(args["model_path"])  # also registers custom operators the archives call
    inputs, targets = data.load_split(module, args["params"], "validation")
    criterion = train.loss_function(args["loss"], module)
    rows = None
    if args.get("batch_sizes") == []:
        # Verified only at the example's shape (trace.batch_sizes: []): evaluated at that shape, on the validation
        # rows that fill whole chunks of it.
        rows = probes.chunk_layout(trace.example_inputs(module, args["params"]), inputs)
        if rows is not None and not rows[1]:
            whole = inputs[0].shape[0] - inputs[0].shape[0] % rows[0]
            inputs, targets = tuple(t[:whole] for t in inputs), targets[:whole]
    results: list[dict[str, Any]] = []
    for artifact in args["artifacts"]:
        results.append(validation_loss(artifact["name"], artifact["path"], inputs, targets, criterion, rows))
    return {"results": results, "rows": int(targets.shape[0])}
