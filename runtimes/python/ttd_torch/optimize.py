"""The optimize stage: freeze the traced module and check it still agrees."""

from __future__ import annotations

import os
from typing import Any

import torch

from . import archive, archive_limits, codes, compare, data, graph, protocol, safetensors, sandbox, user_model


def read_cases(path: str) -> list[tuple[str, data.Inputs]]:
    """Each case's inputs from a references file, in the listed order (its outputs are not read)."""
    tensors, metadata = safetensors.load(path, lambda name: "/input/" in name)
    cases = []
    for name in filter(None, metadata.get("cases", "").split(",")):
        inputs = []
        while f"{name}/input/{len(inputs)}" in tensors:
            inputs.append(tensors[f"{name}/input/{len(inputs)}"])
        cases.append((name, tuple(inputs)))
    return cases


def run(module: torch.jit.ScriptModule, inputs: data.Inputs, what: str) -> list[torch.Tensor]:
    """Run a TorchScript module under no_grad and flatten its outputs."""
    with torch.no_grad():
        return data.flatten(module(*inputs), what)


def write_text(path: str, text: str) -> None:
    """Write a text file."""
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)


class TracedOutputs:
    """The traced module's outputs per case, run once however many candidates are compared with them; kept only when
    another candidate follows (`keep`), so that a single comparison holds one case's outputs at a time, as before."""

    def __init__(self, traced: torch.jit.ScriptModule, keep: bool) -> None:
        self.traced = traced
        self.keep = keep
        self.outputs: dict[str, list[torch.Tensor]] = {}

    def of(self, name: str, inputs: data.Inputs) -> list[torch.Tensor]:
        """The traced module's outputs on case `name`."""
        if name in self.outputs:
            return self.outputs[name]
        outputs = run(self.traced, inputs, "the traced module")
        if self.keep:
            self.outputs[name] = outputs
        return outputs


def compare_cases(
    candidate: torch.jit.ScriptModule,
    traced: TracedOutputs,
    cases: list[tuple[str, data.Inputs]],
    atol: float,
    rtol: float,
    what: str,
) -> tuple[float, str | None]:
    """(max abs error, first failure in words or None) of candidate against traced on every case."""
    max_abs = 0.0
    failure = None
    for name, inputs in cases:
        try:
            result = compare.compare(run(candidate, inputs, what), traced.of(name, inputs), atol, rtol)
        except Exception as exc:  # a failing optimized graph is a finding of this stage
            sandbox.raise_if_refused(exc)
            result = compare.mismatch(f"raised {type(exc).__name__}: {' '.join(str(exc).split())[:500]}")
        if result["max_abs_error"] is not None:
            max_abs = max(max_abs, result["max_abs_error"])
        if not result["passed"] and failure is None:
            failure = (
                f"{what}, case {name}: {result['error']}"
                if result["error"]
                else f"{what}, case {name}: max abs error {result['max_abs_error']:g}; "
                f"allowed {compare.allowed(atol, rtol)}"
            )
    return max_abs, failure


def for_inference(frozen_path: str, out_dir: str) -> tuple[torch.jit.ScriptModule, str]:
    """torch.jit.optimize_for_inference of a fresh load of the frozen module, in memory only (never saved)."""
    module = torch.jit.optimize_for_inference(torch.jit.load(frozen_path, map_location="cpu").eval())
    path = os.path.join(out_dir, "ir-for-inference.txt")
    write_text(path, str(module.inlined_graph))
    return module, path


@protocol.op("optimize")
def optimize(args: dict[str, Any]) -> dict[str, Any]:
    """Freeze traced.pt into optimized.pt, dump the IR before/after, and compare on the references."""
    if args.get("model_path"):
        # Importing the model file registers any custom operators the traced graph calls.
        user_model.load(args["model_path"])
    out_dir = args["out_dir"]
    atol, rtol = args["atol"], args["rtol"]
    method = args["method"]
    archive_limits.check(args["traced_path"], "traced archive")
    traced = torch.jit.load(args["traced_path"], map_location="cpu").eval()
    frozen = torch.jit.freeze(traced)
    paths = {name: os.path.join(out_dir, name) for name in ("optimized.pt", "ir-before.txt", "ir-after.txt")}
    archive.save(frozen, paths["optimized.pt"])
    write_text(paths["ir-before.txt"], str(traced.inlined_graph))
    write_text(paths["ir-after.txt"], str(frozen.inlined_graph))
    cases = read_cases(args["references_path"])
    # Compare the saved artifact, as deployed, not the in-memory frozen module.
    optimized = torch.jit.load(paths["optimized.pt"], map_location="cpu")
    traced_outputs = TracedOutputs(traced, keep=method == "optimize_for_inference")
    max_abs, failure = compare_cases(optimized, traced_outputs, cases, atol, rtol, "the optimized module")
    inference_nodes: dict[str, int] | None = None
    inference_path: str | None = None
    inference_abs: float | None = None
    if method == "optimize_for_inference":
        inference, inference_path = for_inference(paths["optimized.pt"], out_dir)
        inference_nodes = graph.count_nodes(inference.inlined_graph)
        inference_abs, inference_failure = compare_cases(
            inference, traced_outputs, cases, atol, rtol, "the optimize_for_inference module"
        )
        failure = failure or inference_failure
    before = graph.count_nodes(traced.inlined_graph)
    after = graph.count_nodes(frozen.inlined_graph)
    summary = (
        f"torch.jit.freeze: {sum(before.values())} → {sum(after.values())} nodes; "
        f"optimized agrees with traced (max abs error {max_abs:.2e})"
    )
    if inference_nodes is not None:
        summary += (
            f"; optimize_for_inference (in memory, not saved): {sum(inference_nodes.values())} nodes, "
            f"agrees with traced (max abs error {inference_abs:.2e})"
        )
    return {
        "optimized_path": paths["optimized.pt"],
        "ir_before_path": paths["ir-before.txt"],
        "ir_after_path": paths["ir-after.txt"],
        "nodes_before": before,
        "nodes_after": after,
        "node_total_before": sum(before.values()),
        "node_total_after": sum(after.values()),
        "max_abs_error": compare.json_float(max_abs),
        "passed": failure is None,
        "code": None if failure is None else codes.OPTIMIZED_DIVERGENCE,
        "message": (
            f"{failure} (expected agreement with the traced module); inspect ir-after.txt" if failure else summary
        ),
        "method": method,
        "nodes_for_inference": inference_nodes,
        "ir_for_inference_path": inference_path,
        "max_abs_error_for_inference": None if inference_abs is None else compare.json_float(inference_abs),
    }
