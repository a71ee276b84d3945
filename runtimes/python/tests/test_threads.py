"""Threads per request: TTD_TORCH_THREADS sizes torch's thread pools in each request's process (a fork server's child,
the stdio server), so that the stages a worker runs at once share the host's cores instead of each taking all."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import unittest
from unittest import mock

from ttd_torch import threads

from .helpers import PYTHON, PYTHON_DIR, responses, serve
from .test_zygote import Zygote, train_request, write_model

# Says, from inside the request, the pool sizes torch has and what OpenMP was told.
THREADS_MODEL = """
import os, torch
def build_model(params):
    raise RuntimeError("pools: intra %d inter %d omp %s" % (torch.get_num_threads(), torch.get_num_interop_threads(),
                                                             os.environ.get("OMP_NUM_THREADS")))
def dataset(params, split):
    return torch.ones(8, 3), torch.ones(8, 1)
"""
POOLS = re.compile(r"pools: intra (\d+) inter (\d+) omp (\S+)")


def fresh_default() -> int:
    """Intra-op threads of a fresh process of this Python, told nothing."""
    env = {k: v for k, v in os.environ.items() if k not in ("TTD_TORCH_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run(
        [PYTHON, "-c", "import torch; print(torch.get_num_threads())"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return int(out.stdout)


def pools(response: dict[str, object]) -> tuple[int, int, str]:
    """The pool sizes a THREADS_MODEL request reported in its error."""
    assert response.get("ok") is False, response
    match = POOLS.search(str(response["error"]))
    assert match, response
    return int(match.group(1)), int(match.group(2)), match.group(3)


class ThreadsTest(unittest.TestCase):
    """Requests of a model file that reports its process's pools."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.model = write_model(cls.tmp.name, "threads_model.py", THREADS_MODEL)
        cls.default = fresh_default()
        cls.wanted = cls.default + 2  # different from torch's own choice on any host

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def out(self, name: str) -> str:
        return tempfile.mkdtemp(dir=self.tmp.name, prefix=name)

    def zygote_pools(self, value: str | None, requests: int, asked: object = None) -> list:
        """The pools of `requests` requests to a zygote with TTD_TORCH_THREADS=value, each asking for `asked` threads
        in its envelope (none when None)."""
        env = {"TTD_TORCH_THREADS": value} if value is not None else {}
        clean = {k: v for k, v in os.environ.items() if k not in ("TTD_TORCH_THREADS", "OMP_NUM_THREADS")}
        with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
            zygote = Zygote(os.path.join(self.tmp.name, f"zygote-{value}.sock"))
        try:
            found = []
            for i in range(requests):  # the first from a spare forked ahead, the later ones from its replacements
                conn = zygote.connect()
                try:
                    request = train_request(self.model, self.out("z"), request_id=f"r{i}")
                    if asked is not None:
                        request["threads"] = asked
                    found.append(pools(conn.ask(request)[-1]))
                finally:
                    conn.close()
            return found
        finally:
            zygote.cleanup()

    def test_fork_server_children_take_the_configured_pool_sizes(self) -> None:
        n = self.wanted
        self.assertEqual(self.zygote_pools(str(n), 3), [(n, n, "None")] * 3)

    def test_fork_server_children_keep_torch_defaults_when_told_nothing(self) -> None:
        intra, _, _ = self.zygote_pools(None, 1)[0]
        self.assertEqual(intra, self.default)
        self.assertNotEqual(intra, self.wanted)

    def test_a_request_asking_for_threads_gets_them_whatever_the_server_was_told(self) -> None:
        # The worker sizes each stage by the stages running beside it (lib/limits/capacity.ts, stageThreads).
        n = self.wanted
        self.assertEqual(self.zygote_pools("1", 2, asked=n), [(n, n, "None")] * 2)

    def test_a_request_asking_for_something_that_is_not_a_count_gets_the_configured_pools(self) -> None:
        for asked in (0, -1, "2", True, 2.5, 5000):
            self.assertEqual(self.zygote_pools("1", 1, asked=asked), [(1, 1, "None")], asked)

    def test_stdio_server_takes_the_configured_pool_sizes_for_every_request(self) -> None:
        n = self.wanted
        with mock.patch.dict(os.environ, {"TTD_TORCH_THREADS": str(n), "PYTHONPATH": PYTHON_DIR}):
            messages, stderr, code = serve(
                [train_request(self.model, self.out("s"), request_id=f"s{i}") for i in range(2)]
            )
        self.assertEqual(code, 0, stderr)
        got = responses(messages)
        self.assertEqual([pools(got[f"s{i}"])[:2] for i in range(2)], [(n, n), (n, n)])

    def test_values_that_are_not_a_count_are_ignored(self) -> None:
        for value, expected in (
            ("3", 3),
            (" 4 ", 4),
            ("0", None),
            ("-1", None),
            ("two", None),
            ("2000", None),
            ("", None),
        ):
            with mock.patch.dict(os.environ, {"TTD_TORCH_THREADS": value}):
                self.assertEqual(threads.configured(), expected, value)


if __name__ == "__main__":
    unittest.main()
