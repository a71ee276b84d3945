#!/usr/bin/env python3
"""Writes the shared safetensors test vectors (docs/trust-safetensors.md) and their manifest.

Standard library only, deterministic. Usage: generate.py [--check] [DIR] (DIR defaults to this folder).
--check writes nothing and exits 1 when the files in DIR differ from what this script would write.
"""

import json
import math
import os
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
PACK = {
    "F64": "<d",
    "F32": "<f",
    "F16": "<e",
    "I64": "<q",
    "I32": "<i",
    "I16": "<h",
    "I8": "<b",
    "U8": "<B",
    "BOOL": "<?",
}


def encode(dtype, values):
    """Little-endian bytes of values in dtype; BF16 is the top half of an F32."""
    if dtype == "BF16":
        return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in values)
    return b"".join(struct.pack(PACK[dtype], v) for v in values)


def as_json_number(value):
    """A manifest value: JSON numbers, with the floats JSON lacks spelled as strings."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def frame(header, data=b"", length=None):
    """8-byte length, header bytes, data; `length` overrides the length field."""
    header = header if isinstance(header, bytes) else header.encode("utf-8")
    return struct.pack("<Q", len(header) if length is None else length) + header + data


def padded(header_text):
    """Header text padded with spaces to a multiple of 8 bytes, as ttd's writers pad it."""
    raw = header_text.encode("utf-8")
    return raw + b" " * (-len(raw) % 8)


def build(tensors, metadata=None, pad=True, order=None):
    """A valid file from [(name, dtype, shape, values)], data in list order; header keys in `order` when given.
    Returns (bytes, expected tensors in header order)."""
    entries, blobs, expected, offset = {}, [], {}, 0
    for name, dtype, shape, values in tensors:
        blob = encode(dtype, values)
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        expected[name] = {
            "name": name,
            "dtype": dtype,
            "shape": shape,
            "hex": blob.hex(),
            "values": [as_json_number(v) for v in values],
        }
        blobs.append(blob)
        offset += len(blob)
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in order or [t[0] for t in tensors]:
        header[name] = entries[name]
    text = json.dumps(header, separators=(",", ":"))
    raw = padded(text) if pad else text.encode("utf-8")
    return frame(raw, b"".join(blobs)), [expected[n] for n in order or [t[0] for t in tensors]]


def entry(dtype="F32", shape=None, offsets=None):
    return {"dtype": dtype, "shape": [1] if shape is None else shape, "data_offsets": offsets or [0, 4]}


def header_file(header, data=b"\0\0\0\0"):
    """A file whose header is `header` (a dict, or raw JSON text) and whose data section is `data`."""
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    return frame(text, data)


