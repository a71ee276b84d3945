"""The compile stage: AOTInductor packages the exported program (model.pt2), checked against the references."""

from __future__ import annotations

import contextlib
import os
import re
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import torch

from . import archive_limits, codes, compare, data, divergence, export, gate, protocol, references, sandbox, user_model
from .protocol import BadRequest

PACKAGE_FILE = "model.pt2"
# Inductor names each generated kernel after the ops it fused: cpp_fused_relu_addmm_3 (CPU), triton_poi_fused_… (GPU).
KERNEL = re.compile(r"\b((?:cpp|triton_(?:poi|red|per|tem))_fused_\w*?)_?(\d+)\b")
KERNEL_SOURCES = (".kernel.cpp", ".wrapper.cpp", ".cpp")
MAX_REASON_LINES = 6  # of a compile error quoted
FRAME = re.compile(r'File "([^"]+)", line (\d+), in [^\n]*\n[ \t]*([^\n]*)')


@contextlib.contextmanager
def inductor_cache(cache_dir: str) -> Iterator[None]:
    """TORCHINDUCTOR_CACHE_DIR for this call only, and Inductor's in-memory caches cleared on entry and exit, so that a
    long-lived server (or a child forked from one) never mixes two cache directories; the old value comes back."""
    with precompiled_headers(cache_dir), cache_dir_env(cache_dir):
        yield


@contextlib.contextmanager
def precompiled_headers(cache_dir: str) -> Iterator[None]:
    """Inductor's precompiled headers (~150 MB each) in cache_dir/precompiled_headers for this call: Inductor puts
    them in /tmp/torchinductor_<user>, which in the sandbox is a scratch tmpfs that every request starts empty."""
    try:
        from torch._inductor import codecache
    except ImportError:
        yield
        return
    names = [n for n in ("_HEADER_DIR", "_HEADER_LOCK_DIR") if isinstance(getattr(codecache, n, None), str)]
    saved = {n: getattr(codecache, n) for n in names}
    headers = os.path.join(cache_dir, "precompiled_headers")
    for n in names:
        setattr(codecache, n, headers if n == "_HEADER_DIR" else os.path.join(headers, "locks"))
    try:
        yield
    finally:
        for n, v in saved.items():
            setattr(codecache, n, v)


@contextlib.contextmanager
def cache_dir_env(cache_dir: str) -> Iterator[None]:
    """TORCHINDUCTOR_CACHE_DIR for this call (Inductor's own helper where it has one)."""
    from torch._inductor.runtime import cache_dir_utils

    temporary = getattr(cache_dir_utils, "temporary_cache_dir", None)
    if temporary is not None:
        with temporary(cache_dir):
            yield
        return
    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous


def shared_objects(cache_dir: str) -> set[str]:
    """Every shared object under the cache directory (Inductor builds one per compiled helper, kernel or wrapper)."""
    found: set[str] = set()
    for root, _, files in os.walk(cache_dir):
        found.update(os.path.join(root, f) for f in files if f.endswith(".so"))
    return found


def cache_counters(before: dict[str, int]) -> dict[str, int]:
    """The increase of Inductor's cache counters (fxgraph_cache_*, async_compile_cache_*, …) during the call."""
    from torch._dynamo.utils import counters

    now = {k: int(v) for k, v in counters["inductor"].items() if "cache" in k}
    return {k: v - before.get(k, 0) for k, v in sorted(now.items()) if v - before.get(k, 0)}


def op_names(program: Any) -> list[str]:
    """The aten op names in the exported graph (relu, addmm, native_layer_norm), longest first, to split kernels."""
    names = {
        str(n.target).split(".")[1]
        for n in program.graph.nodes
        if n.op == "call_function" and str(n.target).startswith("aten.") and str(n.target).count(".") >= 1
    }
    return sorted(names, key=len, reverse=True)


def split_ops(words: str, known: list[str]) -> list[str]:
    """A kernel name's op part (`relu_native_layer_norm`) as ops, matching the graph's op names first, else by `_`."""
    ops: list[str] = []
    rest = words.strip("_")
    while rest:
        match = next((k for k in known if rest == k or rest.startswith(k + "_")), None)
        token = match or rest.split("_", 1)[0]
        ops.append(token)
        rest = rest[len(token) :].lstrip("_")
    return ops


