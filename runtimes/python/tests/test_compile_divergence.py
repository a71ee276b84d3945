"""The compile op's first diverging operator: when the AOTInductor package and eager differ on numbers, the op names
the first FX node whose Inductor value leaves the tolerance (divergence.fx_values, compile.first_divergence).

The case that diverges is real Inductor numerics: Inductor decomposes GELU into its own erf arithmetic, which differs
from ATen's kernel in the last bits, so under atol 1e-9 / rtol 0 the package fails the gate while the linear before it
(an extern matmul in both) agrees bit for bit. fx_values and a diagnosis that cannot run are checked on any torch;
the compile on torch 2.x only (one compile, shared by the class; a few seconds warm in CACHE_DIR).
"""

import os
import shutil
import tempfile
import unittest
from typing import Any

import torch

from ttd_torch import codes, divergence, references, server
from ttd_torch import compile as compile_op

from .helpers import TOL
from .test_export import CACHE_DIR, HAS_EXPORT, NOOP, ExportTestCase, line_of

TIGHT = {"atol": 1e-9, "rtol": 0.0}  # below one float32 ulp near 1: Inductor's own GELU arithmetic shows

GELU = """
import torch
from torch import nn

class GeluHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 64)
        self.act = nn.GELU()

    def forward(self, x):
        h = self.linear(x)
        return self.act(h)

def build_model(params):
    return GeluHead()

def dataset(params, split):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(64, 64, generator=gen)
    return x, x

def example_inputs(params):
    return (dataset(params, "validation")[0][:4],)
"""


class Chain(torch.nn.Module):
    """linear, relu, a sum: three call_function nodes once traced."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sum(torch.relu(self.linear(x)), 1)


class FxValuesTest(unittest.TestCase):
    """divergence.fx_values and a diagnosis that cannot run, on any torch (torch.fx is in 1.13 too)."""

    def test_fx_values_records_each_call_function_nodes_tensor_in_graph_order(self) -> None:
        model = Chain()
        gm = torch.fx.symbolic_trace(model)
        x = torch.randn(4, 3)
        values, nodes = divergence.fx_values(gm, (x,))
        self.assertEqual(list(values), ["relu", "sum_1"])  # the linear is a call_module in a symbolic trace
        self.assertEqual(list(nodes), list(values))
        self.assertIs(nodes["relu"].target, torch.relu)
        self.assertTrue(torch.equal(values["sum_1"], model(x).detach()))
        self.assertFalse(values["sum_1"].requires_grad)

    def test_a_diagnosis_that_cannot_run_leaves_the_divergence_null(self) -> None:
        case = references.RefCase("validation", (torch.randn(2, 3),), [torch.zeros(2)])
        with tempfile.TemporaryDirectory() as cache:
            self.assertIsNone(compile_op.first_divergence(object(), case, None, **TIGHT, cache_dir=cache))


class ModelLocationTest(unittest.TestCase):
    """compile.model_location: the user's line in a program exported from another scratch copy of the model file."""

    def test_a_stack_from_another_copy_of_the_model_file_is_named_by_this_copys_path_when_the_line_reads_the_same(
        self,
    ) -> None:
        with tempfile.TemporaryDirectory() as here:
            path = os.path.join(here, "gelu.py")
            with open(path, "w", encoding="utf-8") as f:
                f.write(GELU)
            line = line_of(GELU, "return self.act(h)")
            stack = (
                f'File "/scratch/export-1/gelu.py", line {line}, in forward\n    return self.act(h)\n'
                '  File "/torch/nn/modules/activation.py", line 816, in forward\n    return F.gelu(input)'
            )
            self.assertEqual(compile_op.model_location(stack, path), f"{path}:{line}")
            self.assertIsNone(compile_op.model_location(stack.replace("self.act(h)", "self.other(h)"), path))
            self.assertIsNone(compile_op.model_location(stack, None))


# On torch 1.13 the class below derives from object, so unittest collects only the tests above: nothing is skipped.
Torch2Case: Any = ExportTestCase if HAS_EXPORT else object


class CompileDivergenceTest(Torch2Case):
    """One compile of a GELU model under a tolerance tighter than Inductor's arithmetic, shared by the class."""

    path: str  # the compile stage's copy of the model file: the export stage ran another, as the worker does
    exported: dict[str, Any]
    result: dict[str, Any]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.exported = cls.run_export(cls.write("gelu.py", GELU), [1, 7])
        assert cls.exported["passed"], cls.exported["message"]
        cls.path = os.path.join(tempfile.mkdtemp(dir=cls.tmp.name), "gelu.py")
        shutil.copyfile(os.path.join(cls.tmp.name, "gelu.py"), cls.path)
        os.makedirs(CACHE_DIR, exist_ok=True)
        cls.result = server.dispatch(
            "compile",
            {
                "model_path": cls.path,
                "program_path": cls.exported["program_path"],
                "references_path": cls.exported["references_path"],
                **TIGHT,
                "cache_dir": CACHE_DIR,
                "out_dir": tempfile.mkdtemp(dir=cls.tmp.name),
            },
            NOOP,
        )

    def test_a_package_that_differs_on_numbers_names_the_first_operator_out_of_tolerance_and_its_line(self) -> None:
        result = self.result
        self.assertFalse(result["passed"])
        self.assertEqual(result["code"], codes.COMPILED_DIVERGENCE, result["message"])
        found = result["divergence"]
        self.assertIsNotNone(found, result["message"])
        self.assertEqual(found["case"], next(c["name"] for c in result["cases"] if not c["passed"]))
        self.assertEqual((found["node"], found["op"], found["module"]), ("gelu", "aten.gelu.default", "act"))
        self.assertEqual(found["location"], f"{self.path}:{line_of(GELU, 'return self.act(h)')}")
        self.assertEqual(found["compared"], 1)  # the linear before it agrees bit for bit
        self.assertGreater(found["max_abs_error"], TIGHT["atol"])
        self.assertNotEqual(found["eager"], found["artifact"])
        self.assertIn(
            f"; the first operator out of tolerance is aten.gelu.default (node 'gelu' in module 'act' at "
            f"{found['location']}) on case {found['case']}",
            result["message"],
        )

    def test_within_the_default_tolerance_the_inductor_copy_agrees_and_names_nothing(self) -> None:
        program = torch.export.load(self.exported["program_path"])
        case = references.read(self.exported["references_path"])[0]
        self.assertIsNone(compile_op.first_divergence(program, case, self.path, **TOL, cache_dir=CACHE_DIR))


if __name__ == "__main__":
    unittest.main()
