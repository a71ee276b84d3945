"""The optimize stage: freeze the traced module and check it still agrees."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Tuple

import torch

from . import compare, data, graph, safetensors, user_model


def read_cases(path: str) -> List[Tuple[str, data.Inputs]]:
    """Each case's inputs from a references file, in the listed order."""
    tensors, metadata = safetensors.load(path)
    cases = []
    for name in filter(None, metadata.get("cases", "").split(",")):
        inputs = []
        while f"{name}/input/{len(inputs)}" in tensors:
            inputs.append(tensors[f"{name}/input/{len(inputs)}"])
        cases.append((name, tuple(inputs)))
    return cases


def run(module: torch.jit.ScriptModule, inputs: data.Inputs, what: str) -> List[torch.Tensor]:
    """Run a TorchScript module under no_grad and flatten its outputs."""
    with torch.no_grad():
        return data.flatten(module(*inputs), what)


def write_text(path: str, text: str) -> None:
    """Write a text file."""
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)


def optimize(args: Dict[str, Any]) -> Dict[str, Any]:
    """Freeze traced.pt into optimized.pt, dump the IR before/after, and compare on the references."""
    if args.get("model_path"):
        # Importing the model file registers any custom operators the traced graph calls.
        user_model.load(args["model_path"])
    out_dir = args["out_dir"]
    atol, rtol = args["atol"], args["rtol"]
    traced = torch.jit.load(args["traced_path"], map_location="cpu").eval()
    frozen = torch.jit.freeze(traced)
    paths = {name: os.path.join(out_dir, name) for name in ("optimized.pt", "ir-before.txt", "ir-after.txt")}
    frozen.save(paths["optimized.pt"])
    write_text(paths["ir-before.txt"], str(traced.inlined_graph))
    write_text(paths["ir-after.txt"], str(frozen.inlined_graph))
    # Compare the saved artifact, as deployed, not the in-memory frozen module.
    optimized = torch.jit.load(paths["optimized.pt"], map_location="cpu")
    max_abs = 0.0
    failure = None
    for name, inputs in read_cases(args["references_path"]):
        try:
            result = compare.compare(run(optimized, inputs, "the optimized module"),
                                     run(traced, inputs, "the traced module"), atol, rtol)
        except Exception as exc:  # a failing optimized graph is a finding of this stage
            result = compare.mismatch(f"raised {type(exc).__name__}: {' '.join(str(exc).split())[:500]}")
        if result["max_abs_error"] is not None:
            max_abs = max(max_abs, result["max_abs_error"])
        if not result["passed"] and failure is None:
            failure = (f"case {name}: {result['error']}" if result["error"] else
                       f"case {name}: max abs error {result['max_abs_error']:g}; allowed {compare.allowed(atol, rtol)}")
    before = graph.count_nodes(traced.inlined_graph)
    after = graph.count_nodes(frozen.inlined_graph)
    return {"optimized_path": paths["optimized.pt"], "ir_before_path": paths["ir-before.txt"],
            "ir_after_path": paths["ir-after.txt"], "nodes_before": before, "nodes_after": after,
            "node_total_before": sum(before.values()), "node_total_after": sum(after.values()),
            "max_abs_error": compare.json_float(max_abs), "passed": failure is None,
            "code": None if failure is None else "optimized_divergence",
            "message": failure or (f"torch.jit.freeze: {sum(before.values())} → {sum(after.values())} nodes; "
                                   f"optimized agrees with traced (max abs error {max_abs:.2e})")}
