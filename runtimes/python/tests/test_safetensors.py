"""Round trips of the package's safetensors reader/writer."""

import os
import tempfile
import unittest

import torch

from ttd_torch import safetensors


class SafetensorsTest(unittest.TestCase):
    def test_round_trip_dtypes_scalar_and_empty(self) -> None:
        tensors = {
            "f64": torch.randn(3, 2, dtype=torch.float64),
            "f32": torch.randn(4),
            "f16": torch.randn(2, 2).half(),
            "bf16": torch.randn(5).bfloat16(),
            "i64": torch.arange(-3, 3),
            "i32": torch.arange(6, dtype=torch.int32).reshape(2, 3),
            "i16": torch.tensor([-7, 7], dtype=torch.int16),
            "i8": torch.tensor([-128, 127], dtype=torch.int8),
            "u8": torch.tensor([0, 255], dtype=torch.uint8),
            "bool": torch.tensor([True, False, True]),
            "scalar": torch.tensor(3.5),
            "empty": torch.empty(0, 3),
            "strided": torch.arange(12.0).reshape(3, 4).t(),
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "t.safetensors")
            safetensors.save(path, tensors, {"format": "ttd-references/1", "cases": "a,b"})
            with open(path, "rb") as src:
                size = int.from_bytes(src.read(8), "little")
            self.assertEqual(size % 8, 0)
            loaded, metadata = safetensors.load(path)
        self.assertEqual(metadata, {"format": "ttd-references/1", "cases": "a,b"})
        self.assertEqual(sorted(loaded), sorted(tensors))
        for name, tensor in tensors.items():
            self.assertEqual(loaded[name].dtype, tensor.dtype, name)
            self.assertEqual(loaded[name].shape, tensor.shape, name)
            self.assertTrue(torch.equal(loaded[name], tensor), name)

    def test_wanted_reads_only_those_tensors_and_still_checks_the_whole_file(self) -> None:
        tensors = {"a/input/0": torch.randn(3), "a/output/0": torch.randn(1000, 7), "b/input/0": torch.arange(4)}
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "t.safetensors")
            safetensors.save(path, tensors, {"cases": "a,b"})
            loaded, metadata = safetensors.load(path, lambda name: "/input/" in name)
            self.assertEqual(metadata, {"cases": "a,b"})
            self.assertEqual(list(loaded), ["a/input/0", "b/input/0"])
            for name, tensor in loaded.items():
                self.assertTrue(torch.equal(tensor, tensors[name]), name)
            with open(path, "ab") as out:  # a byte past the last tensor, which no wanted tensor reads
                out.write(b"\0")
            with self.assertRaises(safetensors.SafetensorsError) as caught:
                safetensors.load(path, lambda name: name == "a/input/0")
            self.assertEqual(caught.exception.code, "st_data_trailing")

    def test_rejects_unknown_dtype(self) -> None:
        with tempfile.TemporaryDirectory() as tmp, self.assertRaises(ValueError):
            safetensors.save(os.path.join(tmp, "c.safetensors"), {"c": torch.zeros(2, dtype=torch.complex64)})


if __name__ == "__main__":
    unittest.main()
