"""The export stage: torch.export of the trained eval-mode model (batch dimension dynamic), checked against eager."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from . import (
    codes,
    compare,
    data,
    divergence,
    export_failures,
    gate,
    localize,
    probes,
    protocol,
    sandbox,
    trace,
    user_model,
    verify,
)
from .protocol import BadRequest

PROGRAM_FILE = "program.pt2"
REFERENCES_FILE = "references.safetensors"
MIN_TORCH = (2, 1)  # torch.export.export and torch.export.save/load
# Verdicts on numbers: the program ran and computed other values than eager (not a refusal or random ops).
NUMERIC_CODES = (codes.CONTROL_FLOW_DIVERGENCE, codes.DYNAMIC_SHAPE_VIOLATION)


def torch_version_tuple() -> tuple[int, int]:
    """(major, minor) of the running torch."""
    major, minor = torch.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def require_export(op: str) -> None:
    """bad_request unless this torch has torch.export (2.1 and later)."""
    if torch_version_tuple() < MIN_TORCH or not callable(getattr(getattr(torch, "export", None), "export", None)):
        raise BadRequest(
            f"op {op!r} needs torch >= 2.1 (torch.export); this environment has torch "
            f"{torch.__version__}; run the torch worker with a torch 2.x environment (TTD_PYTHON)"
        )


def is_batched(example: data.Inputs, validation: data.Inputs) -> bool:
    """True when the example is a batch of validation rows (same rank and row shape), not one unbatched row."""
    layout = probes.chunk_layout(example, validation)
    return layout is not None and not layout[1]


def batch_range(sizes: list[int], example: data.Inputs, validation: data.Inputs) -> tuple[int, int]:
    """(min, max) batch size the program must serve: the batch sizes, the example's rows and the validation batch."""
    served = sizes + [int(example[0].shape[0]), int(validation[0].shape[0])]
    return min(served), max(served)


def dynamic_shapes(example: data.Inputs, low: int, high: int) -> tuple[dict[int, Any], ...]:
    """Dim 0 of every input as one shared dynamic batch dimension."""
    batch = torch.export.Dim("batch", min=low, max=high)
    return tuple({0: batch} for _ in example)


def program_dims(program: Any) -> list[dict[str, Any]]:
    """The dynamic dims of the exported program's user inputs, with the range torch recorded for each."""
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    dims: list[dict[str, Any]] = []
    for i, name in enumerate(program.graph_signature.user_inputs):
        value = placeholders[name].meta.get("val") if name in placeholders else None
        for j, size in enumerate(getattr(value, "shape", ())):
            if isinstance(size, torch.SymInt):
                bounds = program.range_constraints.get(size.node.expr)
                upper = None if bounds is None or not bounds.upper.is_finite else int(bounds.upper)
                dims.append({"input": i, "dim": j, "min": int(bounds.lower) if bounds is not None else 0, "max": upper})
    return dims


def node_counts(program: Any) -> dict[str, int]:
    """call_function nodes of the exported graph by target (aten.linear.default)."""
    counts: dict[str, int] = {}
    for node in program.graph.nodes:
        if node.op == "call_function":
            key = str(node.target)
            counts[key] = counts.get(key, 0) + 1
    return counts


def warning_words(records: list[warnings.WarningMessage]) -> list[str]:
    """Warnings raised while exporting from the user's files and others that are not torch's notices about our calls."""
    stdlib = os.path.dirname(os.__file__)
    kept = [w for w in records if not trace.is_tooling_noise(w) and not os.path.abspath(w.filename).startswith(stdlib)]
    return [f"{w.category.__name__} at {w.filename}:{w.lineno}: {str(w.message)[: trace.MAX_MESSAGE]}" for w in kept][
        : trace.MAX_REPORTED
    ]


