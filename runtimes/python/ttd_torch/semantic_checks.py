"""The argument checks a JSON Schema cannot state, done the same way for every op, by argument name: files and
directories that must exist, devices torch must accept (docs/protocol.md, section 1, "Checks")."""

from __future__ import annotations

import os
from typing import Any

import torch

from .contract import Invalid, Schema, SchemaError, Validator, contract_failure, key_path, op_schema
from .protocol import bad_value


def kind_of(key: str) -> str | None:
    """What a contract-declared argument's name says its string value is: "file" (`path`, `*_path`), "dir"
    (`*_dir`), "device" (`device`, `*_device`), or None."""
    if key == "path" or key.endswith("_path"):
        return "file"
    if key.endswith("_dir"):
        return "dir"
    if key == "device" or key.endswith("_device"):
        return "device"
    return None


def check_value(kind: str, value: Any, path: str) -> None:
    """Raise bad_request when a string argument is not what its name says."""
    if not isinstance(value, str):
        return  # null, or a type the contract allowed: nothing to say
    if kind == "device":
        try:
            torch.device(value)
        except (RuntimeError, ValueError) as exc:
            raise bad_value(path, value, f"a torch device such as 'cpu' or 'cuda' ({exc})") from None
        return
    if not os.path.isabs(value):
        raise bad_value(path, value, "an absolute path")
    if kind == "dir" and not os.path.isdir(value):
        raise bad_value(path, value, "an existing directory")
    if kind == "file" and not os.path.isfile(value):
        raise bad_value(path, value, "an existing file")


def fits(validator: Validator, schema: Schema, value: Any, path: str) -> bool:
    """Whether value passes schema (to follow only the alternatives of an anyOf/oneOf that apply)."""
    try:
        validator.check(schema, value, path, 0)
        return True
    except Invalid:
        return False


def walk(validator: Validator, schema: Schema, value: Any, path: str) -> None:
    """Check the arguments the schema declares by name (`properties`), at any depth through objects, arrays and
    the alternatives value fits; keys of free-form records (params) are the user's and are not looked at."""
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        walk(validator, validator.resolve(schema["$ref"]), value, path)
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            if fits(validator, sub, value, path):
                walk(validator, sub, value, path)
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                kind = kind_of(key)
                if kind is not None:
                    check_value(kind, value[key], key_path(path, key))
                walk(validator, sub, value[key], key_path(path, key))
    if isinstance(value, (list, tuple)):
        prefix = schema.get("prefixItems") or []
        for i, item in enumerate(value):
            sub = prefix[i] if i < len(prefix) else schema.get("items")
            walk(validator, sub, item, f"{path}[{i}]")


def check_args(op: str, args: dict[str, Any], contract_path: str | None = None) -> None:
    """Raise bad_request for the first argument of op (already checked against its schema) that names a file, a
    directory or a device that is not one."""
    schema = op_schema(op, "args", contract_path)
    try:
        walk(Validator(schema), schema, args, "args")
    except SchemaError as exc:
        raise contract_failure(exc) from exc
