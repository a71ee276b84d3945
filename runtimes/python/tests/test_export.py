"""The export and compile ops (torch.export, AOTInductor) through server.dispatch, as a request runs them.

On torch 2.x: export verdicts on the seed MLP and on models with each export failure, then one AOTInductor compile of
the seed's program, shared by the compile tests (a compile takes 15 s warm, minutes cold). On torch 1.13 (no
torch.export) both ops must refuse cleanly with bad_request naming the torch version; that is all this file checks
there.
"""

import contextlib
import os
import tempfile
import textwrap
import time
import unittest
from typing import Any
from unittest import mock

import torch

from ttd_torch import data, export, server, user_model
from ttd_torch.protocol import BadRequest

from .helpers import REPO, SEED_MODEL, TOL

HAS_EXPORT = export.torch_version_tuple() >= export.MIN_TORCH
CACHE_DIR = os.path.join(REPO, "test-output", "inductor-cache")  # kept between runs: the second run compiles warm
NOOP = lambda data: None  # noqa: E731 - progress events are not under test here

# The seed MLP with a batched example (the seed's own example is one unbatched row).
SEED_BATCHED = f"""
with open({SEED_MODEL!r}, encoding="utf-8") as seed:
    exec(compile(seed.read(), {SEED_MODEL!r}, "exec"))

def example_inputs(params):
    return (dataset(params, "validation")[0][:4],)
"""

BRANCH = """
import torch
from torch import nn

class SignGated(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 1)

    def forward(self, x):
        if x.sum() > 0:
            return self.linear(x)
        return self.linear(x) * 0.5

def build_model(params):
    return SignGated()

def dataset(params, split):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(64, 8, generator=gen)
    return x, x.sum(1, keepdim=True)

def example_inputs(params):
    return (dataset(params, "validation")[0][:4],)
"""

VIEW = BRANCH.replace(
    """        if x.sum() > 0:
            return self.linear(x)
        return self.linear(x) * 0.5""",
    """        return self.linear(x.view(4, -1))""",
)


def line_of(source: str, text: str) -> int:
    """The 1-based line of the first line of source that contains text."""
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


class ExportTestCase(unittest.TestCase):
    """A scratch directory, model files written into it, and the export op run on them."""

    tmp: tempfile.TemporaryDirectory

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    @classmethod
    def write(cls, name: str, source: str) -> str:
        """A model file and weights.pt of its freshly built model (seeded), in the scratch directory."""
        path = os.path.join(cls.tmp.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(source))
        torch.manual_seed(0)
        model = data.build(user_model.load(path), {})
        torch.save(model.state_dict(), path + ".weights.pt")
        return path

    @classmethod
    def run_export(cls, path: str, batch_sizes: list[int]) -> dict[str, Any]:
        """The export op on a model file written by write()."""
        out = tempfile.mkdtemp(dir=cls.tmp.name)
        return server.dispatch(
            "export",
            {
                "model_path": path,
                "params": {},
                "weights_path": path + ".weights.pt",
                "batch_sizes": batch_sizes,
                **TOL,
                "out_dir": out,
            },
            NOOP,
        )


class RefusalTest(ExportTestCase):
    """Both ops on a torch without torch.export: bad_request naming the torch version (on torch 2.x, as if 1.13)."""

    def test_export_and_compile_refuse_on_a_torch_without_torch_export(self) -> None:
        path = self.write("seed.py", SEED_BATCHED)
        with contextlib.ExitStack() as stack:
            if HAS_EXPORT:
                stack.enter_context(mock.patch.object(export, "torch_version_tuple", return_value=(1, 13)))
            with self.assertRaises(BadRequest) as caught:
                self.run_export(path, [1, 7])
            self.assertEqual(
                caught.exception.message,
                f"op 'export' needs torch >= 2.1 (torch.export); this environment has torch "
                f"{torch.__version__}; run the torch worker with a torch 2.x environment (TTD_PYTHON)",
            )
            with self.assertRaises(BadRequest) as caught:
                server.dispatch(
                    "compile",
                    {
                        "program_path": path,
                        "references_path": path,
                        **TOL,
                        "cache_dir": self.tmp.name,
                        "out_dir": self.tmp.name,
                    },
                    NOOP,
                )
            self.assertIn(
                f"op 'compile' needs torch >= 2.1 (torch.export); this environment has torch {torch.__version__}",
                caught.exception.message,
            )


