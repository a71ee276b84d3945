"""The onnx stage: the exported program as ONNX (torch.onnx's dynamo exporter), checked by the ONNX checker and run by
ONNX Runtime against eager on the reference and probe cases; a divergence names its first ONNX node."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from . import codes, compare, data, divergence, export, gate, localize, probes, protocol, sandbox, verify
from .protocol import BadRequest

ONNX_FILE = "model.onnx"
REFERENCES_FILE = "references.safetensors"
NODE_TARGET = re.compile(r"%(\w+) : .*?call_function\[target=([\w.]+)\]")
MAX_REASON = 400
ONNX_FIX = (
    "compute it with operators ONNX has (see the exporter's support list at "
    "https://pytorch.org/docs/stable/onnx_dynamo.html), or leave onnx out of formats for this model"
)


def require_onnx(op: str) -> tuple[Any, Any]:
    """(onnx, onnxruntime), or bad_request naming what this environment lacks."""
    export.require_export(op)
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx's dynamo exporter needs it)
    except ImportError as exc:
        raise BadRequest(
            f"op {op!r} needs onnx, onnxscript and onnxruntime in this torch environment (missing: {exc.name}); "
            "make setup installs them into .torch/torch-2.13, a declared environment lists them in its requirements"
        ) from exc
    return onnx, onnxruntime


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """torch.onnx logs its progress and prints to stdout; the protocol's stdout is not for it."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


class OrtGraph:
    """An ONNX Runtime session called like a module: torch tensors in, a tuple of torch tensors out."""

    def __init__(self, path: str, level: str = "disabled", threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            if level == "disabled"
            else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        # The stage's own share of the cores (the worker sizes torch's threads per stage), as its eager runs get.
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: data.Inputs, names: list[str] | None = None) -> list[torch.Tensor]:
        """The named outputs (all when None) on inputs given by position."""
        if len(inputs) != len(self.inputs):
            raise ValueError(f"the ONNX model takes {len(self.inputs)} inputs, the case has {len(inputs)}")
        feeds = {name: t.detach().cpu().contiguous().numpy() for name, t in zip(self.inputs, inputs, strict=True)}
        return [torch.from_numpy(o) for o in self.session.run(names, feeds)]

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.run(inputs))


def refusal(code: str, message: str, example_shapes: list[list[int]], warned: list[str]) -> dict[str, Any]:
    """The result when no ONNX model exists to compare."""
    return {
        "passed": False,
        "code": code,
        "message": message,
        "onnx_path": None,
        "references_path": None,
        "cases": [],
        "example_shapes": example_shapes,
        "opset": None,
        "nodes": {},
        "node_total": 0,
        "warnings": warned,
        "torch_version": torch.__version__,
        "onnx_version": None,
        "onnxruntime_version": None,
        "export_ms": 0.0,
    }


def conversion_failure(exc: BaseException, program: Any, model_path: str) -> str:
    """What the exporter could not translate, named by its operator, node and the user's FILE:LINE where known."""
    chain: list[BaseException] = []
    while exc is not None and len(chain) < 16:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = "\n".join(str(e) for e in chain)
    found = NODE_TARGET.search(text)
    innermost = chain[-1]
    reason = " ".join(str(innermost).split())[:MAX_REASON]
    if not found:
        return f"{type(innermost).__name__}: {reason}"
    node_name, target = found.group(1), found.group(2).removeprefix("torch.ops.")
    # The exporter names a node of its own decomposition of the program: the program's node of the same name, target
    # or op name (prims.zeta comes from aten.special_zeta) has the user's line.
    base = target.split(".")[1] if "." in target else target
    nodes = [n for n in program.graph.nodes if n.op == "call_function"]
    ranked = [
        [n for n in nodes if n.name == node_name],
        [n for n in nodes if str(n.target) == target],
        [n for n in nodes if base in str(n.target)],
    ]
    location = next(
        (
            loc
            for group in ranked
            for n in group
            if (loc := divergence.user_location(n.meta.get("stack_trace"), model_path))
        ),
        None,
    )
    where = f" at {location}" if location else ""
    return f"operator {target} (node '{node_name}'{where}): {type(innermost).__name__}: {reason}"


