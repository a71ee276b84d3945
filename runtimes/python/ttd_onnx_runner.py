"""ttd parity runner (ONNX Runtime, Python): load an ONNX model, run the reference inputs, write the outputs.

Standalone by design: the standard library, numpy and onnxruntime, and no torch (the deployment ONNX exists for). It
reads safetensors with ttd_parity_runner.py's reader, copied beside it (that module imports without torch). Run as
`python -I runner.py` in an empty directory.
Usage: ttd_onnx_runner.py --model M.onnx --references R.safetensors --out O.safetensors [--threads N]
                          [--graph-optimization disabled|all]
See docs/protocol.md, section 2.
"""

import argparse
import json
import mmap
import os
import sys
import traceback

import numpy as np
import onnxruntime as ort

# `python -I` leaves the script's own directory off sys.path; the reader was copied beside the script, on purpose.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ttd_parity_runner import cases_of, parse_safetensors, write_blobs  # noqa: E402

# safetensors dtype <-> numpy dtype (little-endian); BF16 has no numpy dtype without ml_dtypes.
DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
NAMES = {dtype: name for name, dtype in DTYPES.items()}
LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
PROVIDER = "CPUExecutionProvider"


class Failure(Exception):
    """A failure at a named stage: load, read, run or write."""

    def __init__(self, stage, message):
        super().__init__(message)
        self.stage = stage


class Arguments(argparse.ArgumentParser):
    """argparse whose errors are a Failure at stage args (one JSON line, exit 2) instead of usage text alone."""

    def error(self, message):
        raise Failure("args", message)


def stage(name, fn, *args):
    """Run fn, labelling any exception with the stage name."""
    try:
        return fn(*args)
    except Failure:
        raise
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        raise Failure(name, f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}") from exc


def load(path, level, threads):
    """An ONNX Runtime session on the CPU provider, with the given graph optimisation level and threads."""
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=[PROVIDER])


def read_cases(path):
    """[(case, [inputs])] from a references file's `<case>/input/<i>` tensors, in the order its metadata lists."""
    if sys.byteorder != "little":
        raise RuntimeError("safetensors data is little-endian; this reader needs a little-endian host")
    with open(path, "rb") as src:
        if os.fstat(src.fileno()).st_size == 0:  # mmap cannot map an empty file
            parse_safetensors(b"", path)  # raises: the rules reject it with their own message
        with mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ) as view:
            entries, metadata, start = parse_safetensors(view, path)
            tensors = {}
            for name, dtype, shape, begin, end in entries:
                if "/input/" not in name:
                    continue
                if dtype not in DTYPES:
                    raise ValueError(f"tensor {name!r} is {dtype}; this runner reads {', '.join(DTYPES)}")
                tensors[name] = np.frombuffer(view[start + begin : start + end], dtype=DTYPES[dtype]).reshape(shape)
    return cases_of(tensors, metadata)


def run_cases(session, cases):
    """Every case's outputs, fed to the session's inputs by position."""
    names = [i.name for i in session.get_inputs()]
    outputs = {}
    for case, inputs in cases:
        if len(inputs) != len(names):
            raise ValueError(f"case {case!r} has {len(inputs)} inputs; the ONNX model takes {len(names)} ({names})")
        for j, value in enumerate(session.run(None, dict(zip(names, inputs, strict=True)))):
            outputs[f"{case}/output/{j}"] = np.asarray(value)
    return outputs


def write_safetensors(path, arrays, metadata):
    """Write {name: array} and string metadata as safetensors (little-endian)."""
    items = []
    for name, array in arrays.items():
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype not in NAMES:
            raise ValueError(f"output {name!r} is {array.dtype}; safetensors here holds {', '.join(DTYPES)}")
        items.append((name, NAMES[dtype], list(array.shape), np.ascontiguousarray(array, dtype=dtype).tobytes()))
    write_blobs(path, items, metadata)


def main(argv=None):
    """Parse arguments, run the cases, print one JSON line; returns the exit status."""
    parser = Arguments(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--references", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--graph-optimization", choices=sorted(LEVELS), default="all")
    parser.add_argument("--format", choices=["onnx"], default="onnx")  # what the worker tells every runner
    try:
        args = parser.parse_args(argv)
    except Failure as failure:
        print(f"ttd_onnx_runner: {failure}", file=sys.stderr)
        print(json.dumps({"error": {"stage": failure.stage, "message": str(failure)}}), flush=True)
        return 2
    try:
        session = stage("load", load, args.model, args.graph_optimization, args.threads)
        cases = stage("read", read_cases, args.references)
        outputs = stage("run", run_cases, session, cases)
        meta = {"format": "ttd-outputs/1", "cases": ",".join(name for name, _ in cases)}
        stage("write", write_safetensors, args.out, outputs, meta)
    except Failure as failure:
        print(json.dumps({"error": {"stage": failure.stage, "message": str(failure)}}), flush=True)
        return 1
    summary = {
        "runtime": "onnxruntime",
        "format": "onnx",
        "onnxruntime_version": ort.__version__,
        "execution_provider": session.get_providers()[0],
        "graph_optimization": args.graph_optimization,
        "threads": args.threads,
        "cases": len(cases),
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
