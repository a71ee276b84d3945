"""The baseline for one corpus model: the torch work ttd does, done by hand in one plain script, each stage timed.

Reads the model file and the spec's train section (given as JSON), then: trains (the spec's epochs, batch size,
optimizer, lr, loss or the file's own loss, seed; a checkpoint per epoch), switches to eval, and per format:
torchscript: traces, compares the trace with eager on the cases ttd uses (validation rows, the example, batch sizes 1
and 7, and for floating inputs the probes: sign flip, x10, x0.1, zeros, shuffled rows), on chunks of validation and
of each probe cut to the example's shape (up to 64 each, as ttd's verify and export stages), and twice on one input,
freezes and compares again, saves model.pt; aoti: torch.export with the batch dimension dynamic, compares on the same
cases and chunks, aoti_compile_and_package, loads the package and compares again, saves model.pt2; onnx: torch.export
as for aoti, torch.onnx.export (dynamo), the ONNX checker, ONNX Runtime (graph optimisations off) compared on the same
cases and chunks, saves model.onnx. Writes the references the deploy-side runners read. One process, torch imported
once; numbers the real work, no shortcuts.
Prints one JSON line: {"ms": {stage: ms}, "params": N, "sizes": {file: bytes}}.
Usage: by_hand_corpus.py MODEL.py OUT_DIR PARAMS_JSON TRAIN_JSON FORMATS (comma-separated) [ATOL RTOL]
"""

import importlib.util
import json
import os
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "runtimes", "python"))
# safetensors only to write the references the runners read; probes only to cut the same example-shaped chunks ttd cuts
from ttd_torch import probes, safetensors  # noqa: E402

Inputs = tuple[torch.Tensor, ...]
ms: dict[str, float] = {}


class timed:
    """Adds the block's wall time to ms[name]."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        ms[self.name] = ms.get(self.name, 0.0) + (time.perf_counter() - self.t0) * 1000


def as_tuple(x: Any) -> tuple[torch.Tensor, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def check(name: str, got: Any, want: Any, atol: float, rtol: float) -> None:
    for g, w in zip(as_tuple(got), as_tuple(want), strict=True):
        if g.shape != w.shape or not torch.allclose(g, w, atol=atol, rtol=rtol):
            raise SystemExit(f"{name}: outputs differ (max abs {float((g - w).abs().max())})")


def load(path: str):
    spec = importlib.util.spec_from_file_location("corpus_model", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["corpus_model"] = mod  # strict export and pickling find the classes by module
    spec.loader.exec_module(mod)
    return mod


def train(mod, params: dict[str, Any], spec: dict[str, Any], out_dir: str) -> torch.nn.Module:
    torch.manual_seed(int(spec["seed"]))
    model = mod.build_model(params)
    x, y = mod.dataset(params, "train")
    x = as_tuple(x)
    opt = (torch.optim.Adam if spec["optimizer"] == "adam" else torch.optim.SGD)(
        model.parameters(), lr=float(spec["lr"])
    )
    criterion = getattr(mod, "loss", None) or (F.mse_loss if spec["loss"] == "mse" else F.cross_entropy)
    gen = torch.Generator().manual_seed(int(spec["seed"]))
    model.train()
    for epoch in range(int(spec["epochs"])):
        for index in torch.randperm(len(y), generator=gen).split(int(spec["batch_size"])):
            opt.zero_grad()
            loss = criterion(model(*(t.index_select(0, index) for t in x)), y.index_select(0, index))
            loss.backward()
            opt.step()
        torch.save(
            {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch},
            os.path.join(out_dir, "checkpoint.pt"),
        )
    return model.eval()


def cases(mod, params: dict[str, Any]) -> dict[str, Inputs]:
    vx, _ = mod.dataset(params, "validation")
    vx = as_tuple(vx)
    example = as_tuple(mod.example_inputs(params)) if hasattr(mod, "example_inputs") else tuple(t[:4] for t in vx)
    out = {
        "validation": vx,
        "example": example,
        "batch_1": tuple(t[:1] for t in vx),
        "batch_7": tuple(t[:7] for t in vx),
    }
    if any(t.is_floating_point() for t in vx):
        for name, fn in (
            ("neg", lambda t: -t),
            ("scale10", lambda t: t * 10),
            ("scale01", lambda t: t * 0.1),
            ("zeros", torch.zeros_like),
        ):
            out[name] = tuple(fn(t) if t.is_floating_point() else t for t in vx)
        perm = torch.randperm(len(vx[0]), generator=torch.Generator().manual_seed(1))
        out["shuffle"] = tuple(t[perm] for t in vx)
    return out


CHUNK_SOURCES = ("validation", "neg", "scale10", "scale01", "zeros", "shuffle")


def chunk_cases(all_cases: dict[str, Inputs]) -> dict[str, Inputs]:
    """Validation and each probe cut into chunks of the example's shape, up to probes.MAX_CHUNKS each, as ttd's verify
    and export stages compare them (its value-only divergence check)."""
    return {
        f"{source} {label}": chunk
        for source in CHUNK_SOURCES
        if source in all_cases
        for label, chunk in probes.example_shaped(all_cases["example"], all_cases[source])
    }


def save_references(path: str, all_cases: dict[str, Inputs], eager: dict[str, Any]) -> None:
    tensors = {}
    for k, v in all_cases.items():
        for i, t in enumerate(v):
            tensors[f"{k}/input/{i}"] = t
        for j, t in enumerate(as_tuple(eager[k])):
            tensors[f"{k}/output/{j}"] = t
    safetensors.save(path, tensors, {"format": "ttd-references/1", "cases": ",".join(all_cases)})


def torchscript(model, all_cases, eager, chunks, eager_chunks, out_dir, atol, rtol) -> None:
    with timed("trace"), torch.no_grad():
        traced = torch.jit.trace(model, all_cases["example"])
        for k, v in all_cases.items():
            check(f"trace {k}", traced(*v), eager[k], atol, rtol)
        for k, v in chunks.items():
            check(f"trace {k}", traced(*v), eager_chunks[k], atol, rtol)
        check("determinism", traced(*all_cases["validation"]), traced(*all_cases["validation"]), 0, 0)
    with timed("optimize"), torch.no_grad():
        frozen = torch.jit.freeze(traced)
        for k, v in all_cases.items():
            check(f"frozen {k}", frozen(*v), eager[k], atol, rtol)
    with timed("store"):
        frozen.save(os.path.join(out_dir, "model.pt"))
        save_references(os.path.join(out_dir, "references.safetensors"), all_cases, eager)


def export_program(model, all_cases):
    """torch.export on the example, the batch dimension dynamic over every case's rows."""
    example = all_cases["example"]
    rows = max(len(v[0]) for v in all_cases.values())
    batch = torch.export.Dim("batch", min=1, max=max(rows, 1024))
    return torch.export.export(model, example, dynamic_shapes=tuple({0: batch} for _ in example), strict=False)


