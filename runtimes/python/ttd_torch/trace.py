"""The trace stage: eval-mode tracing of the trained model to TorchScript."""

from __future__ import annotations

import os
import warnings
from types import ModuleType
from typing import Any, cast

import torch

from . import archive, archive_limits, captures, data, dependence, graph, protocol, sandbox, user_model
from .protocol import ModelError

TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
EXAMPLE_ROWS = 4


def load_trained(module: ModuleType, params: dict[str, Any], weights_path: str) -> torch.nn.Module:
    """Build the model, load the trained weights and switch to eval mode."""
    torch.manual_seed(0)  # initial weights are overwritten; the seed only makes construction side effects repeatable
    model = data.build(module, params)
    # Tensors only: the weights come from the store, and a rewritten blob must not run code when read.
    archive_limits.check(weights_path, "weights file")
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    with user_model.user_code(module.__file__ or "?", "load_state_dict()"):
        model.load_state_dict(state)
    return model.eval()


def example_inputs(module: ModuleType, params: dict[str, Any]) -> data.Inputs:
    """The model file's example_inputs(params), else the first validation rows."""
    if user_model.optional(module, "example_inputs") is not None:
        value = user_model.call(module, "example_inputs", params)
        return data.as_inputs(value, f"example_inputs(params) in {module.__file__}")
    inputs, _ = data.load_split(module, params, "validation")
    return tuple(t[:EXAMPLE_ROWS] for t in inputs)


def is_tooling_noise(record: warnings.WarningMessage) -> bool:
    """True for deprecation notices about our own torch calls (torch 2.x deprecates jit.trace itself)."""
    deprecation = issubclass(record.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning))
    # The notice points into torch or, through its stacklevel, at our call of torch.jit.trace.
    return deprecation and os.path.abspath(record.filename).startswith((TORCH_DIR, PACKAGE_DIR))


def warning_record(record: warnings.WarningMessage) -> dict[str, Any]:
    """A warning as the protocol reports it."""
    return {
        "category": record.category.__name__,
        "message": str(record.message),
        "filename": record.filename,
        "lineno": record.lineno,
    }


def script(model: torch.nn.Module, model_path: str) -> torch.jit.ScriptModule:
    """torch.jit.script of the eval-mode model; a failure is a model_error naming the reason."""
    try:
        return torch.jit.script(model)
    except Exception as exc:  # the frontend raises NotSupportedError, RuntimeError and others
        sandbox.raise_if_refused(exc)
        reason = " ".join(str(exc).split())[:800]
        raise ModelError(
            f"the model in {model_path} cannot be scripted: {type(exc).__name__}: {reason}; "
            "expected TorchScript-compatible code: fix the construct named above, "
            "or use trace.mode: trace",
            user_model.user_traceback(exc),
        ) from exc


MAX_REPORTED = 20  # warnings and captures reported per trace
MAX_MESSAGE = 500  # characters of each one's message


def bounded(record: dict[str, Any]) -> dict[str, Any]:
    """A warning or capture record with its message cut to MAX_MESSAGE characters."""
    return {**record, "message": str(record["message"])[:MAX_MESSAGE]}


def value_sites(
    model: torch.nn.Module, example: data.Inputs, model_path: str
) -> tuple[list[dependence.Site] | None, list[dict[str, Any]]]:
    """(capture sites, notes): where forward() takes Python values from tensors (dependence.py); sites None and a
    note when the analysis cannot run (then the gate falls back to torch's warnings and the probes)."""
    with warnings.catch_warnings(record=True), torch.no_grad():
        warnings.simplefilter("ignore")  # forward() runs several times here; its warnings count once, while tracing
        try:
            return dependence.analyse(model, example, model_path), []
        except (Exception, SystemExit) as exc:  # forward() or torch failed under the mode; tracing reports it again
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:MAX_MESSAGE]
            return None, [
                {
                    "category": "ValueDependence",
                    "filename": model_path,
                    "lineno": 0,
                    "message": f"the value-dependence analysis could not run forward() ({reason}); captures "
                    "are judged from torch's warnings and the probes only",
                }
            ]


@protocol.op("trace")
def trace(args: dict[str, Any]) -> dict[str, Any]:
    """Trace (or script) the trained model in eval mode and save traced.pt."""
    module = user_model.load(args["model_path"])
    params = args["params"]
    mode = args["mode"]
    model = load_trained(module, params, args["weights_path"])
    example = example_inputs(module, params)
    sites, notes = value_sites(model, example, args["model_path"]) if mode == "trace" else ([], [])
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        if mode == "script":
            traced = script(model, args["model_path"])
        else:
            with user_model.user_code(args["model_path"], "forward() while tracing"):
                # A traced nn.Module is a ScriptModule; torch's inferred type also lists an internal tuple.
                traced = cast(torch.jit.ScriptModule, torch.jit.trace(model, example, check_trace=False))
    kept = [w for w in caught if not is_tooling_noise(w)]
    # Bounded: results travel through workflow history, which carries short summaries only.
    reported: list[dict[str, Any]] = [bounded(w) for w in notes + [warning_record(w) for w in kept]][:MAX_REPORTED]
    found = captures.merge(sites, captures.captures(kept, args["model_path"]))
    traced_path = os.path.join(args["out_dir"], "traced.pt")
    archive.save(traced, traced_path)
    nodes = graph.count_nodes(traced.inlined_graph)
    return {
        "traced_path": traced_path,
        "example_shapes": [list(t.shape) for t in example],
        "nodes": nodes,
        "node_total": sum(nodes.values()),
        "warnings": reported,
        "mode": mode,
        "captures": [bounded(c) for c in found][:MAX_REPORTED],
        "tracer_warnings": [bounded(w) for w in captures.tracer_warnings(kept, args["model_path"])][:MAX_REPORTED],
    }
