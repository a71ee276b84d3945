"""The trace gate on fixture models: each realistic mistake gets its code, healthy models pass every gate.

Runs train (2 epochs) → trace → verify (→ optimize → fusion → parity for healthy models) through the
server's functions in this process, once per fixture, and checks the codes and messages.
"""

import json
import os
import tempfile
import textwrap
import unittest
from typing import Any

import torch

from ttd_torch import captures, fusion, gate, server, trace, user_model
from ttd_torch.protocol import ProtocolError

from .helpers import FIXTURES, SEED_MODEL, TOL
from .test_server import run_parity

TRAIN = {"epochs": 2, "batch_size": 32, "optimizer": "adam", "lr": 0.001, "loss": "mse", "seed": 0}

# fixture file -> expected verify code (None: passes)
EXPECTED: dict[str, Any] = {
    "control_flow_divergence-if-sum.py": "control_flow_divergence",
    "control_flow_divergence-submodule-mean.py": "control_flow_divergence",
    "control_flow_divergence-while-norm.py": "control_flow_divergence",
    "python_value_capture-float-scale.py": "python_value_capture",
    "python_value_capture-item-offset.py": "python_value_capture",
    "python_value_capture-harmless-monitor.py": None,
    "python_value_capture-outlier-guard.py": "python_value_capture",
    "shape_specialization-row-loop.py": "shape_specialization",
    "shape_specialization-len-mean.py": "shape_specialization",
    "shape_specialization-int-size-view.py": "shape_specialization",
    "train_mode_ops-forced-dropout.py": "train_mode_ops",
    "train_mode_ops-functional-batchnorm.py": "train_mode_ops",
    "train_mode_ops-batchnorm-one-row.py": "train_mode_ops",
    "nondeterministic-randn-noise.py": "nondeterministic",
    "nondeterministic-bernoulli-mask.py": "nondeterministic",
    "nondeterministic-rand-jitter.py": "nondeterministic",
    "device_constant-zeros-cpu.py": None,  # target cpu: a warning; target cuda: device_constant
    "device_constant-to-cpu.py": None,
    "fusion-seed-f.py": None,
    "fusion-none.py": None,
    "healthy-convnet.py": None,
    "healthy-gru.py": None,
    "healthy-transformer.py": None,
}
HEALTHY = ("healthy-convnet.py", "healthy-gru.py", "healthy-transformer.py", "fusion-seed-f.py", SEED_MODEL)
NOOP = lambda data: None  # noqa: E731 - progress events are not under test here


def model_path(name: str) -> str:
    """A fixture's absolute path (the seed model is given absolute already)."""
    return name if os.path.isabs(name) else os.path.join(FIXTURES, name)


def run_pipeline(name: str, out: str, mode: str = "trace") -> dict[str, Any]:
    """train → trace → verify for one model file; returns the stage results."""
    path = model_path(name)
    base = {"model_path": path, "params": {}, "out_dir": out}
    train = server.dispatch("train", {**base, "train": TRAIN}, NOOP)
    traced = server.dispatch("trace", {**base, "weights_path": train["weights_path"], "mode": mode}, NOOP)
    verify = server.dispatch(
        "verify",
        {
            **base,
            **TOL,
            "weights_path": train["weights_path"],
            "batch_sizes": [1, 7],
            "traced_path": traced["traced_path"],
            "captures": traced["captures"],
        },
        NOOP,
    )
    return {"train": train, "trace": traced, "verify": verify, "out": out, "path": path}


