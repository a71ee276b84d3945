"""The value-dependence analysis (ttd_torch/dependence.py) on small models defined here, and how the gate reads
its captures. The corpus (test_tracer_corpus.py) covers whole models; these pin single behaviours."""

import unittest

import torch
from torch import nn

from ttd_torch import captures, dependence, gate, trace

HERE = __file__


def sites(model: nn.Module, *inputs: torch.Tensor):
    """(construct, source, affects_outputs) of every capture site in this file."""
    return [(s.construct, s.source, s.affects_outputs) for s in dependence.analyse(model.eval(), inputs, HERE)]


class Buffered(nn.Module):
    """Writes an input-derived value into a buffer, then reads it back as a Python number."""

    slot: torch.Tensor  # a buffer (register_buffer), which nn.Module's attribute typing cannot see

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("slot", torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.slot[0] = x.sum()
        return x * self.slot[0].item()


class FirstElement(nn.Module):
    """Branches on one element read by an integer index (torch 1.13's mode does not see that indexing)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x[0] > 0:
            return x
        return -x


class Printing(nn.Module):
    """Formats the input for a log line: torch's own code reads the values, not the user's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _ = str(x)
        return x + 1


class Raising(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no forward today")


class Attribute(nn.Module):
    """A plain tensor attribute (not a buffer): made before the analysis, so its origin is unknown."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.tensor([1.0, 2.0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.table.sum().item()


class Exiting(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise SystemExit(3)


class Parameter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(3.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * int(self.scale)


class DependenceTest(unittest.TestCase):
    def test_a_value_written_into_a_buffer_keeps_the_input_label_or_is_unknown(self) -> None:
        # torch 1.13's mode does not see slot[0] on a plain tensor: its origin is unknown there, never "constant".
        found = sites(Buffered(), torch.randn(3))
        self.assertEqual(
            found, [("item", "input", True)] if dependence.mode_sees_indexing() else [("item", "unknown", None)]
        )

    def test_an_element_read_by_an_integer_index_keeps_the_input_label(self) -> None:
        self.assertEqual(sites(FirstElement(), torch.randn(3)), [("if", "input", None)])

    def test_the_buffer_is_restored_after_the_runs(self) -> None:
        model = Buffered()
        dependence.analyse(model.eval(), (torch.ones(3),), HERE)
        self.assertEqual(model.slot.tolist(), [0.0, 0.0])

    def test_values_torch_itself_reads_are_not_the_users_captures(self) -> None:
        self.assertEqual(sites(Printing(), torch.randn(3)), [])

    def test_a_tensor_made_where_the_mode_could_not_see_is_of_unknown_origin_not_constant(self) -> None:
        self.assertEqual(sites(Attribute(), torch.randn(3)), [("item", "unknown", None)])

    def test_a_parameter_is_its_own_source(self) -> None:
        self.assertEqual(sites(Parameter(), torch.randn(3)), [("int", "parameter", None)])

    def test_a_forward_that_calls_sys_exit_does_not_end_the_analysis_caller(self) -> None:
        found, notes = trace.value_sites(Exiting(), (torch.randn(3),), HERE)
        self.assertIsNone(found)
        self.assertIn("SystemExit: 3", notes[0]["message"])

    def test_an_analysis_that_cannot_run_leaves_a_note_and_unknown_sources(self) -> None:
        found, notes = trace.value_sites(Raising(), (torch.randn(3),), HERE)
        self.assertIsNone(found)
        self.assertEqual(notes[0]["category"], "ValueDependence")
        self.assertIn("RuntimeError: no forward today", notes[0]["message"])
        warned = [{"kind": "bool", "message": "Converting a tensor to a Python boolean", "filename": HERE, "lineno": 9}]
        [capture] = captures.merge(found, warned)
        self.assertEqual((capture["source"], capture["construct"]), ("unknown", "bool"))
        # Without the analysis a capture rejects only through a diverging probe, as before it existed.
        code, _, warnings = gate.verdict(gate.Facts(cases=[], atol=1e-5, rtol=1e-4, captures=[capture]))
        self.assertIsNone(code)
        self.assertIn("harmless", warnings[0])


class CaptureVerdictTest(unittest.TestCase):
    base = {"message": "m", "filename": "/x/model.py", "lineno": 22, "kind": "number", "construct": "item"}

    def verdict(self, accept=(), **capture):
        facts = gate.Facts(
            cases=[], atol=1e-5, rtol=1e-4, captures=[{**self.base, **capture}], accept_captures=list(accept)
        )
        return gate.verdict(facts)

    def test_a_number_from_the_inputs_rejects_only_when_it_reaches_the_outputs(self) -> None:
        self.assertEqual(self.verdict(source="input", affects_outputs=True)[0], "python_value_capture")
        self.assertEqual(self.verdict(source="input", affects_outputs=None)[0], "python_value_capture")
        code, _, warnings = self.verdict(source="input", affects_outputs=False)
        self.assertIsNone(code)
        self.assertIn("left every output unchanged", warnings[0])

    def test_a_bool_from_the_inputs_always_rejects_unless_accepted(self) -> None:
        code, message, _ = self.verdict(source="input", kind="bool", construct="if", affects_outputs=None)
        self.assertEqual(code, "python_value_capture")
        self.assertIn("model.py:22 (Python boolean): a Python if on a tensor, computed from the inputs", message)
        self.assertIn("list 'model.py:22' in trace.accept_captures", message)
        code, _, warnings = self.verdict(["model.py:22"], source="input", kind="bool", construct="if")
        self.assertIsNone(code)
        self.assertIn("accepted by trace.accept_captures", warnings[0])

    def test_parameter_constant_and_shape_captures_only_warn_each_in_its_own_words(self) -> None:
        words = {
            "parameter": "computed from parameters and buffers only",
            "constant": "computed from constants only",
            "shape": "frozen to the example's shape",
        }
        for source, text in words.items():
            with self.subTest(source=source):
                code, _, warnings = self.verdict(source=source, kind="bool")
                self.assertIsNone(code)
                self.assertIn(text, warnings[0])


if __name__ == "__main__":
    unittest.main()
