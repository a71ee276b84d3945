"""ttd parity runner (Python): load a TorchScript archive or AOTInductor package, run reference inputs, write outputs.

Standalone by design (standard library + torch only; run as `python -I` in an empty directory). Its safetensors reader
also serves ttd_onnx_runner.py, in an environment without torch: the module imports there, and only the reader is used.
Usage: ttd_parity_runner.py --model A.pt --references R.safetensors --out O.safetensors [--threads N]
                            [--fusion serving|fused|interpreter] [--fuser] [--format torchscript|aoti]
See docs/protocol.md, sections 2 and 3.
"""

import argparse
import json
import mmap
import os
import struct
import sys
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
else:
    try:
        import torch
    except ImportError:  # ONNX Runtime's environment has no torch: ttd_onnx_runner.py uses this module's reader alone
        torch = None

DTYPES = (
    {
        "F64": torch.float64,
        "F32": torch.float32,
        "F16": torch.float16,
        "BF16": torch.bfloat16,
        "I64": torch.int64,
        "I32": torch.int32,
        "I16": torch.int16,
        "I8": torch.int8,
        "U8": torch.uint8,
        "BOOL": torch.bool,
    }
    if torch is not None
    else {}
)
NAMES = {v: k for k, v in DTYPES.items()}
WARMUP_CALLS = 3


class Failure(Exception):
    """A failure at a named stage: load, read, run or write."""

    def __init__(self, stage, message):
        super().__init__(message)
        self.stage = stage


# --- safetensors: the one Python reader (docs/trust-safetensors.md); ttd_torch.safetensors uses it too ---

ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
MAX_HEADER_BYTES = 100_000_000
MAX_DEPTH = 3
MAX_INT = 2**53 - 1
ENTRY_KEYS = ("dtype", "shape", "data_offsets")


class SafetensorsError(ValueError):
    """A file that breaks a safetensors rule; `code` names the rule (the same in the TS and C++ readers)."""

    def __init__(self, where, code, message):
        super().__init__(f"{where}: {message} ({code})")
        self.code = code


class _Float(float):
    """A JSON number written with a fraction or exponent: never an integer, whatever its value."""


def _nesting_too_deep(header):
    depth, in_string, escaped = 0, False, False
    for byte in header:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif byte in (0x7D, 0x5D):
            depth -= 1
    return False


def _json_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text} overflows a double")
    return _Float(value)


def _json_int(text):
    value = int(text)
    float(value)  # OverflowError past a double's range: the C++ and TS readers refuse such a number too
    return value


def _json_constant(text):
    raise ValueError(f"{text} is not JSON")


