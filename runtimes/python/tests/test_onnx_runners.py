"""The ONNX parity runners, as the worker runs them: ttd_onnx_runner.py under `.onnxruntime/bin/python -I` (onnxruntime
and numpy, no torch) with ttd_parity_runner.py copied beside it, and runtimes/onnx-node/runner.mjs under node.

The model is test/fixtures/onnx/two-in-two-out.onnx (float features and int64 ids in, a float and an int64 output out,
the batch dimension dynamic), made once by torch.onnx on torch 2.13 (`make_fixture` below; `python -c "from
tests.test_onnx_runners import make_fixture; make_fixture()"` in runtimes/python remakes it), with its inputs and eager
outputs beside it: the runners need no torch, so the tests run the same on both torch environments. Run `make setup`
first: it makes .onnxruntime and runtimes/onnx-node/node_modules."""

import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import tempfile
import unittest
import warnings

import torch

import ttd_parity_runner

from .helpers import PYTHON_DIR, REPO

ORT_PYTHON = os.path.join(REPO, ".onnxruntime", "bin", "python")
NODE_RUNNER = os.path.join(REPO, "runtimes", "onnx-node", "runner.mjs")
ONNX_RUNNER = os.path.join(PYTHON_DIR, "ttd_onnx_runner.py")
NODE = shutil.which("node") or "/usr/bin/node"
FIXTURE = os.path.join(REPO, "test", "fixtures", "onnx", "two-in-two-out")


class TwoInTwoOut(torch.nn.Module):
    """Float features and int64 ids in; a float and an int64 output out."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.linear(x + self.embed(ids).sum(1))
        return torch.relu(h), h.argmax(1)


def make_fixture() -> None:
    """Writes the fixture (torch 2.x): the model as ONNX, and cases a (7 rows) and b (1 row) with eager's outputs."""
    torch.manual_seed(0)
    model = TwoInTwoOut().eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    example = (torch.randn(5, 4), torch.randint(0, 10, (5, 2)))
    program = torch.export.export(model, example, dynamic_shapes=({0: batch}, {0: batch}), strict=False)
    logging.disable(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_program = torch.onnx.export(program, dynamo=True)
        assert onnx_program is not None
        onnx_program.save(FIXTURE + ".onnx", external_data=False)
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(1))
    ids = torch.randint(0, 10, (7, 2), generator=torch.Generator().manual_seed(2))
    tensors = {}
    with torch.no_grad():
        for case, rows in (("a", 7), ("b", 1)):
            inputs = (x[:rows], ids[:rows])
            for j, t in enumerate(inputs):
                tensors[f"{case}/input/{j}"] = t
            for j, t in enumerate(model(*inputs)):
                tensors[f"{case}/output/{j}"] = t
    ttd_parity_runner.write_safetensors(
        FIXTURE + ".safetensors", tensors, {"format": "ttd-references/1", "cases": "a,b"}
    )


