"""The fusion stage: which groups the TensorExpr fuser forms in the optimized archive, and, where this build really
fuses (CUDA, or a CPU build with LLVM) or the spec asks for it, whether fused and unfused outputs agree.

A CPU build without LLVM (the torch 2.13 CPU wheel, Debian's 1.13) never fuses in a server: its CPU fusion is off by
default and switching it on fails with "LLVM Backend not found". Forcing it through NNC's interpreter runs a
configuration no server runs, at about a hundred times the cost, so it is done only when the spec asks
(`fusion.fused_runs: always`); otherwise the groups are formed once, on the smallest case, to be shown."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

from . import archive_limits, codes, compare, data, graph, optimize, protocol, user_model

WARMUP_CALLS = 3  # the profiling executor fuses from call num_profiled_runs + 1; three calls are enough
GROUP_KINDS = ("prim::TensorExprGroup", "prim::FusionGroup", "prim::CudaFusionGroup")

# The pointwise (elementwise) aten ops: the only place this list lives. In-place variants end in "_".
POINTWISE = frozenset(
    f"aten::{name}{suffix}"
    for suffix in ("", "_")
    for name in (
        "abs",
        "acos",
        "add",
        "addcdiv",
        "addcmul",
        "asin",
        "atan",
        "atan2",
        "bitwise_and",
        "bitwise_not",
        "bitwise_or",
        "bitwise_xor",
        "ceil",
        "clamp",
        "clamp_max",
        "clamp_min",
        "cos",
        "cosh",
        "div",
        "elu",
        "eq",
        "erf",
        "erfc",
        "exp",
        "expm1",
        "floor",
        "fmod",
        "frac",
        "ge",
        "gelu",
        "gt",
        "hardshrink",
        "hardsigmoid",
        "hardswish",
        "hardtanh",
        "le",
        "leaky_relu",
        "lerp",
        "lgamma",
        "log",
        "log10",
        "log1p",
        "log2",
        "logical_and",
        "logical_not",
        "logical_or",
        "logical_xor",
        "lt",
        "masked_fill",
        "maximum",
        "minimum",
        "mish",
        "mul",
        "ne",
        "neg",
        "pow",
        "reciprocal",
        "relu",
        "relu6",
        "remainder",
        "round",
        "rsqrt",
        "rsub",
        "selu",
        "sigmoid",
        "sign",
        "silu",
        "sin",
        "sinh",
        "softplus",
        "sqrt",
        "square",
        "sub",
        "tan",
        "tanh",
        "threshold",
        "trunc",
        "type_as",
        "where",
    )
)

# (flag name, getter, setter) of the process-wide fuser settings; a getter of None reads by set-and-restore.
FLAGS: tuple[tuple[str, str | None, str], ...] = (
    ("texpr_fuser_enabled", "_jit_texpr_fuser_enabled", "_jit_set_texpr_fuser_enabled"),
    ("can_fuse_on_cpu", "_jit_can_fuse_on_cpu", "_jit_override_can_fuse_on_cpu"),
    ("te_must_use_llvm_cpu", "_jit_get_te_must_use_llvm_cpu", "_jit_set_te_must_use_llvm_cpu"),
    ("profiling_executor", None, "_jit_set_profiling_executor"),
    ("profiling_mode", None, "_jit_set_profiling_mode"),
    ("graph_executor_optimize", "_get_graph_executor_optimize", "_set_graph_executor_optimize"),
)
# NNC's interpreter: fuses on any CPU build (slowly); the only way to see groups on a build without LLVM.
FUSED = {
    "texpr_fuser_enabled": True,
    "can_fuse_on_cpu": True,
    "te_must_use_llvm_cpu": False,
    "profiling_executor": True,
    "profiling_mode": True,
    "graph_executor_optimize": True,
}
# The CPU fuser switched on as a deployment on a build with LLVM would: torch's own LLVM requirement kept.
FUSED_LLVM = {**FUSED, "te_must_use_llvm_cpu": True}
UNFUSED = {**FUSED, "texpr_fuser_enabled": False, "can_fuse_on_cpu": False}
FUSED_RUNS = ("auto", "always", "never")


def read_flag(getter: str | None, setter: str) -> bool | None:
    """A fuser flag's current value; None when this torch build lacks it."""
    if getter is not None and hasattr(torch._C, getter):
        return bool(getattr(torch._C, getter)())
    if getter is None and hasattr(torch._C, setter):
        old = getattr(torch._C, setter)(True)  # these setters return the previous value
        getattr(torch._C, setter)(old)
        return bool(old)
    return None