# On torch 1.13 the torch 2.x classes below derive from object, so unittest collects only RefusalTest there: the file
# checks the refusal and skips nothing.
Torch2Case: Any = ExportTestCase if HAS_EXPORT else object


class ExportTest(Torch2Case):
    """Export verdicts on the seed and on a model for each way export fails."""

    def test_the_seed_mlp_exports_with_a_dynamic_batch_and_agrees_with_eager(self) -> None:
        result = self.run_export(self.write("seed.py", SEED_BATCHED), [1, 7])
        self.assertTrue(result["passed"], result["message"])
        self.assertIsNone(result["code"])
        self.assertEqual(result["dynamic_dims"], [{"input": 0, "dim": 0, "min": 1, "max": 200}])
        names = [c["name"] for c in result["cases"]]
        self.assertEqual(names[:4], ["validation", "example", "batch_1", "batch_7"])
        self.assertIn("probe_neg", names)
        self.assertTrue(os.path.isfile(result["program_path"]))
        self.assertTrue(os.path.isfile(result["references_path"]))
        self.assertEqual(result["nodes"]["aten.linear.default"], 3)
        self.assertGreater(result["example_shape_checks"]["chunks"], 0)
        self.assertIn("the exported program and eager agree on", result["message"])

    def test_a_branch_on_a_tensor_sum_is_rejected_as_data_dependent_control_flow_naming_its_line(self) -> None:
        path = self.write("branch.py", BRANCH)
        result = self.run_export(path, [1, 7])
        self.assertFalse(result["passed"])
        self.assertEqual(result["code"], "data_dependent_control_flow")
        line = line_of(BRANCH, "if x.sum() > 0:")
        self.assertIn(f"at {path}:{line} (`if x.sum() > 0:`)", result["message"])
        self.assertIn("torch.where(cond, a, b)", result["message"])
        self.assertIn("torch.cond(", result["message"])
        self.assertIsNone(result["program_path"])

    def test_a_hard_coded_view_is_rejected_as_a_dynamic_shape_violation_naming_its_line(self) -> None:
        path = self.write("view.py", VIEW)
        result = self.run_export(path, [1, 7])
        self.assertEqual(result["code"], "dynamic_shape_violation")
        line = line_of(VIEW, "x.view(4, -1)")
        self.assertIn(f"at {path}:{line} (`return self.linear(x.view(4, -1))`)", result["message"])
        self.assertIn("batch sizes 1..64", result["message"])
        self.assertIn("x.shape[0]", result["message"])
        self.assertIn("trace.batch_sizes: []", result["message"])

    def test_the_hard_coded_view_exports_with_no_batch_sizes_at_the_examples_shape(self) -> None:
        result = self.run_export(self.write("view-static.py", VIEW), [])
        self.assertTrue(result["passed"], result["message"])
        self.assertEqual(result["dynamic_dims"], [])

    def test_an_unbatched_example_with_no_batch_sizes_exports_without_dynamic_dims(self) -> None:
        result = self.run_export(SEED_MODEL_COPY(self), [])
        self.assertTrue(result["passed"], result["message"])
        self.assertEqual(result["dynamic_dims"], [])
        self.assertEqual(result["example_shapes"], [[3]])
        self.assertEqual([c["name"] for c in result["cases"]][:3], ["example", "validation_row_0", "validation_row_1"])

    def test_the_seeds_own_unbatched_row_with_batch_sizes_exports_on_validation_rows_with_a_dynamic_batch(self) -> None:
        result = self.run_export(SEED_MODEL_COPY(self), [1, 7])
        self.assertTrue(result["passed"], result["message"])
        self.assertEqual(result["example_shapes"], [[7, 3]])
        self.assertEqual([(d["input"], d["dim"]) for d in result["dynamic_dims"]], [(0, 0)])
        self.assertTrue(
            any("exported on the first 7 validation rows" in w for w in result["warnings"]), result["warnings"]
        )

    def test_an_example_that_is_no_row_of_the_inputs_is_a_dynamic_shape_violation_naming_example_inputs(self) -> None:
        path = self.write(
            "seed-odd-example.py", SEED_BATCHED.replace('dataset(params, "validation")[0][:4]', "torch.ones(5)")
        )
        result = self.run_export(path, [1, 7])
        self.assertEqual(result["code"], "dynamic_shape_violation")
        self.assertIn(
            f"example_inputs() in {path} gives shapes [5] without the batch dimension of the validation "
            "inputs ([200, 3])",
            result["message"],
        )
        self.assertIn("trace.batch_sizes is [1, 7]", result["message"])


