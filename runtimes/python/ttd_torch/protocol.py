"""Protocol messages of the torch stage server: errors, argument messages, the op registry, line writer."""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from . import PROTOCOL_VERSION, codes

TRACEBACK_LINES = 15


class ProtocolError(Exception):
    """A failure with a protocol error code (model_error, bad_request, internal)."""

    def __init__(self, code: str, message: str, tb: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = " ".join(message.split("\n"))  # the protocol promises one line
        self.tb = tb


class BadRequest(ProtocolError):
    """The request did not fit the protocol."""

    def __init__(self, message: str) -> None:
        super().__init__(codes.BAD_REQUEST, message)


class ModelError(ProtocolError):
    """The user's model file failed to import, lacks a function, or raised."""

    def __init__(self, message: str, tb: str = "") -> None:
        super().__init__(codes.MODEL_ERROR, message, tb)


def traceback_tail(exc: BaseException, lines: int = TRACEBACK_LINES) -> str:
    """The last lines of an exception's formatted traceback."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])


def finite_or_none(value: float) -> float | None:
    """A float for JSON, or None when it is NaN or infinite (JSON has no such numbers)."""
    value = float(value)
    return value if math.isfinite(value) else None


MAX_VALUE_CHARS = 200  # of a value quoted in a message


def value_words(path: str, value: Any, expected: str) -> str:
    """The one form of an argument error, hand-written or from the contract: `args.<path> = <value>; expected <what>`"""
    shown = repr(value)
    if len(shown) > MAX_VALUE_CHARS:
        shown = shown[:MAX_VALUE_CHARS] + " …"
    return f"{path} = {shown}; expected {expected}"


def missing_words(path: str, expected: str) -> str:
    """The one form of a missing argument: `args.<path> is missing; expected <what>`."""
    return f"{path} is missing; expected {expected}"


def bad_value(path: str, value: Any, expected: str) -> BadRequest:
    """A bad_request in the form of value_words."""
    return BadRequest(value_words(path, value, expected))


def missing(path: str, expected: str) -> BadRequest:
    """A bad_request in the form of missing_words."""
    return BadRequest(missing_words(path, expected))


# The JSON Schema words for Python types, so that hand-written and contract checks read alike.
TYPE_WORDS = {
    str: "a string",
    float: "a number",
    int: "an integer",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
}


def require(args: Mapping[str, Any], key: str, kind: type, where: str = "args") -> Any:
    """Fetch a required argument of the given type or raise bad_request."""
    words = TYPE_WORDS.get(kind, f"a {kind.__name__}")
    if key not in args:
        raise missing(f"{where}.{key}", words)
    value = args[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise bad_value(f"{where}.{key}", value, words)
    return value


Emit = Callable[[dict[str, Any]], None]  # sends one progress event of the running request
Handler = Callable[[dict[str, Any], Emit], dict[str, Any]]  # (args, emit) -> result

OPS: dict[str, Handler] = {}  # op name -> handler; filled by @op as the server imports the package's modules


def op(name: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Register the decorated function as the handler of op `name` (returned unchanged); a function of
    `(args)` alone is adapted to `(args, emit)`. Its args arrive checked against contract.json, with the
    contract's defaults filled in and the generic path/directory/device checks passed (docs/protocol.md)."""

    def register(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        if name in OPS:
            raise RuntimeError(f"op {name!r} is registered twice ({OPS[name].__module__} and {fn.__module__})")
        if len(inspect.signature(fn).parameters) >= 2:
            OPS[name] = fn
        else:

            @functools.wraps(fn)
            def without_emit(args: dict[str, Any], emit: Emit) -> dict[str, Any]:
                return fn(args)

            OPS[name] = without_emit
        return fn

    return register


class Writer:
    """Writes protocol lines to the private stdout handle, one flushed line each."""

    def __init__(self, fd: int) -> None:
        self.stream = os.fdopen(fd, "w", encoding="utf-8")

    def line(self, message: dict[str, Any]) -> None:
        """Write one JSON message as a line."""
        self.stream.write(json.dumps(message, allow_nan=False) + "\n")
        self.stream.flush()

    def event(self, request_id: str, data: dict[str, Any]) -> None:
        """Write a progress event for a request."""
        self.line({"v": PROTOCOL_VERSION, "id": request_id, "event": "progress", "data": data})

    def success(self, request_id: str, result: dict[str, Any], ms: float | None = None) -> None:
        """Write a success response; `ms` is the time the op itself took (the torch work), when measured."""
        line: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result}
        if ms is not None:
            line["ms"] = round(ms, 3)
        self.line(line)

    def failure(self, request_id: str, error: ProtocolError) -> None:
        """Write a failure response."""
        self.line(
            {
                "v": PROTOCOL_VERSION,
                "id": request_id,
                "ok": False,
                "error": {"code": error.code, "message": error.message, "traceback": error.tb},
            }
        )
