"""The first diverging operator: verify (a traced graph) and export (an exported program) name it when they fail on
numbers, and passing results are unchanged (no divergence key).

Verify runs on every torch; the export tests need torch.export (torch 2.x): on torch 1.13 their class derives from
object, so unittest does not collect it (as in test_export.py), and the verify tests still run.
"""

import os
import tempfile
import textwrap
import time
import unittest
from typing import Any

import torch

from ttd_torch import codes, data, export, localize, server, user_model

from .helpers import SEED_MODEL, TOL

HAS_EXPORT = export.torch_version_tuple() >= export.MIN_TORCH
NOOP = lambda data: None  # noqa: E731 - progress events are not under test here

DATASET = """
def dataset(params, split):
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    x = torch.randn(64, 8, generator=gen)
    return x, x.sum(1, keepdim=True)
"""

# A Python float from the input's values multiplies a hidden layer: the trace freezes the example's value.
FLOAT_SCALE = (
    """
import torch
from torch import nn

class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 4)
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        h = torch.relu(self.linear(x))
        scale = float(h.mean())
        h = h * scale
        return self.head(h)

def build_model(params):
    return Scaled()
"""
    + DATASET
)

# A small ResNet: the second block of layer2 adds a Python float taken from its input, deep inside the net.
CONVNET = """
import torch
from torch import nn

class Block(nn.Module):
    def __init__(self, channels, frozen=False):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.frozen = frozen

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.frozen:
            out = out + float(x.mean())
        return self.relu(out + x)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.layer1 = nn.Sequential(Block(8), Block(8))
        self.layer2 = nn.Sequential(Block(8), Block(8, frozen=True))
        self.fc = nn.Linear(8, 1)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(x.mean((2, 3)))

def build_model(params):
    return Net()

def dataset(params, split):
    gen = torch.Generator().manual_seed(1 if split == "train" else 2)
    x = torch.randn(16, 3, 8, 8, generator=gen)
    return x, x.mean((1, 2, 3)).unsqueeze(1)

def example_inputs(params):
    return (dataset(params, "validation")[0][:4],)
"""

# In-place ops, two outputs (one an integer tensor), and a frozen Python number on the second output's path.
TUPLE = (
    """
import torch
from torch import nn

class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(self, x):
        h = self.linear(x)
        h.relu_()
        top = h.argmax(1)
        h += float(x.max())
        return top, h.sum(1, keepdim=True)

def build_model(params):
    return TwoHeads()
"""
    + DATASET
)

# Eager-only code skipped while compiling: torch.export keeps the other branch's constant without a word.
EAGER_ONLY = (
    """
import torch
from torch import nn

class Calibrated(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 4)
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        h = torch.tanh(self.linear(x))
        gain = 3.0 if torch.compiler.is_compiling() else 2.0
        h = h * gain
        return self.head(h)

def build_model(params):
    return Calibrated()

def example_inputs(params):
    return (dataset(params, "validation")[0][:4],)
"""
    + DATASET
)


def line_of(source: str, text: str) -> int:
    """The 1-based line of the first line of source that contains text."""
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


class DivergenceCase(unittest.TestCase):
    """A scratch directory, model files with their seeded weights, and the trace, verify and export ops on them."""

    tmp: tempfile.TemporaryDirectory

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    @classmethod
    def write(cls, name: str, source: str) -> str:
        """A model file and weights.pt of its freshly built model (seeded)."""
        path = os.path.join(cls.tmp.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(source))
        torch.manual_seed(0)
        model = data.build(user_model.load(path), {})
        torch.save(model.state_dict(), path + ".weights.pt")
        return path

    @classmethod
    def verify(cls, path: str, batch_sizes: list[int]) -> dict[str, Any]:
        """trace then verify, as the pipeline runs them."""
        out = tempfile.mkdtemp(dir=cls.tmp.name)
        base = {"model_path": path, "params": {}, "out_dir": out, "weights_path": path + ".weights.pt"}
        traced = server.dispatch("trace", {**base, "mode": "trace"}, NOOP)
        return server.dispatch(
            "verify",
            {
                **base,
                **TOL,
                "batch_sizes": batch_sizes,
                "traced_path": traced["traced_path"],
                "captures": traced["captures"],
            },
            NOOP,
        )

    @classmethod
    def export(cls, path: str, batch_sizes: list[int]) -> dict[str, Any]:
        """The export op."""
        out = tempfile.mkdtemp(dir=cls.tmp.name)
        args = {"model_path": path, "params": {}, "weights_path": path + ".weights.pt", "batch_sizes": batch_sizes}
        return server.dispatch("export", {**args, **TOL, "out_dir": out}, NOOP)

    def assert_names(self, result: dict[str, Any], path: str, source: str, text: str, op: str, module: str) -> None:
        """The divergence names op at the line holding text, in module, with differing values, in the message too."""
        found = result["divergence"]
        self.assertIsNotNone(found, result["message"])
        self.assertEqual(found["location"], f"{path}:{line_of(source, text)}")
        self.assertEqual(found["op"], op)
        self.assertEqual(found["module"], module)
        self.assertNotEqual(found["eager"], found["artifact"])
        self.assertGreater(found["max_abs_error"], TOL["atol"])
        self.assertIn(f"the first operator out of tolerance is {op} (node '{found['node']}'", result["message"])
        self.assertIn(f"at {found['location']}) on case {found['case']}", result["message"])


