"""The stdio loop of the torch stage server: read request lines, dispatch, write responses."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

import torch

from . import PROTOCOL_VERSION, artifact, contract, evaluate, fusion, optimize, trace, train, verify
from .protocol import (BadRequest, ProtocolError, Writer, bad_value, require, require_int_list, require_path,
                       traceback_tail)

Emit = Callable[[Dict[str, Any]], None]


def hello(args: Dict[str, Any], emit: Emit) -> Dict[str, Any]:
    """Report the protocol, torch and Python versions."""
    return {"protocol": PROTOCOL_VERSION, "torch_version": torch.__version__,
            "python_version": platform.python_version()}


def model_args(args: Dict[str, Any]) -> Dict[str, Any]:
    """The model_path, params and out_dir that the model stages share."""
    return {"model_path": require_path(args, "model_path"), "params": require(args, "params", dict),
            "out_dir": require_path(args, "out_dir", is_dir=True)}


def tolerances(args: Dict[str, Any]) -> Dict[str, float]:
    """atol and rtol, both non-negative."""
    out = {"atol": require(args, "atol", float), "rtol": require(args, "rtol", float)}
    for key, value in out.items():
        if value < 0:
            raise bad_value(f"args.{key}", value, "a number >= 0")
    return out


def do_train(args: Dict[str, Any], emit: Emit) -> Dict[str, Any]:
    """Handle a train request (resume_path optional: a checkpoint of an earlier attempt)."""
    resume_path = require_path(args, "resume_path") if "resume_path" in args else None
    return train.train({**model_args(args), "train": require(args, "train", dict), "resume_path": resume_path}, emit)


def choice(args: Dict[str, Any], key: str, options: Sequence[str]) -> str:
    """An optional string argument from a fixed set; the first option is the default."""
    value = require(args, key, str) if key in args else options[0]
    if value not in options:
        raise bad_value(f"args.{key}", value, f"one of {list(options)!r}")
    return value


def device_arg(args: Dict[str, Any], key: str) -> str:
    """An optional torch device string (default "cpu")."""
    value = require(args, key, str) if key in args else "cpu"
    try:
        torch.device(value)
    except RuntimeError as exc:
        raise bad_value(f"args.{key}", value, f"a torch device such as 'cpu' or 'cuda' ({exc})")
    return value


def captures_arg(args: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The optional captures list that trace reported, passed back by the orchestrator."""
    items = require(args, "captures", list) if "captures" in args else []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or item.get("kind") not in ("bool", "number"):
            raise bad_value(f"args.captures[{i}]", item, "an object with kind 'bool' or 'number'")
    return items


def optional_model(args: Dict[str, Any]) -> Optional[str]:
    """The optional model_path (imported first so that custom ops the archive calls are registered)."""
    return require_path(args, "model_path") if "model_path" in args else None


def do_trace(args: Dict[str, Any], emit: Emit) -> Dict[str, Any]:
    """Handle a trace request."""
    return trace.trace({**model_args(args), "weights_path": require_path(args, "weights_path"),
                        "mode": choice(args, "mode", trace.MODES)})


def do_verify(args: Dict[str, Any], emit: Emit) -> Dict[str, Any]:
    """Handle a verify request."""
    return verify.verify({**model_args(args), **tolerances(args), "weights_path": require_path(args, "weights_path"),
                          "traced_path": require_path(args, "traced_path"),
                          "batch_sizes": require_int_list(args, "batch_sizes"),
                          "captures": captures_arg(args), "target_device": device_arg(args, "target_device")})


def do_optimize(args: Dict[str, Any], emit: Emit) -> Dict[str, Any]:
    """Handle an optimize request (model_path optional: it registers the model file's custom ops)."""
    return optimize.optimize({**tolerances(args), "traced_path": require_path(args, "traced_path"),
                              "references_path": require_path(args, "references_path"),
                              "out_dir": require_path(args, "out_dir", is_dir=True),
                              "model_path": optional_model(args), "method": choice(args, "method", optimize.METHODS)})


