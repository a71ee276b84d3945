"""The tracer corpus (test/fixtures/tracer-corpus): models drawn from PyTorch's tracer tests and jit docs.

For each model the ground truth is measured first (eager against traced, corpus_truth.py, no ttd gate) and
must fit the code its file name promises; then ttd's trace and verify ops must give exactly that code, and
pass every healthy model. Runs on whichever torch runs the tests (make test runs 1.13 and 2.13).
"""

import os
import tempfile
import unittest
from typing import Any

from . import corpus_truth

MIN_MODELS = 30
# construct a message must name (and a fix it must give) for models whose cause is one construct
ADVICE = {
    "python_value_capture-tolist-weights": (".tolist() of a tensor", "instead of a Python list"),
    "python_value_capture-item-offset": (".item() of a tensor", "x - x.mean() instead of x - x.mean().item()"),
    "python_value_capture-data-baseline": (".data of a tensor", ".detach()"),
    "python_value_capture-list-index": ("indexed by a tensor", "torch.index_select"),
    "python_value_capture-numpy-roundtrip": (".numpy() of a tensor", "torch ops instead of NumPy"),
    "python_value_capture-tensor-of-tensors": ("torch.tensor() of tensors", "torch.stack"),
    "python_value_capture-outlier-guard": ("a Python if on a tensor", "torch.where"),
    "python_value_capture-assert-range": ("an assert on a tensor", "validate inputs before calling the model"),
    "shape_specialization-iterate-rows": ("iteration over a tensor was captured at", "batched tensor ops"),
    "shape_specialization-len-mean": ("len() of a tensor was captured at", "x.shape[0]"),
    "control_flow_divergence-while-norm": ("a Python while loop on a tensor", "trace.mode: script"),
}


class TracerCorpusTest(unittest.TestCase):
    runs: dict[str, dict[str, Any]] = {}

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        for path in corpus_truth.corpus_files():
            name = os.path.basename(path)[:-3]
            out = os.path.join(cls.tmp.name, name)
            os.makedirs(out)
            cls.runs[name] = {"path": path, "truth": corpus_truth.truth(path), **corpus_truth.gate(path, out)}

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def test_the_corpus_covers_every_class_with_healthy_models_beside(self) -> None:
        codes = [corpus_truth.expected_code(r["path"]) for r in self.runs.values()]
        self.assertGreaterEqual(len(codes), MIN_MODELS)
        self.assertGreaterEqual(codes.count(None), 10)
        for code in (
            "python_value_capture",
            "control_flow_divergence",
            "shape_specialization",
            "train_mode_ops",
            "nondeterministic",
        ):
            self.assertIn(code, codes)

    def test_ground_truth_measured_eager_against_traced_fits_each_expected_outcome(self) -> None:
        for name, run in self.runs.items():
            with self.subTest(model=name):
                self.assertTrue(
                    corpus_truth.consistent(corpus_truth.expected_code(run["path"]), run["truth"]), run["truth"]
                )

    def test_the_trace_gate_gives_each_model_its_code_and_passes_every_healthy_one(self) -> None:
        for name, run in self.runs.items():
            with self.subTest(model=name):
                verify = run["verify"]
                self.assertEqual(verify["code"], corpus_truth.expected_code(run["path"]), verify["message"])

    def test_messages_name_the_construct_its_line_and_its_fix(self) -> None:
        for name, (construct, fix) in ADVICE.items():
            with self.subTest(model=name):
                message = self.runs[name]["verify"]["message"]
                self.assertIn(construct, message)
                self.assertIn(fix, message)
                self.assertRegex(message, rf"{name}\.py:\d+")
                if "Python if" not in construct and "while" not in construct:
                    self.assertNotIn("instead of Python if/while", message)  # the advice fits the cause

    def test_captures_that_do_not_depend_on_the_inputs_are_warnings_worded_by_their_source(self) -> None:
        expected = {
            "healthy-parameter-float": "computed from parameters and buffers only",
            "healthy-constant-item": "computed from constants only",
            "healthy-monitor-float": "changing its value on the example left every output unchanged",
        }
        for name, words in expected.items():
            with self.subTest(model=name):
                self.assertTrue(
                    any(words in w for w in self.runs[name]["verify"]["warnings"]),
                    self.runs[name]["verify"]["warnings"],
                )

    def test_torchs_tracer_warnings_from_the_model_file_are_in_the_verify_result(self) -> None:
        verify = self.runs["python_value_capture-tolist-weights"]["verify"]
        self.assertTrue(
            any("Python list" in w["message"] for w in verify["tracer_warnings"]), verify["tracer_warnings"]
        )
        self.assertTrue(
            any(
                w.startswith("torch warned while tracing at python_value_capture-tolist-weights.py:")
                for w in verify["warnings"]
            )
        )
        self.assertEqual(self.runs["healthy-lstm"]["verify"]["tracer_warnings"], [])  # rnn.py's are torch's own


if __name__ == "__main__":
    unittest.main()
