"""Tracer warnings raised from the user's own code: tensors turned into Python values while tracing."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch

TORCH_DIR = os.path.dirname(os.path.realpath(torch.__file__))
PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))

# Fragments of TracerWarning messages -> capture kind. A Python boolean decides a branch (control flow);
# any other Python value (float, int, index, .item(), len) is frozen into the graph as a constant.
KIND_BY_FRAGMENT = (
    ("python boolean", "bool"),
    ("python float", "number"),
    ("python integer", "number"),
    ("python index", "number"),
    ("python number", "number"),
    ("using len to get tensor shape", "number"),
)


def is_tracer_warning(record: warnings.WarningMessage) -> bool:
    """True for torch.jit.TracerWarning (and its subclasses)."""
    tracer = getattr(torch.jit, "TracerWarning", None)
    return tracer is not None and issubclass(record.category, tracer)


def is_user_file(filename: str, model_path: str) -> bool:
    """True for the model file and files beside it; never torch's own files or ours."""
    path = os.path.realpath(filename)
    if path.startswith((TORCH_DIR + os.sep, PACKAGE_DIR + os.sep)):
        return False
    model = os.path.realpath(model_path)
    return path == model or path.startswith(os.path.dirname(model) + os.sep)


def capture_kind(message: str) -> str | None:
    """ "bool" or "number" for a tensor-to-Python-value warning, else None."""
    text = message.lower()
    for fragment, kind in KIND_BY_FRAGMENT:
        if fragment in text:
            return kind
    return None


def captures(records: list[warnings.WarningMessage], model_path: str) -> list[dict[str, Any]]:
    """The user-file TracerWarnings that turn a tensor into a Python value, as the protocol reports them."""
    out: list[dict[str, Any]] = []
    for record in records:
        kind = capture_kind(str(record.message))
        if kind is None or not is_tracer_warning(record) or not is_user_file(record.filename, model_path):
            continue
        entry = {
            "kind": kind,
            "message": " ".join(str(record.message).split()),
            "filename": record.filename,
            "lineno": record.lineno,
        }
        if entry not in out:
            out.append(entry)
    return out


def tracer_warnings(records: list[warnings.WarningMessage], model_path: str) -> list[dict[str, Any]]:
    """Every TracerWarning torch raised from the user's files (once each), as the protocol reports them."""
    out: list[dict[str, Any]] = []
    for record in records:
        if not is_tracer_warning(record) or not is_user_file(record.filename, model_path):
            continue
        entry = {"message": " ".join(str(record.message).split()), "filename": record.filename, "lineno": record.lineno}
        if entry not in out:
            out.append(entry)
    return out


def where(capture: dict[str, Any]) -> str:
    """file:line of a capture, for messages."""
    return f"{os.path.basename(str(capture.get('filename', '?')))}:{capture.get('lineno', '?')}"


def describe(items: list[dict[str, Any]]) -> str:
    """Captures in words: 'model.py:12 (Python float), ...'."""
    words = {"bool": "Python boolean", "number": "Python number"}
    return ", ".join(f"{where(c)} ({words.get(str(c.get('kind')), c.get('kind'))})" for c in items)


