"""Where a traced graph or an exported program first computes something else than eager: each operator's output,
recorded on one failing case on both sides, paired, and handed to divergence.first in the graph's order.

Eager runs once under a TorchFunctionMode (each torch call's outputs, the innermost module and the user's FILE:LINE);
a TorchScript graph runs once as a copy that also returns a clone of every operator's tensor outputs; an exported
program runs once through torch.fx.Interpreter. Operators pair by (module, FILE:LINE, op, output index) and their
occurrence (without the location where the graph keeps none: a stored TorchScript archive has no Python source, so
eager's FILE:LINE is shown); an operator without a partner pairs with its module's output when it is the last one of
that module's run. An operator whose value matches any eager value of its shape counts as agreeing, so a wrong
pairing never names one."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from . import compare, data, divergence, sandbox

SCRIPT_FRAME = re.compile(r"^(.*)\((\d+)\): ")  # a TorchScript source range's stack line: /path/model.py(13): forward
TYPE_SUFFIX = re.compile(r"\([^()]*\)")  # getModuleHierarchy's '(Block)' after each name
FX_INDEX = re.compile(r"\[(\d+)\]|getattr\([^,]+,\s*'([^']+)'\)")  # 'layer1[0]' / getattr(x, '0') in FX paths
# Names of one operation at the torch-function, TorchScript and aten levels.
ALIASES = {
    "convolution": "conv",
    "conv1d": "conv",
    "conv2d": "conv",
    "conv3d": "conv",
    "conv_transpose1d": "conv",
    "conv_transpose2d": "conv",
    "conv_transpose3d": "conv",
    "truediv": "div",
    "itruediv": "div",
    "iadd": "add",
    "radd": "add",
    "isub": "sub",
    "imul": "mul",
    "rmul": "mul",
    "native_batch_norm": "batch_norm",
    "_native_batch_norm_legit_no_training": "batch_norm",
    "native_layer_norm": "layer_norm",
}
AGREED = torch.zeros(1)  # what an agreeing pair is handed to divergence.first as
PREVIEW = 4096  # elements compared first when looking for an eager value equal to a graph value


@dataclass
class Record:
    """One tensor output of one operator, on either side."""

    node: str
    op: str
    key: tuple[str | None, str | None, str, int]  # (module, location, canonical op, output index)
    value: torch.Tensor


@dataclass
class Eager:
    """What eager computed on the case: every operator output, and each module call's single-tensor output."""

    records: list[Record] = field(default_factory=list)
    modules: dict[str, list[torch.Tensor | None]] = field(default_factory=dict)
    quiet: bool = False  # set while a hook copies a module's output: the copy is ours, not the model's


def canonical(name: str) -> str:
    """One name for an op at every level: aten::_convolution, conv2d, aten.conv2d.default → conv; __mul__ → mul."""
    if "::" in name:
        name = name.split("::")[-1]
    elif name.startswith("aten."):
        name = name.split(".")[1]
    name = name.split(".")[0]
    name = ALIASES.get(name, name).strip("_")
    return ALIASES.get(name, name)


def tensors(value: Any) -> list[torch.Tensor | None]:
    """The tensors of an output, flattened through tuples and lists (None for anything else, keeping indices)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors(v)]
    return [None]


def clone(t: torch.Tensor) -> torch.Tensor:
    """A detached copy: an in-place op later must not change what was recorded."""
    return t.detach().clone()


class Locator:
    """The user's FILE:LINE of the calling Python stack (innermost frame in the model file), shown as model_path."""

    def __init__(self, model_path: str) -> None:
        self.model_path = model_path
        self.wanted = os.path.realpath(model_path)
        self.seen: dict[str, bool] = {}

    def here(self) -> str | None:
        frame = sys._getframe(1)
        while frame is not None:
            name = frame.f_code.co_filename
            mine = self.seen.get(name)
            if mine is None:
                mine = self.seen[name] = os.path.realpath(name) == self.wanted
            if mine:
                return f"{self.model_path}:{frame.f_lineno}"
            frame = frame.f_back
        return None


class Recorder(TorchFunctionMode):
    """Records every torch call's tensor outputs with the innermost module and the user's FILE:LINE."""

    def __init__(self, locator: Locator, stack: list[str], out: Eager) -> None:
        super().__init__()
        self.locator, self.stack, self.out = locator, stack, out

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        result = func(*args, **(kwargs or {}))
        outs = [] if self.out.quiet else tensors(result)
        if any(t is not None for t in outs):
            name = str(getattr(func, "__name__", func))
            module, location, op = self.stack[-1], self.locator.here(), canonical(name)
            for j, t in enumerate(outs):
                if t is not None:
                    self.out.records.append(Record(name, name, (module, location, op, j), clone(t)))
        return result


