"""Weights and checkpoints come from the store: a rewritten blob holding a pickle must not run code when read."""

import os
import pickle
import tempfile
import unittest

import torch

from ttd_torch import checkpoint, trace, user_model
from ttd_torch.protocol import BadRequest

from .helpers import SEED_MODEL


class Payload:
    """Unpickling it would create the file named by MARK."""

    def __reduce__(self):
        return (open, (os.environ["TTD_TEST_MARK"], "w"))


class UntrustedWeightsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.mark = os.path.join(self.tmp.name, "ran")
        os.environ["TTD_TEST_MARK"] = self.mark
        self.blob = os.path.join(self.tmp.name, "weights.pt")
        torch.save({"weight": Payload()}, self.blob, pickle_protocol=pickle.DEFAULT_PROTOCOL)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_trained_weights_holding_a_pickle_are_refused_without_running_it(self) -> None:
        with self.assertRaises(pickle.UnpicklingError):  # torch.load(weights_only=True), 1.13 and 2.x
            trace.load_trained(user_model.load(SEED_MODEL), {}, self.blob)
        self.assertFalse(os.path.exists(self.mark))

    def test_a_checkpoint_holding_a_pickle_is_refused_without_running_it(self) -> None:
        with self.assertRaises(BadRequest):
            checkpoint.read(self.blob)
        self.assertFalse(os.path.exists(self.mark))


if __name__ == "__main__":
    unittest.main()
