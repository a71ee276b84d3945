"""The verify stage: eager eval-mode outputs against the traced module, on reference and probe cases."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import torch

from . import (
    archive_limits,
    codes,
    compare,
    data,
    divergence,
    gate,
    graph,
    localize,
    probes,
    protocol,
    safetensors,
    sandbox,
    trace,
    user_model,
)
from .protocol import ModelError, bad_value

Case = tuple[str, data.Inputs]
Graph = Callable[..., Any]  # a traced module, or any graph run the same way (an exported program's module())
REFERENCES_FORMAT = "ttd-references/1"
ROW_CASES = 8  # example-shaped validation chunks kept as reference cases when batch_sizes is []
PROBE_ROW_CASES = 4  # the same, per probe (the chunk checks still cover up to probes.MAX_CHUNKS of each)


def build_cases(validation: data.Inputs, example: data.Inputs, batch_sizes: list[int]) -> tuple[list[Case], list[Case]]:
    """(reference cases, probe cases) for the batch sizes the graph must serve.

    With batch sizes: validation, example, batch_<n> for each; probes transform the whole validation batch.
    With none ([]): the graph serves only the example's shapes, so every case has them: example, the first
    ROW_CASES example-shaped chunks of validation (validation_row_<i> for an unbatched example,
    validation_rows_<a>_<b> for a batched one), then the first PROBE_ROW_CASES chunks of each probe.
    """
    if batch_sizes:
        cases: list[Case] = [("validation", validation), ("example", example)]
        cases += [(f"batch_{n}", data.first_rows(validation, n)) for n in batch_sizes]
        return cases, probes.probe_cases(validation)
    cases = [("example", example)] + probes.example_shaped_cases(example, [("validation", validation)], ROW_CASES)
    return cases, probes.example_shaped_cases(example, probes.probe_cases(validation), PROBE_ROW_CASES)


def save_references(path: str, cases: list[Case], outputs: list[list[torch.Tensor]]) -> None:
    """Write every case's inputs and reference outputs (docs/protocol.md, section 3)."""
    tensors: dict[str, torch.Tensor] = {}
    for (name, inputs), outs in zip(cases, outputs, strict=True):
        for i, t in enumerate(inputs):
            tensors[f"{name}/input/{i}"] = t
        for j, t in enumerate(outs):
            tensors[f"{name}/output/{j}"] = t
    safetensors.save(path, tensors, {"format": REFERENCES_FORMAT, "cases": ",".join(n for n, _ in cases)})


def run_traced(traced: Graph, inputs: data.Inputs) -> list[torch.Tensor]:
    """Run the traced module under no_grad and flatten its outputs."""
    with torch.no_grad():
        return data.flatten(traced(*inputs), "the traced module")


def run_eager(model: torch.nn.Module, inputs: data.Inputs, model_path: str, name: str) -> list[torch.Tensor]:
    """The eager eval-mode outputs under no_grad (user exceptions become model_error)."""
    with torch.no_grad(), user_model.user_code(model_path, f"forward() in eval mode on case {name}"):
        return [t.detach() for t in data.flatten(model(*inputs), f"forward() on case {name}")]


def check(traced: Graph, inputs: data.Inputs, expected: list[torch.Tensor], atol: float, rtol: float) -> dict[str, Any]:
    """Compare the traced module's outputs with expected ones; a raising traced module is a mismatch."""
    try:
        return compare.compare(run_traced(traced, inputs), expected, atol, rtol)
    except ModelError:
        raise
    except Exception as exc:  # a traced graph failing on another input is a finding, not our bug
        sandbox.raise_if_refused(exc)
        return compare.mismatch(f"the traced module raised {type(exc).__name__}: {' '.join(str(exc).split())[:500]}")


def chunk_checks(
    model: torch.nn.Module, traced: Graph, example: data.Inputs, sources: list[Case], args: dict[str, Any]
) -> dict[str, Any]:
    """Traced vs eager on chunks of the sources cut to the example's exact shapes (value-only divergence); the first
    failing chunk's inputs are kept as first_case when the graph computed numbers on it (for the divergence search)."""
    count, failed, first, first_case = 0, 0, None, None
    for name, source in sources:
        for label, chunk in probes.example_shaped(example, source):
            try:
                expected = run_eager(model, chunk, args["model_path"], name)
            except ModelError:
                continue  # eager itself rejects this input: nothing to compare
            result = check(traced, chunk, expected, args["atol"], args["rtol"])
            count += 1
            if not result["passed"]:
                failed += 1
                if first is None:
                    first = gate.case_words(
                        {**result, "name": f"{name} {label}, at the example's shape"}, args["atol"], args["rtol"]
                    )
                    first_case = None if result.get("error") else (f"{name} {label}", chunk)
    return {"chunks": count, "failed": failed, "first_failure": first, "first_case": first_case}


