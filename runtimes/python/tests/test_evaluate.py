"""The evaluate op: validation loss of TorchScript archives, through the server as the orchestrator drives it."""

import os
import tempfile
import unittest

import torch

from .helpers import SEED_MODEL, responses, serve

TRAIN = {"batch_size": 32, "optimizer": "adam", "lr": 0.001, "loss": "mse", "seed": 0}


class NaNHead(torch.nn.Module):
    """Returns NaN for every row: its loss is not finite."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * float("nan")


def trained_archive(out: str, epochs: int, request_id: str) -> list:
    """Train and trace the seed MLP for some epochs into out (two request lines)."""
    return [
        {
            "id": f"train{request_id}",
            "op": "train",
            "args": {"model_path": SEED_MODEL, "params": {}, "train": {**TRAIN, "epochs": epochs}, "out_dir": out},
        },
        {
            "id": f"trace{request_id}",
            "op": "trace",
            "args": {
                "model_path": SEED_MODEL,
                "params": {},
                "weights_path": os.path.join(out, "weights.pt"),
                "out_dir": out,
            },
        },
    ]


def evaluate(request_id: str, artifacts: list, loss: str = "mse") -> dict:
    """An evaluate request line."""
    return {
        "id": request_id,
        "op": "evaluate",
        "args": {"model_path": SEED_MODEL, "params": {}, "loss": loss, "artifacts": artifacts},
    }


class EvaluateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        root = cls.tmp.name
        one, ten = os.path.join(root, "one"), os.path.join(root, "ten")
        os.mkdir(one)
        os.mkdir(ten)
        nan_path = os.path.join(root, "nan.pt")
        torch.jit.script(NaNHead()).save(nan_path)
        junk = os.path.join(root, "junk.pt")
        with open(junk, "wb") as dst:
            dst.write(b"not an archive")
        cls.one_path, cls.ten_path = os.path.join(one, "traced.pt"), os.path.join(ten, "traced.pt")
        requests = (
            trained_archive(one, 1, "1")
            + trained_archive(ten, 10, "10")
            + [
                evaluate(
                    "eval", [{"name": "one-epoch", "path": cls.one_path}, {"name": "ten-epochs", "path": cls.ten_path}]
                ),
                evaluate("nan", [{"name": "nan-head", "path": nan_path}]),
                evaluate("junk", [{"name": "ten-epochs", "path": cls.ten_path}, {"name": "broken", "path": junk}]),
                evaluate("dupe", [{"name": "a", "path": cls.one_path}, {"name": "a", "path": cls.ten_path}]),
                evaluate("loss", [{"name": "a", "path": cls.one_path}], loss="hinge"),
            ]
        )
        cls.messages, cls.stderr, cls.rc = serve(requests)
        cls.by_id = responses(cls.messages)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def test_longer_training_has_lower_validation_loss(self) -> None:
        for request_id in ("train1", "trace1", "train10", "trace10"):
            self.assertTrue(self.by_id[request_id]["ok"], self.by_id[request_id])
        result = self.by_id["eval"]["result"]
        self.assertEqual(result["rows"], 200)
        self.assertEqual([r["name"] for r in result["results"]], ["one-epoch", "ten-epochs"])
        one, ten = (r["validation_loss"] for r in result["results"])
        self.assertLess(ten, one)
        self.assertTrue(all(r["message"] is None for r in result["results"]))

    def test_validation_loss_matches_a_direct_computation(self) -> None:
        gen = torch.Generator().manual_seed(2)  # the seed model's validation split, as its dataset() builds it
        x = torch.randn(200, 3, generator=gen)
        y = x[:, 0:1] * 0.2 - x[:, 1:2] * 1.3 - x[:, 2:3] * 0.5 + torch.randn(200, 1, generator=gen)
        with torch.no_grad():
            expected = float(torch.nn.functional.mse_loss(torch.jit.load(self.ten_path).eval()(x), y))
        self.assertAlmostEqual(self.by_id["eval"]["result"]["results"][1]["validation_loss"], expected, places=6)

    def test_non_finite_loss_is_null_with_a_message(self) -> None:
        result = self.by_id["nan"]["result"]["results"][0]
        self.assertIsNone(result["validation_loss"])
        self.assertIn("'nan-head'", result["message"])
        self.assertIn("nan", result["message"])

    def test_broken_archive_is_a_model_error_naming_it(self) -> None:
        error = self.by_id["junk"]["error"]
        self.assertEqual(error["code"], "model_error")
        self.assertIn("artifact 'broken'", error["message"])
        self.assertIn("failed to load", error["message"])

    def test_bad_requests(self) -> None:
        self.assertEqual(self.by_id["dupe"]["error"]["code"], "bad_request")
        self.assertIn("args.artifacts[1].name = 'a'", self.by_id["dupe"]["error"]["message"])
        self.assertEqual(self.by_id["loss"]["error"]["code"], "bad_request")
        self.assertIn("args.loss = 'hinge'", self.by_id["loss"]["error"]["message"])
        self.assertEqual(self.rc, 0)


if __name__ == "__main__":
    unittest.main()
