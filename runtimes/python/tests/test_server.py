"""The torch stage server end to end, through a subprocess, as the orchestrator drives it."""

import json
import os
import signal
import subprocess
import tempfile
import textwrap
import time
import unittest

import torch

from ttd_torch import safetensors

from .helpers import FIXTURES, PYTHON, RUNNER, SEED_MODEL, TOL, default_sigint, responses, serve

PROBES = ["probe_neg", "probe_scale10", "probe_scale01", "probe_zeros", "probe_shuffle"]
CASES = ["validation", "example", "batch_1", "batch_7"] + PROBES
TRAIN = {"epochs": 1, "batch_size": 8, "optimizer": "adam", "lr": 0.001, "loss": "mse", "seed": 0}


def pipeline(model: str, out: str, train: dict = TRAIN, optimize_model: bool = False) -> list:
    """The request lines of a whole pipeline for one model file."""
    weights, traced = os.path.join(out, "weights.pt"), os.path.join(out, "traced.pt")
    optimize_args = {
        "traced_path": traced,
        "references_path": os.path.join(out, "references.safetensors"),
        "out_dir": out,
        **TOL,
    }
    if optimize_model:
        optimize_args["model_path"] = model
    return [
        {"id": "hello", "op": "hello", "args": {}},
        {"id": "train", "op": "train", "args": {"model_path": model, "params": {}, "train": train, "out_dir": out}},
        {
            "id": "trace",
            "op": "trace",
            "args": {"model_path": model, "params": {}, "weights_path": weights, "out_dir": out},
        },
        {
            "id": "verify",
            "op": "verify",
            "args": {
                "model_path": model,
                "params": {},
                "weights_path": weights,
                "traced_path": traced,
                "batch_sizes": [1, 7],
                "out_dir": out,
                **TOL,
            },
        },
        {"id": "optimize", "op": "optimize", "args": optimize_args},
    ]


def run_parity(model: str, refs: str, out: str, *flags: str) -> subprocess.CompletedProcess:
    """Run the parity runner as deployed: python -I, from an empty directory."""
    with tempfile.TemporaryDirectory() as empty:
        return subprocess.run(
            [PYTHON, "-I", RUNNER, "--model", model, "--references", refs, "--out", out, *flags],
            capture_output=True,
            text=True,
            cwd=empty,
            timeout=120,
        )


class SeedPipelineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = cls.tmp.name
        cls.messages, cls.stderr, cls.rc = serve(pipeline(SEED_MODEL, cls.out))
        cls.by_id = responses(cls.messages)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def result(self, request_id: str) -> dict:
        response = self.by_id[request_id]
        self.assertTrue(response["ok"], response)
        return response["result"]

    def test_exit_and_line_order(self) -> None:
        self.assertEqual(self.rc, 0, self.stderr)
        self.assertEqual(
            [m["id"] for m in self.messages if "ok" in m], ["hello", "train", "trace", "verify", "optimize"]
        )

    def test_hello(self) -> None:
        result = self.result("hello")
        self.assertEqual(result["protocol"], 1)
        self.assertEqual(result["torch_version"], torch.__version__)

    def test_train(self) -> None:
        result = self.result("train")
        self.assertEqual(result["status"], "ok")
        self.assertEqual((result["epochs_completed"], result["rows"], len(result["losses"])), (1, 1000, 1))
        events = [m for m in self.messages if m.get("event") == "progress"]
        checkpoint_path = os.path.join(self.out, "checkpoint-1.pt")
        self.assertEqual(
            events[0]["data"],
            {"epoch": 1, "epochs": 1, "loss": result["losses"][0], "checkpoint_path": checkpoint_path},
        )
        self.assertEqual((result["resumed_from_epoch"], result["checkpoint_path"]), (0, checkpoint_path))
        self.assertTrue(os.path.isfile(checkpoint_path))

    def test_train_is_deterministic(self) -> None:
        with tempfile.TemporaryDirectory() as out:
            again = responses(serve(pipeline(SEED_MODEL, out)[1:2])[0])["train"]["result"]
        self.assertEqual(again["losses"], self.result("train")["losses"])

    def test_trace(self) -> None:
        result = self.result("trace")
        self.assertEqual(result["example_shapes"], [[3]])
        self.assertEqual(result["nodes"]["aten::linear"], 3)
        self.assertEqual(result["node_total"], sum(result["nodes"].values()))
        self.assertEqual(result["warnings"], [])
        self.assertEqual((result["mode"], result["captures"]), ("trace", []))

    def test_verify(self) -> None:
        result = self.result("verify")
        self.assertTrue(result["passed"], result)
        self.assertIsNone(result["code"])
        self.assertEqual([c["name"] for c in result["cases"]], CASES)
        self.assertEqual(result["train_mode_ops"], [])
        self.assertEqual((result["warnings"], result["devices"], result["nondeterministic_nodes"]), ([], [], []))
        tensors, metadata = safetensors.load(result["references_path"])
        self.assertEqual(metadata, {"format": "ttd-references/1", "cases": ",".join(CASES)})
        self.assertTrue(torch.equal(tensors["probe_neg/input/0"], -tensors["validation/input/0"]))
        self.assertEqual(list(tensors["validation/input/0"].shape), [200, 3])
        self.assertEqual(list(tensors["batch_7/output/0"].shape), [7, 1])

    def test_optimize(self) -> None:
        result = self.result("optimize")
        self.assertTrue(result["passed"], result)
        self.assertNotIn("aten::dropout", result["nodes_after"])
        self.assertIn("aten::dropout", result["nodes_before"])
        self.assertLess(result["node_total_after"], result["node_total_before"])
        with open(result["ir_after_path"]) as src:
            self.assertIn("aten::linear", src.read())
        self.assertEqual(
            (result["method"], result["nodes_for_inference"], result["ir_for_inference_path"]), ("freeze", None, None)
        )

    def test_parity_runner_matches_references(self) -> None:
        refs = os.path.join(self.out, "references.safetensors")
        for flags in ((), ("--fuser", "--threads", "2"), ("--fusion", "interpreter")):
            with self.subTest(flags=flags):
                outputs = os.path.join(self.out, f"outputs{len(flags)}.safetensors")
                proc = run_parity(os.path.join(self.out, "optimized.pt"), refs, outputs, *flags)
                self.assertEqual(proc.returncode, 0, proc.stderr)
                line = json.loads(proc.stdout)
                self.assertEqual(line["runtime"], "python")
                self.assertEqual(line["cases"], len(CASES))
                self.assertEqual(line["flags"], {"fuser": bool(flags), "mode": "interpreter" if flags else "serving"})
                # Neither build here has LLVM; neither fuses on the CPU by default.
                self.assertEqual((line["fusion"]["llvm_enabled"], line["fusion"]["can_fuse_on_cpu"]), (False, False))
                expected, _ = safetensors.load(refs)
                got, metadata = safetensors.load(outputs)
                self.assertEqual(metadata["format"], "ttd-outputs/1")
                self.assertEqual(metadata["cases"], ",".join(CASES))
                for name, tensor in got.items():
                    self.assertTrue(torch.allclose(tensor, expected[name], atol=1e-5, rtol=0), name)
                self.assertEqual(sorted(got), sorted(k for k in expected if "/output/" in k))

    def test_parity_runner_reports_load_failure(self) -> None:
        proc = run_parity(
            os.path.join(self.out, "missing.pt"),
            os.path.join(self.out, "references.safetensors"),
            os.path.join(self.out, "never.safetensors"),
        )
        self.assertNotEqual(proc.returncode, 0)
        self.assertEqual(json.loads(proc.stdout)["error"]["stage"], "load")


