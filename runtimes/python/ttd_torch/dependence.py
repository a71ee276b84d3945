"""Which Python values forward() takes from tensors, and whether those tensors depend on the model's inputs.

torch.jit.trace records one run: a Python bool, number or list taken from a tensor becomes a constant (or the
branch it chose) in the graph. Probes only find that when they happen to take another path; this module
finds it directly. forward() runs on the tracing example under a TorchFunctionMode (public in torch 1.13 and
2.x) that labels every tensor computed from the inputs (or, failing that, from parameters and buffers) and
records where user code turns a tensor into a Python value. Each number taken from an input-dependent
tensor is then changed on a second run: if the outputs move, the graph froze a value it depends on.
"""

from __future__ import annotations

import functools
import linecache
import os
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from . import captures, data

# What a tensor is computed from; the highest label wins. UNSEEN: made where the mode could not see it (a plain
# tensor attribute, an op that bypasses __torch_function__), so it may hide anything but an input label.
CONSTANT, PARAMETER, UNSEEN, INPUT = 0, 1, 2, 3
SOURCES = {CONSTANT: "constant", PARAMETER: "parameter", UNSEEN: "unknown", INPUT: "input"}
TORCH_DIR = os.path.dirname(os.path.realpath(torch.__file__))
# torch's own Python frames between user code and this mode when a Tensor method dispatches (Tensor.__len__,
# Tensor.__iter__, handle_torch_function); any other torch frame means torch itself took the value.
DISPATCH_FILES = {os.path.join(TORCH_DIR, "overrides.py"), os.path.join(TORCH_DIR, "_tensor.py")}
# Tensor methods that give Python values -> (kind, construct); kind None: from the tensor's dtype.
CONVERSIONS: dict[str, tuple[str | None, str]] = {
    "__bool__": ("bool", "bool"),
    "__float__": ("number", "float"),
    "__int__": ("number", "int"),
    "__index__": ("number", "index"),
    "item": (None, "item"),
    "tolist": (None, "tolist"),
    "numpy": ("number", "numpy"),
    "__len__": ("number", "len"),
}
SHAPE_CONSTRUCTS = ("len", "iter")  # the value is a size, not a tensor's contents
VARIANTS = 3  # changed values tried per capture before calling it unused
MAX_SITES = 20  # captures examined per run (the trace reports at most as many)
MAX_DEPTH = 4  # nesting of outputs (tuples of lists of tensors) that gets labels


@dataclass
class Site:
    """One place in user code where forward() took a Python value from a tensor."""

    filename: str
    lineno: int
    construct: str  # if, while, assert, bool, float, int, index, item, tolist, numpy, data, tensor, len, iter
    kind: str  # bool (decides a branch) or number (any other value)
    level: int  # the highest label of the tensors it was taken from
    affects_outputs: bool | None = None  # numbers from the inputs: did changing the value move the outputs?

    @property
    def key(self) -> tuple[str, int, str]:
        """Where and what: a site is perturbed and reported by this key."""
        return self.filename, self.lineno, self.construct

    @property
    def source(self) -> str:
        """input, parameter, constant, or shape (a size or a row count, whatever the tensor holds)."""
        return "shape" if self.construct in SHAPE_CONSTRUCTS else SOURCES[self.level]


def func_name(func: Callable[..., Any]) -> str:
    """The name of a function the mode intercepts; a property getter is named by its property (`data`)."""
    name = getattr(func, "__name__", "")
    if name == "__get__":
        return "." + str(getattr(getattr(func, "__self__", None), "__name__", ""))
    return name


def condition_construct(filename: str, lineno: int) -> str:
    """if, while or assert when the source line starts a statement of that kind (or holds a conditional); else bool."""
    line = linecache.getline(filename, lineno).strip()
    for word in ("while", "assert"):
        if line.startswith(word + " ") or line.startswith(word + "("):
            return word
    return "if" if line.startswith(("if ", "if(", "elif ")) or " if " in line else "bool"


