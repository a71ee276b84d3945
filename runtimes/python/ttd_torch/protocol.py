"""Protocol messages of the torch stage server: errors, argument checks, line writer."""

from __future__ import annotations

import json
import math
import os
import traceback
from typing import Any, Dict, List, Mapping, Optional

from . import PROTOCOL_VERSION

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
        super().__init__("bad_request", message)


class ModelError(ProtocolError):
    """The user's model file failed to import, lacks a function, or raised."""

    def __init__(self, message: str, tb: str = "") -> None:
        super().__init__("model_error", message, tb)


def traceback_tail(exc: BaseException, lines: int = TRACEBACK_LINES) -> str:
    """The last lines of an exception's formatted traceback."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])


def finite_or_none(value: float) -> Optional[float]:
    """A float for JSON, or None when it is NaN or infinite (JSON has no such numbers)."""
    value = float(value)
    return value if math.isfinite(value) else None


MAX_VALUE_CHARS = 200  # of a value quoted in a message


def value_words(path: str, value: Any, expected: str) -> str:
    """The one form of an argument error, for hand-written and contract checks: `args.<path> = <value>; expected <what>`."""
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
TYPE_WORDS = {str: "a string", float: "a number", int: "an integer", bool: "a boolean", dict: "an object",
              list: "an array"}


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


def require_path(args: Mapping[str, Any], key: str, is_dir: bool = False, where: str = "args") -> str:
    """Fetch a required absolute path that exists (a directory when is_dir)."""
    path = require(args, key, str, where)
    if not os.path.isabs(path):
        raise BadRequest(f"{where}.{key} = {path!r}; expected an absolute path")
    if is_dir and not os.path.isdir(path):
        raise BadRequest(f"{where}.{key} = {path!r}; expected an existing directory")
    if not is_dir and not os.path.isfile(path):
        raise BadRequest(f"{where}.{key} = {path!r}; expected an existing file")
    return path


def require_int_list(args: Mapping[str, Any], key: str) -> List[int]:
    """Fetch a required list of unique positive integers (it may be empty)."""
    values = require(args, key, list)
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise bad_value(f"args.{key}[{i}]", v, "an integer >= 1")
        if v in values[:i]:
            raise bad_value(f"args.{key}[{i}]", v, f"a value not already in args.{key} (got {values!r})")
    return values


class Writer:
    """Writes protocol lines to the private stdout handle, one flushed line each."""

    def __init__(self, fd: int) -> None:
        self.stream = os.fdopen(fd, "w", encoding="utf-8")

    def line(self, message: Dict[str, Any]) -> None:
        """Write one JSON message as a line."""
        self.stream.write(json.dumps(message, allow_nan=False) + "\n")
        self.stream.flush()

    def event(self, request_id: str, data: Dict[str, Any]) -> None:
        """Write a progress event for a request."""
        self.line({"v": PROTOCOL_VERSION, "id": request_id, "event": "progress", "data": data})

    def success(self, request_id: str, result: Dict[str, Any], ms: Optional[float] = None) -> None:
        """Write a success response; `ms` is the time the op itself took (the torch work), when measured."""
        line: Dict[str, Any] = {"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result}
        if ms is not None:
            line["ms"] = round(ms, 3)
        self.line(line)

    def failure(self, request_id: str, error: ProtocolError) -> None:
        """Write a failure response."""
        self.line({"v": PROTOCOL_VERSION, "id": request_id, "ok": False,
                   "error": {"code": error.code, "message": error.message, "traceback": error.tb}})
