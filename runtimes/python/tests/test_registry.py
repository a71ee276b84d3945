"""The op registry and what server.dispatch does before an op runs: contract defaults and the generic checks of
paths, directories and devices (in process, against the committed contract.json)."""

import os
import tempfile
import unittest
from typing import Any

from ttd_torch import contract, protocol, semantic_checks, server
from ttd_torch.protocol import ProtocolError

from .helpers import SEED_MODEL

NOOP = lambda data: None  # noqa: E731


def refusal(op: str, args: dict[str, Any]) -> ProtocolError:
    """The error server.dispatch raises for a request that must not reach its op (fails the test otherwise)."""
    try:
        server.dispatch(op, args, NOOP)
    except ProtocolError as exc:
        return exc
    raise AssertionError(f"{op} {args!r} was not refused")


class RegistryTest(unittest.TestCase):
    def test_every_op_in_the_contract_has_one_registered_handler_and_no_other_is_registered(self) -> None:
        found = contract.load(contract.CONTRACT_PATH)
        assert found is not None
        self.assertEqual(sorted(protocol.OPS), sorted(found.ops))

    def test_a_handler_of_args_alone_is_adapted_and_a_second_registration_is_refused(self) -> None:
        name = "test_registry_op"
        try:

            @protocol.op(name)
            def echo(args: dict[str, Any]) -> dict[str, Any]:
                """Return args."""
                return args

            self.assertEqual(protocol.OPS[name]({"a": 1}, NOOP), {"a": 1})
            self.assertEqual(echo({"b": 2}), {"b": 2})  # the function itself is returned unchanged
            with self.assertRaises(RuntimeError) as caught:
                protocol.op(name)(echo)
            self.assertIn(f"op {name!r} is registered twice", str(caught.exception))
        finally:
            protocol.OPS.pop(name, None)

    def test_an_unknown_op_is_a_bad_request_naming_the_registered_ones(self) -> None:
        exc = refusal("nope", {})
        self.assertEqual(exc.code, "bad_request")
        self.assertIn(
            "request.op = 'nope'; expected one of ['compile', 'evaluate', 'export', 'fusion', 'hello'", exc.message
        )


class DefaultsTest(unittest.TestCase):
    def test_absent_arguments_get_the_contract_defaults_as_fresh_copies(self) -> None:
        first = contract.with_defaults("verify", {"atol": 0})
        self.assertEqual(
            first, {"atol": 0, "captures": [], "accept_captures": [], "tracer_warnings": [], "target_device": "cpu"}
        )
        first["captures"].append("x")
        self.assertEqual(contract.with_defaults("verify", {})["captures"], [])
        self.assertEqual(contract.with_defaults("verify", {"target_device": "cuda"})["target_device"], "cuda")
        self.assertEqual(contract.with_defaults("trace", {})["mode"], "trace")
        self.assertNotIn("model_path", contract.with_defaults("optimize", {}))  # optional without a default


class PathRuleTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.evaluate = {"model_path": SEED_MODEL, "params": {}, "artifacts": [{"name": "a", "path": SEED_MODEL}]}
        self.artifact = {
            "artifact_path": SEED_MODEL,
            "references_path": SEED_MODEL,
            "atol": 0,
            "rtol": 0,
            "out_dir": self.dir,
        }

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def assert_refused(self, op: str, args: dict[str, Any], message: str) -> None:
        exc = refusal(op, args)
        self.assertEqual((exc.code, exc.message), ("bad_request", message))

    def test_a_path_argument_must_be_absolute_and_an_existing_file_at_any_depth(self) -> None:
        self.assert_refused(
            "evaluate",
            {**self.evaluate, "model_path": "model.py"},
            "args.model_path = 'model.py'; expected an absolute path",
        )
        self.assert_refused(
            "evaluate",
            {**self.evaluate, "model_path": self.dir},
            f"args.model_path = {self.dir!r}; expected an existing file",
        )
        missing = os.path.join(self.dir, "none.pt")
        artifacts = [{"name": "a", "path": SEED_MODEL}, {"name": "b", "path": missing}]
        self.assert_refused(
            "evaluate",
            {**self.evaluate, "artifacts": artifacts},
            f"args.artifacts[1].path = {missing!r}; expected an existing file",
        )

    def test_a_dir_argument_must_be_an_existing_directory(self) -> None:
        self.assert_refused(
            "verify_artifact",
            {**self.artifact, "out_dir": SEED_MODEL},
            f"args.out_dir = {SEED_MODEL!r}; expected an existing directory",
        )
        self.assert_refused(
            "verify_artifact", {**self.artifact, "out_dir": "out"}, "args.out_dir = 'out'; expected an absolute path"
        )

    def test_a_device_argument_must_be_a_device_torch_accepts(self) -> None:
        exc = refusal("verify_artifact", {**self.artifact, "target_device": "tpu"})
        self.assertEqual(exc.code, "bad_request")
        self.assertIn("args.target_device = 'tpu'; expected a torch device such as 'cpu' or 'cuda' (", exc.message)

    def test_keys_of_free_form_params_are_the_users_and_are_not_checked(self) -> None:
        schema = contract.op_schema("evaluate", "args")
        args = {**self.evaluate, "params": {"data_path": "relative.csv", "log_dir": "x", "device": "tpu"}}
        semantic_checks.walk(contract.Validator(schema), schema, args, "args")  # raises nothing

    def test_the_contract_is_checked_before_paths(self) -> None:
        self.assert_refused(
            "evaluate",
            {**self.evaluate, "model_path": "", "artifacts": []},
            "args.model_path = ''; expected a string of at least 1 characters",
        )

    def test_names_say_what_a_string_is(self) -> None:
        kinds = {
            key: semantic_checks.kind_of(key)
            for key in ("path", "model_path", "out_dir", "cache_dir", "device", "target_device", "mode", "paths")
        }
        self.assertEqual(
            kinds,
            {
                "path": "file",
                "model_path": "file",
                "out_dir": "dir",
                "cache_dir": "dir",
                "device": "device",
                "target_device": "device",
                "mode": None,
                "paths": None,
            },
        )


if __name__ == "__main__":
    unittest.main()