def judge(
    program: verify.Graph,
    model: torch.nn.Module,
    cases: list[verify.Case],
    eager: list[list[torch.Tensor]],
    example: data.Inputs,
    chunk_sources: list[verify.Case],
    args: dict[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, Any], str | None, str]:
    """The probe comparison verify does for a trace, on any callable graph: (cases, chunk checks, code, message).

    Codes: nondeterministic (two runs differ), control_flow_divergence (outputs differ at the example's own shape:
    the graph froze a value or a path), dynamic_shape_violation (only other batch sizes differ). With no chunk
    sources every case has the example's shapes (a static program), so any failing case depends on values."""
    atol, rtol = args["atol"], args["rtol"]
    results = [
        {"name": name, **verify.check(program, inputs, expected, atol, rtol)}
        for (name, inputs), expected in zip(cases, eager, strict=True)
    ]
    chunks = verify.chunk_checks(model, program, example, chunk_sources, args)
    repeat = verify.repeat_check(program, cases[0], atol, rtol)
    failed = [r for r in results if not r["passed"]]
    if not repeat["passed"]:
        return (
            results,
            chunks,
            codes.NONDETERMINISTIC,
            (
                f"two runs of the exported program on case {repeat['case']} differ ({repeat['words']}; "
                "expected identical outputs); draw random numbers only when self.training, or remove them from "
                "forward()"
            ),
        )
    at_example = [r for r in failed if not chunk_sources or r["name"] == "example"]
    value_failed = chunks["first_failure"] or (gate.case_words(at_example[0], atol, rtol) if at_example else None)
    if value_failed:
        return (
            results,
            chunks,
            codes.CONTROL_FLOW_DIVERGENCE,
            (
                f"the exported program and eager differ on inputs of the example's own shape ({value_failed}; "
                "expected identical outputs on every probe): export froze a value computed in Python (a module "
                "attribute, a global, a Python number) or a path as a constant; compute it from tensors inside "
                "forward()"
            ),
        )
    if failed:
        return (
            results,
            chunks,
            codes.DYNAMIC_SHAPE_VIOLATION,
            (
                "the exported program fails or disagrees at another batch size "
                f"({gate.case_words(failed[0], atol, rtol)}) while it agrees at the example's shape (expected the "
                "same outputs at every batch size in its range); use x.shape[0] instead of fixed sizes, or set "
                "trace.batch_sizes: []"
            ),
        )
    worst = max((r["max_abs_error"] or 0.0) for r in results) if results else 0.0
    return (
        results,
        chunks,
        None,
        (
            f"the exported program and eager agree on {len(results)} cases and {chunks['chunks']} example-shaped "
            f"chunks; max abs error {worst:.2e}, allowed {compare.allowed(atol, rtol)}"
        ),
    )


def refusal(
    code: str, message: str, example: data.Inputs, dims: list[dict[str, Any]], warned: list[str]
) -> dict[str, Any]:
    """The result when no program exists to compare (export refused the model)."""
    return {
        "passed": False,
        "code": code,
        "message": message,
        "program_path": None,
        "references_path": None,
        "cases": [],
        "example_shapes": [list(t.shape) for t in example],
        "dynamic_dims": dims,
        "nodes": {},
        "node_total": 0,
        "warnings": warned,
        "example_shape_checks": {"chunks": 0, "failed": 0},
        "torch_version": torch.__version__,
    }


# aten op of an exported graph (before decompositions) -> index of its boolean "train"/"training" argument
FX_TRAIN_FLAG_INDEX: dict[str, int] = {
    "aten.dropout.default": 2,
    "aten.feature_dropout.default": 2,
    "aten.alpha_dropout.default": 2,
    "aten.feature_alpha_dropout.default": 2,
    "aten.batch_norm.default": 5,
    "aten.native_dropout.default": 2,
    "aten.native_batch_norm.default": 5,
    "aten._native_batch_norm_legit.default": 5,
    "aten._native_batch_norm_legit_functional.default": 5,
}


def train_mode_ops(program: Any) -> list[str]:
    """The dropout and batch norm ops of an exported graph whose train flag is True (once each, in graph order)."""
    found: list[str] = []
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        target = str(node.target)
        index = FX_TRAIN_FLAG_INDEX.get(target)
        flag = node.args[index] if index is not None and len(node.args) > index else node.kwargs.get("train")
        if index is not None and flag is True and target not in found:
            found.append(target)
    return found


@dataclass
class Captured:
    """The trained eval-mode model and its torch.export program, with what both were made from."""

    model: torch.nn.Module
    path: str
    example: data.Inputs
    validation: data.Inputs
    sizes: list[int]
    dynamic: bool
    program: Any
    notes: list[str]
    warned: list[str]


