"""The op contract: the JSON Schema validator on schemas of the shapes zod 4 emits, and contract.json checked by
the stdio server and the fork server (pointed at a test contract through $TTD_TORCH_CONTRACT)."""

import json
import os
import tempfile
import unittest
from typing import Any
from unittest import mock

import ttd_torch
from ttd_torch import contract, server
from ttd_torch.contract import Invalid, SchemaError, validate
from ttd_torch.protocol import Writer

from .helpers import responses, serve
from .test_zygote import SocketDirTest, Zygote

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"
POSITIVE_INT = {"type": "integer", "exclusiveMinimum": 0, "maximum": 9007199254740991}

# z.strictObject({name: z.string().min(1), mode: z.enum(["trace", "script"]).optional(),
#   code: z.string().nullable(), target: z.object({device: z.string().regex(/^cpu|cuda$/)}).nullable(),
#   batch_sizes: z.array(z.int().positive()), params: z.record(z.string(), z.unknown()), tol: z.number().min(0)})
OBJECT = {
    "$schema": SCHEMA_URI,
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "mode": {"type": "string", "enum": ["trace", "script"]},
        "code": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "target": {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"device": {"type": "string", "pattern": "^(cpu|cuda)$"}},
                    "required": ["device"],
                    "additionalProperties": False,
                },
                {"type": "null"},
            ]
        },
        "batch_sizes": {"minItems": 0, "type": "array", "items": POSITIVE_INT},
        "params": {"type": "object", "propertyNames": {"type": "string"}, "additionalProperties": {}},
        "tol": {"type": "number", "minimum": 0, "description": "atol"},
    },
    "required": ["name", "code", "target", "batch_sizes", "params", "tol"],
    "additionalProperties": False,
}
GOOD = {"name": "seed", "code": None, "target": {"device": "cpu"}, "batch_sizes": [], "params": {"k": [1]}, "tol": 0}

# A recursive schema through $defs, as zod emits for a getter that refers to its own schema.
TREE = {
    "$schema": SCHEMA_URI,
    "$ref": "#/$defs/__schema0",
    "$defs": {
        "__schema0": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/__schema0"}},
            },
            "required": ["name"],
            "additionalProperties": False,
        }
    },
}

# z.discriminatedUnion("status", [...]) and z.tuple([z.string(), z.number()])
RESULT = {
    "oneOf": [
        {
            "type": "object",
            "properties": {"status": {"type": "string", "const": "ok"}, "weights_path": {"type": "string"}},
            "required": ["status", "weights_path"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"status": {"type": "string", "const": "rejected"}, "code": {"type": "string"}},
            "required": ["status", "code"],
            "additionalProperties": False,
        },
    ]
}
TUPLE = {
    "type": "array",
    "prefixItems": [{"type": "string"}, {"type": "number"}],
    "items": False,
    "minItems": 2,
    "maxItems": 2,
}


def message(schema: Any, value: Any, path: str = "args") -> str:
    """The message validate raises for value (fails the test when value passes)."""
    try:
        validate(schema, value, path)
    except Invalid as exc:
        return exc.message()
    raise AssertionError(f"{value!r} passed {schema!r}")


def with_(**changes: Any) -> dict[str, Any]:
    """GOOD with some fields replaced."""
    return {**GOOD, **changes}