def run_eager(model: torch.nn.Module, inputs: data.Inputs, model_path: str) -> Eager:
    """Run eager once on inputs, recording each torch call's outputs and each module call's output."""
    out = Eager()
    stack = [""]
    handles = []
    for name, module in model.named_modules():

        def pre(_m: Any, _i: Any, name: str = name) -> None:
            stack.append(name)

        def post(_m: Any, _i: Any, output: Any, name: str = name) -> None:
            if len(stack) > 1:
                stack.pop()
            outs = tensors(output)
            single = outs[0] if len(outs) == 1 else None
            out.quiet = True
            out.modules.setdefault(name, []).append(clone(single) if single is not None else None)
            out.quiet = False

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    try:
        with torch.no_grad(), Recorder(Locator(model_path), stack, out):
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return out


def script_location(source: str, locator: Locator) -> str | None:
    """The innermost frame of a TorchScript source range's stack (innermost first) that is in the model file."""
    for line in source.splitlines():
        found = SCRIPT_FRAME.match(line)
        if found and os.path.realpath(found.group(1)) == locator.wanted:
            return f"{locator.model_path}:{found.group(2)}"
    return None


def script_module(node: Any) -> str | None:
    """'layer1.0.conv1' from getModuleHierarchy's 'layer1(Sequential).0(BasicBlock).conv1(Conv2d)'."""
    try:
        return TYPE_SUFFIX.sub("", node.getModuleHierarchy())
    except Exception:  # an older build without it
        return None


def is_tensor(value: Any) -> bool:
    """A TorchScript value of type Tensor."""
    return value.type().isSubtypeOf(torch._C.TensorType.get())


def run_script(traced: Any, inputs: data.Inputs, model_path: str) -> list[Record]:
    """Run a copy of the traced module's inlined graph that returns a clone of every aten op's tensor outputs (taken
    right after the op, before any in-place op changes them); the op's own computation is unchanged."""
    graph = traced.inlined_graph  # a fresh copy
    locator = Locator(model_path)
    none = graph.insertConstant(None)
    none.node().moveBefore(next(iter(graph.nodes())))
    kept: list[tuple[Any, Any, int]] = []  # (node named, value, output index)
    for node in list(graph.nodes()):
        kind = node.kind()
        named = node
        if kind in ("prim::ListUnpack", "prim::TupleUnpack"):
            named = node.input().node()  # the outputs of aten::chunk/split/unbind, by index
        if not named.kind().startswith("aten::"):
            continue
        for j, value in enumerate(node.outputs()):
            if is_tensor(value):
                kept.append((named, value, j))
    clones = []
    for _, value, _ in kept:
        copy = graph.create("aten::clone", [value, none])
        copy.output().setType(value.type())
        copy.insertAfter(value.node())
        clones.append(copy.output())
    listed = graph.create("prim::ListConstruct", clones)
    listed.output().setType(torch._C.ListType.ofTensors())
    graph.appendNode(listed)
    while len(list(graph.outputs())):
        graph.eraseOutput(0)
    graph.registerOutput(listed.output())
    fn = torch._C._create_function_from_graph("ttd_localize", graph)
    self_arg = [traced._c] if len(list(graph.inputs())) == len(inputs) + 1 else []
    with torch.no_grad():
        values = fn(*self_arg, *inputs)
    records = []
    for (named, value, j), got in zip(kept, values, strict=True):
        op = named.kind()
        key = (script_module(named), script_location(named.sourceRange(), locator), canonical(op), j)
        records.append(Record(value.debugName(), op, key, got))
    return records


def fx_module(node: Any) -> str | None:
    """The innermost module path of an FX node ('layer1.0.conv1'; '' for the model itself)."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    path = str(list(stack.values())[-1][0])
    path = FX_INDEX.sub(lambda m: "." + (m.group(1) or m.group(2)), path).replace("L['self']", "")
    return path.replace("..", ".").strip(".")


def run_program(module: torch.fx.GraphModule, inputs: data.Inputs, model_path: str) -> list[Record]:
    """Run an exported program's module through torch.fx.Interpreter, recording each call_function's outputs."""
    records: list[Record] = []
    locator = Locator(model_path)

    class Recording(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            result = super().run_node(n)
            if n.op == "call_function" and getattr(n.target, "__module__", "") != "_operator":
                op = str(n.target)
                location = divergence.user_location(n.meta.get("stack_trace"), locator.model_path)
                for j, t in enumerate(tensors(result)):
                    if t is not None:
                        records.append(Record(n.name, op, (fx_module(n), location, canonical(op), j), clone(t)))
            return result

    with torch.no_grad():
        Recording(module).run(*inputs)
    return records


def ancestors(path: str | None) -> list[str]:
    """A module path and its ancestors, innermost first, without the model itself."""
    if not path:
        return []
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def module_ends(records: list[Record]) -> list[list[str]]:
    """For each record, the modules whose run of consecutive records ends with it, innermost first."""
    ends = []
    for i, r in enumerate(records):
        after = set(ancestors(records[i + 1].key[0])) if i + 1 < len(records) else set()
        ends.append([m for m in ancestors(r.key[0]) if m not in after])
    return ends


class EagerValues:
    """Eager's values by shape, to tell whether a graph value is one eager computed somewhere."""

    def __init__(self, eager: Eager) -> None:
        self.by_shape: dict[tuple[int, ...], list[torch.Tensor]] = {}
        for r in eager.records:
            self.by_shape.setdefault(tuple(r.value.shape), []).append(r.value)
        for values in eager.modules.values():
            for v in values:
                if v is not None:
                    self.by_shape.setdefault(tuple(v.shape), []).append(v)

    def equal(self, value: torch.Tensor, atol: float, rtol: float) -> torch.Tensor | None:
        """An eager value within the tolerance of `value`, or None."""
        flat = value.reshape(-1)[:PREVIEW].to(torch.float64)
        for candidate in self.by_shape.get(tuple(value.shape), []):
            if not divergence.comparable(candidate, value):
                continue
            head = candidate.reshape(-1)[:PREVIEW].to(torch.float64)
            if not compare.measure(flat, head, atol, rtol)[2]:
                continue
            if compare.measure(value, candidate, atol, rtol)[2]:
                return candidate
        return None


