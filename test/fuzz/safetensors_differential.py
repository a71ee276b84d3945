"""Differential fuzzer of the three safetensors readers (docs/trust-safetensors.md), driven by atheris.

Every input goes to the Python reader (in process), the C++ reader (ttd-safetensors-check --serve) and the TypeScript
reader (safetensors-ts-check.cjs). They must agree on accept or reject and on the rule code; for an accepted file, on
names, dtypes, shapes and metadata, and the Python and C++ readers on the bytes of every tensor. A disagreement, a
crash or an exception other than SafetensorsError stops the run (atheris saves the input).
Usage: python safetensors_differential.py CHECKER [libFuzzer flags] CORPUS_DIR...
"""

import json
import os
import struct
import subprocess
import sys

import atheris
import torch  # imported before instrumenting: only the reader's own code is instrumented

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "runtimes", "python"))

with atheris.instrument_imports():
    import ttd_parity_runner


class Checker:
    """A long-lived reader process speaking length-prefixed inputs and JSON-line verdicts."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __call__(self, data):
        self.proc.stdin.write(struct.pack("<I", len(data)) + data)
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.proc.args[0]} ended (exit {self.proc.wait()}) on this input")
        return json.loads(line)


def python_verdict(data):
    try:
        tensors, metadata = ttd_parity_runner.tensors_from_bytes(data, "input")
    except ttd_parity_runner.SafetensorsError as exc:
        return {"ok": False, "code": exc.code, "message": str(exc)}
    out = {}
    for name, t in tensors.items():
        flat = t.contiguous().reshape(-1)
        raw = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        out[name] = {
            "dtype": ttd_parity_runner.NAMES[t.dtype],
            "shape": list(t.shape),
            "hex": raw.hex(),
            "numel": flat.numel(),
        }
    return {"ok": True, "tensors": out, "metadata": metadata}


CPP = Checker([sys.argv.pop(1), "--serve"])
TS = Checker(["node", os.path.join(HERE, "safetensors-ts-check.cjs")])


def summary(v, fields):
    if not v["ok"]:
        return {"code": v["code"]}
    return {"tensors": {n: {k: t[k] for k in fields} for n, t in v["tensors"].items()}, "metadata": v["metadata"]}


def test_one_input(data):
    py, cpp, ts = python_verdict(data), CPP(data), TS(data)
    if not (
        summary(py, ("dtype", "shape", "hex")) == summary(cpp, ("dtype", "shape", "hex"))
        and summary(py, ("dtype", "shape", "numel")) == summary(ts, ("dtype", "shape", "numel"))
    ):
        raise AssertionError(
            "the readers disagree:\n"
            + "\n".join(
                f"  {who}: {json.dumps(v)[:600]}" for who, v in (("python", py), ("c++", cpp), ("typescript", ts))
            )
        )


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