def vectors():
    """[(file name, bytes, manifest entry)]."""
    out = []

    def valid(name, about, tensors, metadata=None, **kw):
        raw, expected = build(tensors, metadata, **kw)
        out.append((name, raw, {"valid": True, "about": about, "tensors": expected, "metadata": metadata or {}}))

    def valid_raw(name, about, raw, tensors, metadata=None):
        out.append((name, raw, {"valid": True, "about": about, "tensors": tensors, "metadata": metadata or {}}))

    def invalid(name, code, about, raw):
        out.append((name, raw, {"valid": False, "code": code, "about": about}))

    # --- valid files ---
    valid(
        "valid-all-dtypes",
        "one tensor of each dtype, with string metadata",
        [
            ("f64", "F64", [2], [0.1, -1e300]),
            ("f32", "F32", [2, 2], [1.5, -0.0, float("inf"), float("nan")]),
            ("f16", "F16", [3], [1.0, -2.5, 65504.0]),
            ("bf16", "BF16", [2], [1.0, -0.5]),
            ("i64", "I64", [2], [-3, 2**40]),
            ("i32", "I32", [3], [-(2**31), 0, 2**31 - 1]),
            ("i16", "I16", [2], [-7, 7]),
            ("i8", "I8", [2], [-128, 127]),
            ("u8", "U8", [2], [0, 255]),
            ("bool", "BOOL", [3], [True, False, True]),
        ],
        {"format": "pt", "note": "ünïcode ✓"},
    )
    valid("valid-scalar", "a tensor of shape [] holds one element", [("s", "F32", [], [3.5])])
    valid(
        "valid-empty-tensor",
        "a tensor with a 0 dimension takes no bytes (begin = end)",
        [("empty", "F32", [0, 3], []), ("x", "I8", [1], [5])],
    )
    valid(
        "valid-empty-between",
        "an empty tensor sits between two others at the same offset",
        [("a", "U8", [2], [1, 2]), ("e", "F64", [2, 0], []), ("b", "U8", [1], [3])],
    )
    valid(
        "valid-huge-zero-dim",
        "a 0 dimension beside a dimension of 2^53-1: no elements, strides fit",
        [("z", "F32", [0, 2**53 - 1], [])],
    )
    valid("valid-no-tensors", "a header of {} and no data", [])
    valid("valid-metadata-only", "only an empty __metadata__", [], {})
    valid("valid-unpadded", "a header not padded to 8 bytes", [("a", "I16", [1], [9])], pad=False)
    valid(
        "valid-header-order-differs",
        "header order differs from data order; readers keep header order",
        [("b", "F32", [1], [1.0]), ("a", "F32", [1], [2.0]), ("10", "U8", [1], [3]), ("2", "U8", [1], [4])],
        order=["10", "b", "2", "a"],
    )
    valid(
        "valid-brackets-in-names",
        "brackets and escaped quotes inside strings do not count as nesting",
        [("[[[[{{{{", "U8", [1], [1]), ('q"[[[[', "U8", [1], [2]), ("back\\slash[[[", "U8", [1], [3])],
        {"k[[[[": "v{{{{"},
    )
    text = (
        '{\n\t"__metadata__" : { "k" : "\\u00e9\\ud83d\\ude00" } ,\r\n "n\\u00e9" : {"dtype":"U8",'
        '"shape":[ 2 ],"data_offsets":[0,2]}\n}' + " " * 5
    )
    valid_raw(
        "valid-json-whitespace-and-escapes",
        "JSON whitespace, \\u escapes (with a surrogate pair), spaces after",
        frame(text, b"\x07\x08"),
        [{"name": "n\u00e9", "dtype": "U8", "shape": [2], "hex": "0708", "values": [7, 8]}],
        {"k": "\u00e9\U0001f600"},
    )
    valid_raw(
        "valid-negative-zero",
        "-0 is the integer 0",
        frame('{"a":{"dtype":"U8","shape":[-0],"data_offsets":[-0,0]}}'),
        [{"name": "a", "dtype": "U8", "shape": [0], "hex": "", "values": []}],
    )

    # --- 1..3: length and bounds ---
    invalid("invalid-empty-file", "st_file_too_short", "0 bytes", b"")
    invalid("invalid-seven-bytes", "st_file_too_short", "7 bytes", b"\x02\0\0\0\0\0\0")
    invalid("invalid-header-too-large", "st_header_too_large", "N = 100,000,001", frame(b"{}", length=100_000_001))
    invalid("invalid-header-length-max", "st_header_too_large", "N = 2^64-1", frame(b"{}", length=2**64 - 1))
    invalid(
        "invalid-header-past-file",
        "st_header_out_of_bounds",
        "N = 100, 20 bytes follow",
        frame(b'{"a":1}' + b" " * 13, length=100),
    )
    # --- 4: UTF-8 ---
    invalid("invalid-utf8-byte", "st_header_not_utf8", "a 0xff byte in a name", frame(b'{"\xff":1}'))
    invalid("invalid-utf8-overlong", "st_header_not_utf8", "an overlong '/'", frame(b'{"\xc0\xaf":1}'))
    invalid("invalid-utf8-surrogate", "st_header_not_utf8", "an encoded surrogate", frame(b'{"\xed\xa0\x80":1}'))
    invalid("invalid-utf8-before-framing", "st_header_not_utf8", "bad UTF-8 wins over bad framing", frame(b"x\xff"))
    # --- 5: framing ---
    invalid("invalid-header-empty", "st_header_framing", "N = 0", frame(b""))
    invalid("invalid-header-leading-space", "st_header_framing", "a space before '{'", frame(b" {}"))
    invalid("invalid-header-array", "st_header_framing", "a JSON array", frame(b"[]"))
    invalid("invalid-header-trailing-newline", "st_header_framing", "a newline after '}'", frame(b"{}\n"))
    invalid("invalid-header-trailing-junk", "st_header_framing", "text after '}' and spaces", frame(b"{}  x  "))
    invalid("invalid-header-bom", "st_header_framing", "a UTF-8 byte order mark", frame(b"\xef\xbb\xbf{}"))
    invalid("invalid-header-nul-padding", "st_header_framing", "NUL bytes as padding", frame(b"{}\0\0"))
    # --- 6: depth ---
    invalid(
        "invalid-depth-4",
        "st_header_too_deep",
        "an array inside shape",
        header_file('{"a":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}}'),
    )
    invalid(
        "invalid-depth-metadata",
        "st_header_too_deep",
        "an object nested in a metadata value",
        header_file('{"__metadata__":{"a":{"b":{}}}}', b""),
    )
    invalid(
        "invalid-depth-10000",
        "st_header_too_deep",
        "10,000 nested arrays",
        header_file('{"a":' + "[" * 10000 + "]" * 10000 + "}", b""),
    )
    invalid(
        "invalid-depth-before-json",
        "st_header_too_deep",
        "too deep and unterminated: depth is checked first",
        header_file('{"a":[[[[[[}', b""),
    )
    # --- 7: JSON ---
    invalid("invalid-json-missing-value", "st_header_not_json", "a key without a value", header_file('{"a":}'))
    invalid("invalid-json-trailing-comma", "st_header_not_json", "a trailing comma", header_file('{"a":1,}'))
    invalid("invalid-json-nan", "st_header_not_json", "NaN is not JSON", header_file('{"__metadata__":NaN}'))
    invalid(
        "invalid-json-infinity",
        "st_header_not_json",
        "Infinity is not JSON",
        header_file('{"a":{"dtype":"F32","shape":[Infinity],"data_offsets":[0,4]}}'),
    )
    invalid("invalid-json-single-quotes", "st_header_not_json", "single-quoted strings", header_file("{'a':1}"))
    invalid("invalid-json-control-char", "st_header_not_json", "a raw tab inside a string", header_file('{"a\tb":1}'))
    invalid(
        "invalid-json-lone-surrogate",
        "st_header_not_json",
        "a lone surrogate escape",
        header_file('{"__metadata__":{"k":"\\ud800"}}', b""),
    )
    invalid(
        "invalid-json-number-overflow",
        "st_header_not_json",
        "1e400 overflows a double",
        header_file('{"a":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}}'),
    )
    invalid(
        "invalid-json-integer-overflow",
        "st_header_not_json",
        "a 400-digit integer overflows a double",
        header_file('{"a":{"dtype":"F32","shape":[1' + "0" * 400 + '],"data_offsets":[0,4]}}'),
    )
    invalid("invalid-json-two-objects", "st_header_not_json", "two objects", header_file("{} {}"))
    invalid("invalid-json-bad-escape", "st_header_not_json", "an unknown escape", header_file('{"a\\x":1}'))
    invalid(
        "invalid-json-nul-after-object",
        "st_header_not_json",
        "a NUL byte after the object (found by the fuzzer)",
        frame(b'{"_":1}\0 x}'),
    )
    invalid(
        "invalid-json-leading-zero",
        "st_header_not_json",
        "a number with a leading zero",
        header_file('{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}'),
    )
    # --- 8: duplicate keys ---
    invalid(
        "invalid-duplicate-tensor",
        "st_header_duplicate_key",
        "one tensor name twice",
        header_file(
            '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
            '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
        ),
    )
    invalid(
        "invalid-duplicate-escaped",
        "st_header_duplicate_key",
        "'a' and '\\u0061' are the same key",
        header_file(
            '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
            '"\\u0061":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
        ),
    )
    invalid(
        "invalid-duplicate-field",
        "st_header_duplicate_key",
        "dtype twice in one entry",
        header_file('{"a":{"dtype":"F64","dtype":"F32","shape":[1],"data_offsets":[0,4]}}'),
    )
    invalid(
        "invalid-duplicate-metadata",
        "st_header_duplicate_key",
        "a metadata key twice",
        header_file('{"__metadata__":{"k":"1","k":"2"}}', b""),
    )
    invalid(
        "invalid-duplicate-metadata-key",
        "st_header_duplicate_key",
        "__metadata__ twice",
        header_file('{"__metadata__":{},"__metadata__":{}}', b""),
    )
    invalid(
        "invalid-duplicate-deepest",
        "st_header_duplicate_key",
        "an object as dtype, with a key twice",
        header_file('{"a":{"dtype":{"x":1,"x":2},"shape":[1],"data_offsets":[0,4]}}'),
    )
    # --- 9: metadata ---
    invalid(
        "invalid-metadata-number",
        "st_metadata_invalid",
        "a number value",
        header_file('{"__metadata__":{"epoch":3}}', b""),
    )
    invalid(
        "invalid-metadata-null",
        "st_metadata_invalid",
        "__metadata__ is null",
        header_file('{"__metadata__":null}', b""),
    )
    invalid(
        "invalid-metadata-array",
        "st_metadata_invalid",
        "__metadata__ is an array",
        header_file('{"__metadata__":["a"]}', b""),
    )
    invalid(
        "invalid-metadata-object-value",
        "st_metadata_invalid",
        "an object value",
        header_file('{"__metadata__":{"a":{}}}', b""),
    )
    invalid(
        "invalid-metadata-after-bad-tensor",
        "st_metadata_invalid",
        "metadata is checked before the tensors, wherever it stands",
        header_file('{"a":{"dtype":"X","shape":[1],"data_offsets":[0,4]},"__metadata__":{"k":true}}'),
    )
    # --- 10, 11: names and entries ---
    invalid(
        "invalid-name-empty",
        "st_tensor_name_empty",
        "a tensor named ''",
        header_file('{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'),
    )
    invalid("invalid-entry-string", "st_tensor_entry_invalid", "an entry that is a string", header_file('{"a":"F32"}'))
    invalid("invalid-entry-array", "st_tensor_entry_invalid", "an entry that is an array", header_file('{"a":[1]}'))
    invalid(
        "invalid-entry-missing-offsets",
        "st_tensor_entry_invalid",
        "no data_offsets",
        header_file('{"a":{"dtype":"F32","shape":[1]}}'),
    )
    invalid(
        "invalid-entry-extra-field",
        "st_tensor_entry_invalid",
        "an extra field",
        header_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":0}}'),
    )
    # --- 12: dtype ---
    invalid("invalid-dtype-lowercase", "st_tensor_dtype", "'f32'", header_file({"a": entry("f32")}))
    invalid(
        "invalid-dtype-unsupported",
        "st_tensor_dtype",
        "'F8_E4M3' (a reference-format dtype ttd does not read)",
        header_file({"a": entry("F8_E4M3", offsets=[0, 1])}, b"\0"),
    )
    invalid("invalid-dtype-number", "st_tensor_dtype", "a number", header_file({"a": entry(4)}))
    invalid(
        "invalid-dtype-before-shape",
        "st_tensor_dtype",
        "bad dtype and bad shape: dtype is checked first",
        header_file({"a": entry("U16", [-1])}),
    )
    # --- 13: shape ---
    invalid("invalid-shape-negative", "st_tensor_shape", "a negative dimension", header_file({"a": entry(shape=[-1])}))
    invalid(
        "invalid-shape-fraction",
        "st_tensor_shape",
        "1.0 is not an integer",
        header_file('{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}'),
    )
    invalid(
        "invalid-shape-exponent",
        "st_tensor_shape",
        "1e0 is not an integer",
        header_file('{"a":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}'),
    )
    invalid("invalid-shape-bool", "st_tensor_shape", "true is not an integer", header_file({"a": entry(shape=[True])}))
    invalid("invalid-shape-string", "st_tensor_shape", "a string dimension", header_file({"a": entry(shape=["1"])}))
    invalid(
        "invalid-shape-object",
        "st_tensor_shape",
        "shape is an object",
        header_file('{"a":{"dtype":"F32","shape":{},"data_offsets":[0,4]}}'),
    )
    invalid(
        "invalid-shape-above-2-53", "st_tensor_shape", "a dimension of 2^53", header_file({"a": entry(shape=[2**53])})
    )
    invalid(
        "invalid-shape-above-2-64", "st_tensor_shape", "a dimension of 2^64", header_file({"a": entry(shape=[2**64])})
    )
    invalid(
        "invalid-shape-strides-overflow",
        "st_tensor_shape",
        "[0, 2^40, 2^40]: no elements, but strides overflow",
        header_file({"a": entry(shape=[0, 2**40, 2**40], offsets=[0, 0])}, b""),
    )
    # --- 14: offsets ---
    invalid("invalid-offsets-three", "st_tensor_offsets", "three offsets", header_file({"a": entry(offsets=[0, 4, 8])}))
    invalid("invalid-offsets-one", "st_tensor_offsets", "one offset", header_file({"a": entry(offsets=[4])}))
    invalid("invalid-offsets-reversed", "st_tensor_offsets", "begin > end", header_file({"a": entry(offsets=[4, 0])}))
    invalid(
        "invalid-offsets-negative", "st_tensor_offsets", "a negative begin", header_file({"a": entry(offsets=[-4, 0])})
    )
    invalid(
        "invalid-offsets-fraction",
        "st_tensor_offsets",
        "4.0 is not an integer",
        header_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}'),
    )
    invalid(
        "invalid-offsets-above-2-53",
        "st_tensor_offsets",
        "an end of 2^53",
        header_file({"a": entry(offsets=[2**53 - 4, 2**53])}),
    )
    invalid(
        "invalid-offsets-null",
        "st_tensor_offsets",
        "data_offsets is null",
        header_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":null}}'),
    )
    # --- 15: size ---
    invalid(
        "invalid-size-begin-equals-end",
        "st_tensor_size_mismatch",
        "begin = end with a non-empty shape (a reader once returned uninitialised memory here)",
        header_file({"a": entry(shape=[1024], offsets=[0, 0])}, b""),
    )
    invalid(
        "invalid-size-too-long",
        "st_tensor_size_mismatch",
        "8 bytes for one F32",
        header_file({"a": entry(offsets=[0, 8])}, b"\0" * 8),
    )
    invalid(
        "invalid-size-numel-overflow",
        "st_tensor_size_mismatch",
        "2^52 F64 elements need 2^55 bytes",
        header_file({"a": entry("F64", [2**26, 2**26], [0, 8])}, b"\0" * 8),
    )
    invalid(
        "invalid-size-before-layout",
        "st_tensor_size_mismatch",
        "a later size error wins over a layout error",
        header_file({"a": entry(offsets=[4, 8]), "b": entry(offsets=[8, 9])}, b"\0" * 9),
    )
    invalid(
        "invalid-first-in-document-order",
        "st_tensor_dtype",
        "two bad tensors: the first in header order ('10', not '2') is reported",
        header_file(
            '{"10":{"dtype":"X","shape":[1],"data_offsets":[0,4]},'
            '"2":{"dtype":"F32","shape":[-1],"data_offsets":[4,8]}}',
            b"\0" * 8,
        ),
    )
    # --- 16..18: layout ---
    invalid(
        "invalid-layout-gap-at-start",
        "st_tensors_not_contiguous",
        "the first tensor begins at 4",
        header_file({"a": entry(offsets=[4, 8])}, b"\0" * 8),
    )
    invalid(
        "invalid-layout-gap-between",
        "st_tensors_not_contiguous",
        "4 unused bytes between two tensors",
        header_file({"a": entry(offsets=[0, 4]), "b": entry(offsets=[8, 12])}, b"\0" * 12),
    )
    invalid(
        "invalid-layout-same-bytes",
        "st_tensors_not_contiguous",
        "two tensors on the same 4 bytes",
        header_file({"a": entry(offsets=[0, 4]), "b": entry(offsets=[0, 4])}, b"\0" * 4),
    )
    invalid(
        "invalid-layout-partial-overlap",
        "st_tensors_not_contiguous",
        "tensors [0,8] and [4,12] overlap",
        header_file({"a": entry(shape=[2], offsets=[0, 8]), "b": entry(shape=[2], offsets=[4, 12])}, b"\0" * 12),
    )
    invalid(
        "invalid-data-truncated",
        "st_data_truncated",
        "a tensor ends past the file",
        header_file({"a": entry(shape=[4], offsets=[0, 16])}, b"\0" * 4),
    )
    invalid(
        "invalid-data-trailing",
        "st_data_trailing",
        "bytes after the last tensor",
        header_file({"a": entry()}, b"\0" * 8),
    )
    invalid("invalid-data-without-tensors", "st_data_trailing", "data but no tensors", header_file("{}", b"\0"))
    return out