def _check_strings(value):
    """Reject lone surrogates (`"\\ud800"`): valid to Python's json, not to the other readers or to UTF-8."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, tuple):
                _check_strings(item[0])
                _check_strings(item[1])
            else:
                _check_strings(item)


def _duplicate_key(value):
    """The first key (in document order) seen twice in any object of the parsed header, or None."""
    if _is_object(value):
        seen = set()
        for key, _ in value:
            if key in seen:
                return key
            seen.add(key)
    children = [v for _, v in value] if _is_object(value) else value if isinstance(value, list) else []
    for child in children:
        inner = _duplicate_key(child)
        if inner is not None:
            return inner
    return None


class _Object(list):
    """A JSON object as its (key, value) pairs in document order, duplicates kept."""


def _is_object(value):
    return isinstance(value, _Object)


def _is_array(value):
    return isinstance(value, list) and not isinstance(value, _Object)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT


def _show(value):
    if _is_object(value):
        return json.dumps(dict(value))[:80]
    return json.dumps(value)[:80]


def parse_safetensors(raw, where="safetensors"):
    """Validate a whole file's bytes; returns ([(name, dtype, shape, begin, end)] in header order,
    metadata, data start). Raises SafetensorsError naming the first rule broken."""

    def fail(code, message):
        raise SafetensorsError(where, code, message)

    if len(raw) < 8:
        fail("st_file_too_short", f"file is {len(raw)} bytes; expected at least 8 (the header length)")
    (size,) = struct.unpack("<Q", raw[:8])
    if size > MAX_HEADER_BYTES:
        fail("st_header_too_large", f"header length {size} exceeds the limit of {MAX_HEADER_BYTES} bytes")
    if 8 + size > len(raw):
        fail(
            "st_header_out_of_bounds",
            f"header length {size} runs past the end of the file ({len(raw) - 8} bytes follow the length field)",
        )
    header = bytes(raw[8 : 8 + size])
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail("st_header_not_utf8", f"header is not UTF-8 (byte {exc.start} of the header)")
    body = text.rstrip(" ")
    if not body.startswith("{") or not body.endswith("}"):
        fail(
            "st_header_framing",
            "header must begin with '{' and end with '}' followed only by spaces "
            f"(got {text[:1]!r} ... {body[-1:]!r})",
        )
    if _nesting_too_deep(header):
        fail("st_header_too_deep", f"header nests deeper than {MAX_DEPTH} levels of objects and arrays")
    try:
        doc = json.loads(
            body, object_pairs_hook=_Object, parse_float=_json_float, parse_int=_json_int, parse_constant=_json_constant
        )
        _check_strings(doc)
    except (ValueError, OverflowError) as exc:
        fail("st_header_not_json", f"header is not valid JSON: {exc}")
    key = _duplicate_key(doc)
    if key is not None:
        fail("st_header_duplicate_key", f"header has the key {key!r} twice; keys must be unique")

    metadata = {}
    for name, value in doc:
        if name != "__metadata__":
            continue
        if not _is_object(value) or not all(isinstance(v, str) for _, v in value):
            fail("st_metadata_invalid", f"__metadata__ must be an object of strings (got {_show(value)})")
        metadata = dict(value)

    entries = []
    for name, info in doc:
        if name == "__metadata__":
            continue
        if name == "":
            fail("st_tensor_name_empty", "a tensor has an empty name")
        label = f"tensor {name!r}"
        if not _is_object(info) or sorted(k for k, _ in info) != sorted(ENTRY_KEYS):
            fail(
                "st_tensor_entry_invalid",
                f"{label} must be an object with exactly dtype, shape and data_offsets (got {_show(info)})",
            )
        fields = dict(info)
        dtype, shape, offsets = fields["dtype"], fields["shape"], fields["data_offsets"]
        if not isinstance(dtype, str) or dtype not in ITEMSIZE:
            fail("st_tensor_dtype", f"{label} has dtype {_show(dtype)}; expected one of {' '.join(ITEMSIZE)}")
        if not _is_array(shape) or not all(_is_int(d) for d in shape):
            fail("st_tensor_shape", f"{label} has shape {_show(shape)}; expected integers from 0 to 2^53-1")
        strides = 1
        for dim in shape:
            strides *= max(dim, 1)
        if strides > MAX_INT:
            fail("st_tensor_shape", f"{label} has shape {_show(shape)} whose size exceeds 2^53-1")
        if (
            not _is_array(offsets)
            or len(offsets) != 2
            or not all(_is_int(o) for o in offsets)
            or offsets[0] > offsets[1]
        ):
            fail(
                "st_tensor_offsets",
                f"{label} has data_offsets {_show(offsets)}; "
                "expected [begin, end], integers from 0 to 2^53-1 with begin <= end",
            )
        begin, end = offsets
        numel = 1
        for dim in shape:
            numel *= dim
        need = numel * ITEMSIZE[dtype]
        if end - begin != need:
            fail(
                "st_tensor_size_mismatch",
                f"{label} has data_offsets [{begin}, {end}] spanning {end - begin} bytes; "
                f"dtype {dtype} and shape {shape} need {need}",
            )
        entries.append((name, dtype, [int(d) for d in shape], begin, end))

    position = 0
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin != position:
            what = "leaves a gap" if begin > position else "overlaps the tensor before it"
            fail(
                "st_tensors_not_contiguous",
                f"tensor {name!r} begins at {begin} but the previous tensor ends at {position}: it {what}",
            )
        position = end
    data_len = len(raw) - 8 - size
    if position > data_len:
        fail("st_data_truncated", f"tensors need {position} bytes of data but the file has {data_len}")
    if position < data_len:
        fail("st_data_trailing", f"{data_len - position} bytes follow the last tensor; the data section must end there")
    return entries, metadata, 8 + size


def tensors_from_bytes(raw, where="safetensors"):
    """A whole file's bytes as ({name: tensor} in header order, metadata); raises SafetensorsError."""
    if sys.byteorder != "little":
        raise RuntimeError("safetensors data is little-endian; this reader needs a little-endian host")
    entries, metadata, start = parse_safetensors(raw, where)
    tensors = {
        name: _tensor(dtype, shape, bytearray(raw[start + begin : start + end]))
        for name, dtype, shape, begin, end in entries
    }
    return tensors, metadata


