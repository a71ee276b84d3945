"""Graph helpers: train-mode op detection and the seed's constant folding example."""

import unittest
import warnings

import torch
from torch import nn

from ttd_torch import graph

from .helpers import jit_trace


def trace_quietly(fn, *inputs):
    """Trace without the check pass and with warnings silenced (they are not under test here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jit_trace(fn, inputs, check_trace=False)


class TrainModeOpsTest(unittest.TestCase):
    def model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.2), nn.Linear(4, 1))

    def test_train_mode_trace_is_detected(self) -> None:
        traced = trace_quietly(self.model().train(), torch.randn(5, 3))
        self.assertEqual(sorted(graph.train_mode_ops(traced.inlined_graph)), ["aten::batch_norm", "aten::dropout"])

    def test_eval_mode_trace_is_clean(self) -> None:
        traced = trace_quietly(self.model().eval(), torch.randn(5, 3))
        self.assertEqual(graph.train_mode_ops(traced.inlined_graph), [])

    def test_eval_instance_norm_without_running_stats_is_clean(self) -> None:
        traced = trace_quietly(nn.InstanceNorm1d(2).eval(), torch.randn(1, 2, 5))
        self.assertEqual(graph.train_mode_ops(traced.inlined_graph), [])

    def test_count_nodes(self) -> None:
        traced = trace_quietly(self.model().eval(), torch.randn(5, 3))
        counts = graph.count_nodes(traced.inlined_graph)
        self.assertEqual(counts["aten::linear"], 2)


class ConstantFoldingTest(unittest.TestCase):
    def test_seed_example_folds_to_twenty(self) -> None:
        def f(x: torch.Tensor) -> torch.Tensor:
            a, b, c = 7, 11, 2
            d = a + b + c
            e = a + b + c + 25  # noqa: F841 (unused: must vanish from the graph)
            return x + d

        traced = trace_quietly(f, torch.tensor([0.0]))
        g = traced.graph.copy()
        torch._C._jit_pass_constant_propagation(g)
        torch._C._jit_pass_dce(g)
        values = [n.output().toIValue() for n in g.nodes() if n.kind() == "prim::Constant"]
        self.assertIn(20, values)
        self.assertNotIn(45, values)
        self.assertEqual(graph.count_nodes(g).get("aten::add"), 1)
        add = next(n for n in g.nodes() if n.kind() == "aten::add")
        self.assertEqual(list(add.inputs())[1].toIValue(), 20)  # a + b + c with 7, 11, 2: one constant 20
        self.assertTrue(torch.equal(traced(torch.tensor([1.0])), torch.tensor([21.0])))


if __name__ == "__main__":
    unittest.main()
