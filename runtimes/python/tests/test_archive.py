"""Reproducible TorchScript archives: the same module gives the same bytes wherever ttd lives and however the
save is reached, and the archive still loads and computes the same in Python (the libtorch runner loads it in
every pipeline's parity stage)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
import unittest
import zipfile

import torch

from ttd_torch import archive

from .helpers import PYTHON, PYTHON_DIR, jit_trace

# Trace a fixed model, then save it once with archive.save and once with plain torch.jit.save.
SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from ttd_torch import archive

    def build():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                   torch.nn.Linear(8, 1)).eval()

    traced = torch.jit.trace(build(), torch.randn(4, 3))
    archive.save(traced, sys.argv[1])
    torch.jit.save(traced, sys.argv[2])
""")


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).eval()


class ArchiveTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def trace_elsewhere(self, name: str) -> tuple:
        """Copy ttd_torch and the script to their own directory and trace there, in a fresh process."""
        home = os.path.join(self.dir, name)
        shutil.copytree(os.path.join(PYTHON_DIR, "ttd_torch"), os.path.join(home, "ttd_torch"))
        script = os.path.join(home, "trace_it.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(SCRIPT)
        ours, plain = os.path.join(home, "ours.pt"), os.path.join(home, "plain.pt")
        subprocess.run(
            [PYTHON, script, ours, plain], check=True, cwd=home, timeout=120, env={**os.environ, "PYTHONPATH": home}
        )
        with open(ours, "rb") as a, open(plain, "rb") as b:
            return a.read(), b.read()

    def test_same_bytes_wherever_ttd_is_installed(self) -> None:
        ours_a, plain_a = self.trace_elsewhere("checkout-a")
        ours_b, plain_b = self.trace_elsewhere("somewhere/else/checkout-b")
        self.assertNotEqual(plain_a, plain_b, "plain torch.jit.save records the install path (the test can fail)")
        self.assertEqual(ours_a, ours_b)

    def test_same_bytes_from_any_call_stack(self) -> None:
        traced = jit_trace(model(), torch.randn(4, 3))
        paths = [os.path.join(self.dir, f"{i}.pt") for i in range(2)]
        archive.save(traced, paths[0])

        def nested(depth: int) -> None:
            if depth == 0:
                archive.save(traced, paths[1])
            else:
                nested(depth - 1)

        nested(6)
        with open(paths[0], "rb") as a, open(paths[1], "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_loads_and_computes_the_same_without_debug_records_with_aligned_data(self) -> None:
        m = model()
        x = torch.randn(5, 3)
        path = os.path.join(self.dir, "frozen.pt")
        archive.save(torch.jit.freeze(jit_trace(m, x)), path)
        with zipfile.ZipFile(path) as z:
            names = [i.filename for i in z.infolist()]
            self.assertFalse([n for n in names if n.endswith(".debug_pkl")])
            self.assertTrue(any(n.endswith("/data.pkl") for n in names))
            for info in z.infolist():
                self.assertEqual(
                    (info.header_offset + 30 + len(info.filename) + len(info.extra)) % 64, 0, info.filename
                )
        self.assertFalse(os.path.exists(path + ".partial"))
        with torch.no_grad():
            self.assertTrue(torch.equal(torch.jit.load(path)(x), m(x)))


if __name__ == "__main__":
    unittest.main()
