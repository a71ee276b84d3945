"""The onnx op (torch.export, then torch.onnx's dynamo exporter, checked in ONNX Runtime) through server.dispatch.

On torch 2.x with onnx, onnxscript and onnxruntime (make setup installs them into .torch/torch-2.13): the seed exports
and agrees; an operator the exporter cannot translate is onnx_export_failed, named with the user's line; an ONNX model
that computes something else is onnx_divergence with its first diverging node; a hard-wired dropout is train_mode_ops.
On torch 1.13 the op refuses with bad_request naming the torch version; that is all this file checks there.
"""

import contextlib
import os
import unittest
from typing import Any
from unittest import mock

import torch

from ttd_torch import codes, export
from ttd_torch.protocol import BadRequest

from .helpers import TOL
from .test_export import BRANCH, SEED_BATCHED, ExportTestCase, line_of

HAS_EXPORT = export.torch_version_tuple() >= export.MIN_TORCH
NOOP = lambda data: None  # noqa: E731 - progress events are not under test here

UNSUPPORTED = BRANCH.replace(
    """        if x.sum() > 0:
            return self.linear(x)
        return self.linear(x) * 0.5""",
    """        h = self.linear(x)
        return torch.special.zeta(h.abs() + 2.0, torch.ones_like(h))""",
)

# atan2(y, -0.0) is ±pi in torch; ONNX's translation (Div, Atan, then quadrant fixes on x < 0) misses the negative zero.
DIVERGING = BRANCH.replace(
    """        if x.sum() > 0:
            return self.linear(x)
        return self.linear(x) * 0.5""",
    """        h = torch.relu(self.linear(x))
        angle = torch.atan2(h * 0.0, -torch.ones_like(h) * 0.0)
        return h + angle""",
)

# torch.export (and so the ONNX model) takes the compiling branch; eager takes the other one.
EXPORT_ONLY = BRANCH.replace(
    """        if x.sum() > 0:
            return self.linear(x)
        return self.linear(x) * 0.5""",
    """        gain = 3.0 if torch.compiler.is_compiling() else 2.0
        return self.linear(x) * gain""",
)

TRAIN_MODE = BRANCH.replace(
    """        if x.sum() > 0:
            return self.linear(x)
        return self.linear(x) * 0.5""",
    """        return torch.nn.functional.dropout(self.linear(x), 0.5, training=True)""",
)


class OnnxTestCase(ExportTestCase):
    """The onnx op on model files written by write()."""

    @classmethod
    def run_onnx(cls, path: str, batch_sizes: list[int]) -> dict:
        import tempfile

        from ttd_torch import server

        out = tempfile.mkdtemp(dir=cls.tmp.name)
        args = {"model_path": path, "params": {}, "weights_path": path + ".weights.pt", "batch_sizes": batch_sizes}
        return server.dispatch("onnx", {**args, **TOL, "out_dir": out}, NOOP)


class RefusalTest(OnnxTestCase):
    """A torch without torch.export (1.13; on torch 2.x, as if 1.13): the op refuses, naming the torch version."""

    def test_onnx_refuses_on_a_torch_without_torch_export(self) -> None:
        path = self.write("seed.py", SEED_BATCHED)
        with contextlib.ExitStack() as stack:
            if HAS_EXPORT:
                stack.enter_context(mock.patch.object(export, "torch_version_tuple", return_value=(1, 13)))
            with self.assertRaises(BadRequest) as caught:
                self.run_onnx(path, [1, 7])
        self.assertIn(
            f"op 'onnx' needs torch >= 2.1 (torch.export); this environment has torch {torch.__version__}",
            caught.exception.message,
        )


# On torch 1.13 the class below derives from object, so unittest collects only RefusalTest there: nothing is skipped.
Torch2Case: Any = OnnxTestCase if HAS_EXPORT else object


class OnnxExportTest(Torch2Case):
    """Verdicts of the onnx op on torch 2.x."""

    def test_the_seed_exports_to_onnx_and_agrees_with_eager_at_every_batch_size(self) -> None:
        result = self.run_onnx(self.write("seed.py", SEED_BATCHED), [1, 7, 100])
        self.assertTrue(result["passed"], result["message"])
        self.assertIsNone(result["code"])
        self.assertTrue(os.path.getsize(result["onnx_path"]) > 0)
        self.assertGreaterEqual(result["opset"], 18)
        self.assertIn("Gemm", result["nodes"])
        self.assertIn("batch_7", [c["name"] for c in result["cases"]])
        self.assertTrue(all(c["passed"] for c in result["cases"]))
        self.assertIn("the ONNX model in ONNX Runtime and eager agree on", result["message"])
        self.assertNotIn("divergence", result)

    def test_an_operator_without_an_onnx_translation_is_named_with_its_line(self) -> None:
        path = self.write("zeta.py", UNSUPPORTED)
        result = self.run_onnx(path, [1, 7])
        self.assertFalse(result["passed"])
        self.assertEqual(result["code"], codes.ONNX_EXPORT_FAILED)
        self.assertIn("zeta", result["message"])
        self.assertIn(f"{path}:{line_of(UNSUPPORTED, 'special.zeta')}", result["message"])
        self.assertIsNone(result["onnx_path"])

    def test_an_onnx_model_that_computes_something_else_names_its_first_diverging_node(self) -> None:
        path = self.write("atan2.py", DIVERGING)
        result = self.run_onnx(path, [1, 7])
        self.assertFalse(result["passed"], result["message"])
        self.assertEqual(result["code"], codes.ONNX_DIVERGENCE)
        found = result["divergence"]
        self.assertIsNotNone(found, result["message"])
        self.assertIn("atan2", found["op"])
        self.assertEqual(found["location"], f"{path}:{line_of(DIVERGING, 'atan2')}")
        self.assertGreater(found["compared"], 0)  # the linear and relu before it agree
        self.assertNotEqual(found["eager"], found["artifact"])
        self.assertIn("the first operator out of tolerance is", result["message"])

    def test_a_value_the_export_froze_is_onnx_divergence_named_in_the_exported_program(self) -> None:
        path = self.write("export-only.py", EXPORT_ONLY)
        result = self.run_onnx(path, [1, 7])
        self.assertEqual(result["code"], codes.ONNX_DIVERGENCE, result["message"])
        self.assertIn("because the exported program it was translated from already does", result["message"])
        found = result["divergence"]
        self.assertIsNotNone(found, result["message"])
        self.assertEqual(found["op"], "aten.mul.Tensor")
        self.assertEqual(found["location"], f"{path}:{line_of(EXPORT_ONLY, 'return self.linear(x) * gain')}")

    def test_a_forward_that_hard_wires_dropout_is_rejected_as_train_mode_ops(self) -> None:
        result = self.run_onnx(self.write("dropout.py", TRAIN_MODE), [1, 7])
        self.assertEqual(result["code"], codes.TRAIN_MODE_OPS, result["message"])
        self.assertIn("aten.dropout.default", result["message"])


if __name__ == "__main__":
    unittest.main()
