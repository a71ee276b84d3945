"""Reading a user's references file (inputs and outputs recorded where the model was trained) into cases."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from . import safetensors

CASE_NAME = re.compile(r"[a-z0-9_]+")
CASE_FORM = re.compile(r"([a-z0-9_]+)/(input|output)/(0|[1-9][0-9]*)")
SIMPLE_FORM = re.compile(r"(input|output)(?:\.(0|[1-9][0-9]*))?")
DEFAULT_CASE = "default"
ACCEPTED = (
    "<case>/input/<i> and <case>/output/<j> (case names [a-z0-9_]+, __metadata__.cases optional), "
    "or input and output (one of each, case default), or input.<i> and output.<j> (case default); "
    "indices count from 0 without gaps, also when written from R"
)
MAX_NAMED = 8  # offending names quoted in a message


class ReferencesInvalid(Exception):
    """The references file cannot be read as cases; the message names the file, the tensors and the fix."""


@dataclass
class RefCase:
    """One case: its name, input tensors and recorded output tensors, in index order."""

    name: str
    inputs: tuple[torch.Tensor, ...]
    outputs: list[torch.Tensor]


def quoted(names: list[str]) -> str:
    """Tensor names for a message, at most MAX_NAMED of them."""
    shown = ", ".join(repr(n) for n in names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")


def classify(name: str) -> tuple[str, str, str, int] | None:
    """(form, case, role, index) of a tensor name, or None when it fits no accepted form."""
    match = CASE_FORM.fullmatch(name)
    if match:
        return "case", match.group(1), match.group(2), int(match.group(3))
    match = SIMPLE_FORM.fullmatch(name)
    if match:
        return "simple", DEFAULT_CASE, match.group(1), int(match.group(2) or 0)
    return None


def indexed(
    path: str, case: str, role: str, slots: dict[int, str], tensors: dict[str, torch.Tensor]
) -> list[torch.Tensor]:
    """The tensors of one case's inputs or outputs in index order; a gap or a missing role is an error."""
    if not slots:
        raise ReferencesInvalid(
            f"{path}: case {case!r} has no {role} tensor (expected at least {role} index 0); accepted names: {ACCEPTED}"
        )
    expected = list(range(len(slots)))
    if sorted(slots) != expected:
        raise ReferencesInvalid(
            f"{path}: case {case!r} has {role} indices {sorted(slots)} (tensors "
            f"{quoted([slots[i] for i in sorted(slots)])}); expected {expected}, counted from 0 "
            f"without gaps; accepted names: {ACCEPTED}"
        )
    return [tensors[slots[i]] for i in expected]


def case_order(path: str, found: list[str], metadata: dict[str, str]) -> list[str]:
    """The case names in order: __metadata__.cases when given (it must match the tensors), else first appearance."""
    listed = metadata.get("cases")
    if listed is None:
        return found
    names = listed.split(",")
    bad = [n for n in names if not CASE_NAME.fullmatch(n)]
    if bad or len(set(names)) != len(names) or set(names) != set(found):
        raise ReferencesInvalid(
            f"{path}: __metadata__.cases = {listed!r} but the tensors name the cases "
            f"{found} (expected every case once, names [a-z0-9_]+, comma-separated, and "
            "tensors for each); fix the list or leave it out"
        )
    return names


def read(path: str) -> list[RefCase]:
    """Read a references file in any accepted naming form into cases (raises ReferencesInvalid)."""
    try:
        tensors, metadata = safetensors.load(path)
    except (ValueError, KeyError, TypeError, RuntimeError, OSError) as exc:
        raise ReferencesInvalid(
            f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc}); "
            "expected one written by the safetensors package (R or Python)"
        ) from exc
    if not tensors:
        raise ReferencesInvalid(f"{path} holds no tensors; accepted names: {ACCEPTED}")
    parsed = {name: classify(name) for name in tensors}
    unknown = [name for name, p in parsed.items() if p is None]
    if unknown:
        raise ReferencesInvalid(
            f"{path}: tensor names {quoted(unknown)} fit no accepted form; accepted names: {ACCEPTED}"
        )
    forms = {p[0] for p in parsed.values() if p}
    if len(forms) > 1:
        raise ReferencesInvalid(
            f"{path}: tensor names {quoted(sorted(parsed))} mix the <case>/input/<i> form with "
            f"the simple input/output form (expected one form per file); accepted names: {ACCEPTED}"
        )
    slots: dict[str, dict[str, dict[int, str]]] = {}
    for name, p in parsed.items():
        assert p is not None
        _, case, role, index = p
        roles = slots.setdefault(case, {"input": {}, "output": {}})
        if index in roles[role]:
            raise ReferencesInvalid(
                f"{path}: tensors {quoted([roles[role][index], name])} both give {role} {index} "
                f"of case {case!r} (expected one tensor per index); keep one of them"
            )
        roles[role][index] = name
    return [
        RefCase(
            case,
            tuple(indexed(path, case, "input", slots[case]["input"], tensors)),
            indexed(path, case, "output", slots[case]["output"], tensors),
        )
        for case in case_order(path, list(slots), metadata)
    ]