def repeat_check(traced: Graph, case: Case, atol: float, rtol: float) -> dict[str, Any]:
    """Run the traced module twice on one case: random ops make the two runs differ."""
    name, inputs = case
    try:
        result = compare.compare(run_traced(traced, inputs), run_traced(traced, inputs), atol, rtol)
    except Exception as exc:  # reported by the case comparison already
        sandbox.raise_if_refused(exc)
        return {"case": name, "passed": True, "words": f"raised {type(exc).__name__}"}
    words = result["error"] or f"max abs error {result['max_abs_error']:g}, allowed {compare.allowed(atol, rtol)}"
    return {"case": name, "passed": result["passed"], "words": words}


def repeat_checks(traced: torch.jit.ScriptModule, cases: list[Case], atol: float, rtol: float) -> dict[str, Any]:
    """repeat_check on each case until two runs differ: one small example-shaped input may draw equal numbers twice."""
    first: dict[str, Any] = {}
    for case in cases:
        result = repeat_check(traced, case, atol, rtol)
        if not result["passed"]:
            return result
        first = first or result
    return first


def shapes(inputs: data.Inputs) -> str:
    """Input shapes for a message: [3], [200, 3]."""
    return ", ".join(str(list(t.shape)) for t in inputs)


def eager_cases(
    model: torch.nn.Module, cases: list[Case], probe_list: list[Case], model_path: str, train_ops: list[str]
) -> tuple[list[Case], list[list[torch.Tensor]], list[str], list[str]]:
    """(cases kept, their eager outputs, warnings, failures): a probe the model itself rejects is skipped with a
    warning; with train-mode ops in the graph any case is (the gate rejects them, and a batch norm in training mode
    raises on one row), and the failure is named for the verdict."""
    kept: list[Case] = []
    outputs: list[list[torch.Tensor]] = []
    skipped: list[str] = []
    failures: list[str] = []
    for name, inputs in cases + probe_list:
        try:
            outs = run_eager(model, inputs, model_path, name)
        except ModelError as exc:
            if not name.startswith("probe_") and not train_ops:
                raise
            what = "probe" if name.startswith("probe_") else "case"
            skipped.append(f"{what} {name} skipped: the eager model raised on it ({exc.message[:300]})")
            if not name.startswith("probe_"):
                failures.append(f"case {name} ({gate.short(exc.message, 160)})")
            continue
        kept.append((name, inputs))
        outputs.append(outs)
    return kept, outputs, skipped, failures


# Verdicts on numbers: the graph ran and computed other values than eager (not a refusal, an error or random ops).
NUMERIC_CODES = (codes.CONTROL_FLOW_DIVERGENCE, codes.PYTHON_VALUE_CAPTURE, codes.SHAPE_SPECIALIZATION)


def failing_case(
    cases: list[Case], results: list[dict[str, Any]], chunks: dict[str, Any], batch_first: bool = False
) -> Case | None:
    """The case a failed verdict names and the graph computed numbers on: the first failing example-shaped chunk, else
    the first failing case (batch_<n> cases first for a shape verdict); None when the graph raised on each."""
    failed = [case for case, r in zip(cases, results, strict=True) if not r["passed"] and not r.get("error")]
    if batch_first:
        return ([c for c in failed if c[0].startswith("batch_")] or failed or [None])[0]
    return chunks.get("first_case") or (failed[0] if failed else None)


def unique(values: list[str]) -> list[str]:
    """Values once each, in first-seen order."""
    return list(dict.fromkeys(values))


def batch_sizes(values: list[Any]) -> list[int]:
    """args.batch_sizes (positive integers by the contract) as ints, each at most once."""
    for i, value in enumerate(values):
        if value in values[:i]:
            raise bad_value(
                f"args.batch_sizes[{i}]", value, f"a value not already in args.batch_sizes (got {values!r})"
            )
    return [int(v) for v in values]  # JSON Schema counts 7.0 as an integer


