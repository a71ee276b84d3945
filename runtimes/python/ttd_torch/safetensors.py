"""A minimal safetensors writer and the reader of docs/trust-safetensors.md (docs/protocol.md, section 3); no pickle."""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Callable, Mapping

import torch

# The parity runner must stay one standalone file, so the one Python reader (docs/trust-safetensors.md) lives there.
from ttd_parity_runner import SafetensorsError, parse_safetensors, read_safetensors  # noqa: F401 (re-exported)

DTYPES: dict[str, torch.dtype] = {
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
NAMES: dict[torch.dtype, str] = {dtype: name for name, dtype in DTYPES.items()}


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """Return a tensor's raw little-endian bytes."""
    if sys.byteorder != "little":
        raise RuntimeError("safetensors writer needs a little-endian host, got " + sys.byteorder)
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    # A uint8 view covers every dtype, bfloat16 included, without numpy's dtype gaps.
    return flat.view(torch.uint8).numpy().tobytes()


def save(path: str, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
    """Write named tensors and string metadata to a safetensors file."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, tensor in tensors.items():
        if tensor.dtype not in NAMES:
            raise ValueError(f"tensor {name!r} has dtype {tensor.dtype}; expected one of {sorted(DTYPES)}")
        data = tensor_bytes(tensor)
        header[name] = {
            "dtype": NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # align the data section to 8 bytes, as the reference writer does
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for data in blobs:
            out.write(data)


def load(path: str, wanted: Callable[[str], bool] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file into (tensors by name, metadata); raises SafetensorsError naming the rule broken. With
    `wanted`, only the tensors whose names it accepts are read (the whole file is still checked)."""
    return read_safetensors(path, wanted)
