"""The ops' argument and result contract: contract.json (JSON Schema that the TypeScript side generates from its zod
schemas) and a strict validator for the subset of JSON Schema draft 2020-12 that zod emits."""

from __future__ import annotations

import copy
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from . import codes
from .protocol import BadRequest, ProtocolError, missing_words, value_words

CONTRACT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "contract.json")
CONTRACT_ENV = "TTD_TORCH_CONTRACT"  # another contract file (tests of the stdio and fork servers use it)
FORMAT = "ttd-contract/1"
PARTS = ("args", "result")
ANNOTATIONS = frozenset(("$schema", "$id", "description", "title", "default", "examples"))
CONTAINERS = frozenset(("$defs", "definitions"))  # hold schemas reached through $ref only
TYPES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "null": "null",
}
MAX_REF_DEPTH = 64  # $ref hops without consuming input: deeper means a schema that refers to itself in a loop
Schema = Any  # a dict, or True/False (boolean schemas: zod emits "items": false for tuples)


def supported(schema: Any, where: str) -> None:
    """Raise SchemaError unless schema is an object whose keywords are all in the supported subset."""
    if not isinstance(schema, dict):
        raise SchemaError(f"schema at {where} is a {type(schema).__name__}; expected an object or a boolean")
    unknown = [k for k in schema if k not in KEYWORDS and k not in ANNOTATIONS and k not in CONTAINERS]
    if unknown:
        raise SchemaError(
            f"keywords {unknown} (at {where}) are outside the supported JSON Schema subset; "
            "teach ttd_torch/contract.py what they mean"
        )


class SchemaError(Exception):
    """The schema is outside the supported subset (an unknown keyword, a bad $ref): our bug, never the caller's."""


class Invalid(Exception):
    """A value that breaks a schema: where, what came and what was expected."""

    def __init__(self, path: str, value: Any, expected: str, kind: str = "value", absent: bool = False) -> None:
        super().__init__(f"{path}: expected {expected}")
        self.path, self.value, self.expected, self.kind, self.absent = path, value, expected, kind, absent

    def message(self) -> str:
        """`args.<path> = <value>; expected <what>` (or `... is missing; ...`): protocol's one form."""
        return (
            missing_words(self.path, self.expected)
            if self.absent
            else value_words(self.path, self.value, self.expected)
        )


def validate(schema: Schema, value: Any, path: str = "args", root: Schema | None = None) -> None:
    """Raise Invalid when value breaks schema (refs resolve within root, default schema); SchemaError on an
    unsupported schema."""
    Validator(schema if root is None else root).check(schema, value, path, 0)


def check_schema(schema: Schema, where: str = "#") -> None:
    """Raise SchemaError when schema, or any schema inside it, uses a keyword or form outside the subset."""
    Validator(schema).walk(schema, where)


def type_ok(name: str, value: Any) -> bool:
    """Whether value is of the JSON type name (a bool is no number; 3.0 is an integer; NaN is no number)."""
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, (list, tuple))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False  # JSON has no NaN or Infinity
    return name == "number" or isinstance(value, int) or value.is_integer()


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: 1 == 1.0, but True is not 1; arrays and objects compared deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def number_words(n: Any) -> str:
    """A bound for a message: 1 rather than 1.0."""
    return str(int(n)) if isinstance(n, float) and n.is_integer() else str(n)


def key_path(path: str, key: str) -> str:
    """args.train.lr, or args.params['odd key'] for keys that are not identifiers."""
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"