@protocol.op("verify")
def verify(args: dict[str, Any]) -> dict[str, Any]:
    """Compare eager and traced outputs on every reference and probe case, judge the trace, save the references."""
    sizes = batch_sizes(args["batch_sizes"])
    module = user_model.load(args["model_path"])
    params = args["params"]
    atol, rtol = args["atol"], args["rtol"]
    torch.manual_seed(0)  # random ops in forward() draw the same numbers on every verify run
    model = trace.load_trained(module, params, args["weights_path"])
    validation, _ = data.load_split(module, params, "validation")
    example = trace.example_inputs(module, params)
    example_shaped = not sizes  # the graph must serve the example's shapes only
    base, probe_list = build_cases(validation, example, sizes)
    archive_limits.check(args["traced_path"], "traced archive")
    traced = torch.jit.load(args["traced_path"], map_location="cpu")
    inlined = traced.inlined_graph
    # Read before any reference runs: a train-mode op can make the eager model itself fail (batch norm on one row).
    train_ops = graph.train_mode_ops(inlined)
    started = time.perf_counter()
    cases, eager, skipped, failures = eager_cases(model, base, probe_list, args["model_path"], train_ops)
    eager_ms = (time.perf_counter() - started) * 1000  # the reference cases once, eagerly: later stages' time limits
    results: list[dict[str, Any]] = []
    for (name, inputs), expected in zip(cases, eager, strict=True):
        results.append({"name": name, **check(traced, inputs, expected, atol, rtol)})
    if example_shaped:
        # Whole batches are only cut into example-shaped chunks; the graph never runs on them whole.
        sources = [("validation", validation)] + probes.probe_cases(validation)
        if len(base) == 1:
            skipped.append(
                f"trace.batch_sizes is [] but no validation rows fit the example's shapes "
                f"({shapes(example)}; validation inputs {shapes(validation)}), so only the example "
                "itself was compared; give example_inputs() one validation row's shapes"
            )
    else:
        sources = [c for c in cases if c[0] == "validation" or c[0].startswith("probe_")]
    chunks = chunk_checks(model, traced, example, sources, args)
    if example_shaped:
        repeat = repeat_checks(traced, [c for c in cases if not c[0].startswith("probe_")], atol, rtol)
    else:
        repeat = repeat_check(traced, base[0], atol, rtol)
    devices = graph.device_constants(inlined)
    facts = gate.Facts(
        cases=results,
        atol=atol,
        rtol=rtol,
        example_shape=[list(t.shape) for t in example],
        chunk_checks=chunks,
        train_ops=train_ops,
        repeat=repeat,
        nondeterministic_nodes=graph.nondeterministic_nodes(inlined),
        devices=devices,
        target_device=args["target_device"],
        captures=args["captures"],
        accept_captures=args["accept_captures"],
        tracer_warnings=args["tracer_warnings"],
        eager_failures=failures,
        example_shaped=example_shaped,
    )
    code, message, warnings = gate.verdict(facts)
    found: dict[str, Any] | None = None
    if code in NUMERIC_CODES:  # searched only after a failure on numbers: passing runs cost nothing more
        case = failing_case(cases, results, chunks, batch_first=code == codes.SHAPE_SPECIALIZATION)
        found = localize.in_script(traced, model, case, args) if case else None
        message += divergence.words(found)
    references_path = os.path.join(args["out_dir"], "references.safetensors")
    save_references(references_path, cases, eager)
    for r in results:
        r["max_abs_error"] = compare.json_float(r["max_abs_error"])
        r["max_rel_error"] = compare.json_float(r["max_rel_error"])
    return {
        "passed": code is None,
        "code": code,
        "message": message,
        "cases": results,
        "train_mode_ops": facts.train_ops,
        "references_path": references_path,
        "warnings": skipped + warnings,
        "devices": unique([str(d["device"]) for d in devices]),
        "nondeterministic_nodes": facts.nondeterministic_nodes,
        "example_shape_checks": {"chunks": facts.chunk_checks["chunks"], "failed": facts.chunk_checks["failed"]},
        "tracer_warnings": args["tracer_warnings"],
        "eager_ms": round(eager_ms, 3),
        # Only on a verdict on numbers: the record, or null when no operator was found.
        **({"divergence": found} if code in NUMERIC_CODES else {}),
    }
