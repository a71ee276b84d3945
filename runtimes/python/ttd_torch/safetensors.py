"""A minimal safetensors reader/writer (docs/protocol.md, section 3); no pickle anywhere."""

from __future__ import annotations

import json
import struct
import sys
from typing import Dict, Mapping, Optional, Tuple

import torch

DTYPES: Dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
NAMES: Dict[torch.dtype, str] = {dtype: name for name, dtype in DTYPES.items()}


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """Return a tensor's raw little-endian bytes."""
    if sys.byteorder != "little":
        raise RuntimeError("safetensors writer needs a little-endian host, got " + sys.byteorder)
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    # A uint8 view covers every dtype, bfloat16 included, without numpy's dtype gaps.
    return flat.view(torch.uint8).numpy().tobytes()


def save(path: str, tensors: Mapping[str, torch.Tensor], metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write named tensors and string metadata to a safetensors file."""
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, tensor in tensors.items():
        if tensor.dtype not in NAMES:
            raise ValueError(f"tensor {name!r} has dtype {tensor.dtype}; expected one of {sorted(DTYPES)}")
        data = tensor_bytes(tensor)
        header[name] = {"dtype": NAMES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # align the data section to 8 bytes, as the reference writer does
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for data in blobs:
            out.write(data)


def load(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Read a safetensors file into (tensors by name, metadata)."""
    with open(path, "rb") as src:
        raw = src.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for a safetensors header")
    (size,) = struct.unpack("<Q", raw[:8])
    if 8 + size > len(raw):
        raise ValueError(f"{path}: header length {size} exceeds the file size {len(raw)}")
    header = json.loads(raw[8:8 + size].decode("utf-8"))
    data = raw[8 + size:]
    metadata = header.pop("__metadata__", None) or {}
    tensors: Dict[str, torch.Tensor] = {}
    for name, info in header.items():
        if info["dtype"] not in DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has dtype {info['dtype']!r}; expected one of {sorted(DTYPES)}")
        dtype = DTYPES[info["dtype"]]
        shape = [int(d) for d in info["shape"]]
        begin, end = (int(x) for x in info["data_offsets"])
        if not 0 <= begin <= end <= len(data):
            raise ValueError(f"{path}: tensor {name!r} offsets {begin}..{end} lie outside the data ({len(data)} bytes)")
        if begin == end:
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        flat = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype)
        tensors[name] = flat.reshape(shape)
    return tensors, dict(metadata)
