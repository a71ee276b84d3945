"""verify_artifact: foreign TorchScript archives (R torch, libtorch, any producer) against their recorded references.

The archives come from separate processes, as they would from a user: test/fixtures/foreign/make_python_artifact.py
(torch only, standing in for R's jit_trace and the R safetensors package) and, when built,
build/libtorch/ttd-make-foreign-artifact (libtorch alone).
"""

import os
import subprocess
import tempfile
import unittest
from typing import Any

import torch

from ttd_torch import references, safetensors, server

from .helpers import PYTHON, REPO, TOL, jit_trace, responses, serve
from .test_server import run_parity

MAKER = os.path.join(REPO, "test", "fixtures", "foreign", "make_python_artifact.py")
CPP_MAKER = os.path.join(REPO, "build", "libtorch", "ttd-make-foreign-artifact")
LIBTORCH_RUNNER = os.path.join(REPO, "build", "libtorch", "ttd-libtorch-runner")
NOOP = lambda data: None  # noqa: E731 - verify_artifact emits no events


def make(out_dir: str, *flags: str) -> None:
    """Run the Python fixture maker as a separate process (it imports torch only, not ttd)."""
    proc = subprocess.run([PYTHON, "-I", MAKER, out_dir, *flags], capture_output=True, text=True, timeout=120, cwd="/")
    if proc.returncode != 0:
        raise AssertionError(f"{MAKER} exited {proc.returncode}: {proc.stderr}")


class ForeignArtifactTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.good = os.path.join(cls.tmp.name, "good")
        cls.train = os.path.join(cls.tmp.name, "train")
        make(cls.good)
        make(cls.train, "--train-mode")
        cls.refs, _ = safetensors.load(os.path.join(cls.good, "refs.safetensors"))

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def out_dir(self) -> str:
        """A fresh out_dir for one call."""
        return tempfile.mkdtemp(dir=self.tmp.name)

    def write_refs(self, tensors: dict[str, torch.Tensor], metadata: Any = None) -> str:
        """A references file with the given names."""
        path = os.path.join(self.out_dir(), "refs.safetensors")
        safetensors.save(path, tensors, metadata)
        return path

    def verify(self, refs: str, artifact: str = "", **extra: Any) -> dict[str, Any]:
        """verify_artifact through the server's handler."""
        args = {
            "artifact_path": artifact or os.path.join(self.good, "model.pt"),
            "references_path": refs,
            "out_dir": self.out_dir(),
            **TOL,
            **extra,
        }
        return server.dispatch("verify_artifact", args, NOOP)

    def test_simple_names_pass_and_write_canonical_references(self) -> None:
        result = self.verify(os.path.join(self.good, "refs.safetensors"))
        self.assertTrue(result["passed"], result)
        self.assertIsNone(result["code"])
        self.assertEqual([c["name"] for c in result["cases"]], ["default"])
        self.assertEqual(result["case_count"], 1)
        self.assertEqual(result["train_mode_ops"], [])
        self.assertEqual(result["nodes"]["aten::linear"], 2)
        self.assertEqual(result["node_total"], sum(result["nodes"].values()))
        tensors, metadata = safetensors.load(result["references_path"])
        self.assertEqual(metadata, {"format": "ttd-references/1", "cases": "default"})
        self.assertEqual(sorted(tensors), ["default/input/0", "default/output/0"])
        self.assertTrue(torch.equal(tensors["default/input/0"], self.refs["input"]))
        # The Python parity runner reads the canonical references unchanged.
        out = os.path.join(self.out_dir(), "outputs.safetensors")
        proc = run_parity(os.path.join(self.good, "model.pt"), result["references_path"], out)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        outputs, _ = safetensors.load(out)
        self.assertTrue(torch.allclose(outputs["default/output/0"], self.refs["output"], **TOL))

    def test_indexed_simple_names_pass(self) -> None:
        refs = self.write_refs({"input.0": self.refs["input"], "output.0": self.refs["output"]})
        result = self.verify(refs)
        self.assertTrue(result["passed"], result)
        self.assertEqual([c["name"] for c in result["cases"]], ["default"])

    def test_case_names_pass_with_and_without_metadata(self) -> None:
        x, y = self.refs["input"], self.refs["output"]
        tensors = {"rows/input/0": x[:4], "rows/output/0": y[:4], "all/input/0": x, "all/output/0": y}
        result = self.verify(self.write_refs(tensors))
        self.assertTrue(result["passed"], result)
        self.assertEqual([c["name"] for c in result["cases"]], ["rows", "all"])  # first appearance
        result = self.verify(self.write_refs(tensors, {"cases": "all,rows"}))
        self.assertTrue(result["passed"], result)
        self.assertEqual([c["name"] for c in result["cases"]], ["all", "rows"])
        _, metadata = safetensors.load(result["references_path"])
        self.assertEqual(metadata["cases"], "all,rows")

    def test_train_mode_archive(self) -> None:
        result = self.verify(os.path.join(self.train, "refs.safetensors"), os.path.join(self.train, "model.pt"))
        self.assertFalse(result["passed"])
        self.assertEqual(result["code"], "train_mode_ops", result["message"])
        self.assertEqual(result["train_mode_ops"], ["aten::dropout"])
        self.assertIn("model$eval() before jit_trace", result["message"])
        self.assertIn(".eval()", result["message"])

    def test_references_from_another_model(self) -> None:
        other = torch.nn.Linear(3, 1)
        with torch.no_grad():
            y = other(self.refs["input"])
        result = self.verify(self.write_refs({"input": self.refs["input"], "output": y}))
        self.assertEqual(result["code"], "reference_mismatch", result["message"])
        case = result["cases"][0]
        self.assertFalse(case["passed"])
        self.assertGreater(case["max_abs_error"], 1e-3)
        self.assertIn(f"max abs error {case['max_abs_error']:g}", result["message"])
        self.assertIn("allowed atol 1e-05", result["message"])
        self.assertIn("case default", result["message"])
        self.assertIn("train mode", result["message"])

    def test_references_in_another_dtype(self) -> None:
        refs = self.write_refs({"input": self.refs["input"], "output": self.refs["output"].double()})
        result = self.verify(refs)
        self.assertEqual(result["code"], "reference_mismatch")
        self.assertIn("expected torch.float64", result["message"])
        self.assertIsNone(result["cases"][0]["max_abs_error"])

    def test_malformed_names(self) -> None:
        x, y = self.refs["input"], self.refs["output"]
        bad = {
            "x": ({"x": x, "y": y}, "'x', 'y'"),
            "R counts from 1": ({"input.1": x, "output.1": y}, "indices [1]"),
            "gap": ({"c/input/0": x, "c/input/2": x, "c/output/0": y}, "indices [0, 2]"),
            "no output": ({"c/input/0": x}, "no output tensor"),
            "mixed forms": ({"input": x, "c/output/0": y}, "mix"),
            "both input and input.0": ({"input": x, "input.0": x, "output": y}, "both give input 0"),
        }
        for label, (tensors, words) in bad.items():
            with self.subTest(label):
                path = self.write_refs(tensors)
                result = self.verify(path)
                self.assertFalse(result["passed"])
                self.assertEqual(result["code"], "references_invalid")
                self.assertIn(path, result["message"])
                self.assertIn(words, result["message"])
                self.assertIsNone(result["references_path"])
        result = self.verify(self.write_refs({"a/input/0": x, "a/output/0": y}, {"cases": "a,b"}))
        self.assertEqual(result["code"], "references_invalid")
        self.assertIn("__metadata__.cases = 'a,b'", result["message"])

    def test_not_a_safetensors_file(self) -> None:
        result = self.verify(os.path.join(self.good, "model.pt"))
        self.assertEqual(result["code"], "references_invalid")
        self.assertIn("not a readable safetensors file", result["message"])

    def test_not_an_archive(self) -> None:
        refs = os.path.join(self.good, "refs.safetensors")
        result = self.verify(refs, artifact=refs)
        self.assertFalse(result["passed"])
        self.assertEqual(result["code"], "artifact_invalid")
        self.assertIn(f"{refs} is not a loadable TorchScript archive", result["message"])
        self.assertEqual(result["cases"], [])

    def test_device_constant_against_cuda_target(self) -> None:
        def zeros_cpu(x: torch.Tensor) -> torch.Tensor:
            return x + torch.zeros(3, device="cpu")

        traced = jit_trace(zeros_cpu, (torch.randn(2, 3),), check_trace=False)
        path = os.path.join(self.out_dir(), "model.pt")
        traced.save(path)
        x = torch.randn(4, 3)
        refs = self.write_refs({"input": x, "output": x.clone()})
        self.assertEqual(self.verify(refs, artifact=path, target_device="cuda")["code"], "device_constant")
        passed = self.verify(refs, artifact=path)
        self.assertTrue(passed["passed"], passed)
        self.assertEqual(passed["devices"], ["cpu"])
        self.assertEqual(len(passed["warnings"]), 1)

    def test_nondeterministic_archive(self) -> None:
        def noisy(x: torch.Tensor) -> torch.Tensor:
            return x + torch.randn_like(x)

        traced = jit_trace(noisy, (torch.randn(2, 3),), check_trace=False)
        path = os.path.join(self.out_dir(), "model.pt")
        traced.save(path)
        x = torch.randn(4, 3)
        result = self.verify(self.write_refs({"input": x, "output": x.clone()}), artifact=path)
        self.assertEqual(result["code"], "nondeterministic", result["message"])

    def test_server_op(self) -> None:
        out = self.out_dir()
        args = {
            "artifact_path": os.path.join(self.good, "model.pt"),
            "references_path": os.path.join(self.good, "refs.safetensors"),
            "out_dir": out,
            **TOL,
        }
        messages, stderr, rc = serve(
            [
                {"id": "a", "op": "verify_artifact", "args": args},
                {"id": "b", "op": "verify_artifact", "args": {**args, "atol": -1}},
            ]
        )
        self.assertEqual(rc, 0, stderr)
        by_id = responses(messages)
        self.assertTrue(by_id["a"]["ok"], by_id["a"])
        self.assertTrue(by_id["a"]["result"]["passed"])
        self.assertEqual(by_id["a"]["result"]["references_path"], os.path.join(out, "references.safetensors"))
        self.assertEqual(by_id["b"]["error"]["code"], "bad_request")


