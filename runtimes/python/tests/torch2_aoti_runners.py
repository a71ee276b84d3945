"""AOTInductor packages (.pt2) in both parity runners; torch 2.x only.

Not named test_*.py on purpose: the torch-side suite runs on Debian's torch 1.13, which has no
AOTInductor. runtimes/libtorch/test/smoke.sh (run by `make test`) runs this module with
.torch/torch-2.13/bin/python whenever that environment exists:
    cd runtimes/python && ../../.torch/torch-2.13/bin/python -m unittest -v tests.torch2_aoti_runners
Runners: TTD_RUNNER_213 (default build/libtorch-2.13/ttd-libtorch-runner) and TTD_RUNNER_113
(default build/libtorch/ttd-libtorch-runner, expected to refuse --format aoti cleanly).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from tests.helpers import REPO, RUNNER, jit_trace

CACHE_DIR = os.path.join(REPO, "test-output", "inductor-cache")
# Set before torch._inductor is imported: repeated runs reuse the compiled kernels.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", CACHE_DIR)

import torch  # noqa: E402

from ttd_torch import safetensors  # noqa: E402

RUNNER_213 = os.environ.get("TTD_RUNNER_213", os.path.join(REPO, "build", "libtorch-2.13", "ttd-libtorch-runner"))
RUNNER_113 = os.environ.get("TTD_RUNNER_113", os.path.join(REPO, "build", "libtorch", "ttd-libtorch-runner"))
BARE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
ATOL = 1e-5


class Net(torch.nn.Module):
    """A tiny MLP with two inputs and nested outputs (flattening order is part of the protocol)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        h = self.out(torch.relu(self.hidden(x)))
        return torch.relu(h) + y, (torch.sigmoid(h) * 2.0, h.sum(dim=1))


def cases() -> list[tuple[str, list[torch.Tensor]]]:
    g = torch.Generator().manual_seed(1)
    return [
        ("validation", [torch.randn(5, 4, generator=g), torch.randn(5, 3, generator=g)]),
        ("batch_1", [torch.randn(1, 4, generator=g), torch.randn(1, 3, generator=g)]),
    ]


def flat(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for item in value for t in flat(item)]


def run_runner(work: str, runtime: str, runner: str, model: str, *flags: str) -> tuple[int, dict, str, str, float]:
    """Run a runner as check-parity does: an empty directory, a bare environment, relative paths.
    Returns (exit code, parsed stdout line, stderr, outputs path, seconds)."""
    cwd = tempfile.mkdtemp(dir=work, prefix=f"{runtime}-")
    name = "model" + os.path.splitext(model)[1]
    shutil.copy(model, os.path.join(cwd, name))
    shutil.copy(os.path.join(work, "references.safetensors"), os.path.join(cwd, "references.safetensors"))
    args = ["--model", name, "--references", "references.safetensors", "--out", "outputs.safetensors", *flags]
    if runtime == "python":
        shutil.copy(RUNNER, os.path.join(cwd, "runner.py"))
        command = [sys.executable, "-I", "runner.py", *args]
    else:
        command = [runner, *args]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env={**BARE_ENV, "HOME": cwd}, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines else {}
    return proc.returncode, summary, proc.stderr, os.path.join(cwd, "outputs.safetensors"), seconds