def capture(args: dict[str, Any]) -> Captured | dict[str, Any]:
    """torch.export of the trained model (as trace loads it), the batch dimension dynamic over the sizes it must
    serve: the program, or the refusal result when export refused the model (or it keeps train-mode ops)."""
    sizes = verify.batch_sizes(args["batch_sizes"])
    path = args["model_path"]
    module = user_model.load(path)
    params = args["params"]
    torch.manual_seed(0)  # as verify: random ops in forward() draw the same numbers on every run
    model = trace.load_trained(module, params, args["weights_path"])
    validation, _ = data.load_split(module, params, "validation")
    example = trace.example_inputs(module, params)
    batched = is_batched(example, validation)
    notes: list[str] = []
    if sizes and not batched and probes.chunk_layout(example, validation) == (1, True):
        # One unbatched row (the seed traces so) with batch sizes to serve: the traced graph is checked on batches of
        # validation rows, so the program is exported on such a batch, its batch dimension dynamic. Two rows at least:
        # torch.export specialises a dimension of size 1.
        rows = min(int(validation[0].shape[0]), max(2, max(sizes)))
        notes.append(
            f"example_inputs() gives one unbatched row {verify.shapes(example)}; exported on the first {rows} "
            f"validation rows with the batch dimension dynamic, as trace.batch_sizes {sizes} asks"
        )
        example, batched = tuple(t[:rows] for t in validation), True
    if sizes and not batched:
        return refusal(
            codes.DYNAMIC_SHAPE_VIOLATION,
            (
                f"example_inputs() in {path} gives shapes {verify.shapes(example)} without the batch dimension of the "
                f"validation inputs ({verify.shapes(validation)}), so torch.export has no batch dimension to keep "
                f"dynamic, but trace.batch_sizes is {sizes} (expected a batched example when batch sizes are given); "
                "return a batch of rows from example_inputs() (e.g. the first 4 validation rows), or set "
                "trace.batch_sizes: [] to export the example's shape only"
            ),
            example,
            [],
            [],
        )
    low, high = batch_range(sizes, example, validation) if sizes else (0, 0)
    dynamic = low < high  # one size only (or none): the example's shapes are all the program serves
    shapes_arg = dynamic_shapes(example, low, high) if dynamic else None
    batch_words = f"batch sizes {low}..{high} (trace.batch_sizes {sizes}, the example and the validation batch)"
    with warnings.catch_warnings(record=True) as caught, export_failures.guard_sites(path) as sites:
        warnings.simplefilter("always")
        try:
            program = torch.export.export(model, example, dynamic_shapes=shapes_arg, strict=False)
        except Exception as exc:  # torch raises UserError, GuardOnDataDependentSymNode, TorchRuntimeError, …
            sandbox.raise_if_refused(exc)
            verify.run_eager(model, example, path, "example")  # a forward() that fails by itself: model_error
            code, message = export_failures.classify(exc, path, batch_words, sites)
            return refusal(code, message, example, [], warning_words(list(caught)))
    warned = warning_words(list(caught))
    train_ops = train_mode_ops(program)
    if train_ops:
        # Checked before any case runs eagerly: a batch norm in training mode raises on one row by itself.
        return refusal(
            codes.TRAIN_MODE_OPS,
            f"the exported graph keeps {', '.join(train_ops)} in training mode (expected no train-mode ops: the "
            f"model is exported after model.eval(), so forward() hard-wires them); pass training=self.training to "
            f"F.dropout/F.batch_norm in forward() of {path}",
            example,
            program_dims(program),
            warned,
        )
    return Captured(model, path, example, validation, sizes, dynamic, program, notes, warned)


@protocol.op("export")
def export(args: dict[str, Any]) -> dict[str, Any]:
    """torch.export the trained model (as trace loads it), save program.pt2, compare it with eager, save references."""
    require_export("export")
    captured = capture(args)
    if isinstance(captured, dict):
        return captured
    model, example, validation, program = captured.model, captured.example, captured.validation, captured.program
    dynamic = captured.dynamic
    # After export: eager may fail where the program refuses (x.view(4, -1) at batch 7), and export says it better.
    base, probe_list = verify.build_cases(validation, example, captured.sizes if dynamic else [])
    started = time.perf_counter()
    cases, eager, skipped, _ = verify.eager_cases(
        model, base, probe_list, captured.path, []
    )  # a forward() that raises: model_error
    eager_ms = (time.perf_counter() - started) * 1000  # the reference cases once, eagerly: later stages' time limits
    program_path = os.path.join(args["out_dir"], PROGRAM_FILE)
    torch.export.save(program, program_path)
    loaded = torch.export.load(program_path).module()  # compare what a runtime loads, not the in-memory program
    sources = [("validation", validation)] + probes.probe_cases(validation) if dynamic else []
    results, chunks, code, message = judge(loaded, model, cases, eager, example, sources, args)
    found: dict[str, Any] | None = None
    if code in NUMERIC_CODES:  # searched only after a failure on numbers: passing runs cost nothing more
        case = verify.failing_case(cases, results, chunks, batch_first=code == codes.DYNAMIC_SHAPE_VIOLATION)
        found = localize.in_program(program.module(), model, case, args) if case else None
        message += divergence.words(found)
    references_path = os.path.join(args["out_dir"], REFERENCES_FILE)
    verify.save_references(references_path, cases, eager)
    for r in results:
        r["max_abs_error"] = compare.json_float(r["max_abs_error"])
        r["max_rel_error"] = compare.json_float(r["max_rel_error"])
    nodes = node_counts(program)
    return {
        "passed": code is None,
        "code": code,
        "message": message,
        "program_path": program_path,
        "references_path": references_path,
        "cases": results,
        "example_shapes": [list(t.shape) for t in example],
        "dynamic_dims": program_dims(program),
        "nodes": nodes,
        "node_total": sum(nodes.values()),
        "warnings": captured.notes + skipped + captured.warned,
        "example_shape_checks": {"chunks": chunks["chunks"], "failed": chunks["failed"]},
        "torch_version": torch.__version__,
        "eager_ms": round(eager_ms, 3),
        # Only on a verdict on numbers: the record, or null when no operator was found.
        **({"divergence": found} if code in NUMERIC_CODES else {}),
    }