def _tensor(dtype, shape, buf):
    """A tensor over buf (its bytes, little-endian); an empty one has no buffer to view."""
    if not buf:  # no elements (the rules guarantee it): nothing to copy, nothing uninitialised
        return torch.zeros(shape, dtype=DTYPES[dtype])
    return torch.frombuffer(buf, dtype=DTYPES[dtype]).reshape(shape)


def read_safetensors(path, wanted=None):
    """Read a safetensors file into ({name: tensor}, metadata); never unpickles. The whole file is checked (its header
    and its size); with `wanted` (a predicate on names) only those tensors' bytes are read, each once, straight into
    its tensor's memory (a references file's outputs can be hundreds of MB that a runtime never needs)."""
    if sys.byteorder != "little":
        raise RuntimeError("safetensors data is little-endian; this reader needs a little-endian host")
    with open(path, "rb") as src:
        if os.fstat(src.fileno()).st_size == 0:  # mmap cannot map an empty file
            parse_safetensors(b"", path)  # raises: the rules reject it with their own message
        with mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ) as view:
            entries, metadata, start = parse_safetensors(view, path)  # reads the header's pages only
        tensors = {}
        for name, dtype, shape, begin, end in entries:
            if wanted is not None and not wanted(name):
                continue
            buf = bytearray(end - begin)
            src.seek(start + begin)
            if src.readinto(buf) != len(buf):
                raise SafetensorsError(path, "st_data_truncated", f"tensor {name!r}: the file ended while it was read")
            tensors[name] = _tensor(dtype, shape, buf)
    return tensors, metadata


def write_safetensors(path, tensors, metadata):
    """Write {name: tensor} and string metadata as safetensors (little-endian host assumed)."""
    items = []
    for name, tensor in tensors.items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        items.append((name, NAMES[tensor.dtype], list(tensor.shape), flat.view(torch.uint8).numpy().tobytes()))
    write_blobs(path, items, metadata)


def write_blobs(path, items, metadata):
    """Write [(name, safetensors dtype, shape, little-endian bytes)] and string metadata as a safetensors file."""
    header, offset = {"__metadata__": metadata}, 0
    for name, dtype, shape, blob in items:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(blob for *_, blob in items))


def flatten(value):
    """Flatten a tensor or nested tuple/list of tensors, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in flatten(item)]
    raise TypeError(f"forward returned {type(value).__name__}; expected a tensor or a tuple/list of tensors")


FUSION_MODES = ("serving", "fused", "interpreter")


def _flag(name):
    getter = getattr(torch._C, name, None)
    return bool(getter()) if getter is not None else None


def fusion_build_facts():
    """This build's own fuser configuration, read before any flag changes: what a server of this build runs."""
    return {
        "llvm_enabled": _flag("_llvm_enabled"),
        "texpr_fuser_enabled": _flag("_jit_texpr_fuser_enabled"),
        "can_fuse_on_cpu": _flag("_jit_can_fuse_on_cpu"),
        "can_fuse_on_gpu": _flag("_jit_can_fuse_on_gpu"),
        "te_must_use_llvm_cpu": _flag("_jit_get_te_must_use_llvm_cpu"),
        "cuda_available": bool(torch.cuda.is_available()),
    }