class VerifyDivergenceTest(DivergenceCase):
    """The traced graph's first operator out of tolerance."""

    def test_a_frozen_python_float_is_named_at_its_mul_after_the_operators_that_agree(self) -> None:
        path = self.write("scaled.py", FLOAT_SCALE)
        result = self.verify(path, [1, 7])
        self.assertEqual(result["code"], codes.PYTHON_VALUE_CAPTURE)
        self.assert_names(result, path, FLOAT_SCALE, "h = h * scale", "aten::mul", "")
        self.assertGreaterEqual(result["divergence"]["compared"], 2)  # linear and relu agree

    def test_a_value_frozen_deep_inside_a_resnet_block_names_that_block(self) -> None:
        path = self.write("convnet.py", CONVNET)
        result = self.verify(path, [1, 7])
        self.assertIn(result["code"], (codes.PYTHON_VALUE_CAPTURE, codes.CONTROL_FLOW_DIVERGENCE))
        self.assert_names(result, path, CONVNET, "out = out + float(x.mean())", "aten::add", "layer2.1")
        self.assertGreater(result["divergence"]["compared"], 10)  # the stem, layer1 and the block's convolutions

    def test_in_place_ops_tuple_outputs_and_integer_tensors_find_the_frozen_add(self) -> None:
        path = self.write("tuple.py", TUPLE)
        result = self.verify(path, [1, 7])
        self.assert_names(result, path, TUPLE, "h += float(x.max())", "aten::add_", "")

    def test_a_passing_trace_has_no_divergence_key(self) -> None:
        with open(SEED_MODEL, encoding="utf-8") as f:
            result = self.verify(self.write("seed.py", f.read()), [1, 7])
        self.assertTrue(result["passed"], result["message"])
        self.assertNotIn("divergence", result)

    def test_the_pairing_never_names_an_operator_whose_value_eager_computed(self) -> None:
        # Two graph ops paired the wrong way round still agree: each equals an eager value of its shape.
        a, b = torch.ones(3), torch.full((3,), 2.0)
        eager = localize.Eager(
            records=[
                localize.Record("x", "mul", ("", "f.py:1", "mul", 0), a),
                localize.Record("y", "mul", ("", "f.py:1", "mul", 0), b),
            ]
        )
        graph = [
            localize.Record("n1", "aten::mul", ("", "f.py:1", "mul", 0), b),
            localize.Record("n2", "aten::mul", ("", "f.py:1", "mul", 0), a),
        ]
        steps = list(localize.steps(graph, eager, TOL["atol"], TOL["rtol"]))
        self.assertTrue(all(torch.equal(s.eager, s.artifact) for s in steps))

    def test_op_names_of_every_level_meet(self) -> None:
        for name in ("aten::_convolution", "conv2d", "aten.conv2d.default"):
            self.assertEqual(localize.canonical(name), "conv")
        for name in ("__mul__", "__rmul__", "aten::mul", "aten.mul.Tensor", "mul"):
            self.assertEqual(localize.canonical(name), "mul")
        self.assertEqual(localize.canonical("aten::relu_"), localize.canonical("relu_"))
        self.assertEqual(localize.canonical("__truediv__"), localize.canonical("aten::div"))


# On torch 1.13 this class derives from object: unittest collects only the verify tests there (export needs 2.x).
Torch2Case: Any = DivergenceCase if HAS_EXPORT else object


class ExportDivergenceTest(Torch2Case):
    """The exported program's first operator out of tolerance."""

    def test_a_constant_export_baked_in_is_named_at_its_mul(self) -> None:
        path = self.write("eager-only.py", EAGER_ONLY)
        result = self.export(path, [1, 7])
        self.assertEqual(result["code"], codes.CONTROL_FLOW_DIVERGENCE)
        self.assert_names(result, path, EAGER_ONLY, "h = h * gain", "aten.mul.Tensor", "")
        self.assertGreaterEqual(result["divergence"]["compared"], 2)  # linear and tanh agree

    def test_a_value_frozen_in_a_resnet_block_is_named_in_the_exported_program(self) -> None:
        source = CONVNET.replace("float(x.mean())", "(3.0 if torch.compiler.is_compiling() else 2.0)")
        path = self.write("convnet-export.py", source)
        result = self.export(path, [1, 7])
        self.assertEqual(result["code"], codes.CONTROL_FLOW_DIVERGENCE)
        self.assert_names(result, path, source, "out = out + (3.0 if", "aten.add.Tensor", "layer2.1")

    def test_a_passing_export_has_no_divergence_key(self) -> None:
        seed = f"""
with open({SEED_MODEL!r}, encoding="utf-8") as seed:
    exec(compile(seed.read(), {SEED_MODEL!r}, "exec"))

def example_inputs(params):
    return (dataset(params, "validation")[0][:4],)
"""
        started = time.perf_counter()
        result = self.export(self.write("seed.py", seed), [1, 7])
        self.assertTrue(result["passed"], result["message"])
        self.assertNotIn("divergence", result)
        self.assertLess(time.perf_counter() - started, 60)


if __name__ == "__main__":
    unittest.main()