class Validator:
    """Validation against one schema document (the root that local $refs point into)."""

    def __init__(self, root: Schema) -> None:
        self.root = root

    def resolve(self, ref: Any) -> Schema:
        """The schema a local $ref ("#", "#/$defs/X", "#/definitions/X", any JSON pointer into root) names."""
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
            raise SchemaError(f'$ref {ref!r} is not a local reference (expected "#" or "#/...")')
        node = self.root
        for part in ref[2:].split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise SchemaError(f"$ref {ref!r} does not resolve (no {part!r})")
        return node

    def types(self, schema: dict[str, Any]) -> list[str] | None:
        """The schema's type keyword as a list, or None."""
        kind = schema.get("type")
        if kind is None:
            return None
        names = [kind] if isinstance(kind, str) else kind
        if not isinstance(names, list) or not names or any(n not in TYPES for n in names):
            raise SchemaError(f"type {kind!r}; expected one of {sorted(TYPES)} or a list of them")
        return names

    def describe(self, schema: Schema, depth: int = 0) -> str:
        """What a schema expects, in a few words (for a missing value or a failed alternative)."""
        if schema is True or schema == {}:
            return "any value"
        if schema is False:
            return "nothing (no value allowed here)"
        if not isinstance(schema, dict) or depth > 4:
            return "a value"
        if "const" in schema:
            return repr(schema["const"])
        if "enum" in schema:
            return f"one of {list(schema['enum'])!r}"
        if "$ref" in schema:
            return self.describe(self.resolve(schema["$ref"]), depth + 1)
        names = self.types(schema)
        if names:
            return " or ".join(self.bounded(schema, n) for n in names)
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                return " or ".join(self.describe(s, depth + 1) for s in schema[key])
        return "a value"

    def bounded(self, schema: dict[str, Any], name: str) -> str:
        """A type's words with its numeric bounds: "an integer > 0", "a number >= 0"."""
        words = TYPES[name]
        if name in ("number", "integer"):
            for key, op in (("minimum", ">="), ("exclusiveMinimum", ">")):
                if key in schema and abs(schema[key]) < 2**53 - 1:  # zod's safe-integer bounds say nothing
                    words += f" {op} {number_words(schema[key])}"
        return words

    def check(self, schema: Schema, value: Any, path: str, hops: int) -> None:
        """Validate value against schema at path; hops counts $ref steps taken without descending."""
        if schema is True:
            return
        if schema is False:
            raise Invalid(path, value, "nothing here (not allowed by the contract)")
        supported(schema, path)
        if "$ref" in schema:
            if hops >= MAX_REF_DEPTH:
                raise SchemaError(f"$ref {schema['$ref']!r} at {path} loops without consuming input")
            self.check(self.resolve(schema["$ref"]), value, path, hops + 1)
        names = self.types(schema)
        if names is not None and not any(type_ok(n, value) for n in names):
            raise Invalid(path, value, " or ".join(self.bounded(schema, n) for n in names), "type")
        for key in ORDER:
            if key in schema:
                KEYWORDS[key](self, schema, value, path, hops)

    def walk(self, schema: Schema, where: str) -> None:
        """Check every keyword of schema and of the schemas inside it (without a value)."""
        if isinstance(schema, bool):
            return
        supported(schema, where)
        self.types(schema)
        for key, ok in SHAPES.items():
            if key in schema and not ok(schema[key]):
                raise SchemaError(f"{key} = {schema[key]!r} at {where} is not a valid {key} value")
        if "$ref" in schema:
            self.resolve(schema["$ref"])
        if "pattern" in schema:
            compiled(schema["pattern"])
        for key in ("properties", *CONTAINERS):
            if key in schema:
                if not isinstance(schema[key], dict):
                    raise SchemaError(f"{key} at {where} is not an object of schemas")
                for name, sub in schema[key].items():
                    self.walk(sub, f"{where}/{key}/{name}")
        for key in ("prefixItems", "anyOf", "oneOf", "allOf"):
            if key in schema:
                if not isinstance(schema[key], list) or (key != "prefixItems" and not schema[key]):
                    raise SchemaError(f"{key} at {where} is not a non-empty list of schemas")
                for i, sub in enumerate(schema[key]):
                    self.walk(sub, f"{where}/{key}/{i}")
        for key in ("items", "additionalProperties", "propertyNames"):
            if key in schema:
                self.walk(schema[key], f"{where}/{key}")