def kernels(package_path: str, known: list[str]) -> list[dict[str, Any]]:
    """The generated kernels in the package's C++ sources, each with the ops its name says it fused, in index order."""
    found: dict[str, tuple[int, str]] = {}
    with zipfile.ZipFile(package_path) as package:
        for name in package.namelist():
            if name.endswith(KERNEL_SOURCES):
                source = package.read(name).decode("utf-8", "replace")
                for match in KERNEL.finditer(source):
                    found.setdefault(match.group(0), (int(match.group(2)), match.group(1)))
    ordered = sorted(found.items(), key=lambda item: (item[1][0], item[0]))
    return [
        {"name": full, "ops": split_ops(re.sub(r"^(cpp|triton_\w+?)_fused", "", prefix), known)}
        for full, (_, prefix) in ordered
    ]


def first_lines(exc: BaseException) -> str:
    """The reason a compile failed: the exception's type and its first non-empty lines, on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()][:MAX_REASON_LINES]
    return f"{type(exc).__name__}: {' '.join(lines)[:800]}"


def failed(message: str, compile_ms: float, counters: dict[str, int]) -> dict[str, Any]:
    """The compile_failed result: nothing packaged, nothing compared."""
    return {
        "passed": False,
        "code": codes.COMPILE_FAILED,
        "message": message,
        "package_path": None,
        "kernels": [],
        "kernel_count": 0,
        "compile_ms": round(compile_ms, 3),
        "cache_hit": False,
        "cache_counters": counters,
        "cases": [],
        "max_abs_error": None,
        "package_bytes": 0,
        "warnings": [],
        "torch_version": torch.__version__,
    }


def run_cases(runner: Any, cases: list[references.RefCase], atol: float, rtol: float) -> list[dict[str, Any]]:
    """Each reference case through the loaded package, compared with its recorded (eager) outputs."""
    results = []
    for case in cases:
        try:
            with torch.no_grad():
                outputs = data.flatten(runner(*case.inputs), "the AOTInductor package")
            result = compare.compare(outputs, case.outputs, atol, rtol)
        except Exception as exc:  # a package failing on a case is a finding
            sandbox.raise_if_refused(exc)
            result = compare.mismatch(f"the package raised {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        results.append({"name": case.name, **result})
    return results


def exposing(gm: torch.fx.GraphModule, names: list[str]) -> tuple[torch.fx.GraphModule, int]:
    """A copy of gm whose output is a flat tuple of its own outputs followed by the named nodes' values, so that
    Inductor must materialise each; and how many outputs come first. Unused call_module nodes (export's _guards_fn)
    are left out: they check the inputs and compute nothing."""
    from torch.fx.node import map_arg

    graph = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    outputs: Any = ()
    for node in gm.graph.nodes:
        if node.op == "output":
            outputs = map_arg(node.args[0], lambda n: env[n])
        elif not (node.op == "call_module" and not node.users):
            env[node] = graph.node_copy(node, lambda n: env[n])
    own = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
    by_name = {node.name: copy for node, copy in env.items()}
    graph.output(tuple(own + [by_name[name] for name in names]))
    return torch.fx.GraphModule(gm, graph), len(own)


def model_location(stack: str | None, model_path: str | None) -> str | None:
    """The user's FILE:LINE of an FX node's stack: divergence.user_location, else the innermost frame in a file of the
    same name whose quoted line is that line of model_path (the export stage ran the model from its own scratch copy,
    so the program's stacks name another directory)."""
    if not stack or not model_path:
        return None
    found = divergence.user_location(stack, model_path)
    if found:
        return found
    try:
        with open(model_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    name = os.path.basename(model_path)
    for path, line, text in FRAME.findall(stack):
        number = int(line)
        if os.path.basename(path) == name and 0 < number <= len(lines) and lines[number - 1].strip() == text.strip():
            found = f"{model_path}:{number}"
    return found


def inductor_steps(
    program: Any, case: references.RefCase, model_path: str | None, atol: float, rtol: float
) -> list[divergence.Step]:
    """Each call_function node's value in the exported program run op by op (it agreed with eager at the export gate)
    beside its value in an Inductor compile of a copy that outputs them all; [] when that copy's own outputs agree with
    eager (exposing the values changed what Inductor fused, so they do not show the package's divergence)."""
    gm = program.module()
    reference, nodes = divergence.fx_values(gm, case.inputs)
    names = list(reference)
    exposed, own = exposing(gm, names)
    with torch.no_grad():
        compiled = torch.compile(exposed, backend="inductor", fullgraph=True, dynamic=False)
        values = list(compiled(*case.inputs))
    if compare.compare(values[:own], case.outputs, atol, rtol)["passed"]:
        return []
    return [
        divergence.fx_step(
            nodes[name], reference[name], value, model_location(nodes[name].meta.get("stack_trace"), model_path)
        )
        for name, value in zip(names, values[own:], strict=True)
    ]


def first_divergence(
    program: Any, case: references.RefCase, model_path: str | None, atol: float, rtol: float, cache_dir: str
) -> dict[str, Any] | None:
    """The Divergence record of the first operator whose Inductor output leaves the tolerance on `case`, or None (it
    was not found, or the diagnosis could not run: the verdict stands either way)."""
    try:
        with inductor_cache(cache_dir):
            return divergence.first(case.name, inductor_steps(program, case, model_path, atol, rtol), atol, rtol)
    except Exception as exc:
        sandbox.raise_if_refused(exc)
        return None


@protocol.op("compile")
def compile_package(args: dict[str, Any]) -> dict[str, Any]:
    """aoti_compile_and_package the exported program into model.pt2, then run it on every reference case."""
    export.require_export("compile")
    if args.get("model_path"):
        user_model.load(args["model_path"])  # custom operators the program calls register on import
    import torch._inductor  # not at module level: the fork server's zygote must not start Inductor
    from torch._dynamo.utils import counters

    atol, rtol = args["atol"], args["rtol"]
    archive_limits.check(args["program_path"], "exported program")
    program = torch.export.load(args["program_path"])
    package_path = os.path.join(args["out_dir"], PACKAGE_FILE)
    cache_dir = args["cache_dir"]
    before_objects = shared_objects(cache_dir)
    before_counts = {k: int(v) for k, v in counters["inductor"].items() if "cache" in k}
    started = time.perf_counter()
    try:
        with inductor_cache(cache_dir):
            torch._inductor.aoti_compile_and_package(program, package_path=package_path)
    except Exception as exc:  # Inductor raises BackendCompilerFailed, CppCompileError, LoweringException, …
        sandbox.raise_if_refused(exc)
        return failed(
            f"AOTInductor could not compile the exported program {args['program_path']}: "
            f"{first_lines(exc)} (expected a program Inductor lowers; the ops involved are named above)",
            (time.perf_counter() - started) * 1000,
            cache_counters(before_counts),
        )
    compile_ms = (time.perf_counter() - started) * 1000
    built = shared_objects(cache_dir) - before_objects
    found = kernels(package_path, op_names(program))
    try:
        cases = references.read(args["references_path"])
    except references.ReferencesInvalid as exc:  # the export stage writes this file: a bad one is a bad request
        raise BadRequest(f"args.references_path: {exc}") from exc
    runner = torch._inductor.aoti_load_package(package_path)
    results = run_cases(runner, cases, atol, rtol)
    bad = [r for r in results if not r["passed"]]
    worst = max((r["max_abs_error"] or 0.0) for r in results) if results else 0.0
    extra: dict[str, Any] = {}
    if bad:
        # Only now, on the first case that failed on numbers (not one where the package raised): a pass pays nothing.
        numeric = next((r["name"] for r in bad if not r["error"]), None)
        failing = next((c for c in cases if c.name == numeric), None)
        extra["divergence"] = (
            first_divergence(program, failing, args.get("model_path"), atol, rtol, cache_dir) if failing else None
        )
        code, message = (
            codes.COMPILED_DIVERGENCE,
            (
                f"the AOTInductor package and eager differ ({gate.case_words(bad[0], atol, rtol)}; {len(bad)} of "
                f"{len(results)} cases fail; expected every reference case within tolerance); the kernels involved: "
                f"{', '.join(k['name'] for k in found) or 'none generated'}{divergence.words(extra['divergence'])}"
            ),
        )
    else:
        code, message = (
            None,
            (
                f"the AOTInductor package agrees with eager on {len(results)} cases; max abs error "
                f"{worst:.2e}, allowed {compare.allowed(atol, rtol)}; {len(found)} kernels generated"
            ),
        )
    for r in results:
        r["max_abs_error"] = compare.json_float(r["max_abs_error"])
        r["max_rel_error"] = compare.json_float(r["max_rel_error"])
    own = {os.path.dirname(p) for p in built if p.endswith((".wrapper.so", ".kernel.so"))}
    helpers = [p for p in built if os.path.dirname(p) not in own]
    return {
        "passed": code is None,
        "code": code,
        "message": message,
        "package_path": package_path,
        "kernels": found,
        "kernel_count": len(found),
        "compile_ms": round(compile_ms, 3),
        "cache_hit": not helpers,
        "cache_counters": {
            **cache_counters(before_counts),
            "built_shared_objects": len(built),
            "built_helper_objects": len(helpers),
        },
        "cases": results,
        "max_abs_error": compare.json_float(worst),
        "package_bytes": os.path.getsize(package_path),
        "warnings": [],
        "torch_version": torch.__version__,
        **extra,
    }
