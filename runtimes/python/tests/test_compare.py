"""compare.compare measures large outputs a chunk at a time: the maxima and the verdict are those of the whole."""

import unittest

import torch

from ttd_torch import compare


class ChunkedCompareTest(unittest.TestCase):
    def setUp(self) -> None:
        torch.manual_seed(0)
        # Three and a half chunks, not contiguous (a transposed view), float32 as model outputs are.
        self.expected = torch.randn(7, compare.CHUNK // 2).t()
        self.actual = self.expected.clone()

    def test_an_error_in_the_last_chunk_alone_is_found(self) -> None:
        self.actual[-1, -1] += 0.5
        result = compare.compare([self.actual], [self.expected], 1e-4, 1e-3)
        self.assertFalse(result["passed"])
        self.assertAlmostEqual(result["max_abs_error"], 0.5, places=5)
        self.assertAlmostEqual(
            result["max_rel_error"], 0.5 / abs(float(self.expected[-1, -1])), delta=1e-3 * result["max_rel_error"]
        )

    def test_equal_outputs_pass_with_zero_error_nan_and_infinities_at_the_same_places_included(self) -> None:
        self.actual[3, 2] = self.expected[3, 2] = float("inf")
        self.actual[-2, 0] = self.expected[-2, 0] = float("-inf")
        self.actual[5, 1] = self.expected[5, 1] = float("nan")
        result = compare.compare([self.actual], [self.expected], 0.0, 0.0)
        self.assertEqual((result["passed"], result["max_abs_error"], result["max_rel_error"]), (True, 0.0, 0.0))

    def test_a_nan_in_a_middle_chunk_fails_with_an_infinite_error(self) -> None:
        self.actual[compare.CHUNK // 7 + 1, 3] = float("nan")
        result = compare.compare([self.actual], [self.expected], 1e-4, 1e-3)
        self.assertFalse(result["passed"])
        self.assertEqual(result["max_abs_error"], float("inf"))

    def test_close_outputs_pass_on_every_chunk(self) -> None:
        result = compare.compare([self.expected + 1e-6], [self.expected], 1e-4, 1e-3)
        self.assertTrue(result["passed"])
        self.assertLess(result["max_abs_error"], 1e-5)


if __name__ == "__main__":
    unittest.main()