def enable_fuser(mode):
    """fused: the CPU TensorExpr fuser on, as a deployment that enables it would (LLVM still required);
    interpreter: also without LLVM, through NNC's interpreter (no server runs it). Flags live in the process."""
    settings = [("_jit_set_texpr_fuser_enabled", True), ("_jit_override_can_fuse_on_cpu", True)]
    if mode == "interpreter":
        settings.append(("_jit_set_te_must_use_llvm_cpu", False))
    for name, value in settings:
        if hasattr(torch._C, name):
            getattr(torch._C, name)(value)


def read_cases(path):
    """[(case, [inputs])] from a references file, in the order its metadata lists."""
    return cases_of(*read_safetensors(path, lambda name: "/input/" in name))


def cases_of(tensors, metadata):
    """[(case, [inputs])] of a references file's `<case>/input/<i>` tensors, in the order its metadata lists."""
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
        raise RuntimeError(
            f"this runner's torch {torch.__version__} has no AOTInductor "
            "(torch._inductor.aoti_load_package); --format aoti needs torch 2.x"
        ) from exc
    return aoti_load_package(path)


LOADERS = {"torchscript": load_torchscript, "aoti": load_aoti}


def run_cases(module, cases, warmup):
    """Run every case (after warm-up calls where a fuser may act) and collect its flattened outputs."""
    outputs = {}
    with torch.no_grad():
        for name, inputs in cases:
            for _ in range(WARMUP_CALLS if warmup else 0):
                module(*inputs)
            for j, tensor in enumerate(flatten(module(*inputs))):
                outputs[f"{name}/output/{j}"] = tensor
    return outputs


def main(argv=None):
    """Parse arguments, run the parity check, print one JSON line; returns the exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--references", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fusion", choices=FUSION_MODES, default=None)
    parser.add_argument("--fuser", action="store_true", help="the same as --fusion interpreter")
    parser.add_argument("--format", choices=sorted(LOADERS), default="torchscript")
    args = parser.parse_args(argv)
    if args.fuser and args.fusion not in (None, "interpreter"):
        parser.error("--fuser is --fusion interpreter; give one of them")
    mode = "interpreter" if args.fuser else args.fusion or "serving"
    fuser = mode != "serving"
    if fuser and args.format != "torchscript":
        message = f"--fusion {mode}: fuser flags apply to TorchScript only (got --format {args.format})"
        print(f"ttd_parity_runner: {message}", file=sys.stderr)
        print(json.dumps({"error": {"stage": "args", "message": message}}), flush=True)
        return 2
    torch.set_num_threads(args.threads)
    build = fusion_build_facts()
    # A server warms up on production traffic, and fused kernels appear from the profiling executor's second call;
    # where no fuser can act, a warm-up changes nothing and is skipped.
    warmup = args.format == "torchscript" and (
        fuser or bool(build["texpr_fuser_enabled"] and build["can_fuse_on_cpu"] and build["llvm_enabled"])
    )
    if fuser:
        enable_fuser(mode)
    try:
        module = stage("load", LOADERS[args.format], args.model)
        cases = stage("read", read_cases, args.references)
        outputs = stage("run", run_cases, module, cases, warmup)
        stage(
            "write",
            write_safetensors,
            args.out,
            outputs,
            {"format": "ttd-outputs/1", "cases": ",".join(name for name, _ in cases)},
        )
    except Failure as failure:
        print(json.dumps({"error": {"stage": failure.stage, "message": str(failure)}}), flush=True)
        return 1
    print(
        json.dumps(
            {
                "runtime": "python",
                "format": args.format,
                "torch_version": torch.__version__,
                "threads": args.threads,
                "flags": {"fuser": fuser, "mode": mode},
                "fusion": build,
                "cases": len(cases),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