def intermediate_steps(
    onnx_model: Any, graph_module: torch.fx.GraphModule, ort_path: str, inputs: data.Inputs, model_path: str
) -> Iterator[divergence.Step]:
    """Each ONNX node output named after an FX node, with the FX graph's value for it (the exported program run
    eagerly, op by op) beside ONNX Runtime's, in the ONNX graph's order."""
    import onnx

    recorded, meta = divergence.fx_values(graph_module, inputs)
    known = {v.name: v for v in list(onnx_model.graph.value_info) + list(onnx_model.graph.output)}
    wanted = [out for node in onnx_model.graph.node for out in node.output if out in recorded and out in known]
    existing = {o.name for o in onnx_model.graph.output}
    probe = onnx.ModelProto()
    probe.CopyFrom(onnx_model)
    probe.graph.output.extend([known[name] for name in wanted if name not in existing])
    onnx.save(probe, ort_path)
    values = dict(zip(wanted, OrtGraph(ort_path).run(inputs, wanted), strict=True))
    for node in onnx_model.graph.node:
        for out in node.output:
            if out not in values:
                continue
            fx = meta[out]
            stack = fx.meta.get("nn_module_stack") or {}
            module = list(stack.values())[-1][0] if stack else ""
            yield divergence.Step(
                node=node.name or out,
                op=f"{node.op_type} ({str(fx.target).removeprefix('torch.ops.')})",
                module=module,
                location=divergence.user_location(fx.meta.get("stack_trace"), model_path),
                eager=recorded[out],
                artifact=values[out],
            )


def first_divergence(
    onnx_model: Any,
    program: Any,
    out_dir: str,
    case: tuple[str, data.Inputs],
    model_path: str,
    atol: float,
    rtol: float,
) -> dict[str, Any] | None:
    """The Divergence record of the first ONNX node whose output leaves the tolerance on `case`, or None."""
    path = os.path.join(out_dir, "diagnosis.onnx")
    try:
        steps = intermediate_steps(onnx_model, program.module(), path, case[1], model_path)
        return divergence.first(case[0], steps, atol, rtol)
    except Exception as exc:  # a diagnosis that cannot run leaves the verdict as it is
        sandbox.raise_if_refused(exc)
        return None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