def read_flags() -> dict[str, Any]:
    """The process's fuser flags as torch reports them (absent ones are null)."""
    flags: dict[str, Any] = {name: read_flag(getter, setter) for name, getter, setter in FLAGS}
    flags["llvm_enabled"] = bool(torch._C._llvm_enabled()) if hasattr(torch._C, "_llvm_enabled") else None
    return flags


def _read(name: str) -> bool | None:
    return bool(getattr(torch._C, name)()) if hasattr(torch._C, name) else None


# This build's own fuser configuration, read when the torch side starts, before any op changes a flag (the fork
# server restores its flags after each op, so later reads agree): what a server of this build runs with.
BUILD = {
    "llvm_enabled": _read("_llvm_enabled"),
    "texpr_fuser_enabled": _read("_jit_texpr_fuser_enabled"),
    "can_fuse_on_cpu": _read("_jit_can_fuse_on_cpu"),
    "can_fuse_on_gpu": _read("_jit_can_fuse_on_gpu"),
    "te_must_use_llvm_cpu": _read("_jit_get_te_must_use_llvm_cpu"),
}


def build_facts() -> dict[str, Any]:
    """BUILD plus whether CUDA is usable here (asked when needed: it initialises CUDA)."""
    return {**BUILD, "cuda_available": bool(torch.cuda.is_available())}


def fuses_for(facts: dict[str, Any], device: str) -> bool:
    """Whether a server of this build can run fused TensorExpr kernels on `device`: CUDA where it is usable, the CPU
    only with LLVM (without it the kernels fail to compile unless forced into the interpreter)."""
    if device.startswith("cuda"):
        return bool(facts.get("cuda_available"))
    return bool(facts.get("llvm_enabled"))


def build_words(facts: dict[str, Any], device: str) -> str:
    """The build in words, for messages: `torch 2.13.0+cpu (CPU, no LLVM)`."""
    if device.startswith("cuda"):
        return f"torch {torch.__version__} ({'CUDA' if facts.get('cuda_available') else 'no usable CUDA device'})"
    return f"torch {torch.__version__} (CPU, {'LLVM' if facts.get('llvm_enabled') else 'no LLVM'})"


def set_flags(values: dict[str, Any]) -> None:
    """Set the fuser flags that this torch build has (null values are left alone)."""
    for name, _, setter in FLAGS:
        if values.get(name) is not None and hasattr(torch._C, setter):
            getattr(torch._C, setter)(bool(values[name]))


