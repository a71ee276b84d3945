"""Tracer warnings raised from the user's own code: tensors turned into Python values while tracing."""

from __future__ import annotations

import os
import warnings
from typing import Any, Dict, List, Optional

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


def capture_kind(message: str) -> Optional[str]:
    """"bool" or "number" for a tensor-to-Python-value warning, else None."""
    text = message.lower()
    for fragment, kind in KIND_BY_FRAGMENT:
        if fragment in text:
            return kind
    return None


def captures(records: List[warnings.WarningMessage], model_path: str) -> List[Dict[str, Any]]:
    """The user-file TracerWarnings that turn a tensor into a Python value, as the protocol reports them."""
    out: List[Dict[str, Any]] = []
    for record in records:
        kind = capture_kind(str(record.message))
        if kind is None or not is_tracer_warning(record) or not is_user_file(record.filename, model_path):
            continue
        entry = {"kind": kind, "message": " ".join(str(record.message).split()),
                 "filename": record.filename, "lineno": record.lineno}
        if entry not in out:
            out.append(entry)
    return out


def where(capture: Dict[str, Any]) -> str:
    """file:line of a capture, for messages."""
    return f"{os.path.basename(str(capture.get('filename', '?')))}:{capture.get('lineno', '?')}"


def describe(items: List[Dict[str, Any]]) -> str:
    """Captures in words: 'model.py:12 (Python float), ...'."""
    words = {"bool": "Python boolean", "number": "Python number"}
    return ", ".join(f"{where(c)} ({words.get(str(c.get('kind')), c.get('kind'))})" for c in items)
