"""trace.batch_sizes [] on models traced on one unbatched row: example-shaped cases only, every gate still fires.

Runs train (2 epochs) → trace → verify with batch_sizes [] through the server's functions in this process,
for a seed-like MLP that serves single rows only and for one variant per trace mistake; the passing model also
goes through optimize, fusion and both parity runners on the references file verify wrote.
"""

import json
import os
import subprocess
import tempfile
import textwrap
import unittest
from typing import Any

import torch

from ttd_torch import safetensors, server, verify
from ttd_torch.protocol import BadRequest

from .helpers import REPO, SEED_MODEL
from .test_gates import NOOP, TOL, TRAIN, optimize_and_fuse
from .test_server import run_parity

LIBTORCH_RUNNER = os.environ.get("TTD_LIBTORCH_RUNNER") or os.path.join(
    REPO, "build", "libtorch", "ttd-libtorch-runner"
)
PROBES = ["probe_neg", "probe_scale10", "probe_scale01", "probe_zeros", "probe_shuffle"]
ROW_CASES = (
    ["example"]
    + [f"validation_row_{i}" for i in range(verify.ROW_CASES)]
    + [f"{p}_row_{i}" for p in PROBES for i in range(verify.PROBE_ROW_CASES)]
)

# A seed-like MLP whose traced graph serves one row [3] only: for a 1-D x it reshapes to (1, 3) and back, and
# the trace records those constant shapes (x.dim() is a Python int, so no warning). Eager serves batches too,
# so it trains as usual. {body} is the tail of forward on h (the hidden layer) and x (one row as (1, 3)).
SOURCE = '''
"""An unbatched seed-like MLP: {outcome}."""
import torch
from torch import nn
import torch.nn.functional as F


class RowNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(3, 8)
        self.l2 = nn.Linear(8, 1)

    def forward(self, x):
        if x.dim() == 1:
            return self.body(x.reshape(1, -1)).reshape(-1)
        return self.body(x)

    def body(self, x):
        h = torch.relu(self.l1(x))
{body}


def build_model(params):
    return RowNet()


def dataset(params, split):
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    x = torch.randn(256 if split == "train" else 100, 3, generator=gen)
    return x, x[:, 0:1] * 0.2 - x[:, 1:2] * 1.3 - x[:, 2:3] * 0.5


def example_inputs(params):
    return (torch.tensor([1.2, 3.0, 0.1]),)
'''

# variant -> (tail of forward, expected code with target_device cpu, with cuda)
VARIANTS: dict[str, Any] = {
    "pass": ("return self.l2(h)", None),
    "if": ("y = self.l2(h)\nif x.sum() > 0:\n    return y\nreturn -y", "control_flow_divergence"),
    "float": ("return self.l2(h) / float(x.abs().max())", "python_value_capture"),
    "dropout": ("return self.l2(F.dropout(h, 0.2, training=True))", "train_mode_ops"),
    "randn": ("y = self.l2(h)\nreturn y + torch.randn_like(y)", "nondeterministic"),
    "device": ("return self.l2(h + torch.zeros(8, device=torch.device('cpu')))", None),
}


def write_model(directory: str, variant: str) -> str:
    """The RowNet file of one variant."""
    body, code = VARIANTS[variant]
    path = os.path.join(directory, f"row-{variant}.py")
    with open(path, "w", encoding="utf-8") as dst:
        dst.write(SOURCE.format(outcome=code or "pass", body=textwrap.indent(body, " " * 8)))
    return path


def pipeline(path: str, out: str, batch_sizes: list[int]) -> dict[str, Any]:
    """train → trace → verify for one model file with the given batch sizes."""
    base = {"model_path": path, "params": {}, "out_dir": out}
    train = server.dispatch("train", {**base, "train": TRAIN}, NOOP)
    traced = server.dispatch("trace", {**base, "weights_path": train["weights_path"]}, NOOP)
    result = server.dispatch(
        "verify",
        {
            **base,
            **TOL,
            "weights_path": train["weights_path"],
            "batch_sizes": batch_sizes,
            "traced_path": traced["traced_path"],
            "captures": traced["captures"],
        },
        NOOP,
    )
    return {"train": train, "trace": traced, "verify": result, "out": out, "path": path}