def SEED_MODEL_COPY(case: ExportTestCase) -> str:  # noqa: N802 - reads as the constant it stands for
    """The seed model file itself (unbatched example), with weights, in the scratch directory."""
    with open(SEED_MODEL, encoding="utf-8") as f:
        return case.write("seed-unbatched.py", f.read())


class CompileTest(Torch2Case):
    """One AOTInductor compile of the seed's exported program, shared by every test of the class."""

    result: dict[str, Any]
    seconds: float

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        exported = cls.run_export(cls.write("seed.py", SEED_BATCHED), [1, 7])
        assert exported["passed"], exported["message"]
        os.makedirs(CACHE_DIR, exist_ok=True)
        out = tempfile.mkdtemp(dir=cls.tmp.name)
        started = time.perf_counter()
        cls.result = server.dispatch(
            "compile",
            {
                "program_path": exported["program_path"],
                "references_path": exported["references_path"],
                **TOL,
                "cache_dir": CACHE_DIR,
                "out_dir": out,
            },
            NOOP,
        )
        cls.seconds = time.perf_counter() - started
        print(
            f"\ncompile: {cls.seconds:.1f} s, compile_ms {cls.result['compile_ms']:.0f}, cache_hit "
            f"{cls.result['cache_hit']}, counters {cls.result['cache_counters']}, kernels {cls.result['kernels']}"
        )

    def test_the_seed_package_agrees_with_eager_on_every_reference_case(self) -> None:
        self.assertTrue(self.result["passed"], self.result["message"])
        self.assertIsNone(self.result["code"])
        self.assertGreater(len(self.result["cases"]), 4)
        self.assertTrue(all(c["passed"] for c in self.result["cases"]))
        self.assertIn(
            f"the AOTInductor package agrees with eager on {len(self.result['cases'])} cases", self.result["message"]
        )
        self.assertTrue(os.path.isfile(self.result["package_path"]))
        self.assertNotIn("divergence", self.result)  # the diagnosis runs only after the gate failed

    def test_the_kernels_are_named_with_the_ops_they_fused(self) -> None:
        kernels = self.result["kernels"]
        self.assertEqual(self.result["kernel_count"], len(kernels))
        self.assertGreater(len(kernels), 0)
        self.assertTrue(all(k["name"].startswith("cpp_fused_") for k in kernels))
        self.assertIn(["relu"], [k["ops"] for k in kernels])

    def test_the_package_loads_in_a_fresh_loader_and_the_cache_dir_is_restored(self) -> None:
        self.assertNotEqual(os.environ.get("TORCHINDUCTOR_CACHE_DIR"), CACHE_DIR)
        runner = torch._inductor.aoti_load_package(self.result["package_path"])
        self.assertEqual(tuple(runner(torch.randn(7, 3)).shape), (7, 1))
        self.assertGreater(os.listdir(CACHE_DIR).__len__(), 0)


if __name__ == "__main__":
    unittest.main()
