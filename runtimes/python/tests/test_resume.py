"""Crash-safe training: per-epoch checkpoints, resume_path, and bit-identical results across a resume."""

import json
import os
import signal
import subprocess
import tempfile
import unittest
from typing import Any

import torch

from ttd_torch import checkpoint, train
from ttd_torch.protocol import BadRequest

from .helpers import FIXTURES, PYTHON, PYTHON_DIR, SEED_MODEL, responses, serve

SPEC = {"epochs": 4, "batch_size": 32, "optimizer": "adam", "lr": 0.001, "loss": "mse", "seed": 7}
SLOW = os.path.join(FIXTURES, "slow-mlp.py")
SLOW_PARAMS = {"step_sleep": 0.05}
SLOW_SPEC = {"epochs": 6, "batch_size": 8, "optimizer": "adam", "lr": 0.01, "loss": "mse", "seed": 3}


def run(
    out: str, spec: dict[str, Any], model: str = SEED_MODEL, params: dict[str, Any] | None = None, resume: str = ""
) -> dict[str, Any]:
    """Train in process; returns the result with the progress events under "events"."""
    events: list[dict[str, Any]] = []
    args = {"model_path": model, "params": params or {}, "train": spec, "out_dir": out, "resume_path": resume or None}
    return {**train.train(args, events.append), "events": events}


def assert_same_weights(test: unittest.TestCase, a: str, b: str) -> None:
    """Two weights.pt files hold bit-identical state_dicts."""
    left, right = torch.load(a), torch.load(b)
    test.assertEqual(list(left), list(right))
    for key in left:
        test.assertTrue(torch.equal(left[key], right[key]), key)


class ResumeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.full_dir, cls.part_dir = (os.path.join(cls.tmp.name, d) for d in ("full", "part"))
        os.mkdir(cls.full_dir)
        os.mkdir(cls.part_dir)
        cls.full = run(cls.full_dir, SPEC)
        cls.part = run(cls.part_dir, {**SPEC, "epochs": 2})
        cls.ckpt = os.path.join(cls.part_dir, "checkpoint-2.pt")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def test_checkpoint_every_epoch_keeps_only_the_last(self) -> None:
        paths = [e["checkpoint_path"] for e in self.full["events"]]
        self.assertEqual(paths, [checkpoint.path_for(self.full_dir, k) for k in (1, 2, 3, 4)])
        self.assertEqual(sorted(os.listdir(self.full_dir)), ["checkpoint-4.pt", "weights.pt"])
        self.assertEqual(self.full["resumed_from_epoch"], 0)
        state = checkpoint.read(paths[-1])
        self.assertEqual((state["epoch"], state["losses"], state["train"]), (4, self.full["losses"], SPEC))
        self.assertEqual(state["rng_state"].dtype, torch.uint8)

    def test_resumed_run_is_bit_identical(self) -> None:
        with tempfile.TemporaryDirectory() as out:
            resumed = run(out, SPEC, resume=self.ckpt)
            self.assertEqual(resumed["resumed_from_epoch"], 2)
            self.assertEqual([e["epoch"] for e in resumed["events"]], [3, 4])
            self.assertEqual(resumed["losses"], self.full["losses"])
            self.assertEqual(resumed["losses"][:2], self.part["losses"])
            assert_same_weights(self, resumed["weights_path"], self.full["weights_path"])
            self.assertTrue(os.path.isfile(self.ckpt), "the checkpoint of another out_dir is left alone")

    def test_resume_at_the_last_epoch_only_writes_weights(self) -> None:
        with tempfile.TemporaryDirectory() as out:
            done = run(out, SPEC, resume=checkpoint.path_for(self.full_dir, 4))
            self.assertEqual((done["resumed_from_epoch"], done["events"], done["checkpoint_path"]), (4, [], None))
            assert_same_weights(self, done["weights_path"], self.full["weights_path"])

    def test_mismatched_spec_names_the_differing_fields(self) -> None:
        with tempfile.TemporaryDirectory() as out:
            with self.assertRaises(BadRequest) as caught:
                run(out, {**SPEC, "lr": 0.01, "seed": 8}, resume=self.ckpt)
        message = caught.exception.message
        self.assertIn("train.lr (checkpoint 0.001, request 0.01)", message)
        self.assertIn("train.seed (checkpoint 7, request 8)", message)
        self.assertNotIn("batch_size", message)
        self.assertEqual(caught.exception.code, "bad_request")

    def test_epoch_beyond_request_and_unreadable_file_are_bad_requests(self) -> None:
        with tempfile.TemporaryDirectory() as out:
            with self.assertRaises(BadRequest) as beyond:
                run(out, {**SPEC, "epochs": 1}, resume=self.ckpt)
            self.assertIn("is at epoch 2; expected 1..train.epochs (1)", beyond.exception.message)
            junk = os.path.join(out, "junk.pt")
            with open(junk, "wb") as dst:
                dst.write(b"not a checkpoint")
            with self.assertRaises(BadRequest) as unreadable:
                run(out, SPEC, resume=junk)
            self.assertIn("cannot be read as a checkpoint", unreadable.exception.message)


class KillAndResumeTest(unittest.TestCase):
    def test_sigkill_mid_training_then_resume_matches_an_uninterrupted_run(self) -> None:
        """Kill the worker after epoch 2's event (slow-mlp: ~0.4 s an epoch), resume from its checkpoint."""
        with (
            tempfile.TemporaryDirectory() as killed,
            tempfile.TemporaryDirectory() as resumed,
            tempfile.TemporaryDirectory() as straight,
        ):
            request = {
                "v": 1,
                "id": "t",
                "op": "train",
                "args": {"model_path": SLOW, "params": SLOW_PARAMS, "train": SLOW_SPEC, "out_dir": killed},
            }
            proc = subprocess.Popen(
                [PYTHON, "-m", "ttd_torch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                cwd="/",
                env={**os.environ, "PYTHONPATH": PYTHON_DIR},
            )
            assert proc.stdin is not None and proc.stdout is not None  # both PIPE
            try:
                proc.stdin.write(json.dumps(request) + "\n")
                proc.stdin.flush()
                events = []
                while not events or events[-1]["epoch"] < 2:
                    line = json.loads(proc.stdout.readline())
                    self.assertIn("event", line, line)
                    events.append(line["data"])
                proc.send_signal(signal.SIGKILL)
            finally:
                proc.wait(timeout=30)
                proc.stdout.close()
                proc.stdin.close()
            left = sorted(os.listdir(killed))
            self.assertEqual(len(left), 1, left)  # one checkpoint, no weights; normally checkpoint-2.pt
            epoch = int(left[0][len("checkpoint-") : -len(".pt")])
            self.assertGreaterEqual(epoch, 2)
            again = {
                **request,
                "args": {**request["args"], "out_dir": resumed, "resume_path": os.path.join(killed, left[0])},
            }
            messages, stderr, _ = serve([{k: v for k, v in again.items() if k != "v"}])
            result = responses(messages)["t"]["result"]
            self.assertEqual(
                (result["status"], result["resumed_from_epoch"], result["epochs_completed"]), ("ok", epoch, 6)
            )
            self.assertEqual(result["losses"][:2], [e["loss"] for e in events[:2]])
            whole = run(straight, SLOW_SPEC, SLOW, SLOW_PARAMS)
            self.assertEqual(result["losses"], whole["losses"])
            assert_same_weights(self, result["weights_path"], whole["weights_path"])


if __name__ == "__main__":
    unittest.main()