class NotAnExceptionTest(unittest.TestCase):
    """A model that raises KeyboardInterrupt, SystemExit or GeneratorExit: the model's error, named with where it was
    raised; a real SIGINT to the stage process still ends it."""

    def train(self, model: str, params: dict) -> tuple[dict, dict, int]:
        with tempfile.TemporaryDirectory() as out:
            request = {
                "id": "train",
                "op": "train",
                "args": {"model_path": model, "params": params, "train": TRAIN, "out_dir": out},
            }
            messages, stderr, rc = serve([request, {"id": "after", "op": "hello", "args": {}}])
        by_id = responses(messages)
        self.assertIn("train", by_id, stderr)
        return by_id["train"], by_id["after"], rc

    def test_each_is_a_model_error_naming_it_and_its_line_and_the_server_keeps_serving(self) -> None:
        model = os.path.join(FIXTURES, "raises-not-exception.py")
        cases = [
            ("KeyboardInterrupt", "build", "the model raised KeyboardInterrupt at", "build_model()", 26),
            ("KeyboardInterrupt", "forward", "the model raised KeyboardInterrupt at", "training step 1 of epoch 1", 19),
            ("SystemExit", "forward", "the model raised SystemExit(3) at", "training step 1 of epoch 1", 19),
            ("GeneratorExit", "build", "the model raised GeneratorExit at", "build_model()", 26),
        ]
        for raised, where, start, what, line in cases:
            with self.subTest(raised=raised, where=where):
                response, after, rc = self.train(model, {"raise": raised, "where": where})
                error = response["error"]
                self.assertEqual(error["code"], "model_error", error)
                self.assertTrue(error["message"].startswith(f"{start} {model}:{line} (in {what} of {model});"), error)
                self.assertIn("expected the model's functions to return or raise an Exception", error["message"])
                self.assertIn(raised, error["traceback"])
                self.assertTrue(after["ok"])
                self.assertEqual(rc, 0)

    def test_a_keyboard_interrupt_in_the_module_body_names_the_import(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            model = os.path.join(folder, "body.py")
            with open(model, "w") as dst:
                dst.write("import torch\n\nraise KeyboardInterrupt\n")
            response, after, rc = self.train(model, {})
        error = response["error"]
        self.assertEqual(error["code"], "model_error")
        self.assertTrue(
            error["message"].startswith(f"the model raised KeyboardInterrupt at {model}:3 (in import of {model});"),
            error,
        )
        self.assertIn("no SIGINT reached the stage", error["message"])
        self.assertTrue(after["ok"])
        self.assertEqual(rc, 0)

    def test_a_real_sigint_still_interrupts_the_stage_process(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            model = os.path.join(folder, "sleeps.py")
            marker = os.path.join(folder, "sleeping")
            with open(model, "w") as dst:
                dst.write(
                    "import time, torch\n"
                    "def build_model(params):\n"
                    f"    open({marker!r}, 'w').close()\n"
                    "    time.sleep(60)\n"
                    "def dataset(params, split):\n"
                    "    return torch.zeros(8, 3), torch.zeros(8, 1)\n"
                )
            request = {
                "v": 1,
                "id": "train",
                "op": "train",
                "args": {"model_path": model, "params": {}, "train": TRAIN, "out_dir": folder},
            }
            proc = subprocess.Popen(
                [PYTHON, "-m", "ttd_torch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))},
                cwd="/",
                # A SIGINT must reach it as Python's default: a suite run in the background (make test runs the
                # torch side beside vitest) inherits SIGINT ignored, and so would every process it starts.
                preexec_fn=default_sigint,
            )
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            deadline = time.monotonic() + 60
            while not os.path.exists(marker) and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=60)
        self.assertEqual(stdout, "")  # no answer: not reported as the model's error
        self.assertIn("KeyboardInterrupt", stderr)
        self.assertEqual(proc.returncode, -signal.SIGINT)


class ModelErrorTest(unittest.TestCase):
    def test_raises_reports_model_error_with_traceback_and_keeps_serving(self) -> None:
        model = os.path.join(FIXTURES, "raises.py")
        with tempfile.TemporaryDirectory() as out:
            messages, stderr, rc = serve(pipeline(model, out)[1:2] + [{"id": "after", "op": "hello", "args": {}}])
        by_id = responses(messages)
        error = by_id["train"]["error"]
        self.assertEqual(error["code"], "model_error")
        self.assertTrue(error["message"].startswith("ValueError: bad layer size"), error)
        self.assertIn(model, error["message"])
        self.assertIn("bad layer size", error["traceback"])
        self.assertIn("raises.py", error["traceback"])
        self.assertLessEqual(len(error["traceback"].splitlines()), 15)
        self.assertTrue(by_id["after"]["ok"])
        self.assertEqual(rc, 0)

    def test_missing_function_is_named(self) -> None:
        model = os.path.join(FIXTURES, "missing-fn.py")
        with tempfile.TemporaryDirectory() as out:
            error = responses(serve(pipeline(model, out)[1:2])[0])["train"]["error"]
        self.assertEqual(error["code"], "model_error")
        self.assertIn("dataset", error["message"])
        self.assertIn("missing-fn.py", error["message"])

    def test_non_finite_loss_is_rejected(self) -> None:
        model = os.path.join(FIXTURES, "nan-loss.py")
        train = {**TRAIN, "batch_size": 4, "lr": 10.0}
        with tempfile.TemporaryDirectory() as out:
            result = responses(serve(pipeline(model, out, train)[1:2])[0])["train"]["result"]
            self.assertFalse(os.path.exists(os.path.join(out, "weights.pt")))
        self.assertEqual((result["status"], result["code"], result["epoch"]), ("rejected", "non_finite_loss", 1))
        self.assertGreaterEqual(result["step"], 1)
        self.assertIn("train.lr = 10", result["message"])
        self.assertIn(f"epoch 1, step {result['step']}", result["message"])

    def test_user_output_goes_to_stderr(self) -> None:
        source = textwrap.dedent("""
            import os, torch
            print("hello from import")
            def build_model(params):
                print("hello from build_model")
                os.write(1, b"raw fd1 write\\n")
                return torch.nn.Linear(3, 1)
            def dataset(params, split):
                return torch.ones(4, 3), torch.ones(4, 1)
        """)
        with tempfile.TemporaryDirectory() as out:
            model = os.path.join(out, "chatty.py")
            with open(model, "w") as dst:
                dst.write(source)
            messages, stderr, rc = serve(pipeline(model, out)[1:2])
        self.assertTrue(responses(messages)["train"]["ok"])
        for text in ("hello from import", "hello from build_model", "raw fd1 write"):
            self.assertIn(text, stderr)

    def test_bad_requests(self) -> None:
        messages, _, rc = serve(
            [
                {"id": "x", "op": "nope", "args": {}},
                {
                    "id": "y",
                    "op": "train",
                    "args": {
                        "model_path": "relative.py",
                        "params": {},
                        "out_dir": "/tmp",
                        "train": {
                            "epochs": 1,
                            "batch_size": 1,
                            "optimizer": "adam",
                            "lr": 0.1,
                            "loss": "mse",
                            "seed": 0,
                        },
                    },
                },
                {"id": "z", "op": "fusion", "args": {"atol": 0, "rtol": 0}},
            ]
        )
        by_id = responses(messages)
        self.assertEqual(by_id["z"]["error"]["code"], "bad_request")
        self.assertIn("optimized_path", by_id["z"]["error"]["message"])
        self.assertEqual(by_id["x"]["error"]["code"], "bad_request")
        self.assertEqual(by_id["y"]["error"]["code"], "bad_request")
        self.assertIn("model_path", by_id["y"]["error"]["message"])
        self.assertEqual(rc, 0)


class CustomOpTest(unittest.TestCase):
    def test_passes_in_process_but_fails_to_load_in_a_fresh_runtime(self) -> None:
        model = os.path.join(FIXTURES, "custom-op.py")
        with tempfile.TemporaryDirectory() as out:
            by_id = responses(serve(pipeline(model, out, optimize_model=True))[0])
            for request_id in ("train", "trace", "verify", "optimize"):
                self.assertTrue(by_id[request_id]["ok"], by_id[request_id])
            self.assertEqual(by_id["trace"]["result"]["nodes"].get("ttdfixture::scale"), 1)
            self.assertTrue(by_id["verify"]["result"]["passed"])
            self.assertTrue(by_id["optimize"]["result"]["passed"])
            proc = run_parity(
                os.path.join(out, "optimized.pt"),
                os.path.join(out, "references.safetensors"),
                os.path.join(out, "outputs.safetensors"),
            )
        self.assertNotEqual(proc.returncode, 0)
        error = json.loads(proc.stdout)["error"]
        self.assertEqual(error["stage"], "load")
        self.assertIn("ttdfixture::scale", error["message"])


if __name__ == "__main__":
    unittest.main()


class SeedDeploymentTest(unittest.TestCase):
    def test_full_seed_run_predicts_about_minus_1_6(self) -> None:
        """The seed's promise: 10 epochs, batch 1, then f(1, 1, 1) near -1.6 in a fresh python -I."""
        train = {"epochs": 10, "batch_size": 1, "optimizer": "adam", "lr": 0.001, "loss": "mse", "seed": 0}
        with tempfile.TemporaryDirectory() as out:
            by_id = responses(serve(pipeline(SEED_MODEL, out, train))[0])
            self.assertTrue(all(r["ok"] for r in by_id.values()), by_id)
            code = (
                f"import torch; m = torch.jit.load({os.path.join(out, 'optimized.pt')!r}); "
                "print(float(m(torch.tensor((1, 1, 1), dtype=torch.float))))"
            )
            with tempfile.TemporaryDirectory() as empty:
                proc = subprocess.run([PYTHON, "-I", "-c", code], capture_output=True, text=True, cwd=empty)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(-2.1 < float(proc.stdout) < -1.1, proc.stdout)
