"""Reading TorchScript graphs: node counts and ops left in training mode."""

from __future__ import annotations

from collections.abc import Iterator

import torch

# op kind -> index of its boolean "train"/"training" input
TRAIN_FLAG_INDEX: dict[str, int] = {
    "aten::dropout": 2,
    "aten::dropout_": 2,
    "aten::feature_dropout": 2,
    "aten::feature_dropout_": 2,
    "aten::alpha_dropout": 2,
    "aten::alpha_dropout_": 2,
    "aten::feature_alpha_dropout": 2,
    "aten::feature_alpha_dropout_": 2,
    "aten::batch_norm": 5,
    "aten::instance_norm": 5,  # use_input_stats; see train_mode_ops
}


def walk(graph: torch._C.Graph) -> Iterator[torch._C.Node]:
    """Yield every node of a graph, nested blocks included."""
    stack = list(graph.nodes())[::-1]
    while stack:
        node = stack.pop()
        yield node
        for block in node.blocks():
            stack.extend(list(block.nodes())[::-1])


def count_nodes(graph: torch._C.Graph) -> dict[str, int]:
    """Count node kinds in a graph (sorted by kind)."""
    counts: dict[str, int] = {}
    for node in walk(graph):
        counts[node.kind()] = counts.get(node.kind(), 0) + 1
    return dict(sorted(counts.items()))


def constant_value(value: torch._C.Value) -> object:
    """The Python value of a prim::Constant input, else None."""
    if value.node().kind() != "prim::Constant":
        return None
    try:
        return value.toIValue()
    except RuntimeError:
        return None


def train_mode_ops(graph: torch._C.Graph) -> list[str]:
    """List (once each, in graph order) the dropout/norm ops whose train flag is a constant True."""
    found: list[str] = []
    for node in walk(graph):
        index = TRAIN_FLAG_INDEX.get(node.kind())
        if index is None:
            continue
        inputs = list(node.inputs())
        if len(inputs) <= index or constant_value(inputs[index]) is not True:
            continue
        if node.kind() == "aten::instance_norm":
            # use_input_stats is legitimately True in eval mode unless the module tracks running
            # stats; only with running stats (input 3 not None) does True mean training mode.
            running_mean = inputs[3]
            if running_mean.node().kind() == "prim::Constant" and constant_value(running_mean) is None:
                continue
        if node.kind() not in found:
            found.append(node.kind())
    return found


def device_constants(graph: torch._C.Graph) -> list[dict[str, object]]:
    """Devices baked into a graph: Device-typed constants and aten::device("...") calls, with their users."""
    found: list[dict[str, object]] = []
    for node in walk(graph):
        device = None
        if node.kind() == "prim::Constant" and node.output().type().kind() == "DeviceObjType":
            device = constant_value(node.output())
        elif node.kind() == "aten::device":
            inputs = list(node.inputs())
            value = constant_value(inputs[0]) if inputs else None
            device = value if isinstance(value, str) else None
        if device is None:
            continue
        users = sorted({use.user.kind() for use in node.output().uses()})
        found.append({"device": str(device), "users": users})
    return found


def nondeterministic_nodes(graph: torch._C.Graph) -> list[str]:
    """Node kinds (once each, in graph order) that TorchScript marks nondeterministic, where the API exists."""
    found: list[str] = []
    for node in walk(graph):
        check = getattr(node, "isNondeterministic", None)
        if check is None:
            return []  # this torch build does not expose the check
        try:
            if check() and node.kind() not in found:
                found.append(node.kind())
        except RuntimeError:
            continue
    return found