class ValidatorTest(unittest.TestCase):
    def test_an_object_with_required_fields_passes_and_names_what_is_missing(self) -> None:
        validate(OBJECT, GOOD)
        validate(OBJECT, with_(mode="script", batch_sizes=[1, 7], tol=1e-5))
        without = {k: v for k, v in GOOD.items() if k != "name"}
        self.assertEqual(message(OBJECT, without), "args.name is missing; expected a string")

    def test_additional_properties_false_names_the_unknown_key(self) -> None:
        self.assertEqual(
            message(OBJECT, with_(nmae="x")),
            "args.nmae = 'x'; expected no such key (the keys allowed in args: name, mode, code, "
            "target, batch_sizes, params, tol)",
        )

    def test_an_enum_lists_its_options(self) -> None:
        self.assertEqual(message(OBJECT, with_(mode="jit")), "args.mode = 'jit'; expected one of ['trace', 'script']")

    def test_a_nullable_takes_null_or_its_type(self) -> None:
        validate(OBJECT, with_(code="x"))
        self.assertEqual(message(OBJECT, with_(code=3)), "args.code = 3; expected a string or null")
        self.assertEqual(message(OBJECT, with_(target=[])), "args.target = []; expected an object or null")

    def test_a_nested_object_reports_the_inner_path(self) -> None:
        self.assertEqual(
            message(OBJECT, with_(target={"device": "tpu"})),
            "args.target.device = 'tpu'; expected a string matching /^(cpu|cuda)$/",
        )
        self.assertEqual(message(OBJECT, with_(target={})), "args.target.device is missing; expected a string")

    def test_an_array_of_positive_ints_may_be_empty(self) -> None:
        validate(OBJECT, with_(batch_sizes=[]))
        validate(OBJECT, with_(batch_sizes=[1, 3.0]))  # 3.0 is an integer in JSON Schema
        self.assertEqual(
            message(OBJECT, with_(batch_sizes=[1, -3])), "args.batch_sizes[1] = -3; expected an integer > 0"
        )
        self.assertEqual(
            message(OBJECT, with_(batch_sizes=[True])), "args.batch_sizes[0] = True; expected an integer > 0"
        )
        self.assertEqual(
            message(OBJECT, with_(batch_sizes=[1.5])), "args.batch_sizes[0] = 1.5; expected an integer > 0"
        )
        self.assertEqual(message(OBJECT, with_(batch_sizes=7)), "args.batch_sizes = 7; expected an array")

    def test_numbers_exclude_booleans_and_non_finite_floats(self) -> None:
        self.assertEqual(message(OBJECT, with_(tol=False)), "args.tol = False; expected a number >= 0")
        self.assertEqual(message(OBJECT, with_(tol=-0.5)), "args.tol = -0.5; expected a number >= 0")
        self.assertEqual(message(OBJECT, with_(tol=float("inf"))), "args.tol = inf; expected a number >= 0")

    def test_strings_have_lengths_and_records_take_any_values(self) -> None:
        self.assertEqual(message(OBJECT, with_(name="")), "args.name = ''; expected a string of at least 1 characters")
        validate(OBJECT, with_(params={"a": {"b": None}, "c": 1.5}))

    def test_a_ref_resolves_in_defs_and_may_recurse(self) -> None:
        validate(TREE, {"name": "a", "children": [{"name": "b", "children": []}]})
        self.assertEqual(
            message(TREE, {"name": "a", "children": [{"name": "b", "children": [{"name": 3}]}]}),
            "args.children[0].children[0].name = 3; expected a string",
        )
        definitions = {"definitions": {"n": {"type": "integer"}}, "$ref": "#/definitions/n"}
        self.assertEqual(message(definitions, "x", "result"), "result = 'x'; expected an integer")

    def test_a_discriminated_union_reports_the_branch_its_discriminator_picks(self) -> None:
        validate(RESULT, {"status": "ok", "weights_path": "/w.pt"}, "result")
        self.assertEqual(message(RESULT, {"status": "rejected"}, "result"), "result.code is missing; expected a string")
        self.assertEqual(
            message(RESULT, {"status": "lost"}, "result"), "result.status = 'lost'; expected 'ok' or 'rejected'"
        )
        both = {"oneOf": [{"type": "number"}, {"type": "integer"}]}
        self.assertIn("exactly one", message(both, 1))

    def test_a_tuple_has_prefix_items_and_no_more(self) -> None:
        validate(TUPLE, ["a", 1])
        self.assertEqual(message(TUPLE, ["a", "b"]), "args[1] = 'b'; expected a number")
        self.assertEqual(message(TUPLE, ["a", 1, 2]), "args = ['a', 1, 2]; expected an array of at most 2 items")

    def test_all_of_and_exclusive_maximum(self) -> None:
        schema = {"allOf": [{"type": "number"}, {"exclusiveMaximum": 1}]}
        validate(schema, 0.5)
        self.assertEqual(message(schema, 1), "args = 1; expected a number < 1")

    def test_an_unknown_keyword_raises_instead_of_passing(self) -> None:
        for schema in (
            {"type": "string", "format": "email"},
            {"not": {}},
            {"type": "object", "properties": {"a": {"type": "string", "contentEncoding": "base64"}}},
        ):
            with self.subTest(schema=schema):
                with self.assertRaises(SchemaError):
                    contract.check_schema(schema)
        with self.assertRaises(SchemaError) as caught:
            validate({"type": "string", "format": "email"}, "a@b.c")
        self.assertIn("format", str(caught.exception))

    def test_malformed_schemas_raise(self) -> None:
        for schema in (
            {"type": "text"},
            {"$ref": "http://example.com/s.json"},
            {"$ref": "#/$defs/none"},
            {"minItems": -1},
            {"required": "a"},
            {"pattern": "("},
            {"anyOf": []},
        ):
            with self.subTest(schema=schema), self.assertRaises(SchemaError):
                contract.check_schema(schema)


