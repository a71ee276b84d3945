"""Tiny safetensors reader/writer for the smoke test (standard library + torch only)."""

import json
import struct

import torch

_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_BY_NAME = {v: k for k, v in _DTYPES.items()}


def _to_bytes(t):
    t = t.detach().cpu().contiguous()
    if t.numel() == 0:
        return b""
    # View as bytes: works for every dtype, including bf16 which numpy lacks.
    return bytes(t.reshape(-1).view(torch.uint8).tolist())


def write(path, tensors, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        data = _to_bytes(t)
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        dtype = _BY_NAME[info["dtype"]]
        buf = torch.tensor(list(data[b:e]), dtype=torch.uint8)
        out[name] = buf.view(dtype).reshape(info["shape"]) if e > b else torch.empty(info["shape"], dtype=dtype)
    return out, meta