@contextlib.contextmanager
def fuser_flags(values: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Run a block under the given fuser flags and restore the process's own afterwards (the server lives on)."""
    saved = read_flags()
    try:
        set_flags(values)
        yield read_flags()
    finally:
        set_flags(saved)


def executed_graph(module: torch.jit.ScriptModule, inputs: data.Inputs) -> torch._C.Graph:
    """The optimized graph the executor really ran for forward(*inputs), on torch 1.13 and 2.x."""
    with torch.no_grad():
        module(*inputs)
        last = getattr(torch.jit, "last_executed_optimized_graph", None) or getattr(
            torch._C, "_last_executed_optimized_graph", None
        )
        if last is not None:
            return last()
        return module.graph_for(*inputs)


def is_group(node: torch._C.Node) -> bool:
    """True for a fusion group node (NNC, legacy or nvFuser)."""
    return node.kind().startswith(GROUP_KINDS)


def groups(executed: torch._C.Graph) -> list[dict[str, Any]]:
    """Every fusion group with the ops of its subgraph in order (prim:: bookkeeping left out)."""
    out: list[dict[str, Any]] = []
    for node in graph.walk(executed):
        if not is_group(node):
            continue
        subgraph = node.g("Subgraph") if "Subgraph" in node.attributeNames() else None
        ops = [n.kind() for n in graph.walk(subgraph) if not n.kind().startswith("prim::")] if subgraph else []
        kind = next(k for k in GROUP_KINDS if node.kind().startswith(k))
        out.append({"kind": kind, "ops": ops})
    return out


def unfused_pointwise(executed: torch._C.Graph) -> list[torch._C.Node]:
    """Pointwise aten nodes outside every fusion group (fallback paths are separate functions, not walked)."""
    return [n for n in graph.walk(executed) if n.kind() in POINTWISE]


def node_key(node: torch._C.Node) -> tuple[str, ...]:
    """A node's identity within its graph (Python wrappers of one node need not be the same object)."""
    return (node.kind(),) + tuple(o.debugName() for o in node.outputs())


def chains(nodes: list[torch._C.Node]) -> list[str]:
    """'producer → consumer' for each unfused pointwise op fed directly by another unfused one."""
    unfused = {node_key(n) for n in nodes}
    found: list[str] = []
    for node in nodes:
        for value in node.inputs():
            if node_key(value.node()) in unfused:
                found.append(f"{value.node().kind()} → {node.kind()}")
    return found


def run_cases(
    module: torch.jit.ScriptModule, cases: list[tuple[str, data.Inputs]], warmup: int
) -> list[list[torch.Tensor]]:
    """Each case's flattened outputs, after warm-up calls so that fused kernels are the ones recorded."""
    outputs = []
    with torch.no_grad():
        for name, inputs in cases:
            for _ in range(warmup):
                module(*inputs)
            outputs.append(data.flatten(module(*inputs), f"the module on case {name}"))
    return outputs


def group_words(found: list[dict[str, Any]]) -> str:
    """Fusion groups in words, for messages."""
    if not found:
        return "no fusion group"
    return "; ".join(f"{g['kind']}[{', '.join(g['ops'])}]" for g in found)


def requirement(require: str, found: list[dict[str, Any]], links: list[str]) -> str | None:
    """Why the fusion requirement is not met, or None when it is."""
    if require == "any" and not found:
        return "expected at least one fusion group, found none"
    if require == "pointwise-chains" and links:
        return f"expected every chain of pointwise ops fused, but {', '.join(links)} run unfused one after another"
    return None


def compare_all(
    fused: list[list[torch.Tensor]], unfused: list[list[torch.Tensor]], names: list[str], atol: float, rtol: float
) -> tuple[float, str | None]:
    """(max abs error, first failure in words or None) of fused against unfused outputs."""
    max_abs, failure = 0.0, None
    for name, a, b in zip(names, fused, unfused, strict=True):
        result = compare.compare(a, b, atol, rtol)
        if result["max_abs_error"] is not None:
            max_abs = max(max_abs, result["max_abs_error"])
        if not result["passed"] and failure is None:
            failure = (
                f"case {name}: {result['error']}"
                if result["error"]
                else f"case {name}: max abs error {result['max_abs_error']:g}, allowed {compare.allowed(atol, rtol)}"
            )
    return max_abs, failure


def smallest(cases: list[tuple[str, data.Inputs]]) -> tuple[str, data.Inputs]:
    """The case with the fewest input elements: forming groups costs two calls of it."""
    return min(cases, key=lambda case: sum(t.numel() for t in case[1] if isinstance(t, torch.Tensor)))


def on_device(cases: list[tuple[str, data.Inputs]], device: str) -> list[tuple[str, data.Inputs]]:
    """The cases' inputs moved to `device` (a no-op on the CPU)."""
    if device == "cpu":
        return cases
    return [(name, tuple(t.to(device) if isinstance(t, torch.Tensor) else t for t in inputs)) for name, inputs in cases]


@protocol.op("fusion")
def fusion(args: dict[str, Any]) -> dict[str, Any]:
    """Report the fusion groups of the optimized archive, and check fused against unfused where this build fuses."""
    if args.get("model_path"):
        user_model.load(args["model_path"])  # registers custom ops the archive calls
    facts = build_facts()
    target = args.get("target_device") or "cpu"
    device = target if target.startswith("cuda") and facts["cuda_available"] else "cpu"
    fused_runs = args.get("fused_runs") or "auto"
    real = fuses_for(facts, device)
    compared = fused_runs != "never" and (real or fused_runs == "always")
    cases = on_device(optimize.read_cases(args["references_path"]), device)
    shown_case = dict(cases).get("validation") or cases[0][1]
    archive_limits.check(args["optimized_path"], "optimized archive")

    def load() -> torch.jit.ScriptModule:
        return torch.jit.load(args["optimized_path"], map_location=device).eval()

    # On the CPU with LLVM, torch's own flags; elsewhere (CUDA ignores the CPU flags) the interpreter's.
    fused_flags = FUSED_LLVM if real and device == "cpu" else FUSED
    if compared:
        with fuser_flags(UNFUSED):
            reference = run_cases(load(), cases, 0)
        with fuser_flags(fused_flags) as flags:
            fused_module = load()
            with torch.no_grad():
                for _ in range(WARMUP_CALLS):
                    fused_module(*shown_case)
            executed = executed_graph(fused_module, shown_case)
            fused_outputs = run_cases(fused_module, cases, WARMUP_CALLS)
        shown = next(name for name, inputs in cases if inputs is shown_case)
    else:
        # Only the groups: the profiling executor forms them on the second call, so two calls of the smallest case.
        shown, shown_case = smallest(cases)
        with fuser_flags(fused_flags) as flags:
            fused_module = load()
            with torch.no_grad():
                fused_module(*shown_case)
            executed = executed_graph(fused_module, shown_case)
    graph_path = os.path.join(args["out_dir"], "ir-fused.txt")
    optimize.write_text(graph_path, str(executed))
    found = groups(executed)
    loose = unfused_pointwise(executed)
    unfused = [n.kind() for n in loose]
    if compared:
        max_abs, divergence = compare_all(fused_outputs, reference, [n for n, _ in cases], args["atol"], args["rtol"])
    else:
        max_abs, divergence = None, None
    build = build_words(facts, device)
    missing = requirement(args["require"], found, chains(loose))
    summary = f"fused: {group_words(found)}; left unfused: {', '.join(unfused) or 'no pointwise op'}"
    if divergence:
        code, message = (
            codes.FUSED_DIVERGENCE,
            (
                f"fused and unfused outputs differ ({divergence}; expected agreement within tolerance); {summary}; "
                "inspect ir-fused.txt, or deploy without the fuser"
            ),
        )
    elif args["require"] != "none" and not real and fused_runs != "always":
        code, message = (
            codes.FUSION_UNAVAILABLE,
            (
                f"fusion.require {args['require']}, but {build} cannot fuse on {device}: its servers run every group "
                "unfused; serve on a build that fuses (CUDA, or a CPU build with LLVM), or set fusion.require none"
            ),
        )
    elif missing:
        code, message = (
            codes.FUSION_REQUIRED_MISSING,
            (
                f"fusion.require {args['require']}: {missing}; {summary}; keep pointwise ops adjacent on floating "
                "tensors of fixed rank, or relax fusion.require"
            ),
        )
    elif compared:
        how = "" if real else f"; forced through NNC's interpreter (fusion.fused_runs always): {build} never fuses"
        code, message = (
            None,
            (f"{summary}; fused agrees with unfused on {len(cases)} cases (max abs error {max_abs:.2e}){how}"),
        )
    elif real:
        code, message = None, f"{summary}; fused runs not checked (fusion.fused_runs never)"
    else:
        code, message = (
            None,
            (
                f"{summary} (formed on case {shown}); {build} runs these groups unfused: its servers never fuse on "
                f"{device}, so fused against unfused is checked only on builds that fuse (CUDA, or a CPU build with "
                "LLVM)"
            ),
        )
    return {
        "passed": code is None,
        "code": code,
        "message": message,
        "groups": found,
        "unfused_pointwise": unfused,
        "max_abs_error": compare.json_float(max_abs) if max_abs is not None else None,
        "flags": flags,
        "torch_version": torch.__version__,
        "graph_path": graph_path,
        "require": args["require"],
        "build": facts,
        "fuses": real,
        "compared": compared,
        "device": device,
    }