def do_fusion(args: Dict[str, Any], emit: Emit) -> Dict[str, Any]:
    """Handle a fusion request."""
    return fusion.fusion({**tolerances(args), "optimized_path": require_path(args, "optimized_path"),
                          "references_path": require_path(args, "references_path"),
                          "out_dir": require_path(args, "out_dir", is_dir=True),
                          "model_path": optional_model(args), "require": choice(args, "require", fusion.REQUIRES)})


def do_verify_artifact(args: Dict[str, Any], emit: Emit) -> Dict[str, Any]:
    """Handle a verify_artifact request (a foreign TorchScript archive and its recorded references)."""
    return artifact.verify_artifact({**tolerances(args), "artifact_path": require_path(args, "artifact_path"),
                                     "references_path": require_path(args, "references_path"),
                                     "target_device": device_arg(args, "target_device"),
                                     "out_dir": require_path(args, "out_dir", is_dir=True)})


def artifacts_arg(args: Dict[str, Any]) -> List[Dict[str, str]]:
    """The artifacts argument: a non-empty list of {name, path} with unique non-empty names."""
    items = require(args, "artifacts", list)
    if not items:
        raise bad_value("args.artifacts", items, "a non-empty list of {'name', 'path'} objects")
    out: List[Dict[str, str]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad_value(f"args.artifacts[{i}]", item, "an object {'name', 'path'}")
        name = require(item, "name", str, f"args.artifacts[{i}]")
        if not name or name in (o["name"] for o in out):
            raise bad_value(f"args.artifacts[{i}].name", name, "a non-empty name used once")
        out.append({"name": name, "path": require_path(item, "path", where=f"args.artifacts[{i}]")})
    return out


def do_evaluate(args: Dict[str, Any], emit: Emit) -> Dict[str, Any]:
    """Handle an evaluate request (validation loss of TorchScript archives)."""
    return evaluate.evaluate({"model_path": require_path(args, "model_path"), "params": require(args, "params", dict),
                              "loss": choice(args, "loss", train.LOSSES), "artifacts": artifacts_arg(args)})


OPS: Dict[str, Callable[[Dict[str, Any], Emit], Dict[str, Any]]] = {
    "hello": hello, "train": do_train, "trace": do_trace, "verify": do_verify, "optimize": do_optimize,
    "fusion": do_fusion, "verify_artifact": do_verify_artifact, "evaluate": do_evaluate,
}


def handle(line: str, writer: Writer) -> None:
    """Parse one request line, run it, and write its events and response."""
    request_id = ""
    try:
        try:
            request = json.loads(line)
        except ValueError as exc:
            raise BadRequest(f"request is not JSON: {exc}") from exc
        if not isinstance(request, dict):
            raise BadRequest(f"request is a {type(request).__name__}; expected a JSON object")
        if isinstance(request.get("id"), str):
            request_id = request["id"]
        require(request, "id", str, "request")
        if request.get("v") != PROTOCOL_VERSION:
            raise BadRequest(f"request.v = {request.get('v')!r}; expected {PROTOCOL_VERSION}")
        op = require(request, "op", str, "request")
        if op not in OPS:
            raise BadRequest(f"request.op = {op!r}; expected one of {sorted(OPS)}")
        args = require(request, "args", dict, "request")
        started = time.perf_counter()
        contract.check_args(op, args)  # the generated contract first; the ops' own checks stay for what it cannot say
        result = OPS[op](args, lambda data: writer.event(request_id, data))
        ms = (time.perf_counter() - started) * 1000
        contract.check_result(op, result)  # a result that breaks the contract is our bug: internal
        writer.success(request_id, result, ms)
    except ProtocolError as exc:
        writer.failure(request_id, exc)
    except Exception as exc:  # our bug: report it and keep serving
        writer.failure(request_id, ProtocolError("internal", f"{type(exc).__name__}: {exc}", traceback_tail(exc)))


def main(stdin: TextIO = sys.stdin) -> int:
    """Serve requests from stdin until EOF; user prints go to stderr, protocol lines to the real stdout."""
    protocol_fd = os.dup(1)
    sys.stdout.flush()
    os.dup2(2, 1)  # C-level and Python writes to fd 1 now land on stderr
    sys.stdout = sys.stderr
    writer = Writer(protocol_fd)
    for line in stdin:
        if line.strip():
            handle(line, writer)
    return 0