class OnnxRunnersTest(unittest.TestCase):
    """Both runners on the same model and inputs, with graph optimisations off and all on."""

    tmp: tempfile.TemporaryDirectory

    @classmethod
    def setUpClass(cls) -> None:
        for path, what in (
            (ORT_PYTHON, "ONNX Runtime's Python"),
            (os.path.join(os.path.dirname(NODE_RUNNER), "node_modules"), "onnxruntime-node"),
        ):
            if not os.path.exists(path):
                raise RuntimeError(f"{what} is missing at {path}; make setup makes it")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.model = FIXTURE + ".onnx"
        cls.expected, metadata = ttd_parity_runner.read_safetensors(FIXTURE + ".safetensors")
        # The runners get the inputs only, as the worker gives them.
        cls.refs = os.path.join(cls.tmp.name, "references.safetensors")
        inputs = {k: v for k, v in cls.expected.items() if "/input/" in k}
        ttd_parity_runner.write_safetensors(cls.refs, inputs, metadata)
        cls.x, cls.ids = cls.expected["a/input/0"], cls.expected["a/input/1"]

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def run_runner(self, runtime: str, *args: str) -> tuple[int, dict, str]:
        """One runner in an empty directory with an empty environment, as the worker starts it; (exit, JSON, dir)."""
        work = tempfile.mkdtemp(dir=self.tmp.name)
        if runtime == "python":
            shutil.copyfile(ONNX_RUNNER, os.path.join(work, "runner.py"))
            shutil.copyfile(
                os.path.join(PYTHON_DIR, "ttd_parity_runner.py"), os.path.join(work, "ttd_parity_runner.py")
            )
            command = [ORT_PYTHON, "-I", "runner.py"]
        else:
            command = [NODE, NODE_RUNNER]
        proc = subprocess.run([*command, *args], cwd=work, env={}, capture_output=True, text=True, timeout=120)
        return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1]), work

    def outputs(self, work: str) -> dict[str, torch.Tensor]:
        return ttd_parity_runner.read_safetensors(os.path.join(work, "out.safetensors"))[0]

    def test_both_runners_agree_with_eager_at_both_levels(self) -> None:
        seen = {}
        for runtime in ("python", "node"):
            for level in ("disabled", "all"):
                args = ["--model", self.model, "--references", self.refs, "--out", "out.safetensors", "--threads", "1"]
                code, summary, work = self.run_runner(runtime, *args, "--graph-optimization", level)
                self.assertEqual(code, 0, summary)
                self.assertEqual(summary["graph_optimization"], level)
                self.assertEqual(summary["execution_provider"], "CPUExecutionProvider")
                self.assertEqual(summary["cases"], 2)
                self.assertEqual(summary["runtime"], "onnxruntime" if runtime == "python" else "onnxruntime-node")
                out = self.outputs(work)
                self.assertEqual(sorted(out), ["a/output/0", "a/output/1", "b/output/0", "b/output/1"])
                for name, got in out.items():
                    want = self.expected[name]
                    self.assertEqual((got.dtype, got.shape), (want.dtype, want.shape), name)
                    self.assertTrue(torch.allclose(got, want, atol=1e-5, rtol=1e-4), name)
                seen[(runtime, level)] = out["a/output/0"]
        self.assertTrue(torch.equal(seen[("python", "all")], seen[("node", "all")]))

    def test_the_onnx_runtime_environment_has_no_torch(self) -> None:
        proc = subprocess.run([ORT_PYTHON, "-I", "-c", "import torch"], capture_output=True, text=True, env={})
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("No module named 'torch'", proc.stderr)

    def test_each_runner_names_the_stage_that_failed(self) -> None:
        truncated = os.path.join(self.tmp.name, "truncated.safetensors")
        with open(self.refs, "rb") as src, open(truncated, "wb") as dst:
            dst.write(src.read()[:-3])
        for runtime in ("python", "node"):
            code, summary, _ = self.run_runner(
                runtime, "--model", "missing.onnx", "--references", self.refs, "--out", "o"
            )
            self.assertEqual((code, summary["error"]["stage"]), (1, "load"), summary)
            code, summary, _ = self.run_runner(
                runtime, "--model", self.model, "--references", self.refs, "--out", "o", "--graph-optimization", "bogus"
            )
            self.assertEqual((code, summary["error"]["stage"]), (2, "args"), summary)
            self.assertIn("bogus", summary["error"]["message"])
            code, summary, _ = self.run_runner(runtime, "--model", self.model, "--references", truncated, "--out", "o")
            self.assertEqual((code, summary["error"]["stage"]), (1, "read"), summary)
            one = os.path.join(self.tmp.name, "one-input.safetensors")
            ttd_parity_runner.write_safetensors(one, {"a/input/0": self.x}, {"cases": "a"})
            code, summary, _ = self.run_runner(runtime, "--model", self.model, "--references", one, "--out", "o")
            self.assertEqual((code, summary["error"]["stage"]), (1, "run"), summary)
            self.assertIn("has 1 inputs; the ONNX model takes 2", summary["error"]["message"])


if __name__ == "__main__":
    unittest.main()