def perturbed(value: Any, variant: int) -> Any:
    """Another value of the same type: numbers moved (their sign flipped on one variant), tensors and lists alike."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return (value + 1, value - 1, 2 * value + 3)[variant]
    if isinstance(value, float):
        return (2.0 * value + 1.0, -2.0 * value - 1.0, 1000.0 * (abs(value) + 1.0))[variant]
    if isinstance(value, list):
        return [perturbed(v, variant) for v in value]
    if isinstance(value, torch.Tensor) and value.dtype == torch.bool:
        return value.logical_not()
    if hasattr(value, "__mul__") and hasattr(value, "__add__"):  # a tensor or a NumPy array
        return (value * 2 + 1, -value - 1, value * 1000 + 1000)[variant]
    return value


class Tracker(TorchFunctionMode):
    """Labels tensors by what they are computed from and records where user code takes Python values from them."""

    def __init__(self, model_path: str, perturb: tuple[str, int, str] | None = None, variant: int = 0) -> None:
        super().__init__()
        self.model_path = model_path
        self.perturb = perturb
        self.variant = variant
        self.labels: dict[int, tuple[Any, int]] = {}  # id(tensor) -> (weak reference, label)
        self.sites: dict[tuple[str, int, str], Site] = {}

    def label(self, value: Any, depth: int = 0) -> int:
        """The highest label among the tensors in value (nested in lists, tuples and dicts)."""
        if isinstance(value, Marked):
            return INPUT
        if isinstance(value, torch.Tensor):
            entry = self.labels.get(id(value))
            return entry[1] if entry is not None and entry[0]() is value else UNSEEN
        if depth < MAX_DEPTH and isinstance(value, (list, tuple)):
            return max((self.label(v, depth + 1) for v in value), default=CONSTANT)
        if depth < MAX_DEPTH and isinstance(value, dict):
            return max((self.label(v, depth + 1) for v in value.values()), default=CONSTANT)
        return CONSTANT  # a Python value: only a tensor can carry a label

    def mark(self, value: Any, level: int, depth: int = 0) -> None:
        """Raise the label of every tensor in value to at least level (a view's base too: writes reach it)."""
        if isinstance(value, torch.Tensor):
            entry = self.labels.get(id(value))
            if entry is None or entry[0]() is not value or entry[1] < level:
                self.labels[id(value)] = (weakref.ref(value), level)
            base = getattr(value, "_base", None)
            if base is not None and depth < MAX_DEPTH:
                self.mark(base, level, depth + 1)
        elif depth < MAX_DEPTH and isinstance(value, (list, tuple)):
            for v in value:
                self.mark(v, level, depth + 1)

    def call_site(self, iteration: bool = False) -> tuple[str, int] | None:
        """(file, line) of the user code that asked for the value; None when torch's own code did (or, for
        iteration, when unbind was not called by Tensor.__iter__)."""
        frame = sys._getframe(3)  # past this method, record() and __torch_function__
        seen_iter = False
        while frame is not None and os.path.realpath(frame.f_code.co_filename) in DISPATCH_FILES:
            seen_iter = seen_iter or frame.f_code.co_name == "__iter__"
            frame = frame.f_back
        if frame is None or (iteration and not seen_iter):
            return None
        if not captures.is_user_file(frame.f_code.co_filename, self.model_path):
            return None
        return frame.f_code.co_filename, frame.f_lineno

    def record(self, construct: str, kind: str, level: int, iteration: bool = False) -> Site | None:
        """Note a capture at the calling user line (the highest label seen there wins); None outside user code."""
        where = self.call_site(iteration)
        if where is None:
            return None
        if construct == "bool":
            construct = condition_construct(*where)
        key = (where[0], where[1], construct)
        site = self.sites.get(key)
        if site is None:
            if len(self.sites) >= MAX_SITES:
                return None
            site = self.sites[key] = Site(where[0], where[1], construct, kind, level)
        site.level = max(site.level, level)
        return site

    def conversion(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str, bool] | None:
        """(construct, kind, iteration) when this call turns a tensor into a Python value (or a constant tensor)."""
        if name in CONVERSIONS:
            kind, construct = CONVERSIONS[name]
            if kind is None:
                source = args[0] if args else None
                kind = "bool" if isinstance(source, torch.Tensor) and source.dtype == torch.bool else "number"
            return construct, kind, False
        if name == ".data":
            return "data", "number", False
        if (name == "tensor" or name == "as_tensor" and args and isinstance(args[0], (list, tuple))) and self.label(
            args
        ) > CONSTANT:
            return "tensor", "number", False  # torch.tensor([t, ...]) copies values: a constant in the trace
        if name == "unbind":
            return "iter", "number", True
        return None

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        name = func_name(func)
        level = max(self.label(args), self.label(kwargs), CONSTANT)
        out = func(*args, **kwargs)
        found = self.conversion(name, args, kwargs)
        if found is not None:
            construct, kind, iteration = found
            site = self.record(construct, kind, level, iteration)
            if site is not None and site.key == self.perturb and level == INPUT and kind == "number":
                out = perturbed(out, self.variant)
        self.mark(out, level)  # constants too: a tensor with no label was made where the mode could not see
        if level > CONSTANT:
            if (
                name.endswith("_")
                and not name.startswith("__")
                or name in ("__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__")
            ):
                self.mark(args[0] if args else None, level)  # in place: the written tensor now holds derived values
            if "out" in kwargs:
                self.mark(kwargs["out"], level)
        return out


class _Seen(TorchFunctionMode):
    """Notes the names of the functions that reach a mode."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.names.append(func_name(func))
        return func(*args, **(kwargs or {}))


@functools.cache
def mode_sees_indexing() -> bool:
    """Whether t[0] = v and t[0] reach a TorchFunctionMode (torch 2.x); torch 1.13 takes integer indices and
    every assignment past it."""
    seen = _Seen()
    t = torch.zeros(2)
    with seen:
        t[0] = 1.0
        t[0]
    return "__setitem__" in seen.names and seen.names.count("__getitem__") >= 1


class Marked(torch.Tensor):
    """An input, on torches whose mode does not see every indexing (1.13: t[0], t[idx] and t[i] = v never reach
    it): indexing such a tensor dispatches here, so what it reads and writes keeps the input label."""

    tracker: Tracker | None = None  # the run in progress

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = super().__torch_function__(func, types, args, kwargs or {})
        if cls.tracker is not None and func_name(func) == "__setitem__" and args:
            cls.tracker.mark(args[0], INPUT)
        return out


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    """Exactly equal outputs (NaN equal to NaN), shapes and dtypes included."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if not bool(((x == y) | (torch.isnan(x) & torch.isnan(y)) if x.is_floating_point() else (x == y)).all()):
            return False
    return True


def run(
    model: torch.nn.Module,
    example: data.Inputs,
    model_path: str,
    perturb: tuple[str, int, str] | None = None,
    variant: int = 0,
) -> tuple[list[Site], list[torch.Tensor]]:
    """forward() once on a copy of the example under a Tracker; (sites, detached outputs)."""
    inputs = tuple(t.clone() for t in example)  # forward() may write into its inputs
    if not mode_sees_indexing():
        inputs = tuple(t.as_subclass(Marked) for t in inputs)
    tracker = Tracker(model_path, perturb, variant)
    for t in list(model.parameters()) + list(model.buffers()):
        tracker.mark(t, PARAMETER)
    for t in inputs:
        tracker.mark(t, INPUT)
    torch.manual_seed(0)  # random ops draw the same numbers on every run, so only the changed value can move outputs
    Marked.tracker = tracker
    try:
        with torch.no_grad(), tracker:
            out = model(*inputs)
    finally:
        Marked.tracker = None
    outputs = [t.detach().clone().as_subclass(torch.Tensor) for t in data.flatten(out, "forward()")]
    return list(tracker.sites.values()), outputs


def analyse(model: torch.nn.Module, example: data.Inputs, model_path: str) -> list[Site]:
    """Every capture site on the example, with affects_outputs set for numbers taken from input-dependent tensors.

    Raises whatever forward() raises; the caller decides what a failed analysis means.
    """
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        return changed_values(model, example, model_path, saved)
    finally:
        model.load_state_dict(saved)  # forward() may update buffers (a batch norm in training mode): undo the runs


def changed_values(
    model: torch.nn.Module, example: data.Inputs, model_path: str, saved: dict[str, torch.Tensor]
) -> list[Site]:
    """analyse() with the model's state restored before every run."""

    def fresh(perturb: tuple[str, int, str] | None = None, variant: int = 0) -> tuple[list[Site], list[torch.Tensor]]:
        model.load_state_dict(saved)
        return run(model, example, model_path, perturb, variant)

    sites, outputs = fresh()
    _, again = fresh()
    repeatable = same(outputs, again)  # a forward() that changes its own state: changed values prove nothing
    for site in sites:
        if site.level != INPUT or site.kind != "number" or site.source == "shape" or not repeatable:
            continue
        site.affects_outputs = False
        for variant in range(VARIANTS):
            try:
                _, changed = fresh(site.key, variant)
            except Exception:  # the changed value broke forward(): the outputs depend on it
                site.affects_outputs = True
                break
            if not same(outputs, changed):
                site.affects_outputs = True
                break
    return sites