def write_all(directory):
    manifest = {
        "format": "ttd-safetensors-vectors/1",
        "rules": "docs/trust-safetensors.md",
        "generator": "test/vectors/safetensors/generate.py",
        "vectors": [],
    }
    names = set()
    for name, raw, item in vectors():
        assert name not in names, name
        names.add(name)
        with open(os.path.join(directory, name + ".safetensors"), "wb") as out:
            out.write(raw)
        manifest["vectors"].append({"file": name + ".safetensors", **item})
    with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as out:
        json.dump(manifest, out, indent=1, ensure_ascii=False)
        out.write("\n")
    return sorted(names)


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    directory = args[0] if args else HERE
    if not check:
        count = len(write_all(directory))
        print(f"wrote {count} vectors and manifest.json to {directory}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        write_all(tmp)
        expected = sorted(f for f in os.listdir(tmp))
        present = sorted(f for f in os.listdir(directory) if f.endswith(".safetensors") or f == "manifest.json")
        differ = [
            f
            for f in expected
            if f not in present
            or open(os.path.join(tmp, f), "rb").read() != open(os.path.join(directory, f), "rb").read()
        ]
        extra = [f for f in present if f not in expected]
    if differ or extra:
        print(f"vectors in {directory} are stale: differ {differ}, not generated {extra}; run {sys.argv[0]}")
        return 1
    print(f"{len(expected)} files in {directory} match the generator")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