def aoti(model, all_cases, eager, chunks, eager_chunks, out_dir, atol, rtol) -> None:
    import torch._inductor

    with timed("export"):
        program = export_program(model, all_cases)
        path = os.path.join(out_dir, "program.pt2")
        torch.export.save(program, path)
        exported = torch.export.load(path).module()
        with torch.no_grad():
            for k, v in all_cases.items():
                check(f"export {k}", exported(*v), eager[k], atol, rtol)
            for k, v in chunks.items():
                check(f"export {k}", exported(*v), eager_chunks[k], atol, rtol)
    with timed("compile"):
        package = torch._inductor.aoti_compile_and_package(
            torch.export.load(path), package_path=os.path.join(out_dir, "model.pt2")
        )
        runner = torch._inductor.aoti_load_package(package)
        with torch.no_grad():
            for k, v in all_cases.items():
                check(f"package {k}", runner(*v), eager[k], atol, rtol)
    with timed("store"):
        save_references(os.path.join(out_dir, "aoti-references.safetensors"), all_cases, eager)


def onnx(model, all_cases, eager, chunks, eager_chunks, out_dir, atol, rtol) -> None:
    import contextlib
    import io

    import numpy as np
    import onnx as onnx_lib
    import onnxruntime as ort

    with timed("onnx"):
        program = export_program(model, all_cases)
        with contextlib.redirect_stdout(io.StringIO()):
            onnx_program = torch.onnx.export(program, dynamo=True)
        path = os.path.join(out_dir, "model.onnx")
        onnx_program.save(path, external_data=False)
        onnx_lib.checker.check_model(path, full_check=True)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run(inputs):
            return tuple(
                torch.from_numpy(np.asarray(o))
                for o in session.run(None, dict(zip(names, (t.numpy() for t in inputs), strict=True)))
            )

        for k, v in all_cases.items():
            check(f"onnx {k}", run(v), eager[k], atol, rtol)
        for k, v in chunks.items():
            check(f"onnx {k}", run(v), eager_chunks[k], atol, rtol)
    with timed("store"):
        save_references(os.path.join(out_dir, "onnx-references.safetensors"), all_cases, eager)


def main(
    model_path: str, out_dir: str, params: dict[str, Any], spec: dict[str, Any], formats: str, atol: float, rtol: float
) -> None:
    with timed("load"):
        mod = load(model_path)
    with timed("train"):
        model = train(mod, params, spec, out_dir)
    with timed("trace"), torch.no_grad():  # the eager references every check compares with
        all_cases = cases(mod, params)
        eager = {k: model(*v) for k, v in all_cases.items()}
        chunks = chunk_cases(all_cases)
        eager_chunks = {k: model(*v) for k, v in chunks.items()}
    if "aoti" in formats:  # first, as by_hand_aoti.py: nothing here may change process-wide flags before it
        aoti(model, all_cases, eager, chunks, eager_chunks, out_dir, atol, rtol)
    if "torchscript" in formats:
        torchscript(model, all_cases, eager, chunks, eager_chunks, out_dir, atol, rtol)
    if "onnx" in formats:
        onnx(model, all_cases, eager, chunks, eager_chunks, out_dir, atol, rtol)
    sizes = {
        f: os.path.getsize(os.path.join(out_dir, f))
        for f in ("model.pt", "model.pt2", "model.onnx", "checkpoint.pt")
        if os.path.exists(os.path.join(out_dir, f))
    }
    print(
        json.dumps(
            {
                "ms": {k: round(v, 1) for k, v in ms.items()},
                "params": sum(p.numel() for p in model.parameters()),
                "sizes": sizes,
            }
        )
    )


if __name__ == "__main__":
    a = sys.argv[1:]
    main(
        a[0],
        a[1],
        json.loads(a[2]),
        json.loads(a[3]),
        a[4],
        float(a[5]) if len(a) > 5 else 1e-4,
        float(a[6]) if len(a) > 6 else 1e-3,
    )