def verify_again(run: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Verify an already traced model again with other arguments."""
    return server.dispatch(
        "verify",
        {
            "model_path": run["path"],
            "params": {},
            "out_dir": run["out"],
            **TOL,
            "weights_path": run["train"]["weights_path"],
            "batch_sizes": [1, 7],
            "traced_path": run["trace"]["traced_path"],
            "captures": run["trace"]["captures"],
            **extra,
        },
        NOOP,
    )


def optimize_and_fuse(run: dict[str, Any], require: str = "none", fused_runs: str = "always") -> dict[str, Any]:
    """optimize (with optimize_for_inference) then fusion on a verified run (fused runs forced through NNC's
    interpreter by default: these builds have no LLVM, and the checks below are of fused outputs)."""
    refs = run["verify"]["references_path"]
    optimized = server.dispatch(
        "optimize",
        {
            "traced_path": run["trace"]["traced_path"],
            "references_path": refs,
            "out_dir": run["out"],
            "method": "optimize_for_inference",
            **TOL,
        },
        NOOP,
    )
    fused = server.dispatch(
        "fusion",
        {
            "optimized_path": optimized["optimized_path"],
            "references_path": refs,
            "out_dir": run["out"],
            "require": require,
            "fused_runs": fused_runs,
            **TOL,
        },
        NOOP,
    )
    return {"optimize": optimized, "fusion": fused}


class FixtureGateTest(unittest.TestCase):
    runs: dict[str, dict[str, Any]] = {}

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        for name in list(EXPECTED) + [SEED_MODEL]:
            out = os.path.join(cls.tmp.name, os.path.basename(name))
            os.makedirs(out)
            cls.runs[name] = run_pipeline(name, out)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def test_every_fixture_gets_its_code(self) -> None:
        for name, code in EXPECTED.items():
            with self.subTest(fixture=name):
                verify = self.runs[name]["verify"]
                self.assertEqual(verify["code"], code, verify["message"])
                self.assertEqual(verify["passed"], code is None)
                self.assertNotIn("\n", verify["message"])

    def test_fixture_docstrings_name_their_outcome(self) -> None:
        for name, code in EXPECTED.items():
            with self.subTest(fixture=name), open(model_path(name), encoding="utf-8") as src:
                head = src.read(400)
                self.assertIn(code or "pass", head)

    def test_messages_name_cause_and_fix(self) -> None:
        hints = {
            "control_flow_divergence": ("Python boolean", "trace.mode: script", "probe"),
            "python_value_capture": ("Python", "trace.mode: script"),
            "shape_specialization": ("batch", "x.shape[0]", "range(x.size(0))"),
            "train_mode_ops": ("training mode", "model.eval()"),
            "nondeterministic": ("two runs", "self.training"),
        }
        # The construct found at the capture's line, and the fix for that construct.
        constructs = {
            "python_value_capture-float-scale.py": ("float() of a tensor", "y / x.abs().max()"),
            "python_value_capture-item-offset.py": (".item() of a tensor", "x - x.mean() instead of"),
            "python_value_capture-outlier-guard.py": ("a Python if on a tensor", "no probe took another path"),
            "control_flow_divergence-if-sum.py": ("a Python if on a tensor", "torch.where"),
            "control_flow_divergence-while-norm.py": ("a Python while loop on a tensor", "fixed number"),
        }
        for name, code in EXPECTED.items():
            for hint in hints.get(code, ()) + constructs.get(name, ()):
                with self.subTest(fixture=name, hint=hint):
                    self.assertIn(hint, self.runs[name]["verify"]["message"])

    def test_captures_come_from_the_user_file_only(self) -> None:
        self.assertEqual(
            [c["kind"] for c in self.runs["control_flow_divergence-if-sum.py"]["trace"]["captures"]], ["bool"]
        )
        capture = self.runs["python_value_capture-float-scale.py"]["trace"]["captures"][0]
        self.assertEqual((capture["kind"], capture["lineno"]), ("number", 20))
        gru = self.runs["healthy-gru.py"]["trace"]
        self.assertEqual(gru["captures"], [])
        self.assertEqual(gru["mode"], "trace")

    def test_harmless_capture_passes_with_a_warning(self) -> None:
        verify = self.runs["python_value_capture-harmless-monitor.py"]["verify"]
        self.assertTrue(any("harmless" in w and "monitor.py:20" in w for w in verify["warnings"]), verify["warnings"])

    def test_a_branch_no_probe_takes_is_found_by_where_its_bool_came_from(self) -> None:
        run = self.runs["python_value_capture-outlier-guard.py"]
        verify = run["verify"]
        self.assertTrue(all(c["passed"] for c in verify["cases"]), verify["cases"])  # no probe reaches 100
        self.assertEqual(verify["example_shape_checks"]["failed"], 0)
        self.assertIn(
            "outlier-guard.py:21 (Python boolean): a Python if on a tensor, computed from the inputs", verify["message"]
        )
        self.assertIn("torch.where", verify["message"])
        self.assertIn("'python_value_capture-outlier-guard.py:21' in trace.accept_captures", verify["message"])
        [capture] = run["trace"]["captures"]
        self.assertEqual((capture["source"], capture["construct"], capture["kind"]), ("input", "if", "bool"))
        # The traced graph really is wrong on an outlier: eager clamps, the trace does not.
        module = user_model.load(run["path"])
        model = trace.load_trained(module, {}, run["train"]["weights_path"])
        outlier = torch.zeros(4, 8)
        outlier[0, 0] = 1000.0
        traced = torch.jit.load(run["trace"]["traced_path"])
        with torch.no_grad():
            self.assertFalse(torch.allclose(model(outlier), traced(outlier)))

    def test_an_accepted_capture_passes_with_a_warning_and_a_stale_entry_is_named(self) -> None:
        run = self.runs["python_value_capture-outlier-guard.py"]
        verify = verify_again(run, accept_captures=["python_value_capture-outlier-guard.py:21", "model.py:3"])
        self.assertIsNone(verify["code"], verify["message"])
        self.assertTrue(
            any("accepted by trace.accept_captures" in w and "outlier-guard.py:21" in w for w in verify["warnings"]),
            verify["warnings"],
        )
        self.assertTrue(any("'model.py:3' but the trace took no Python value" in w for w in verify["warnings"]))
        other = verify_again(run, accept_captures=["python_value_capture-outlier-guard.py:22"])
        self.assertEqual(other["code"], "python_value_capture")

    def test_a_train_mode_op_that_breaks_the_eager_reference_is_rejected_not_failed(self) -> None:
        verify = self.runs["train_mode_ops-batchnorm-one-row.py"]["verify"]
        self.assertEqual(verify["train_mode_ops"], ["aten::batch_norm"])
        self.assertIn("the eager model itself raised on case batch_1 (", verify["message"])
        self.assertIn("Expected more than 1 value per channel when training", verify["message"])
        self.assertNotIn("batch_1", [c["name"] for c in verify["cases"]])
        self.assertIn("batch_7", [c["name"] for c in verify["cases"]])

    def test_probes_are_cases_and_references(self) -> None:
        verify = self.runs["healthy-convnet.py"]["verify"]
        names = [c["name"] for c in verify["cases"]]
        self.assertEqual(
            names,
            [
                "validation",
                "example",
                "batch_1",
                "batch_7",
                "probe_neg",
                "probe_scale10",
                "probe_scale01",
                "probe_zeros",
                "probe_shuffle",
            ],
        )
        self.assertGreater(verify["example_shape_checks"]["chunks"], 0)

    def test_nondeterministic_nodes_are_reported(self) -> None:
        nodes = self.runs["nondeterministic-randn-noise.py"]["verify"]["nondeterministic_nodes"]
        if hasattr(torch._C.Node, "isNondeterministic"):
            self.assertEqual(nodes, ["aten::randn_like"])

    def test_device_constant_depends_on_the_target(self) -> None:
        for name in ("device_constant-zeros-cpu.py", "device_constant-to-cpu.py"):
            with self.subTest(fixture=name):
                cpu = self.runs[name]["verify"]
                self.assertEqual(cpu["devices"], ["cpu"])
                self.assertTrue(any("target_device cpu" in w for w in cpu["warnings"]), cpu["warnings"])
                cuda = verify_again(self.runs[name], target_device="cuda")
                self.assertEqual(cuda["code"], "device_constant", cuda["message"])
                self.assertIn("target_device is cuda", cuda["message"])

    def test_healthy_models_pass_every_gate_and_parity(self) -> None:
        for name in HEALTHY:
            with self.subTest(model=os.path.basename(name)):
                run = self.runs[name]
                self.assertTrue(run["verify"]["passed"], run["verify"]["message"])
                stages = optimize_and_fuse(run)
                self.assertTrue(stages["optimize"]["passed"], stages["optimize"]["message"])
                self.assertIsNotNone(stages["optimize"]["nodes_for_inference"])
                self.assertTrue(os.path.isfile(stages["optimize"]["ir_for_inference_path"]))
                self.assertTrue(stages["fusion"]["passed"], stages["fusion"]["message"])
                outputs = os.path.join(run["out"], "outputs.safetensors")
                proc = run_parity(stages["optimize"]["optimized_path"], run["verify"]["references_path"], outputs)
                self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
                self.assertEqual(json.loads(proc.stdout)["cases"], len(run["verify"]["cases"]))

    def test_fusion_of_seed_f_is_one_group(self) -> None:
        before = fusion.read_flags()
        result = optimize_and_fuse(self.runs["fusion-seed-f.py"], "pointwise-chains")["fusion"]
        self.assertEqual(fusion.read_flags(), before)  # the long-lived server keeps its own flags
        self.assertTrue(result["passed"], result["message"])
        self.assertEqual(len(result["groups"]), 1, result["groups"])
        self.assertEqual(result["groups"][0]["kind"], "prim::TensorExprGroup")
        for op in ("aten::mul", "aten::add", "aten::relu"):
            self.assertIn(op, result["groups"][0]["ops"])
        self.assertLessEqual(result["max_abs_error"], 1e-5)
        self.assertEqual(result["flags"]["texpr_fuser_enabled"], True)
        self.assertEqual(result["flags"]["can_fuse_on_cpu"], True)
        with open(result["graph_path"]) as src:
            self.assertIn("prim::TensorExprGroup", src.read())

    def test_fusion_on_a_build_without_llvm_shows_the_groups_and_compares_nothing(self) -> None:
        before = fusion.read_flags()
        result = optimize_and_fuse(self.runs["fusion-seed-f.py"], "none", "auto")["fusion"]
        self.assertEqual(fusion.read_flags(), before)
        self.assertFalse(fusion.BUILD["llvm_enabled"])  # the torch 2.13 CPU wheel and Debian's 1.13
        self.assertTrue(result["passed"], result["message"])
        self.assertEqual((result["fuses"], result["compared"], result["max_abs_error"]), (False, False, None))
        self.assertEqual([g["kind"] for g in result["groups"]], ["prim::TensorExprGroup"])
        self.assertIn(f"torch {torch.__version__} (CPU, no LLVM) runs these groups unfused", result["message"])
        self.assertEqual(result["build"]["can_fuse_on_cpu"], False)

    def test_fusion_required_on_a_build_without_llvm_is_unavailable(self) -> None:
        result = optimize_and_fuse(self.runs["fusion-seed-f.py"], "any", "auto")["fusion"]
        self.assertEqual(result["code"], "fusion_unavailable", result["message"])
        self.assertIn("fusion.require any, but torch", result["message"])
        self.assertIn("(CPU, no LLVM) cannot fuse on cpu", result["message"])

    def test_the_cpu_fuser_switched_on_as_torch_ships_it_fails_without_llvm(self) -> None:
        # What a server of this build that switched CPU fusion on would meet: the fused kernels cannot compile.
        run = self.runs["fusion-seed-f.py"]
        optimized = optimize_and_fuse(run)["optimize"]["optimized_path"]
        proc = run_parity(
            optimized,
            run["verify"]["references_path"],
            os.path.join(run["out"], "fused.safetensors"),
            "--fusion",
            "fused",
        )
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        error = json.loads(proc.stdout)["error"]
        self.assertEqual(error["stage"], "run")
        self.assertIn("LLVM Backend not found", error["message"])

    def test_fusion_required_missing(self) -> None:
        result = optimize_and_fuse(self.runs["fusion-none.py"], "any")["fusion"]
        self.assertEqual(result["code"], "fusion_required_missing", result["message"])
        self.assertEqual(result["groups"], [])
        self.assertIn("fusion.require any", result["message"])
        self.assertIn("no fusion group", result["message"])


class ScriptModeTest(unittest.TestCase):
    def test_script_mode_fixes_control_flow(self) -> None:
        with tempfile.TemporaryDirectory() as out:
            run = run_pipeline("control_flow_divergence-if-sum.py", out, mode="script")
        self.assertEqual(run["trace"]["mode"], "script")
        self.assertEqual(run["trace"]["captures"], [])
        self.assertTrue(run["verify"]["passed"], run["verify"]["message"])

    def test_unscriptable_model_is_a_model_error(self) -> None:
        source = textwrap.dedent("""
            import torch
            class VarArgs(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.linear = torch.nn.Linear(3, 1)
                def forward(self, *inputs):
                    return self.linear(inputs[0])
            def build_model(params):
                return VarArgs()
            def dataset(params, split):
                return torch.ones(8, 3), torch.ones(8, 1)
        """)
        with tempfile.TemporaryDirectory() as out:
            path = os.path.join(out, "varargs.py")
            with open(path, "w") as dst:
                dst.write(source)
            with self.assertRaises(ProtocolError) as caught:
                run_pipeline(path, out, mode="script")
        self.assertEqual(caught.exception.code, "model_error")
        self.assertIn("cannot be scripted", caught.exception.message)
        self.assertIn("trace.mode: trace", caught.exception.message)


def relu_chain(x: torch.Tensor) -> torch.Tensor:
    """mul → relu → add, with a matmul (not pointwise) on the side."""
    return torch.relu(x * 2) + torch.matmul(x, x)


class VerdictTest(unittest.TestCase):
    """The precedence of the gate on synthetic facts."""

    ok = {"name": "validation", "passed": True, "max_abs_error": 0.0, "max_rel_error": 0.0, "error": None}
    bad = {"name": "batch_7", "passed": False, "max_abs_error": 1.0, "max_rel_error": 1.0, "error": None}

    def facts(self, **kw: Any) -> gate.Facts:
        return gate.Facts(**{"cases": [self.ok], "atol": 1e-5, "rtol": 1e-4, **kw})

    def test_precedence(self) -> None:
        everything = dict(
            cases=[self.ok, self.bad],
            train_ops=["aten::dropout"],
            repeat={"case": "validation", "passed": False, "words": "max abs error 1"},
            devices=[{"device": "cpu", "users": ["aten::zeros"]}],
            target_device="cuda",
            chunk_checks={"chunks": 4, "failed": 1, "first_failure": "x"},
            captures=[{"kind": "number", "message": "m", "filename": "m.py", "lineno": 3}],
        )
        order = ["train_mode_ops", "nondeterministic", "device_constant", "python_value_capture"]
        drop = ["train_ops", "repeat", "devices"]
        for i, code in enumerate(order):
            facts = self.facts(**{k: v for k, v in everything.items() if k not in drop[:i]})
            self.assertEqual(gate.verdict(facts)[0], code)

    def test_shape_when_the_example_shape_agrees(self) -> None:
        facts = self.facts(cases=[self.ok, self.bad], chunk_checks={"chunks": 4, "failed": 0})
        self.assertEqual(gate.verdict(facts)[0], "shape_specialization")

    def test_bool_capture_means_control_flow(self) -> None:
        caps = [
            {"kind": "bool", "message": "m", "filename": "m.py", "lineno": 3},
            {"kind": "number", "message": "n", "filename": "m.py", "lineno": 4},
        ]
        facts = self.facts(chunk_checks={"chunks": 4, "failed": 1, "first_failure": "x"}, captures=caps)
        self.assertEqual(gate.verdict(facts)[0], "control_flow_divergence")

    def test_same_device_and_harmless_capture_only_warn(self) -> None:
        facts = self.facts(
            devices=[{"device": "cuda:0", "users": ["aten::zeros"]}],
            target_device="cuda",
            captures=[{"kind": "number", "message": "m", "filename": "m.py", "lineno": 3}],
        )
        code, _, warnings = gate.verdict(facts)
        self.assertIsNone(code)
        self.assertEqual(len(warnings), 2)

    def test_pointwise_chains_are_found(self) -> None:
        scripted = torch.jit.script(relu_chain)
        links = fusion.chains(fusion.unfused_pointwise(scripted.graph))
        self.assertEqual(links, ["aten::mul → aten::relu", "aten::relu → aten::add"])
        unmet = fusion.requirement("pointwise-chains", [], links)
        assert unmet is not None
        self.assertIn("pointwise", unmet)
        self.assertIsNone(fusion.requirement("none", [], links))

    def test_capture_kinds_and_user_files(self) -> None:
        self.assertEqual(captures.capture_kind("Converting a tensor to a Python boolean might cause"), "bool")
        self.assertEqual(captures.capture_kind("Converting a tensor to a Python float might cause"), "number")
        self.assertEqual(captures.capture_kind("Converting a tensor to a Python index might cause"), "number")
        self.assertIsNone(captures.capture_kind("Iterating over a tensor might cause the trace to be incorrect"))
        rnn = os.path.join(captures.TORCH_DIR, "nn", "modules", "rnn.py")
        self.assertFalse(captures.is_user_file(rnn, rnn))
        model = os.path.join(FIXTURES, "healthy-gru.py")
        self.assertTrue(captures.is_user_file(model, model))


if __name__ == "__main__":
    unittest.main()
