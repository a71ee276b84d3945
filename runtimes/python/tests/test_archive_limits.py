"""Archive expansion limits (issue 14): a zip bomb that is a working TorchScript archive is refused before torch loads
it.

The bomb comes from test/fixtures/foreign/make_zip_bomb.py, run as a separate process (torch only, not ttd): a 64 MiB
buffer of zeros, deflated to about 64 KiB, which torch.jit.load would allocate in full.
"""

import os
import subprocess
import tempfile
import unittest
import zipfile

import torch

from ttd_torch import archive_limits, checkpoint, server
from ttd_torch.archive_limits import ArchiveTooLarge, Limits
from ttd_torch.protocol import ProtocolError

from .helpers import PYTHON, REPO

BOMB_MAKER = os.path.join(REPO, "test", "fixtures", "foreign", "make_zip_bomb.py")
MIB = 1024 * 1024
NOOP = lambda data: None  # noqa: E731


def make_bomb(out_dir: str, mb: int) -> str:
    proc = subprocess.run(
        [PYTHON, "-I", BOMB_MAKER, out_dir, str(mb)], capture_output=True, text=True, timeout=120, cwd="/"
    )
    if proc.returncode != 0:
        raise AssertionError(f"{BOMB_MAKER} exited {proc.returncode}: {proc.stderr}")
    return os.path.join(out_dir, "model.pt")


class ArchiveLimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.bomb = make_bomb(os.path.join(cls.tmp.name, "bomb"), 64)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def test_the_bomb_is_real_torch_loads_it_and_allocates_the_whole_buffer(self) -> None:
        # The attack without the check: a 64 KiB file becomes a 64 MiB tensor.
        self.assertLess(os.path.getsize(self.bomb), MIB)
        module = torch.jit.load(self.bomb, map_location="cpu")
        self.assertEqual(module.big.numel() * 4, 64 * MIB)

    def test_a_bomb_past_the_ratio_is_refused_naming_the_archive_its_size_and_the_limit(self) -> None:
        with self.assertRaises(ArchiveTooLarge) as caught:
            archive_limits.check(self.bomb, "archive", Limits(max_bytes=4096 * MIB, max_entries=65536, max_ratio=100))
        size = os.path.getsize(self.bomb)
        self.assertEqual(caught.exception.code, "archive_too_large")
        self.assertIn(f"archive {self.bomb!r} ({size} bytes) expands to", caught.exception.message)
        self.assertIn("the limit is 100 times (TTD_MAX_ARCHIVE_RATIO)", caught.exception.message)

    def test_an_archive_past_the_absolute_cap_is_refused_whatever_its_ratio(self) -> None:
        stored = os.path.join(self.tmp.name, "stored.pt")
        torch.jit.save(torch.jit.script(torch.nn.Linear(512, 1024)), stored)  # 2 MiB of weights, stored as is
        archive_limits.check(stored, "archive", Limits(max_bytes=4 * MIB, max_entries=65536, max_ratio=100))
        with self.assertRaises(ArchiveTooLarge) as caught:
            archive_limits.check(stored, "traced archive", Limits(max_bytes=MIB, max_entries=65536, max_ratio=1e9))
        self.assertRegex(
            caught.exception.message,
            r"^traced archive '.*stored\.pt' \(\d+ bytes\) expands to \d+ bytes; the limit is 1048576 "
            r"bytes \(1 MiB, TTD_MAX_ARCHIVE_MB\)$",
        )

    def test_an_archive_with_too_many_entries_is_refused(self) -> None:
        many = os.path.join(self.tmp.name, "many.zip")
        with zipfile.ZipFile(many, "w") as z:
            for i in range(20):
                z.writestr(f"archive/extra/{i}", b"")
        with self.assertRaises(ArchiveTooLarge) as caught:
            archive_limits.check(many, "archive", Limits(max_bytes=MIB, max_entries=10, max_ratio=100))
        self.assertIn("has 20 entries; the limit is 10 (TTD_MAX_ARCHIVE_ENTRIES)", caught.exception.message)

    def test_limits_come_from_the_environment_the_worker_sets(self) -> None:
        self.assertEqual(archive_limits.limits({}), Limits(4096 * MIB, 65536, 100))
        self.assertEqual(
            archive_limits.limits(
                {"TTD_MAX_ARCHIVE_MB": "0.5", "TTD_MAX_ARCHIVE_ENTRIES": "7", "TTD_MAX_ARCHIVE_RATIO": "3"}
            ),
            Limits(MIB // 2, 7, 3.0),
        )
        with self.assertRaises(ProtocolError) as caught:
            archive_limits.limits({"TTD_MAX_ARCHIVE_MB": "lots"})
        self.assertEqual(caught.exception.code, "bad_request")
        self.assertIn("TTD_MAX_ARCHIVE_MB='lots'; expected a positive number", caught.exception.message)

    def test_verify_artifact_rejects_the_bomb_at_the_trace_gate_before_loading_it(self) -> None:
        out = tempfile.mkdtemp(dir=self.tmp.name)
        refs = os.path.join(os.path.dirname(self.bomb), "refs.safetensors")
        result = server.dispatch(
            "verify_artifact",
            {"artifact_path": self.bomb, "references_path": refs, "out_dir": out, "atol": 1e-5, "rtol": 1e-4},
            NOOP,
        )
        self.assertFalse(result["passed"])
        self.assertEqual(result["code"], "archive_too_large")
        self.assertIn("the limit is 100 times (TTD_MAX_ARCHIVE_RATIO)", result["message"])

    def test_a_checkpoint_bomb_is_refused_with_its_own_code_not_as_a_bad_request(self) -> None:
        with self.assertRaises(ArchiveTooLarge) as caught:
            checkpoint.read(self.bomb)
        self.assertIn("checkpoint", caught.exception.message)

    def test_a_file_that_is_not_a_zip_is_left_to_the_loader(self) -> None:
        junk = os.path.join(self.tmp.name, "junk.pt")
        with open(junk, "wb") as f:
            f.write(b"not a zip" * 1000)
        archive_limits.check(junk)  # no error here: torch.jit.load refuses it with its own message


if __name__ == "__main__":
    unittest.main()