def compiled(pattern: Any) -> re.Pattern[str]:
    """A pattern keyword compiled (cached); zod's patterns are ECMAScript, which Python's re reads for the
    common subset; one it cannot read is a SchemaError, never a silent pass."""
    if not isinstance(pattern, str):
        raise SchemaError(f"pattern {pattern!r} is not a string")
    found = PATTERNS.get(pattern)
    if found is None:
        try:
            found = PATTERNS[pattern] = re.compile(pattern)
        except re.error as exc:
            raise SchemaError(f"pattern {pattern!r} is not a regular expression Python can run ({exc})") from exc
    return found


PATTERNS: dict[str, re.Pattern[str]] = {}

Check = Callable[[Validator, dict[str, Any], Any, str, int], None]


def k_enum(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
    if not any(json_equal(value, option) for option in schema["enum"]):
        raise Invalid(path, value, f"one of {list(schema['enum'])!r}", "const")


def k_const(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
    if not json_equal(value, schema["const"]):
        raise Invalid(path, value, repr(schema["const"]), "const")


def numeric(value: Any) -> bool:
    """Whether a numeric keyword applies (JSON Schema: numeric keywords ignore other types)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def bound(key: str, op: str, holds: Callable[[Any, Any], bool]) -> Check:
    """A numeric bound keyword: minimum, maximum, exclusiveMinimum, exclusiveMaximum."""

    def check(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
        limit = schema[key]
        if numeric(value) and not holds(value, limit):
            kind = "an integer" if "integer" in (v.types(schema) or []) else "a number"
            raise Invalid(path, value, f"{kind} {op} {number_words(limit)}")

    return check


def length(key: str, words: Callable[[int], str], holds: Callable[[int, int], bool], of: str) -> Check:
    """A size keyword: minLength/maxLength (strings), minItems/maxItems (arrays)."""

    def check(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
        applies = isinstance(value, str) if of == "string" else isinstance(value, (list, tuple))
        if applies and not holds(len(value), schema[key]):
            raise Invalid(path, value, words(schema[key]))

    return check


def k_pattern(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
    if isinstance(value, str) and not compiled(schema["pattern"]).search(value):
        raise Invalid(path, value, f"a string matching /{schema['pattern']}/")


def k_required(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
    if not isinstance(value, dict):
        return
    props = schema.get("properties") or {}
    for key in schema["required"]:
        if key not in value:
            raise Invalid(key_path(path, key), None, v.describe(props.get(key, True)), "missing", absent=True)


def k_properties(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
    if isinstance(value, dict):
        for key, sub in schema["properties"].items():
            if key in value:
                v.check(sub, value[key], key_path(path, key), 0)


def k_additional(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
    if not isinstance(value, dict):
        return
    known = schema.get("properties") or {}
    extra = schema["additionalProperties"]
    for key in value:
        if key in known:
            continue
        if extra is False:
            allowed = ", ".join(known) or "none"
            raise Invalid(key_path(path, key), value[key], f"no such key (the keys allowed in {path}: {allowed})")
        v.check(extra, value[key], key_path(path, key), 0)


def k_property_names(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
    if isinstance(value, dict):
        for key in value:
            v.check(schema["propertyNames"], key, f"{path} key {key!r}", 0)


def k_prefix_items(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
    if isinstance(value, (list, tuple)):
        for i, (sub, item) in enumerate(zip(schema["prefixItems"], value, strict=False)):
            v.check(sub, item, f"{path}[{i}]", 0)


def k_items(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
    if isinstance(value, (list, tuple)):
        start = len(schema.get("prefixItems") or [])
        for i in range(start, len(value)):
            if schema["items"] is False:
                raise Invalid(path, value, f"an array of at most {start} items")
            v.check(schema["items"], value[i], f"{path}[{i}]", 0)


def alternatives(v: Validator, schemas: list[Schema], value: Any, path: str, hops: int) -> tuple[int, list[Invalid]]:
    """(how many alternatives value fits, the failures of the others)."""
    fits, failures = 0, []
    for sub in schemas:
        try:
            v.check(sub, value, path, hops)
            fits += 1
        except Invalid as exc:
            failures.append(exc)
    return fits, failures


def depth(exc: Invalid) -> int:
    """How far into the value a failure is: the steps of its path (args.a.b[2] is 3)."""
    return exc.path.count(".") + exc.path.count("[") + exc.path.count(" key ")


def closest(v: Validator, schemas: list[Schema], failures: list[Invalid], value: Any, path: str) -> Invalid:
    """The failure to report when no alternative fits: the one that got deepest into the value (past a
    discriminator that matched, not one that did not); alternatives failing alike are named together."""
    score = lambda e: (depth(e), e.kind not in ("const", "type"))  # noqa: E731
    top = max(score(e) for e in failures)
    best = [e for e in failures if score(e) == top]
    first = best[0]
    if first.kind not in ("const", "type") or len({e.path for e in best}) > 1:
        return first
    if first.path == path:
        return Invalid(path, value, " or ".join(dict.fromkeys(v.describe(s) for s in schemas)), first.kind)
    return Invalid(first.path, first.value, " or ".join(dict.fromkeys(e.expected for e in best)), first.kind)


def k_any_of(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
    fits, failures = alternatives(v, schema["anyOf"], value, path, hops)
    if not fits:
        raise closest(v, schema["anyOf"], failures, value, path)


def k_one_of(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
    fits, failures = alternatives(v, schema["oneOf"], value, path, hops)
    if not fits:
        raise closest(v, schema["oneOf"], failures, value, path)
    if fits > 1:
        raise Invalid(path, value, f"a value that fits exactly one of the oneOf alternatives (it fits {fits})")


def k_all_of(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
    for sub in schema["allOf"]:
        v.check(sub, value, path, hops)


def noop(v: Validator, schema: dict[str, Any], value: Any, path: str, hops: int) -> None:
    """type and $ref are checked before the other keywords."""


KEYWORDS: dict[str, Check] = {
    "type": noop,
    "$ref": noop,
    "enum": k_enum,
    "const": k_const,
    "minimum": bound("minimum", ">=", lambda x, n: x >= n),
    "maximum": bound("maximum", "<=", lambda x, n: x <= n),
    "exclusiveMinimum": bound("exclusiveMinimum", ">", lambda x, n: x > n),
    "exclusiveMaximum": bound("exclusiveMaximum", "<", lambda x, n: x < n),
    "minLength": length("minLength", lambda n: f"a string of at least {n} characters", lambda a, n: a >= n, "string"),
    "maxLength": length("maxLength", lambda n: f"a string of at most {n} characters", lambda a, n: a <= n, "string"),
    "minItems": length("minItems", lambda n: f"an array of at least {n} items", lambda a, n: a >= n, "array"),
    "maxItems": length("maxItems", lambda n: f"an array of at most {n} items", lambda a, n: a <= n, "array"),
    "pattern": k_pattern,
    "required": k_required,
    "properties": k_properties,
    "additionalProperties": k_additional,
    "propertyNames": k_property_names,
    "prefixItems": k_prefix_items,
    "items": k_items,
    "anyOf": k_any_of,
    "oneOf": k_one_of,
    "allOf": k_all_of,
}
# Sizes and discriminating values before the contents, so a message names the outermost problem first.
ORDER = (
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "prefixItems",
    "items",
    "allOf",
    "anyOf",
    "oneOf",
)


def is_count(x: Any) -> bool:
    """A non-negative integer (a bool is none)."""
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


# What the keywords that hold no schema must hold (checked once, when the contract is read).
SHAPES: dict[str, Callable[[Any], bool]] = {
    "required": lambda x: isinstance(x, list) and all(isinstance(k, str) for k in x),
    "enum": lambda x: isinstance(x, list) and len(x) > 0,
    **{k: numeric for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")},
    **{k: is_count for k in ("minLength", "maxLength", "minItems", "maxItems")},
}


class Contract:
    """The parsed contract.json: each op's args and result schema."""

    def __init__(self, ops: Mapping[str, Mapping[str, Schema]], path: str) -> None:
        self.ops, self.path = ops, path

    def schema(self, op: str, part: str) -> Schema | None:
        """The op's args or result schema, or None when the contract does not cover it."""
        entry = self.ops.get(op)
        return None if entry is None else entry.get(part)


def parse(document: Any, path: str) -> Contract:
    """A contract from contract.json's content; every schema is walked once, so an unknown keyword fails here."""
    if not isinstance(document, dict) or document.get("format") != FORMAT or not isinstance(document.get("ops"), dict):
        raise SchemaError(f'{path} is not a {FORMAT} document (expected {{"format": "{FORMAT}", "ops": {{...}}}})')
    for op, entry in document["ops"].items():
        if not isinstance(entry, dict) or set(entry) - set(PARTS):
            raise SchemaError(f"{path}: ops.{op} must be an object with keys from {list(PARTS)}")
        for part, schema in entry.items():
            Validator(schema).walk(schema, f"{path}#/ops/{op}/{part}")
    return Contract(document["ops"], path)


_loaded: dict[str, Contract | None] = {}


def default_path() -> str:
    """$TTD_TORCH_CONTRACT when set, else contract.json beside this module."""
    return os.environ.get(CONTRACT_ENV) or CONTRACT_PATH


def load(path: str | None = None) -> Contract | None:
    """The contract at path (default_path()), read once per process; None when the file does not exist
    (every request then fails: see required())."""
    path = path or default_path()
    if path not in _loaded:
        if not os.path.exists(path):
            return None  # not cached: a contract generated later is picked up
        try:
            with open(path, encoding="utf-8") as src:
                document = json.load(src)
        except (OSError, ValueError) as exc:
            raise SchemaError(f"{path} cannot be read as JSON ({type(exc).__name__}: {exc})") from exc
        _loaded[path] = parse(document, path)
    return _loaded[path]


def contract_failure(exc: SchemaError) -> ProtocolError:
    """A contract that cannot be used is our bug: an internal error."""
    return ProtocolError(codes.INTERNAL, f"the op contract is unusable: {exc}")


def required(path: str | None = None) -> Contract:
    """The contract, or an internal error when its file is missing: no op runs unchecked."""
    found = load(path)
    if found is None:
        raise ProtocolError(
            codes.INTERNAL, f"contract.json missing; run make setup (looked for {path or default_path()})"
        )
    return found


def op_schema(op: str, part: str, path: str | None = None) -> Schema:
    """The op's args or result schema; an internal error when the contract lacks it (the op is ours, its schema
    belongs in lib/contract/ops.ts)."""
    try:
        found = required(path)
    except SchemaError as exc:
        raise contract_failure(exc) from exc
    schema = found.schema(op, part)
    if schema is None:
        raise ProtocolError(
            codes.INTERNAL,
            f"op {op!r} has no {part} schema in {found.path}; add it to lib/contract/ops.ts and run make setup",
        )
    return schema


def check_args(op: str, args: Any, path: str | None = None) -> None:
    """Raise BadRequest (args.<path> = <value>; expected ...) when args break the op's args schema."""
    schema = op_schema(op, "args", path)
    try:
        validate(schema, args, "args")
    except Invalid as exc:
        raise BadRequest(exc.message()) from None
    except SchemaError as exc:
        raise contract_failure(exc) from exc


def check_result(op: str, result: Any, path: str | None = None) -> None:
    """Raise an internal ProtocolError naming the op and the path when a result breaks the op's result schema."""
    schema = op_schema(op, "result", path)
    try:
        validate(schema, result, "result")
    except Invalid as exc:
        raise ProtocolError(
            codes.INTERNAL, f"op {op!r} returned a result that breaks the contract: {exc.message()}"
        ) from None
    except SchemaError as exc:
        raise contract_failure(exc) from exc


def with_defaults(op: str, args: dict[str, Any], path: str | None = None) -> dict[str, Any]:
    """args (already checked) with each absent top-level argument that has a `default` in the op's args schema
    filled in (a fresh copy of it, so no request shares a mutable default)."""
    schema = op_schema(op, "args", path)
    root = Validator(schema)
    properties = root.resolve(schema["$ref"]) if "$ref" in schema else schema
    out = dict(args)
    for key, sub in (properties.get("properties") or {}).items():
        if key not in out and isinstance(sub, dict) and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
    return out
