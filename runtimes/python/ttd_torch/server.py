"""The stdio loop of the torch stage server: read request lines, dispatch each to its registered op, write responses."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import time
from typing import Any, TextIO

from . import PROTOCOL_VERSION, codes, contract, interrupts, sandbox, semantic_checks, threads
from .protocol import OPS, BadRequest, Emit, ModelError, ProtocolError, Writer, require, traceback_tail

NOT_OPS = frozenset(("__main__", "server", "zygote", "sandbox"))  # the entry points: importing them registers nothing


def import_ops() -> None:
    """Import every module of the package, so each op's @protocol.op has registered it (no list of ops here)."""
    package = __name__.rpartition(".")[0]
    for info in pkgutil.iter_modules(sys.modules[package].__path__):
        if info.name not in NOT_OPS:
            importlib.import_module(f"{package}.{info.name}")


import_ops()


def dispatch(op: str, args: dict[str, Any], emit: Emit) -> dict[str, Any]:
    """Run one op in this process, as a request would: its contract schema, its defaults, the generic checks of
    paths, directories and devices, the handler, then its result schema (docs/protocol.md, section 1)."""
    handler = OPS.get(op)
    if handler is None:
        raise BadRequest(f"request.op = {op!r}; expected one of {sorted(OPS)}")
    contract.check_args(op, args)
    args = contract.with_defaults(op, args)
    semantic_checks.check_args(op, args)
    result = handler(args, emit)
    contract.check_result(op, result)  # a result that breaks the contract is our bug: internal
    return result


def handle(line: str, writer: Writer) -> None:
    """Parse one request line, run it, and write its events and response."""
    request_id = ""
    model_path: str | None = None
    interrupts.watch_sigint()
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
        if isinstance(args.get("model_path"), str):
            model_path = args["model_path"]
        sandbox.allow(args)
        started = time.perf_counter()
        result = dispatch(op, args, lambda data: writer.event(request_id, data))
        writer.success(request_id, result, (time.perf_counter() - started) * 1000)
    except ProtocolError as exc:
        writer.failure(request_id, exc)
    except interrupts.NOT_EXCEPTIONS as exc:
        # Raised by model code that no user_code block wrapped (forward under export, compile, ...): the model's error,
        # unless a SIGINT really came (then the process ends, as before).
        if interrupts.is_real_interrupt(exc):
            raise
        writer.failure(
            request_id,
            ModelError(interrupts.describe(exc, f"the {op_name(line)} request", model_path), traceback_tail(exc)),
        )
    except Exception as exc:  # our bug: report it and keep serving (unless the sandbox refused what it tried)
        try:
            sandbox.raise_if_refused(exc)
        except sandbox.SandboxRefused as refused:
            writer.failure(request_id, refused)
            return
        writer.failure(request_id, ProtocolError(codes.INTERNAL, f"{type(exc).__name__}: {exc}", traceback_tail(exc)))


def op_name(line: str) -> str:
    """The op a request line names, for messages ('?' when it names none)."""
    try:
        op = json.loads(line).get("op")
    except (ValueError, AttributeError):
        return "?"
    return op if isinstance(op, str) else "?"


def main(stdin: TextIO = sys.stdin) -> int:
    """Serve requests from stdin until EOF; user prints go to stderr, protocol lines to the real stdout."""
    protocol_fd = os.dup(1)
    sys.stdout.flush()
    os.dup2(2, 1)  # C-level and Python writes to fd 1 now land on stderr
    sys.stdout = sys.stderr
    writer = Writer(protocol_fd)
    threads.apply()
    for line in stdin:
        if line.strip():
            handle(line, writer)
    return 0
