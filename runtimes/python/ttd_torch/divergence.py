"""The first operator whose output leaves the tolerance: what a failed numeric gate names (Divergence in ops.ts).

Every graph kind (a TorchScript graph, an exported program's FX graph, an ONNX graph) is reduced to the same thing: its
operators' outputs in the graph's order, each with eager's value for it where one is known. The first pair out of
tolerance is the answer."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from . import compare

VALUES = 8  # values of each side shown around the worst element
STACK_LINE = re.compile(r'File "([^"]+)", line (\d+)')


@dataclass
class Step:
    """One operator's output in graph order: its name, op, module path, the user's FILE:LINE, and both sides' values."""

    node: str
    op: str
    module: str | None
    location: str | None
    eager: torch.Tensor
    artifact: torch.Tensor


def user_location(stack: str | None, user_file: str, shown_as: str | None = None) -> str | None:
    """The innermost FILE:LINE of `stack` (a Python traceback text) in the user's file, shown with the user's name for
    it (the worker's scratch copy has another); None when the stack never passes through that file."""
    if not stack:
        return None
    wanted = os.path.realpath(user_file)
    found = None
    for name, line in STACK_LINE.findall(stack):
        if os.path.realpath(name) == wanted:
            found = f"{shown_as or user_file}:{line}"
    return found


def fx_values(
    gm: torch.fx.GraphModule, inputs: Iterable[Any]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.fx.Node]]:
    """Run gm op by op (no grad) on inputs: each call_function node's tensor output by node name, in graph order, and
    the node itself (its target and meta: nn_module_stack, stack_trace)."""
    values: dict[str, torch.Tensor] = {}
    nodes: dict[str, torch.fx.Node] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            value = super().run_node(n)
            if n.op == "call_function" and isinstance(value, torch.Tensor):
                values[n.name] = value.detach()
                nodes[n.name] = n
            return value

    with torch.no_grad():
        Recorder(gm).run(*inputs)
    return values, nodes


def fx_step(node: torch.fx.Node, eager: torch.Tensor, artifact: torch.Tensor, location: str | None) -> Step:
    """The Step of an FX node: its target as op, its module path from nn_module_stack; the user's FILE:LINE comes from
    the caller (user_location of node.meta["stack_trace"], where the caller knows the user's file)."""
    stack = node.meta.get("nn_module_stack") or {}
    return Step(
        node=node.name,
        op=str(node.target).removeprefix("torch.ops."),
        module=list(stack.values())[-1][0] if stack else "",
        location=location,
        eager=eager,
        artifact=artifact,
    )


def _values(t: torch.Tensor, center: int) -> list[float | None]:
    """Up to VALUES flat values of t from around index `center`, non-finite ones as None (JSON has no NaN)."""
    flat = t.detach().reshape(-1).to(torch.float64)
    start = max(0, min(center - VALUES // 2, flat.numel() - VALUES))
    return [v if math.isfinite(v) else None for v in flat[start : start + VALUES].tolist()]


def comparable(eager: Any, artifact: Any) -> bool:
    """Two tensors whose values can be compared element by element (same shape; floating or integer values)."""
    return (
        isinstance(eager, torch.Tensor)
        and isinstance(artifact, torch.Tensor)
        and eager.shape == artifact.shape
        and eager.numel() > 0
        and not eager.is_complex()
        and not artifact.is_complex()
    )


def first(case: str, steps: Iterable[Step], atol: float, rtol: float) -> dict[str, Any] | None:
    """The Divergence record of the first step whose artifact value leaves the tolerance around eager's; None when
    every step agrees (the outputs then diverge somewhere no step shows)."""
    compared = 0
    for step in steps:
        if not comparable(step.eager, step.artifact):
            continue
        a = step.artifact.detach().to(torch.float64).reshape(-1)
        b = step.eager.detach().to(torch.float64).reshape(-1)
        _, _, close = compare.measure(a, b, atol, rtol)
        if close:
            compared += 1
            continue
        diff = torch.nan_to_num((a - b).abs(), nan=float("inf"))
        worst = int(torch.argmax(diff))
        return {
            "case": case,
            "node": step.node,
            "op": step.op,
            "module": step.module,
            "location": step.location,
            "max_abs_error": compare.json_float(float(diff[worst])),
            "eager": _values(b, worst),
            "artifact": _values(a, worst),
            "compared": compared,
        }
    return None


def words(found: dict[str, Any] | None) -> str:
    """The divergence in one clause for a gate's message ('' when none was found)."""
    if not found:
        return ""
    where = f" at {found['location']}" if found["location"] else ""
    module = f" in module '{found['module']}'" if found["module"] else ""
    return (
        f"; the first operator out of tolerance is {found['op']} (node '{found['node']}'{module}{where}) on case "
        f"{found['case']}: max abs error {found['max_abs_error']}, after {found['compared']} that agree"
    )