def reverify(run: dict[str, Any], batch_sizes: list[int], **extra: Any) -> dict[str, Any]:
    """verify an already traced run again with other batch sizes or a target device (in its own out_dir)."""
    out = tempfile.mkdtemp(dir=run["out"])  # the run's own references stay as they are
    return server.dispatch(
        "verify",
        {
            "model_path": run["path"],
            "params": {},
            "out_dir": out,
            **TOL,
            "weights_path": run["train"]["weights_path"],
            "batch_sizes": batch_sizes,
            "traced_path": run["trace"]["traced_path"],
            "captures": run["trace"]["captures"],
            **extra,
        },
        NOOP,
    )


def reference_shapes(path: str) -> dict[str, list[int]]:
    """Every input tensor's shape in a references file."""
    tensors, _ = safetensors.load(path)
    return {name: list(t.shape) for name, t in tensors.items() if "/input/" in name}


class UnbatchedGateTest(unittest.TestCase):
    runs: dict[str, dict[str, Any]] = {}

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        for variant in VARIANTS:
            out = os.path.join(cls.tmp.name, variant)
            os.makedirs(out)
            cls.runs[variant] = pipeline(write_model(cls.tmp.name, variant), out, [])
        out = os.path.join(cls.tmp.name, "seed")
        os.makedirs(out)
        cls.runs["seed"] = pipeline(SEED_MODEL, out, [])

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def test_evaluate_runs_a_graph_traced_on_one_row_row_by_row(self) -> None:
        # The traced RowNet reshapes its input to one row: a whole validation batch would not fit its first layer.
        run = self.runs["pass"]
        result = server.dispatch(
            "evaluate",
            {
                "model_path": run["path"],
                "params": {},
                "loss": "mse",
                "batch_sizes": [],
                "artifacts": [{"name": "candidate", "path": run["trace"]["traced_path"]}],
            },
            NOOP,
        )
        self.assertEqual(result["rows"], 100)
        loss = result["results"][0]["validation_loss"]
        self.assertIsNotNone(loss, result)
        self.assertLess(loss, 10.0)

    def test_every_variant_gets_its_code(self) -> None:
        for variant, (_, code) in VARIANTS.items():
            with self.subTest(variant=variant):
                result = self.runs[variant]["verify"]
                self.assertEqual(result["code"], code, result["message"])
                self.assertEqual(self.runs[variant]["trace"]["example_shapes"], [[3]])
                self.assertGreater(result["example_shape_checks"]["chunks"], 0)

    def test_data_dependent_if_is_control_flow_divergence(self) -> None:
        run = self.runs["if"]
        self.assertEqual([c["kind"] for c in run["trace"]["captures"]], ["bool"])
        message = run["verify"]["message"]
        self.assertIn("Python boolean", message)
        self.assertIn("at the example's shape", message)
        self.assertIn("trace.mode: script", message)

    def test_device_constant_fires_for_a_cuda_target(self) -> None:
        result = reverify(self.runs["device"], [], target_device="cuda")
        self.assertEqual(result["code"], "device_constant", result["message"])
        self.assertIn("target_device is cuda", result["message"])

    def test_cases_are_the_example_and_single_rows(self) -> None:
        result = self.runs["pass"]["verify"]
        self.assertTrue(result["passed"], result["message"])
        self.assertEqual([c["name"] for c in result["cases"]], ROW_CASES)
        shapes = reference_shapes(result["references_path"])
        self.assertEqual(len(shapes), len(ROW_CASES))
        self.assertEqual(set(map(tuple, shapes.values())), {(3,)})

    def test_the_seed_traced_on_one_row_passes(self) -> None:
        result = self.runs["seed"]["verify"]
        self.assertTrue(result["passed"], result["message"])
        self.assertEqual([c["name"] for c in result["cases"]], ROW_CASES)
        self.assertEqual(result["train_mode_ops"], [])

    def test_batch_sizes_ask_for_batches_the_row_graph_cannot_serve(self) -> None:
        result = reverify(self.runs["pass"], [1, 7])
        self.assertEqual(result["code"], "shape_specialization", result["message"])
        self.assertEqual([c["name"] for c in result["cases"]][:4], ["validation", "example", "batch_1", "batch_7"])

    def test_references_serve_optimize_fusion_and_both_parity_runners(self) -> None:
        for name in ("pass", "seed"):
            with self.subTest(model=name):
                run = self.runs[name]
                stages = optimize_and_fuse(run, "none")
                self.assertTrue(stages["optimize"]["passed"], stages["optimize"]["message"])
                self.assertTrue(stages["fusion"]["passed"], stages["fusion"]["message"])
                refs = run["verify"]["references_path"]
                outputs = os.path.join(run["out"], "outputs.safetensors")
                proc = run_parity(stages["optimize"]["optimized_path"], refs, outputs)
                self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
                self.assertEqual(json.loads(proc.stdout)["cases"], len(ROW_CASES))
                self.assert_outputs_match(refs, outputs)

    @unittest.skipUnless(
        os.access(LIBTORCH_RUNNER, os.X_OK), "build/libtorch not built (cmake -S runtimes/libtorch -B build/libtorch)"
    )
    def test_libtorch_runner_reproduces_the_row_references(self) -> None:
        run = self.runs["pass"]
        refs = run["verify"]["references_path"]
        outputs = os.path.join(run["out"], "libtorch-outputs.safetensors")
        proc = subprocess.run(
            [LIBTORCH_RUNNER, "--model", run["trace"]["traced_path"], "--references", refs, "--out", outputs],
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["cases"], len(ROW_CASES))
        self.assert_outputs_match(refs, outputs)

    def assert_outputs_match(self, refs: str, outputs: str) -> None:
        want, _ = safetensors.load(refs)
        got, _ = safetensors.load(outputs)
        for name in [n for n in want if "/output/" in n]:
            self.assertTrue(torch.allclose(got[name], want[name], **TOL), name)


