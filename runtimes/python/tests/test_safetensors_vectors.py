"""The shared safetensors vectors (test/vectors/safetensors, docs/trust-safetensors.md) against both Python readers:
the parity runner's read_safetensors (run as a process too) and ttd_torch.safetensors.load."""

import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import torch

import ttd_parity_runner
from tests.helpers import PYTHON, REPO, RUNNER, jit_trace
from ttd_torch import safetensors

VECTORS = os.path.join(REPO, "test", "vectors", "safetensors")
GENERATOR = os.path.join(VECTORS, "generate.py")
with open(os.path.join(VECTORS, "manifest.json"), encoding="utf-8") as _src:
    MANIFEST = json.load(_src)

READERS = {
    "ttd_parity_runner.read_safetensors": ttd_parity_runner.read_safetensors,
    "ttd_torch.safetensors.load": safetensors.load,
}


def expected_value(value: float | str) -> float:
    """A value of the manifest as a number: JSON has no NaN or infinities, so the manifest spells them."""
    special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    return special[value] if isinstance(value, str) else float(value)


class SafetensorsVectorsTest(unittest.TestCase):
    def test_manifest_covers_every_rule_and_both_outcomes(self) -> None:
        codes = {v["code"] for v in MANIFEST["vectors"] if not v["valid"]}
        with open(os.path.join(REPO, "docs", "trust-safetensors.md"), encoding="utf-8") as src:
            documented = {line.split("`")[1] for line in src if line.startswith("| ") and "`st_" in line}
        self.assertEqual(codes, documented)
        self.assertGreaterEqual(sum(v["valid"] for v in MANIFEST["vectors"]), 10)

    def test_committed_vectors_match_their_generator(self) -> None:
        proc = subprocess.run([sys.executable, GENERATOR, "--check", VECTORS], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_every_vector_in_both_readers(self) -> None:
        for vector in MANIFEST["vectors"]:
            path = os.path.join(VECTORS, vector["file"])
            for reader_name, reader in READERS.items():
                with self.subTest(vector=vector["file"], reader=reader_name):
                    if not vector["valid"]:
                        with self.assertRaises(safetensors.SafetensorsError) as caught:
                            reader(path)
                        self.assertEqual(caught.exception.code, vector["code"], str(caught.exception))
                        self.assertIn(path, str(caught.exception))
                        self.assertTrue(str(caught.exception).endswith(f"({vector['code']})"))
                        continue
                    tensors, metadata = reader(path)
                    self.assertEqual(metadata, vector["metadata"])
                    self.assertEqual(list(tensors), [t["name"] for t in vector["tensors"]])
                    for want in vector["tensors"]:
                        got = tensors[want["name"]]
                        self.assertEqual(got.dtype, ttd_parity_runner.DTYPES[want["dtype"]], want["name"])
                        self.assertEqual(list(got.shape), want["shape"], want["name"])
                        raw = got.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if got.numel() else b""
                        self.assertEqual(raw.hex(), want["hex"], want["name"])
                        values = [float(v) for v in got.reshape(-1).tolist()]
                        wanted = [expected_value(v) for v in want["values"]]
                        self.assertEqual(len(values), len(wanted))
                        for a, b in zip(values, wanted, strict=True):
                            self.assertTrue(a == b or (math.isnan(a) and math.isnan(b)), (want["name"], a, b))

    def test_parity_runner_process_rejects_hostile_references_with_the_rule_code(self) -> None:
        # begin == end with 1024 elements: this runner once answered with 4 KB of uninitialised memory.
        vector = os.path.join(VECTORS, "invalid-size-begin-equals-end.safetensors")
        with tempfile.TemporaryDirectory() as tmp:
            jit_trace(torch.nn.Linear(2, 2).eval(), torch.zeros(1, 2)).save(os.path.join(tmp, "model.pt"))
            proc = subprocess.run(
                [PYTHON, "-I", RUNNER, "--model", "model.pt", "--references", vector, "--out", "out.safetensors"],
                capture_output=True,
                text=True,
                cwd=tmp,
                timeout=120,
            )
            self.assertFalse(os.path.exists(os.path.join(tmp, "out.safetensors")))
        self.assertEqual(proc.returncode, 1, proc.stderr[-2000:])
        error = json.loads(proc.stdout.strip().splitlines()[-1])["error"]
        self.assertEqual(error["stage"], "read")
        self.assertIn(
            "spanning 0 bytes; dtype F32 and shape [1024] need 4096 (st_tensor_size_mismatch)", error["message"]
        )


if __name__ == "__main__":
    unittest.main()