def close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> bool:
    """compare.measure's verdict, in the tensors' own dtype where both are floating of one dtype (the common case: a
    tenth of the time), in float64 otherwise and to confirm a mismatch."""
    if a.dtype == b.dtype and a.is_floating_point() and torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
        return True
    return compare.measure(a, b, atol, rtol)[2]


def reduced(key: tuple[str | None, str | None, str, int]) -> tuple[str | None, str | None, str, int]:
    """The key without its location: a stored TorchScript archive keeps no Python source (archive.py strips it)."""
    return (key[0], None, key[2], key[3])


def steps(graph: list[Record], eager: Eager, atol: float, rtol: float) -> Iterator[divergence.Step]:
    """Graph records paired with eager's, in graph order (see the module's docstring). Without any location in the
    graph, pairs form on (module, op, output index) and the location shown is eager's for the partner."""
    located = any(r.key[1] for r in graph)
    keyed = (lambda k: k) if located else reduced
    by_key: dict[Any, list[Record]] = {}
    for r in eager.records:
        by_key.setdefault(keyed(r.key), []).append(r)
    seen: dict[Any, int] = {}
    calls: dict[str, int] = {}
    values = EagerValues(eager)
    for record, ends in zip(graph, module_ends(graph), strict=True):
        key = keyed(record.key)
        k = seen.get(key, 0)
        seen[key] = k + 1
        partners = by_key.get(key, [])
        module, location = record.key[0], record.key[1]
        partner: torch.Tensor | None = None
        if k < len(partners) and divergence.comparable(partners[k].value, record.value):
            partner, location = partners[k].value, partners[k].key[1]
        for m in ends:
            call = calls.get(m, 0)
            calls[m] = call + 1
            outputs = eager.modules.get(m, [])
            if partner is None and call < len(outputs) and divergence.comparable(outputs[call], record.value):
                partner, module = outputs[call], m
        if partner is None:
            continue
        # A pair found close (or a value eager computed somewhere) goes on as one agreeing element: first() counts it
        # without measuring the whole tensors again.
        if close(record.value, partner, atol, rtol) or values.equal(record.value, atol, rtol) is not None:
            yield divergence.Step(record.node, record.op, module, location, AGREED, AGREED)
        else:
            yield divergence.Step(record.node, record.op, module, location, partner, record.value)


def search(
    name: str, run: Callable[[], list[Record]], model: torch.nn.Module, inputs: data.Inputs, args: dict[str, Any]
) -> dict[str, Any] | None:
    """The Divergence record for case `name`, or None when no operator is found (or the search itself fails: it only
    explains a verdict already reached, so it must never change it)."""
    try:
        graph = run()
        eager = run_eager(model, inputs, args["model_path"])
        return divergence.first(name, steps(graph, eager, args["atol"], args["rtol"]), args["atol"], args["rtol"])
    except Exception as exc:
        sandbox.raise_if_refused(exc)
        print(f"ttd_torch: the divergence search failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def in_script(
    traced: Any, model: torch.nn.Module, case: tuple[str, data.Inputs], args: dict[str, Any]
) -> dict[str, Any] | None:
    """The first traced-graph operator out of tolerance on one case, or None."""
    name, inputs = case
    return search(name, lambda: run_script(traced, inputs, args["model_path"]), model, inputs, args)


def in_program(
    module: torch.fx.GraphModule, model: torch.nn.Module, case: tuple[str, data.Inputs], args: dict[str, Any]
) -> dict[str, Any] | None:
    """The first exported-program operator out of tolerance on one case, or None."""
    name, inputs = case
    return search(name, lambda: run_program(module, inputs, args["model_path"]), model, inputs, args)
