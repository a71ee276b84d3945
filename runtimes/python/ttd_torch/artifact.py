"""The verify_artifact stage: a TorchScript archive made elsewhere (R torch, any producer) against its references."""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from . import archive_limits, codes, compare, gate, graph, protocol, references, verify
from .protocol import ModelError

TRAIN_FIX = (
    "call model$eval() before jit_trace in R (or .eval() before torch.jit.trace in Python), then trace, "
    "save and record the references again"
)
DEVICE_FIX = (
    "trace on the target device (in R: model$to(device = ...) and the example input on it before "
    "jit_trace), or build such tensors on x's device in forward()"
)
MISMATCH_FIX = (
    "the references were probably computed in train mode (call model$eval() / .eval() before computing "
    "them), with another model or weights than the one traced, or in another dtype; record the outputs "
    "with the same eval-mode model right after tracing it"
)


# The most case reports the result carries (it travels in workflow history); cases.json holds them all.
CASES_REPORTED = 32
NAMES_IN_MESSAGE = 5


def empty_result(code: str, message: str, references_path: str | None = None, cases: int = 0) -> dict[str, Any]:
    """A failed result before any case ran (references unreadable or archive unloadable)."""
    return {
        "passed": False,
        "code": code,
        "message": message,
        "cases": [],
        "train_mode_ops": [],
        "warnings": [],
        "devices": [],
        "nondeterministic_nodes": [],
        "nodes": {},
        "node_total": 0,
        "references_path": references_path,
        "case_count": cases,
        "cases_path": None,
    }


def reported(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The case reports the result carries: failures first, at most CASES_REPORTED."""
    return ([r for r in results if not r["passed"]] + [r for r in results if r["passed"]])[:CASES_REPORTED]


def case_names(results: list[dict[str, Any]]) -> str:
    """The first few case names, and how many more."""
    names = ", ".join(c["name"] for c in results[:NAMES_IN_MESSAGE])
    more = len(results) - NAMES_IN_MESSAGE
    return names + (f" and {more} more" if more > 0 else "")


def load_archive(path: str) -> torch.jit.ScriptModule:
    """torch.jit.load on cpu (never pickle) in eval mode; raises ValueError with the loader's message, ArchiveTooLarge
    before loading an archive past the expansion limits."""
    archive_limits.check(path, "archive")
    try:
        module = torch.jit.load(path, map_location="cpu")
    except Exception as exc:  # the loader's own error is the finding
        raise ValueError(f"{type(exc).__name__}: {' '.join(str(exc).split())[:600]}") from exc
    has_method = getattr(getattr(module, "_c", None), "_has_method", None)
    if has_method is not None and not has_method("forward"):
        raise ValueError("the archive loads but defines no forward method")
    return module.eval()


def check_case(module: torch.jit.ScriptModule, case: references.RefCase, atol: float, rtol: float) -> dict[str, Any]:
    """Run one case and compare with its recorded outputs (an archive that raises or returns no tensors fails)."""
    try:
        return {"name": case.name, **verify.check(module, case.inputs, case.outputs, atol, rtol)}
    except ModelError as exc:  # outputs that are not tensors
        return {"name": case.name, **compare.mismatch(exc.message)}


def mismatch_message(results: list[dict[str, Any]], atol: float, rtol: float) -> str | None:
    """The reference_mismatch message for the first failing case, or None when every case agrees."""
    failed = [r for r in results if not r["passed"]]
    if not failed:
        return None
    return (
        f"the archive does not reproduce the outputs recorded with it in {len(failed)} of {len(results)} cases "
        f"({gate.case_words(failed[0], atol, rtol)}; expected every case within tolerance); {MISMATCH_FIX}"
    )


def decision(facts: gate.Facts) -> tuple[str | None, str]:
    """(code or None, message): the graph findings first, then reference_mismatch."""
    found = gate.graph_decision(facts, TRAIN_FIX, DEVICE_FIX)
    if found is not None:
        return found
    why = mismatch_message(facts.cases, facts.atol, facts.rtol)
    if why is not None:
        return codes.REFERENCE_MISMATCH, why
    worst = max((c["max_abs_error"] or 0.0) for c in facts.cases)
    return None, (
        f"the archive reproduces its references on {len(facts.cases)} cases "
        f"({case_names(facts.cases)}); max abs error {worst:.2e}, "
        f"allowed {compare.allowed(facts.atol, facts.rtol)}"
    )


@protocol.op("verify_artifact")
def verify_artifact(args: dict[str, Any]) -> dict[str, Any]:
    """Verify a foreign TorchScript archive against its recorded references and write canonical references."""
    atol, rtol = args["atol"], args["rtol"]
    try:
        cases = references.read(args["references_path"])
    except references.ReferencesInvalid as exc:
        return empty_result(codes.REFERENCES_INVALID, str(exc))
    references_path = os.path.join(args["out_dir"], "references.safetensors")
    verify.save_references(references_path, [(c.name, c.inputs) for c in cases], [c.outputs for c in cases])
    try:
        module = load_archive(args["artifact_path"])
    except archive_limits.ArchiveTooLarge as exc:  # a zip bomb is a finding about the archive: rejected, not retried
        return empty_result(codes.ARCHIVE_TOO_LARGE, exc.message, references_path, len(cases))
    except ValueError as exc:
        return empty_result(
            codes.ARTIFACT_INVALID,
            f"{args['artifact_path']} is not a loadable TorchScript archive "
            f"({exc}); expected a file saved by jit_save in R or torch.jit.save in Python",
            references_path,
            len(cases),
        )
    torch.manual_seed(0)
    results = [check_case(module, c, atol, rtol) for c in cases]
    inlined = module.inlined_graph
    devices = graph.device_constants(inlined)
    facts = gate.Facts(
        cases=results,
        atol=atol,
        rtol=rtol,
        train_ops=graph.train_mode_ops(inlined),
        repeat=verify.repeat_check(module, (cases[0].name, cases[0].inputs), atol, rtol),
        nondeterministic_nodes=graph.nondeterministic_nodes(inlined),
        devices=devices,
        target_device=args["target_device"],
    )
    code, message = decision(facts)
    nodes = graph.count_nodes(inlined)
    for r in results:
        r["max_abs_error"] = compare.json_float(r["max_abs_error"])
        r["max_rel_error"] = compare.json_float(r["max_rel_error"])
    cases_path = os.path.join(args["out_dir"], "cases.json")
    with open(cases_path, "w", encoding="utf-8") as out:
        json.dump(results, out)
    return {
        "passed": code is None,
        "code": code,
        "message": message,
        "cases": reported(results),
        "cases_path": cases_path,
        "train_mode_ops": facts.train_ops,
        "warnings": gate.gate_warnings(facts, code),
        "devices": verify.unique([str(d["device"]) for d in devices]),
        "nondeterministic_nodes": facts.nondeterministic_nodes,
        "nodes": nodes,
        "node_total": sum(nodes.values()),
        "references_path": references_path,
        "case_count": len(cases),
    }
