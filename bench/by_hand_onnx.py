"""The ONNX baseline: what ttd's onnx stage does, done by hand in one plain script, for any model file of ttd's shape.

Loads the trained model (build_model, the weights ttd trained), switches to eval, takes the example as ttd does (the
first rows of validation when example_inputs() is one unbatched row), torch.export's it with the batch dimension
dynamic over the sizes it must serve, translates it with torch.onnx's dynamo exporter, saves it, runs the ONNX
checker, and compares ONNX Runtime with eager on ttd's reference and probe cases (validation, the example, each batch
size, sign flip, x10, x0.1, zeros, shuffled rows), on validation and each probe cut into chunks of the example's shape
(ttd's own cutting, ttd_torch.probes, up to 64 each: its check for values frozen at the example's shape), and twice on
one input.
Timed from after `import torch` (a torch worker has torch imported already): the exporters' imports count, as they do
in the stage. Prints {"work_ms", "export_ms"}.
Usage: by_hand_onnx.py MODEL_FILE WEIGHTS OUT_DIR PARAMS_JSON BATCH_SIZES_JSON ATOL RTOL
"""

import importlib.util
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "runtimes", "python"))
from ttd_torch import probes  # noqa: E402  (only to cut the same example-shaped chunks ttd cuts)

started = time.perf_counter()
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402


def tupled(value):
    """Inputs as a tuple of tensors."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def flat(value):
    """Outputs as a flat list of tensors."""
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for item in value for t in flat(item)]


def main() -> None:
    model_file, weights, out_dir, params, sizes, atol, rtol = sys.argv[1:8]
    params, sizes, atol, rtol = json.loads(params), json.loads(sizes), float(atol), float(rtol)
    spec = importlib.util.spec_from_file_location("user_model", model_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.build_model(params)
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()
    validation = tupled(mod.dataset(params, "validation")[0])
    example = tupled(mod.example_inputs(params)) if hasattr(mod, "example_inputs") else tuple(t[:4] for t in validation)
    if example[0].dim() == validation[0].dim() - 1:  # one unbatched row: export a batch of rows, as ttd does
        example = tuple(t[: max(2, max(sizes))] for t in validation)
    rows = validation[0].shape[0]
    low, high = min(sizes + [example[0].shape[0], rows]), max(sizes + [example[0].shape[0], rows])
    batch = torch.export.Dim("batch", min=low, max=high)
    gen = torch.Generator().manual_seed(1)
    shuffled = torch.randperm(rows, generator=gen)

    def probe(fn):
        return tuple(fn(t) if t.is_floating_point() else t for t in validation)

    cases = {"validation": validation, "example": example}
    cases.update({f"batch_{n}": tuple(t[:n] for t in validation) for n in sizes})
    cases["neg"] = probe(lambda t: -t)
    cases["scale10"] = probe(lambda t: t * 10)
    cases["scale01"] = probe(lambda t: t * 0.1)
    cases["zeros"] = probe(torch.zeros_like)
    cases["shuffle"] = tuple(t[shuffled] for t in validation)
    chunk_sources = ["validation", "neg", "scale10", "scale01", "zeros", "shuffle"]
    chunks = {f"{k} {label}": c for k in chunk_sources for label, c in probes.example_shaped(example, cases[k])}
    with torch.no_grad():
        eager = {k: flat(model(*v)) for k, v in {**cases, **chunks}.items()}
    t0 = time.perf_counter()
    program = torch.export.export(model, example, dynamic_shapes=tuple({0: batch} for _ in example), strict=False)
    onnx_program = torch.onnx.export(program, dynamo=True)
    path = os.path.join(out_dir, "model.onnx")
    onnx_program.save(path, external_data=False)
    onnx.checker.check_model(path, full_check=True)
    export_ms = (time.perf_counter() - t0) * 1000
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for k, inputs in {**cases, **chunks}.items():
        got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
        for a, b in zip(got, eager[k], strict=True):
            if not np.allclose(a, b.numpy(), atol=atol, rtol=rtol, equal_nan=True):
                raise SystemExit(f"case {k}: ONNX Runtime and eager differ")
    feeds = {n: t.numpy() for n, t in zip(names, cases["validation"], strict=True)}
    for a, b in zip(session.run(None, feeds), session.run(None, feeds), strict=True):
        if not np.array_equal(a, b, equal_nan=True):
            raise SystemExit("two runs of ONNX Runtime on one input differ")
    print(json.dumps({"work_ms": (time.perf_counter() - started) * 1000, "export_ms": export_ms}))


if __name__ == "__main__":
    main()