class BatchedExampleTest(unittest.TestCase):
    def test_a_batched_example_with_no_batch_sizes_is_checked_at_its_own_shape(self) -> None:
        # The row loop freezes the example's 4 rows: with [] the graph only has to serve 4 rows, and does.
        model = os.path.join(REPO, "test", "fixtures", "models", "shape_specialization-row-loop.py")
        with tempfile.TemporaryDirectory() as out:
            run = pipeline(model, out, [])
            result = run["verify"]
            self.assertTrue(result["passed"], result["message"])
            names = [c["name"] for c in result["cases"]]
            self.assertEqual(names[:3], ["example", "validation_rows_0_3", "validation_rows_4_7"])
            self.assertIn("probe_neg_rows_0_3", names)
            self.assertNotIn("validation", names)
            shapes = reference_shapes(result["references_path"])
            self.assertEqual({s[0] for s in shapes.values()}, {4})


class CaseRulesTest(unittest.TestCase):
    validation = (torch.randn(10, 3), torch.arange(10))
    row = (torch.randn(3), torch.tensor(4))

    def test_unbatched_cases_are_cut_to_rows(self) -> None:
        cases, probe_list = verify.build_cases(self.validation, self.row, [])
        self.assertEqual([n for n, _ in cases], ["example"] + [f"validation_row_{i}" for i in range(8)])
        self.assertTrue(torch.equal(cases[3][1][0], self.validation[0][2]))
        self.assertEqual(cases[3][1][1].shape, torch.Size([]))
        self.assertEqual(len(probe_list), len(PROBES) * verify.PROBE_ROW_CASES)
        self.assertTrue(torch.equal(probe_list[1][1][0], -self.validation[0][1]))

    def test_batch_sizes_keep_the_batched_cases(self) -> None:
        cases, probe_list = verify.build_cases(self.validation, self.row, [2])
        self.assertEqual([n for n, _ in cases], ["validation", "example", "batch_2"])
        self.assertEqual([n for n, _ in probe_list], PROBES)

    def test_an_example_that_fits_no_row_is_the_only_case(self) -> None:
        cases, probe_list = verify.build_cases(self.validation, (torch.randn(5), torch.tensor(1)), [])
        self.assertEqual(([n for n, _ in cases], probe_list), (["example"], []))

    def test_batch_sizes_are_unique_positive_integers_or_none(self) -> None:
        self.assertEqual(verify.batch_sizes([]), [])
        self.assertEqual(verify.batch_sizes([1, 7.0]), [1, 7])
        with tempfile.TemporaryDirectory() as out:
            args = {
                "model_path": SEED_MODEL,
                "params": {},
                "weights_path": SEED_MODEL,
                "traced_path": SEED_MODEL,
                "out_dir": out,
                **TOL,
            }
            # positive integers: the contract; once each: verify itself, before it loads anything
            for bad, message in (
                ([1, -3], "args.batch_sizes[1] = -3; expected an integer > 0"),
                ([2, 2], "args.batch_sizes[1] = 2; expected a value not already in"),
                ([True], "args.batch_sizes[0] = True; expected an integer > 0"),
            ):
                with self.subTest(batch_sizes=bad), self.assertRaises(BadRequest) as caught:
                    server.dispatch("verify", {**args, "batch_sizes": bad}, NOOP)
                self.assertIn(message, caught.exception.message)


if __name__ == "__main__":
    unittest.main()
