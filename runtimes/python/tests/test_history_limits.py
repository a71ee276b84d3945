"""verify_artifact with many reference cases (issue 14): the result that travels in workflow history stays small; every
case's report is in cases.json, which the activity stores by digest."""

import json
import os
import tempfile
import unittest

import torch

from ttd_torch import safetensors, server
from ttd_torch.artifact import CASES_REPORTED

from .test_artifact import make

NOOP = lambda data: None  # noqa: E731
CASES = 2000


class ManyCasesTest(unittest.TestCase):
    def test_many_cases_report_a_bounded_list_and_write_them_all_to_cases_json(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            make(tmp)
            module = torch.jit.load(os.path.join(tmp, "model.pt"))
            x = torch.randn(CASES, 1, 3, generator=torch.Generator().manual_seed(3))
            tensors = {}
            with torch.no_grad():
                for i in range(CASES):
                    tensors[f"case_{i}/input/0"] = x[i]
                    # One wrong case, late in the file: the bounded list must still show it.
                    tensors[f"case_{i}/output/0"] = module(x[i]) + (1.0 if i == CASES - 7 else 0.0)
            refs = os.path.join(tmp, "many.safetensors")
            safetensors.save(refs, tensors)
            out = tempfile.mkdtemp(dir=tmp)
            result = server.dispatch(
                "verify_artifact",
                {
                    "artifact_path": os.path.join(tmp, "model.pt"),
                    "references_path": refs,
                    "out_dir": out,
                    "atol": 1e-5,
                    "rtol": 1e-4,
                },
                NOOP,
            )
            self.assertEqual((result["passed"], result["code"]), (False, "reference_mismatch"))
            self.assertEqual(result["case_count"], CASES)
            self.assertEqual(len(result["cases"]), CASES_REPORTED)
            self.assertEqual(result["cases"][0]["name"], f"case_{CASES - 7}")  # failures first
            self.assertFalse(result["cases"][0]["passed"])
            with open(result["cases_path"], encoding="utf-8") as f:
                every = json.load(f)
            self.assertEqual(len(every), CASES)
            self.assertEqual(sum(1 for c in every if not c["passed"]), 1)
            self.assertLess(len(json.dumps(result)), 16_000)


if __name__ == "__main__":
    unittest.main()