# construct -> (what it is, in words; the fix for it). One entry per construct dependence.py reports.
CONSTRUCTS: dict[str, tuple] = {
    "if": (
        "a Python if on a tensor",
        "compute both branches and choose with torch.where(condition, a, b) (or clamp, or a mask), so that the "
        "choice stays in the graph",
    ),
    "while": (
        "a Python while loop on a tensor",
        "a loop whose count depends on tensor values cannot be traced: use trace.mode: script, or a fixed "
        "number of steps with torch.where choosing per step",
    ),
    "assert": (
        "an assert on a tensor",
        "a trace drops the check and keeps only the example's outcome: validate inputs before calling the model",
    ),
    "bool": (
        "bool() of a tensor (or and/or/not on tensors)",
        "keep the condition a tensor (torch.logical_and, torch.where) instead of a Python bool",
    ),
    "float": (
        "float() of a tensor",
        "keep it a tensor: use the 0-dim tensor in the arithmetic (e.g. y / x.abs().max() instead of "
        "y / float(x.abs().max()))",
    ),
    "int": (
        "int() of a tensor",
        "keep it a tensor (e.g. .long()) and use tensor ops; for a size use x.shape[0] or x.size(0) directly",
    ),
    "item": (
        ".item() of a tensor",
        "use the 0-dim tensor itself in the arithmetic (e.g. x - x.mean() instead of x - x.mean().item())",
    ),
    "tolist": (
        ".tolist() of a tensor",
        "keep the values in a tensor and use tensor ops (indexing, torch.gather, torch.where) instead of a Python list",
    ),
    "numpy": (
        ".numpy() of a tensor",
        "compute with torch ops instead of NumPy: what comes back through torch.from_numpy is a constant in the trace",
    ),
    "data": (
        ".data of a tensor",
        "use the tensor itself (or .detach() to stop gradients): the trace records .data as a constant "
        "holding the example's values",
    ),
    "tensor": (
        "torch.tensor() of tensors",
        "use torch.stack or torch.cat of the tensors: torch.tensor copies their values into a constant",
    ),
    "index": (
        "a Python list, tuple or range indexed by a tensor",
        "keep the table in a tensor (a buffer) and index it with the tensor (table[idx], "
        "torch.index_select or torch.gather)",
    ),
    "len": ("len() of a tensor", "use x.shape[0] or x.size(0), which stay symbolic in a trace"),
    "iter": (
        "iteration over a tensor",
        "use batched tensor ops: the trace unrolls the loop to the example's row count",
    ),
    "unknown": ("a tensor turned into a Python value", "keep the value a tensor and use tensor ops"),
}
SOURCE_WORDS = {
    "input": "computed from the inputs",
    "parameter": "computed from parameters and buffers only, the same on every input",
    "constant": "computed from constants only, the same on every input",
    "shape": "a size or a row count, not the tensor's values",
    "unknown": "from a tensor whose origin could not be followed",
}


def construct_of_warning(message: str, kind: str) -> str:
    """The construct a TracerWarning names: len, int, float, bool or tolist (unknown otherwise)."""
    text = message.lower()
    for fragment, construct in (
        ("len", "len"),
        ("python integer", "int"),
        ("python index", "index"),
        ("python float", "float"),
        ("python list", "tolist"),
        ("numpy", "numpy"),
    ):
        if fragment in text:
            return construct
    return "bool" if kind == "bool" else "unknown"


def merge(sites: Sequence[Any] | None, warned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Captures as the trace op reports them: every site dependence.py found (with torch's warning text where it
    warned at the same line), then warnings at lines with no site. sites None: the analysis did not run, so a
    warning's source is unknown; with an analysis, a warning at a line where forward() took no value from a
    tensor comes from a size (x.size(0) is a tensor only while tracing)."""
    out: list[dict[str, Any]] = []
    lines = set()
    for site in sites or []:
        lines.add((os.path.realpath(site.filename), site.lineno))
        text = next(
            (
                w["message"]
                for w in warned
                if (os.path.realpath(w["filename"]), w["lineno"]) == (os.path.realpath(site.filename), site.lineno)
            ),
            None,
        )
        out.append(
            {
                "kind": site.kind,
                "construct": site.construct,
                "source": site.source,
                "affects_outputs": site.affects_outputs,
                "filename": site.filename,
                "lineno": site.lineno,
                "message": text or f"{CONSTRUCTS[site.construct][0]}, {SOURCE_WORDS[site.source]}",
            }
        )
    for w in warned:
        if (os.path.realpath(w["filename"]), w["lineno"]) in lines:
            continue
        out.append(
            {
                **w,
                "construct": construct_of_warning(w["message"], w["kind"]),
                "source": "unknown" if sites is None else "shape",
                "affects_outputs": None,
            }
        )
    return out


def words(capture: dict[str, Any]) -> str:
    """A capture in words: 'model.py:12 (Python boolean): a Python if on a tensor, computed from the inputs'."""
    construct = CONSTRUCTS.get(str(capture.get("construct")), CONSTRUCTS["unknown"])[0]
    source = SOURCE_WORDS.get(str(capture.get("source")), SOURCE_WORDS["unknown"])
    return f"{describe([capture])}: {construct}, {source}"


def fixes(items: list[dict[str, Any]]) -> str:
    """The fix for each distinct construct among the captures: 'at model.py:12, ...; at model.py:20, ...'."""
    seen: dict[str, list[str]] = {}
    for c in items:
        seen.setdefault(str(c.get("construct") or "unknown"), []).append(where(c))
    return "; ".join(
        f"at {', '.join(places)}: {CONSTRUCTS.get(construct, CONSTRUCTS['unknown'])[1]}"
        for construct, places in seen.items()
    )