@protocol.op("onnx")
def export_onnx(args: dict[str, Any]) -> dict[str, Any]:
    """torch.export the trained model, translate it to ONNX, check the file and compare ONNX Runtime with eager."""
    onnx, onnxruntime = require_onnx("onnx")
    captured = export.capture(args)
    if isinstance(captured, dict):  # torch.export refused the model, or it keeps train-mode ops
        code, message = captured["code"], captured["message"]
        if code != codes.TRAIN_MODE_OPS:
            # What torch.export could not capture, the ONNX exporter (which starts from it) cannot export.
            code, message = codes.ONNX_EXPORT_FAILED, f"the model cannot be exported to ONNX ({code}): {message}"
        return refusal(code, message, captured["example_shapes"], captured["warnings"])
    shapes = [list(t.shape) for t in captured.example]
    model, example, validation, program = captured.model, captured.example, captured.validation, captured.program
    started = time.perf_counter()
    try:
        with quiet_exporter():
            onnx_program = torch.onnx.export(program, dynamo=True, verbose=False)
        if onnx_program is None:  # only without dynamo=True (the file is written then)
            raise RuntimeError("torch.onnx.export returned no ONNX program")
    except Exception as exc:
        sandbox.raise_if_refused(exc)
        return refusal(
            codes.ONNX_EXPORT_FAILED,
            (
                f"torch.onnx cannot translate the exported program of {captured.path} to ONNX: "
                f"{conversion_failure(exc, program, captured.path)} (expected every operator to have an ONNX "
                f"translation); {ONNX_FIX}"
            ),
            shapes,
            captured.warned,
        )
    onnx_path = os.path.join(args["out_dir"], ONNX_FILE)
    try:
        with quiet_exporter():
            onnx_program.save(onnx_path, external_data=False)
        onnx_model = onnx.load(onnx_path)  # once: checked here, read for its facts below
        onnx.checker.check_model(onnx_model, full_check=True)
    except Exception as exc:
        sandbox.raise_if_refused(exc)
        reason = " ".join(str(exc).split())[:MAX_REASON]
        return refusal(
            codes.ONNX_EXPORT_FAILED,
            (
                f"the ONNX model torch.onnx made of {captured.path} does not pass the ONNX checker or cannot be "
                f"saved as one file: {type(exc).__name__}: {reason} (expected a valid single-file model under "
                f"protobuf's 2 GB limit); {ONNX_FIX}"
            ),
            shapes,
            captured.warned,
        )
    export_ms = (time.perf_counter() - started) * 1000
    dynamic = captured.dynamic
    base, probe_list = verify.build_cases(validation, example, captured.sizes if dynamic else [])
    started = time.perf_counter()
    cases, eager, skipped, _ = verify.eager_cases(model, base, probe_list, captured.path, [])
    eager_ms = (time.perf_counter() - started) * 1000
    sources = [("validation", validation)] + probes.probe_cases(validation) if dynamic else []
    try:
        session = OrtGraph(onnx_path)
    except Exception as exc:
        sandbox.raise_if_refused(exc)
        return refusal(
            codes.ONNX_EXPORT_FAILED,
            (
                f"ONNX Runtime {onnxruntime.__version__} cannot load the ONNX model made of {captured.path}: "
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:MAX_REASON]} (expected it to load); {ONNX_FIX}"
            ),
            shapes,
            captured.warned,
        )
    results, chunks, code, message = export.judge(session, model, cases, eager, example, sources, args)
    found = None
    if code is not None and code != codes.NONDETERMINISTIC:
        code, message, found = blame(captured, onnx_model, cases, eager, results, chunks, sources, args)
    references_path = os.path.join(args["out_dir"], REFERENCES_FILE)
    verify.save_references(references_path, cases, eager)
    for r in results:
        r["max_abs_error"] = compare.json_float(r["max_abs_error"])
        r["max_rel_error"] = compare.json_float(r["max_rel_error"])
    if code in (None, codes.NONDETERMINISTIC):  # export.judge's words name what it ran: here, ONNX Runtime
        message = message.replace("the exported program", "the ONNX model in ONNX Runtime")
    nodes: dict[str, int] = {}
    for node in onnx_model.graph.node:
        nodes[node.op_type] = nodes.get(node.op_type, 0) + 1
    opset = next((o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {
        "passed": code is None,
        "code": code,
        "message": message,
        "onnx_path": onnx_path,
        "references_path": references_path,
        "cases": results,
        "example_shapes": [list(t.shape) for t in example],
        "opset": opset,
        "nodes": dict(sorted(nodes.items())),
        "node_total": sum(nodes.values()),
        "warnings": captured.notes + skipped + captured.warned,
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
        "onnxruntime_version": onnxruntime.__version__,
        "export_ms": round(export_ms, 3),
        "eager_ms": round(eager_ms, 3),
        "example_shape_checks": {"chunks": chunks["chunks"], "failed": chunks["failed"]},
        **({"divergence": found} if code is not None else {}),
    }


def blame(
    captured: export.Captured,
    onnx_model: Any,
    cases: list[verify.Case],
    eager: list[list[torch.Tensor]],
    results: list[dict[str, Any]],
    chunks: dict[str, Any],
    sources: list[verify.Case],
    args: dict[str, Any],
) -> tuple[str, str, dict[str, Any] | None]:
    """(onnx_divergence, message, divergence) for an ONNX model that disagrees with eager: when the exported program
    disagrees too (torch.export froze a value or a size), its finding and its first operator out of tolerance against
    eager; else the first ONNX node out of tolerance against the program's op-by-op values."""
    atol, rtol = args["atol"], args["rtol"]
    program = captured.program
    failed = next((r for r in results if not r["passed"]), None)
    differ = gate.case_words(failed, atol, rtol) if failed else chunks["first_failure"] or "on a probe"
    case = verify.failing_case(cases, results, chunks) or cases[0]
    program_results, program_chunks, program_code, program_message = export.judge(
        program.module(), captured.model, cases, eager, captured.example, sources, args
    )
    if program_code is not None:
        program_case = verify.failing_case(cases, program_results, program_chunks) or case
        found = localize.in_program(program.module(), captured.model, program_case, args)
        return (
            codes.ONNX_DIVERGENCE,
            (
                f"the ONNX model and eager differ ({differ}) because the exported program it was translated from "
                f"already does ({program_code}): {program_message}{divergence.words(found)}"
            ),
            found,
        )
    found = first_divergence(onnx_model, program, args["out_dir"], case, captured.path, atol, rtol)
    return (
        codes.ONNX_DIVERGENCE,
        (
            f"the ONNX model and eager differ ({differ}) while the exported program it was translated from agrees "
            f"with eager (expected ONNX Runtime to compute what eager computes): an operator's ONNX translation "
            f"computes something else{divergence.words(found)}; {ONNX_FIX}"
        ),
        found,
    )
