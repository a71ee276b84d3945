"""The verify stage: eager eval-mode outputs against the traced module, on reference cases."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, Dict, List, Tuple

import torch

from . import compare, data, graph, safetensors, trace, user_model

Case = Tuple[str, data.Inputs]
REFERENCES_FORMAT = "ttd-references/1"


def build_cases(module: ModuleType, params: Dict[str, Any], batch_sizes: List[int]) -> List[Case]:
    """The reference cases: validation, example, batch_<n> for each batch size."""
    validation, _ = data.load_split(module, params, "validation")
    cases: List[Case] = [("validation", validation), ("example", trace.example_inputs(module, params))]
    for n in batch_sizes:
        cases.append((f"batch_{n}", data.first_rows(validation, n)))
    return cases


def save_references(path: str, cases: List[Case], outputs: List[List[torch.Tensor]]) -> None:
    """Write every case's inputs and reference outputs (docs/protocol.md, section 3)."""
    tensors: Dict[str, torch.Tensor] = {}
    for (name, inputs), outs in zip(cases, outputs):
        for i, t in enumerate(inputs):
            tensors[f"{name}/input/{i}"] = t
        for j, t in enumerate(outs):
            tensors[f"{name}/output/{j}"] = t
    safetensors.save(path, tensors, {"format": REFERENCES_FORMAT, "cases": ",".join(n for n, _ in cases)})


def run_traced(traced: torch.jit.ScriptModule, inputs: data.Inputs) -> List[torch.Tensor]:
    """Run the traced module under no_grad and flatten its outputs."""
    with torch.no_grad():
        return data.flatten(traced(*inputs), "the traced module")


def verdict(cases: List[Dict[str, Any]], train_ops: List[str], atol: float, rtol: float) -> Tuple[Any, Any]:
    """(code, message) of a verification: code None (and a summary) when everything passed."""
    if train_ops:
        return "train_mode_ops", (f"the traced graph keeps {', '.join(train_ops)} in training mode; "
                                  "call model.eval() before tracing (expected no train-mode ops)")
    failed = [c for c in cases if not c["passed"]]
    if not failed:
        worst = max((c["max_abs_error"] or 0.0) for c in cases) if cases else 0.0
        return None, (f"traced and eager agree on {len(cases)} cases ({', '.join(c['name'] for c in cases)}); "
                      f"max abs error {worst:.2e}, allowed {compare.allowed(atol, rtol)}")
    shape = [c for c in failed if c["name"].startswith("batch_")]
    case = (shape or failed)[0]
    code = "shape_specialization" if shape else "control_flow_divergence"
    if case["error"]:
        return code, f"case {case['name']}: {case['error']}"
    return code, (f"case {case['name']}: max abs error {case['max_abs_error']:g}, max rel error "
                  f"{case['max_rel_error']:g}; allowed {compare.allowed(atol, rtol)}")


def verify(args: Dict[str, Any]) -> Dict[str, Any]:
    """Compare eager and traced outputs on every reference case and save the references."""
    module = user_model.load(args["model_path"])
    params = args["params"]
    atol, rtol = args["atol"], args["rtol"]
    model = trace.load_trained(module, params, args["weights_path"])
    cases = build_cases(module, params, args["batch_sizes"])
    eager: List[List[torch.Tensor]] = []
    with torch.no_grad(), user_model.user_code(args["model_path"], "forward() in eval mode"):
        for name, inputs in cases:
            eager.append([t.detach() for t in data.flatten(model(*inputs), f"forward() on case {name}")])
    traced = torch.jit.load(args["traced_path"], map_location="cpu")
    results: List[Dict[str, Any]] = []
    for (name, inputs), expected in zip(cases, eager):
        try:
            result = compare.compare(run_traced(traced, inputs), expected, atol, rtol)
        except Exception as exc:  # a traced graph failing on another shape is a finding, not our bug
            result = compare.mismatch(f"the traced module raised {type(exc).__name__}: {' '.join(str(exc).split())[:500]}")
        results.append({"name": name, **result})
    train_ops = graph.train_mode_ops(traced.inlined_graph)
    code, message = verdict(results, train_ops, atol, rtol)
    references_path = os.path.join(args["out_dir"], "references.safetensors")
    save_references(references_path, cases, eager)
    for r in results:
        r["max_abs_error"] = compare.json_float(r["max_abs_error"])
        r["max_rel_error"] = compare.json_float(r["max_rel_error"])
    return {"passed": code is None, "code": code, "message": message, "cases": results,
            "train_mode_ops": train_ops, "references_path": references_path}