HELLO_CONTRACT = {
    "format": contract.FORMAT,
    "ops": {
        "hello": {
            "args": {"$schema": SCHEMA_URI, "type": "object", "properties": {}, "additionalProperties": False},
            # torch_version can never match: every hello result breaks this contract
            "result": {
                "type": "object",
                "properties": {"torch_version": {"type": "string", "pattern": "^never$"}},
                "required": ["torch_version"],
            },
        },
        "verify": {
            "args": {
                "type": "object",
                "properties": {"batch_sizes": {"type": "array", "items": POSITIVE_INT}},
                "required": ["batch_sizes"],
            }
        },
    },
}
REQUESTS = [
    {"id": "bad_args", "op": "hello", "args": {"x": 1}},
    {"id": "bad_result", "op": "hello", "args": {}},
    {"id": "verify", "op": "verify", "args": {"batch_sizes": [1, -3]}},
    {"id": "uncovered", "op": "optimize", "args": {}},
]


def assert_checked(test: unittest.TestCase, by_id: dict[str, dict[str, Any]]) -> None:
    """The REQUESTS' responses under HELLO_CONTRACT."""
    test.assertEqual(by_id["bad_args"]["error"]["code"], "bad_request")
    test.assertEqual(
        by_id["bad_args"]["error"]["message"], "args.x = 1; expected no such key (the keys allowed in args: none)"
    )
    test.assertEqual(by_id["bad_result"]["error"]["code"], "internal")
    test.assertIn(
        "op 'hello' returned a result that breaks the contract: result.torch_version = ",
        by_id["bad_result"]["error"]["message"],
    )
    test.assertIn("expected a string matching /^never$/", by_id["bad_result"]["error"]["message"])
    test.assertEqual(by_id["verify"]["error"]["message"], "args.batch_sizes[1] = -3; expected an integer > 0")
    # optimize is not in this contract: it does not run unchecked
    test.assertEqual(by_id["uncovered"]["error"]["code"], "internal")
    test.assertIn("op 'optimize' has no args schema in ", by_id["uncovered"]["error"]["message"])


class ContractFileTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.tmp.name, "contract.json")
        with open(self.path, "w") as dst:
            json.dump(HELLO_CONTRACT, dst)
        contract._loaded.clear()

    def tearDown(self) -> None:
        contract._loaded.clear()
        self.tmp.cleanup()

    def test_a_missing_contract_fails_every_request_as_internal(self) -> None:
        none = os.path.join(self.tmp.name, "none.json")
        self.assertIsNone(contract.load(none))
        for check in (lambda: contract.check_args("hello", {}, none), lambda: contract.check_result("hello", {}, none)):
            with self.assertRaises(server.ProtocolError) as caught:
                check()
            self.assertEqual(caught.exception.code, "internal")
            self.assertEqual(caught.exception.message, f"contract.json missing; run make setup (looked for {none})")
        with (
            mock.patch.dict(os.environ, {contract.CONTRACT_ENV: none}),
            self.assertRaises(server.ProtocolError) as caught,
        ):
            server.dispatch("hello", {}, lambda data: None)
        self.assertIn("contract.json missing; run make setup", caught.exception.message)

    def test_a_contract_of_another_format_or_with_unknown_keywords_is_an_internal_error(self) -> None:
        for document in (
            {"format": "ttd-contract/2", "ops": {}},
            {"format": contract.FORMAT, "ops": {"hello": {"args": {"type": "object", "not": {}}}}},
            {"format": contract.FORMAT, "ops": {"hello": {"argz": {}}}},
        ):
            with self.subTest(document=document):
                contract._loaded.clear()
                with open(self.path, "w") as dst:
                    json.dump(document, dst)
                with self.assertRaises(server.ProtocolError) as caught:
                    contract.check_args("hello", {}, self.path)
                self.assertEqual(caught.exception.code, "internal")
                self.assertIn("the op contract is unusable", caught.exception.message)

    def test_the_contract_is_read_once(self) -> None:
        first = contract.load(self.path)
        os.remove(self.path)
        self.assertIs(contract.load(self.path), first)

    def test_handle_checks_args_and_results_in_process(self) -> None:
        read_fd, write_fd = os.pipe()
        writer = Writer(write_fd)
        with mock.patch.dict(os.environ, {contract.CONTRACT_ENV: self.path}):
            for request in REQUESTS:
                server.handle(json.dumps({"v": 1, **request}), writer)
        writer.stream.close()
        with os.fdopen(read_fd) as src:
            assert_checked(self, responses([json.loads(line) for line in src]))

    def test_the_stdio_server_checks_the_contract(self) -> None:
        with mock.patch.dict(os.environ, {contract.CONTRACT_ENV: self.path}):
            messages, stderr, rc = serve(REQUESTS)
        self.assertEqual(rc, 0, stderr)
        assert_checked(self, responses(messages))


class EnvelopeTest(unittest.TestCase):
    """The envelope (lib/contract/protocol.ts) reaches the torch side through contract.json: its version, and the
    schemas of the lines each side writes."""

    def setUp(self) -> None:
        with open(contract.CONTRACT_PATH, encoding="utf-8") as src:
            self.protocol = json.load(src)["protocol"]

    def test_the_protocol_version_is_the_contracts(self) -> None:
        self.assertEqual(ttd_torch.PROTOCOL_VERSION, self.protocol["version"])

    def test_every_line_the_server_writes_fits_the_response_schema(self) -> None:
        requests = [
            {"id": "a", "op": "hello", "args": {}},
            {"id": "b", "op": "nope", "args": {}},
            {"id": "c", "op": "hello", "args": {"extra": 1}},
        ]
        for request in requests:
            validate(self.protocol["request"], {"v": ttd_torch.PROTOCOL_VERSION, **request}, "request")
        messages, stderr, rc = serve(requests)
        self.assertEqual(rc, 0, stderr)
        self.assertEqual([m["ok"] for m in messages], [True, False, False])
        for message in messages:
            validate(self.protocol["response"], message, "line")
        with self.assertRaises(Invalid):
            validate(self.protocol["response"], {**messages[0], "v": 2}, "line")


class ForkServerContractTest(SocketDirTest):
    def test_the_fork_server_checks_the_contract(self) -> None:
        path = os.path.join(self.dir, "contract.json")
        with open(path, "w") as dst:
            json.dump(HELLO_CONTRACT, dst)
        with mock.patch.dict(os.environ, {contract.CONTRACT_ENV: path}):
            zygote = Zygote(self.path, spares=0)
        try:
            os.remove(path)  # the zygote read it before forking: its children still check it
            lines: list[dict[str, Any]] = []
            for request in REQUESTS:
                conn = zygote.connect()
                try:
                    lines += conn.ask({"v": 1, **request})
                finally:
                    conn.close()
            assert_checked(self, responses(lines))
        finally:
            zygote.cleanup()


if __name__ == "__main__":
    unittest.main()