class AotiRunnersTest(unittest.TestCase):
    work: str
    expected: dict[str, torch.Tensor]

    @classmethod
    def setUpClass(cls) -> None:
        cls.work = tempfile.mkdtemp(prefix="ttd-aoti-")
        torch.manual_seed(0)
        net = Net().eval()
        all_cases = cases()
        example = tuple(all_cases[0][1])
        batch = torch.export.Dim("batch", min=1, max=1024)
        started = time.perf_counter()
        program = torch.export.export(net, example, dynamic_shapes={"x": {0: batch}, "y": {0: batch}})
        torch._inductor.aoti_compile_and_package(program, package_path=os.path.join(cls.work, "model.pt2"))
        compile_s = time.perf_counter() - started
        traced = jit_trace(net, example, check_trace=False)
        traced.save(os.path.join(cls.work, "model.pt"))
        tensors: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, inputs in all_cases:
                for i, t in enumerate(inputs):
                    tensors[f"{name}/input/{i}"] = t
                for j, t in enumerate(flat(net(*inputs))):
                    tensors[f"{name}/output/{j}"] = t
        safetensors.save(
            os.path.join(cls.work, "references.safetensors"),
            tensors,
            {"format": "ttd-references/1", "cases": ",".join(n for n, _ in all_cases)},
        )
        cls.expected = {k: v for k, v in tensors.items() if "/output/" in k}
        print(
            f"\naoti: export+aoti_compile_and_package {compile_s:.1f} s "
            f"(TORCHINDUCTOR_CACHE_DIR={os.environ['TORCHINDUCTOR_CACHE_DIR']})",
            file=sys.stderr,
        )

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.work, ignore_errors=True)

    def run_ok(self, runtime: str, runner: str, model: str, *flags: str) -> tuple[dict[str, torch.Tensor], dict, float]:
        code, summary, stderr, out, seconds = run_runner(self.work, runtime, runner, model, *flags)
        self.assertEqual(code, 0, f"{runtime} runner failed: {summary} {stderr[-2000:]}")
        got, meta = safetensors.load(out)
        self.assertEqual(meta.get("format"), "ttd-outputs/1")
        return got, summary, seconds

    def assert_matches_eager(self, got: dict[str, torch.Tensor]) -> None:
        self.assertEqual(sorted(got), sorted(self.expected))
        for name, want in self.expected.items():
            self.assertEqual((got[name].dtype, tuple(got[name].shape)), (want.dtype, tuple(want.shape)), name)
            err = (got[name] - want).abs().max().item()
            self.assertLessEqual(err, ATOL, f"{name}: max abs error {err}")

    def test_both_runners_run_an_aoti_package_and_agree_with_eager_and_each_other(self) -> None:
        pt2 = os.path.join(self.work, "model.pt2")
        py_out, py_summary, py_s = self.run_ok("python", "", pt2, "--format", "aoti")
        cc_out, cc_summary, cc_s = self.run_ok("libtorch", RUNNER_213, pt2, "--format", "aoti")
        for summary, runtime in ((py_summary, "python"), (cc_summary, "libtorch")):
            self.assertEqual((summary["runtime"], summary["format"], summary["cases"]), (runtime, "aoti", 2), summary)
            self.assertTrue(summary["torch_version"].startswith("2."), summary)
        self.assert_matches_eager(py_out)
        self.assert_matches_eager(cc_out)
        for name in py_out:
            err = (py_out[name] - cc_out[name]).abs().max().item()
            self.assertLessEqual(err, ATOL, f"{name}: python and libtorch runners differ by {err}")
        # The same model as TorchScript, for the timing comparison (load+run, whole process).
        pt = os.path.join(self.work, "model.pt")
        ts_py_out, ts_py_summary, ts_py_s = self.run_ok("python", "", pt)
        ts_cc_out, ts_cc_summary, ts_cc_s = self.run_ok("libtorch", RUNNER_213, pt)
        self.assertEqual((ts_py_summary["format"], ts_cc_summary["format"]), ("torchscript", "torchscript"))
        self.assert_matches_eager(ts_py_out)
        self.assert_matches_eager(ts_cc_out)
        print(
            f"\naoti: runner process seconds (load+2 cases): python aoti {py_s:.2f}, torchscript {ts_py_s:.2f}; "
            f"libtorch-2.13 aoti {cc_s:.2f}, torchscript {ts_cc_s:.2f}",
            file=sys.stderr,
        )

    def test_fuser_with_aoti_is_an_args_error_in_both_runners(self) -> None:
        pt2 = os.path.join(self.work, "model.pt2")
        for runtime, runner in (("python", ""), ("libtorch", RUNNER_213)):
            code, summary, stderr, _, _ = run_runner(self.work, runtime, runner, pt2, "--format", "aoti", "--fuser")
            self.assertEqual(code, 2, f"{runtime}: {summary} {stderr[-500:]}")
            self.assertEqual(summary["error"]["stage"], "args", summary)
            self.assertIn("fuser flags apply to TorchScript only", summary["error"]["message"])

    def test_a_torchscript_archive_given_as_aoti_is_a_load_error(self) -> None:
        pt = os.path.join(self.work, "model.pt")
        for runtime, runner in (("python", ""), ("libtorch", RUNNER_213)):
            code, summary, stderr, _, _ = run_runner(self.work, runtime, runner, pt, "--format", "aoti")
            self.assertEqual(code, 1, f"{runtime}: {summary} {stderr[-500:]}")
            self.assertEqual(summary["error"]["stage"], "load", summary)

    def test_a_case_the_package_cannot_take_is_a_run_error_without_backtrace_in_both_runners(self) -> None:
        work = tempfile.mkdtemp(dir=self.work, prefix="wrong-")
        shutil.copy(os.path.join(self.work, "model.pt2"), os.path.join(work, "model.pt2"))
        safetensors.save(
            os.path.join(work, "references.safetensors"),
            {"c/input/0": torch.zeros(2, 7), "c/input/1": torch.zeros(2, 3)},
            {"format": "ttd-references/1", "cases": "c"},
        )
        for runtime, runner in (("python", ""), ("libtorch", RUNNER_213)):
            code, summary, stderr, _, _ = run_runner(
                work, runtime, runner, os.path.join(work, "model.pt2"), "--format", "aoti"
            )
            self.assertEqual(code, 1, f"{runtime}: {summary} {stderr[-500:]}")
            self.assertEqual(summary["error"]["stage"], "run", summary)
            self.assertIn("mat1 and mat2 shapes cannot be multiplied", summary["error"]["message"])
            self.assertNotIn("frame #", summary["error"]["message"])

    def test_the_libtorch_113_runner_refuses_aoti_with_a_load_error(self) -> None:
        pt2 = os.path.join(self.work, "model.pt2")
        code, summary, stderr, _, _ = run_runner(self.work, "libtorch", RUNNER_113, pt2, "--format", "aoti")
        self.assertEqual(code, 1, f"{summary} {stderr[-500:]}")
        self.assertEqual(summary["error"]["stage"], "load", summary)
        self.assertIn("was built against libtorch 1.13", summary["error"]["message"])
        self.assertIn("without AOTInductor", summary["error"]["message"])


if __name__ == "__main__":
    unittest.main()