class ReferencesFormsTest(unittest.TestCase):
    def test_classify(self) -> None:
        self.assertEqual(references.classify("input"), ("simple", "default", "input", 0))
        self.assertEqual(references.classify("output.3"), ("simple", "default", "output", 3))
        self.assertEqual(references.classify("val_1/input/12"), ("case", "val_1", "input", 12))
        for name in ("Input", "input.01", "a/input/01", "A/input/0", "a/inputs/0", "input/0", "output.x"):
            self.assertIsNone(references.classify(name), name)


@unittest.skipUnless(
    os.access(CPP_MAKER, os.X_OK) and os.access(LIBTORCH_RUNNER, os.X_OK),
    "build/libtorch not built (cmake -S runtimes/libtorch -B build/libtorch)",
)
class LibtorchArtifactTest(unittest.TestCase):
    def test_cpp_artifact_verifies_and_the_runner_reproduces_it(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            made = subprocess.run([CPP_MAKER, tmp], capture_output=True, text=True, timeout=120)
            self.assertEqual(made.returncode, 0, made.stderr)
            out = os.path.join(tmp, "out")
            os.mkdir(out)
            result = server.dispatch(
                "verify_artifact",
                {
                    "artifact_path": os.path.join(tmp, "model.pt"),
                    "references_path": os.path.join(tmp, "refs.safetensors"),
                    "out_dir": out,
                    **TOL,
                },
                NOOP,
            )
            self.assertTrue(result["passed"], result)
            self.assertEqual([c["name"] for c in result["cases"]], ["batch", "one_row", "unbatched"])
            outputs = os.path.join(tmp, "outputs.safetensors")
            run = subprocess.run(
                [
                    LIBTORCH_RUNNER,
                    "--model",
                    os.path.join(tmp, "model.pt"),
                    "--references",
                    result["references_path"],
                    "--out",
                    outputs,
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            got, _ = safetensors.load(outputs)
            want, _ = safetensors.load(result["references_path"])
            for case in ("batch", "one_row", "unbatched"):
                name = f"{case}/output/0"
                self.assertTrue(torch.allclose(got[name], want[name], **TOL), name)


if __name__ == "__main__":
    unittest.main()
