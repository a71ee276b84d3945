"""ttd parity runner (Python): load a TorchScript archive or AOTInductor package, run the reference inputs, write the outputs.

Standalone by design (standard library + torch only; run as `python -I` in an empty directory).
Usage: ttd_parity_runner.py --model A.pt --references R.safetensors --out O.safetensors [--threads N] [--fuser]
                            [--format torchscript|aoti]
See docs/protocol.md, sections 2 and 3.
"""

import argparse
import json
import struct
import sys
import traceback

import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
          "U8": torch.uint8, "BOOL": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}
WARMUP_CALLS = 3


class Failure(Exception):
    """A failure at a named stage: load, read, run or write."""

    def __init__(self, stage, message):
        super().__init__(message)
        self.stage = stage


def read_safetensors(path):
    """Read a safetensors file into ({name: tensor}, metadata); never unpickles."""
    with open(path, "rb") as src:
        raw = src.read()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size].decode("utf-8"))
    data = raw[8 + size:]
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, info in header.items():
        dtype, shape = DTYPES[info["dtype"]], [int(d) for d in info["shape"]]
        begin, end = info["data_offsets"]
        if begin == end:  # frombuffer refuses empty buffers
            tensors[name] = torch.empty(shape, dtype=dtype)
        else:
            tensors[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype).reshape(shape)
    return tensors, metadata


def write_safetensors(path, tensors, metadata):
    """Write {name: tensor} and string metadata as safetensors (little-endian host assumed)."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, tensor in tensors.items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        blob = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        header[name] = {"dtype": NAMES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def flatten(value):
    """Flatten a tensor or nested tuple/list of tensors, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in flatten(item)]
    raise TypeError(f"forward returned {type(value).__name__}; expected a tensor or a tuple/list of tensors")


def enable_fuser():
    """Turn on the TensorExpr fuser for CPU without requiring LLVM (flags live in the process)."""
    for name, value in (("_jit_set_texpr_fuser_enabled", True), ("_jit_override_can_fuse_on_cpu", True),
                        ("_jit_set_te_must_use_llvm_cpu", False)):
        if hasattr(torch._C, name):
            getattr(torch._C, name)(value)


def read_cases(path):
    """[(case, [inputs])] from a references file, in the order its metadata lists."""
    tensors, metadata = read_safetensors(path)
    cases = []
    for name in filter(None, metadata.get("cases", "").split(",")):
        inputs = []
        while f"{name}/input/{len(inputs)}" in tensors:
            inputs.append(tensors[f"{name}/input/{len(inputs)}"])
        cases.append((name, inputs))
    return cases


def stage(name, fn, *args):
    """Run fn, labelling any exception with the stage name."""
    try:
        return fn(*args)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        # c10 errors carry their C++ backtrace in the text; stderr has it, the JSON line stops before it.
        text = str(exc).split("Exception raised from ")[0].rstrip(" \n(")
        raise Failure(name, f"{type(exc).__name__}: {' '.join(text.split())}") from exc


def load_torchscript(path):
    """A TorchScript archive in eval mode (torch.jit.load never unpickles user code)."""
    module = torch.jit.load(path, "cpu")
    module.eval()
    return module


def load_aoti(path):
    """An AOTInductor .pt2 package (torch 2.x): compiled code and raw weights, no pickled code."""
    try:
        from torch._inductor import aoti_load_package
    except ImportError as exc:
        raise RuntimeError(f"this runner's torch {torch.__version__} has no AOTInductor "
                           "(torch._inductor.aoti_load_package); --format aoti needs torch 2.x") from exc
    return aoti_load_package(path)


LOADERS = {"torchscript": load_torchscript, "aoti": load_aoti}


def run_cases(module, cases, fuser):
    """Run every case (with warm-up calls under --fuser) and collect its flattened outputs."""
    outputs = {}
    with torch.no_grad():
        for name, inputs in cases:
            for _ in range(WARMUP_CALLS if fuser else 0):
                module(*inputs)
            for j, tensor in enumerate(flatten(module(*inputs))):
                outputs[f"{name}/output/{j}"] = tensor
    return outputs


def main(argv=None):
    """Parse arguments, run the parity check, print one JSON line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--references", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fuser", action="store_true")
    parser.add_argument("--format", choices=sorted(LOADERS), default="torchscript")
    args = parser.parse_args(argv)
    if args.fuser and args.format != "torchscript":
        message = f"--fuser: fuser flags apply to TorchScript only (got --format {args.format})"
        print(f"ttd_parity_runner: {message}", file=sys.stderr)
        print(json.dumps({"error": {"stage": "args", "message": message}}), flush=True)
        return 2
    torch.set_num_threads(args.threads)
    if args.fuser:
        enable_fuser()
    try:
        module = stage("load", LOADERS[args.format], args.model)
        cases = stage("read", read_cases, args.references)
        outputs = stage("run", run_cases, module, cases, args.fuser)
        stage("write", write_safetensors, args.out, outputs,
              {"format": "ttd-outputs/1", "cases": ",".join(name for name, _ in cases)})
    except Failure as failure:
        print(json.dumps({"error": {"stage": failure.stage, "message": str(failure)}}), flush=True)
        return 1
    print(json.dumps({"runtime": "python", "format": args.format, "torch_version": torch.__version__,
                      "threads": args.threads,
                      "flags": {"fuser": args.fuser}, "cases": len(cases)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
