"""The fork server (`python -m ttd_torch --listen`) end to end: a real zygote, forked children, Unix sockets."""

from __future__ import annotations

import json
import os
import platform
import select
import signal
import socket
import stat
import subprocess
import tempfile
import textwrap
import time
import unittest
from typing import Any, Dict, List, Optional, Tuple

import torch

from .helpers import PYTHON, PYTHON_DIR, SEED_MODEL, responses, serve
from .test_server import TRAIN

TIMEOUT = 60  # seconds any single read may take before the test fails instead of hanging

# Blocks in build_model until params.go_path exists; with params.spawn it first starts `sleep 60` (in its
# process group) and records both pids in params.pids_path, so a test can kill the group mid-request.
BLOCKING_MODEL = """
import json, os, subprocess, time
import torch

def build_model(params):
    pids = {"child": os.getpid(), "pgid": os.getpgid(0)}
    if params.get("spawn"):
        pids["sleeper"] = subprocess.Popen(["sleep", "60"]).pid
    with open(params["pids_path"] + ".tmp", "w") as dst:
        json.dump(pids, dst)
    os.rename(params["pids_path"] + ".tmp", params["pids_path"])
    deadline = time.monotonic() + 60
    while not os.path.exists(params["go_path"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return torch.nn.Linear(3, 1)

def dataset(params, split):
    return torch.ones(8, 3), torch.ones(8, 1)
"""

# Changes process-global state at import: flush-to-zero, builtins, sys.modules, the global RNG.
LEAKY_MODEL = """
import builtins, sys, types
import torch

torch.set_flush_denormal(True)
torch.manual_seed(1234)
builtins.ttd_leak_marker = "set by leaky.py"
sys.modules["ttd_leak_marker"] = types.ModuleType("ttd_leak_marker")

def build_model(params):
    return torch.nn.Linear(3, 1)

def dataset(params, split):
    return torch.ones(8, 3), torch.ones(8, 1)
"""

# Fails at import if anything of an earlier request's process state is still there; records its torch seed.
CHECKING_MODEL = """
import builtins, os, sys
import torch

leaks = []
if hasattr(builtins, "ttd_leak_marker"):
    leaks.append("builtins.ttd_leak_marker")
if "ttd_leak_marker" in sys.modules:
    leaks.append("sys.modules[ttd_leak_marker]")
if (torch.tensor([1e-323], dtype=torch.float64) * 1.0).item() == 0.0:
    leaks.append("flush_denormal")
if torch.initial_seed() == 1234:
    leaks.append("torch seed 1234")
with open(os.path.join(os.path.dirname(__file__), "seeds.txt"), "a") as dst:
    dst.write(f"{torch.initial_seed()}\\n")
earlier = [name for name in sys.modules if name.startswith("ttd_user_model_") and name != __name__]
if earlier:
    leaks.append(f"modules {earlier}")
if leaks:
    raise RuntimeError("leaked from an earlier request: " + ", ".join(leaks))

def build_model(params):
    return torch.nn.Linear(3, 1)

def dataset(params, split):
    return torch.ones(8, 3), torch.ones(8, 1)
"""

CHATTY_MODEL = """
import os, sys
import torch
print("chatty: print at import")

def build_model(params):
    print("chatty: print in build_model")
    sys.stdout.write("chatty: sys.stdout.write\\n")
    os.write(1, b"chatty: raw fd 1 write\\n")
    return torch.nn.Linear(3, 1)

def dataset(params, split):
    return torch.ones(8, 3), torch.ones(8, 1)
"""


def write_model(directory: str, name: str, source: str) -> str:
    """A model file in directory; returns its path."""
    path = os.path.join(directory, name)
    with open(path, "w") as dst:
        dst.write(textwrap.dedent(source))
    return path


def train_request(model: str, out: str, params: Optional[Dict[str, Any]] = None, request_id: str = "train"
                  ) -> Dict[str, Any]:
    """A train request line (as a dict) for a model file."""
    return {"v": 1, "id": request_id, "op": "train",
            "args": {"model_path": model, "params": params or {}, "train": TRAIN, "out_dir": out}}


HELLO = {"v": 1, "id": "hello", "op": "hello", "args": {}}


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as src:
            return src.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    """Poll predicate until it holds or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Connection:
    """A client connection: the child line first, then one request, then event lines and one response."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(path)
        self.stream = self.sock.makefile("rb")
        self.child = self.read()
        assert self.child is not None, "connection closed before the child line"

    def read(self) -> Optional[Dict[str, Any]]:
        """The next line as JSON, or None at EOF."""
        line = self.stream.readline()
        return json.loads(line) if line else None

    def send(self, request: Dict[str, Any]) -> None:
        self.sock.sendall((json.dumps(request) + "\n").encode())

    def rest(self) -> List[Dict[str, Any]]:
        """Every line until the child closes the connection."""
        lines = []
        while True:
            message = self.read()
            if message is None:
                return lines
            lines.append(message)

    def ask(self, request: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Send one request; all lines after the child line."""
        self.send(request)
        return self.rest()

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


class Zygote:
    """A `python -m ttd_torch --listen` process with stdin held open, its stderr in a file."""

    def __init__(self, path: str, wait_ready: bool = True) -> None:
        self.path = path
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([PYTHON, "-m", "ttd_torch", "--listen", path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, cwd="/",
                                     env={**os.environ, "PYTHONPATH": PYTHON_DIR})
        self.ready: Optional[Dict[str, Any]] = self.read_ready() if wait_ready else None

    def read_ready(self) -> Dict[str, Any]:
        readable, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        assert readable, f"no ready line in {TIMEOUT} s: {self.logs()}"
        line = self.proc.stdout.readline()
        assert line, f"zygote exited before its ready line: {self.logs()}"
        return json.loads(line)

    def connect(self) -> Connection:
        return Connection(self.path)

    def logs(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def close_stdin(self, timeout: float = 10) -> int:
        """Close stdin (as when the orchestrator exits) and wait for the exit code."""
        self.proc.stdin.close()
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        if self.proc.poll() is None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()


class ForkServerTest(unittest.TestCase):
    """Requests against one shared zygote."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.zygote = Zygote(os.path.join(cls.dir, "zygote.sock"))

    @classmethod
    def tearDownClass(cls) -> None:
        cls.zygote.cleanup()
        cls.tmp.cleanup()

    def out_dir(self, name: str) -> str:
        path = os.path.join(self.dir, name)
        os.mkdir(path)
        return path

    def hello(self) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
        conn = self.zygote.connect()
        try:
            return conn.child, conn.ask(HELLO)
        finally:
            conn.close()

    def test_ready_line(self) -> None:
        ready = self.zygote.ready
        self.assertEqual(ready, {"v": 1, "ready": True, "pid": self.zygote.proc.pid,
                                 "torch_version": torch.__version__, "python_version": platform.python_version()})
        mode = os.stat(self.zygote.path).st_mode
        self.assertTrue(stat.S_ISSOCK(mode))
        self.assertEqual(stat.S_IMODE(mode), 0o600)

    def test_hello_over_a_connection(self) -> None:
        child, lines = self.hello()
        self.assertEqual(sorted(child), ["child", "pid", "v"])
        self.assertEqual((child["v"], child["child"]), (1, True))
        self.assertNotEqual(child["pid"], self.zygote.proc.pid)
        self.assertEqual(len(lines), 1, lines)  # one response, then the child closes the connection
        self.assertEqual(lines[0]["id"], "hello")
        self.assertTrue(lines[0]["ok"], lines)
        self.assertEqual(lines[0]["result"], {"protocol": 1, "torch_version": torch.__version__,
                                              "python_version": platform.python_version()})

    def test_each_connection_gets_a_fresh_child_in_its_own_process_group(self) -> None:
        first, second = self.hello()[0]["pid"], self.hello()[0]["pid"]
        self.assertNotEqual(first, second)
        out = self.out_dir("pgid")
        model = write_model(out, "blocking.py", BLOCKING_MODEL)
        params = {"pids_path": os.path.join(out, "pids.json"), "go_path": os.path.join(out, "go")}
        conn = self.zygote.connect()
        try:
            conn.send(train_request(model, out, params))
            self.assertTrue(wait_until(lambda: os.path.exists(params["pids_path"])))
            with open(params["pids_path"]) as src:
                pids = json.load(src)
            self.assertEqual(pids, {"child": conn.child["pid"], "pgid": conn.child["pid"]})
            open(params["go_path"], "w").close()
            self.assertTrue(conn.rest()[-1]["ok"])
        finally:
            conn.close()

    def test_concurrent_connections_are_served_by_separate_children(self) -> None:
        out = self.out_dir("concurrent")
        model = write_model(out, "blocking.py", BLOCKING_MODEL)
        params = {"pids_path": os.path.join(out, "pids.json"), "go_path": os.path.join(out, "go")}
        slow, fast = self.zygote.connect(), self.zygote.connect()
        try:
            self.assertNotEqual(slow.child["pid"], fast.child["pid"])
            slow.send(train_request(model, out, params))
            self.assertTrue(wait_until(lambda: os.path.exists(params["pids_path"])))
            fast_lines = fast.ask(HELLO)  # answered while the other child is still inside build_model
            self.assertTrue(fast_lines[-1]["ok"], fast_lines)
            self.assertFalse(os.path.exists(params["go_path"]))
            open(params["go_path"], "w").close()
            slow_lines = slow.rest()
            self.assertEqual(slow_lines[-1]["id"], "train")
            self.assertTrue(slow_lines[-1]["ok"], slow_lines)
        finally:
            slow.close()
            fast.close()

    def test_train_streams_progress_events_and_matches_the_stdio_server(self) -> None:
        out = self.out_dir("train")
        conn = self.zygote.connect()
        try:
            lines = conn.ask(train_request(SEED_MODEL, out))
        finally:
            conn.close()
        events, response = lines[:-1], lines[-1]
        self.assertTrue(response["ok"], response)
        result = response["result"]
        self.assertEqual((result["status"], result["epochs_completed"]), ("ok", 1))
        self.assertEqual([e["event"] for e in events], ["progress"])
        self.assertEqual(events[0]["id"], "train")
        self.assertEqual(events[0]["data"], {"epoch": 1, "epochs": 1, "loss": result["losses"][0],
                                             "checkpoint_path": os.path.join(out, "checkpoint-1.pt")})
        self.assertTrue(os.path.isfile(os.path.join(out, "weights.pt")))
        # a forked child starts from the same RNG and thread state as a fresh process: same losses
        with tempfile.TemporaryDirectory() as fresh:
            stdio = responses(serve([train_request(SEED_MODEL, fresh)])[0])["train"]
        self.assertEqual(result["losses"], stdio["result"]["losses"])

    def test_user_output_never_reaches_the_socket(self) -> None:
        out = self.out_dir("prints")
        model = write_model(out, "chatty.py", CHATTY_MODEL)
        conn = self.zygote.connect()
        try:
            conn.send(train_request(model, out))
            raw = conn.stream.read()  # every byte after the child line, all JSON lines
        finally:
            conn.close()
        self.assertNotIn(b"chatty:", raw)
        lines = [json.loads(line) for line in raw.decode().splitlines()]
        self.assertTrue(lines[-1]["ok"], lines)
        self.assertTrue(wait_until(lambda: "chatty: raw fd 1 write" in self.zygote.logs()))
        logs = self.zygote.logs()
        for text in ("print at import", "print in build_model", "sys.stdout.write"):
            self.assertIn(f"chatty: {text}", logs)

    def test_process_state_does_not_leak_between_requests(self) -> None:
        out = self.out_dir("leak")
        leaky, checking = write_model(out, "leaky.py", LEAKY_MODEL), write_model(out, "checking.py", CHECKING_MODEL)
        for model in (leaky, checking, leaky, checking):
            with self.subTest(model=os.path.basename(model)):
                conn = self.zygote.connect()
                try:
                    response = conn.ask(train_request(model, out))[-1]
                finally:
                    conn.close()
                self.assertTrue(response["ok"], response)
        with open(os.path.join(out, "seeds.txt")) as src:
            seeds = src.read().split()
        self.assertEqual(len(set(seeds)), 2, seeds)  # each child draws a fresh torch seed, as a new process does
        # the check works: in one stdio server process the same two requests do leak
        error = responses(serve([train_request(leaky, out, request_id="leaky"),
                                 train_request(checking, out, request_id="checking")])[0])["checking"]["error"]
        self.assertEqual(error["code"], "model_error")
        for leak in ("builtins.ttd_leak_marker", "sys.modules[ttd_leak_marker]", "modules ['ttd_user_model_0']"):
            self.assertIn(leak, error["message"])
        if platform.machine() in ("x86_64", "AMD64"):  # where set_flush_denormal is supported
            self.assertIn("flush_denormal", error["message"])

    def test_killed_process_group_closes_the_connection_and_the_zygote_serves_on(self) -> None:
        out = self.out_dir("killed")
        model = write_model(out, "blocking.py", BLOCKING_MODEL)
        params = {"pids_path": os.path.join(out, "pids.json"), "go_path": os.path.join(out, "go"), "spawn": True}
        conn = self.zygote.connect()
        try:
            conn.send(train_request(model, out, params))
            self.assertTrue(wait_until(lambda: os.path.exists(params["pids_path"])))
            with open(params["pids_path"]) as src:
                pids = json.load(src)
            os.killpg(conn.child["pid"], signal.SIGKILL)  # what the orchestrator does to cancel
            self.assertEqual(conn.rest(), [])  # EOF without a response
        finally:
            conn.close()
        self.assertTrue(wait_until(lambda: not alive(pids["child"]) and not alive(pids["sleeper"])))
        child, lines = self.hello()
        self.assertTrue(lines[-1]["ok"], lines)
        self.assertEqual(self.zygote.proc.poll(), None)

    def test_peer_closing_early_or_sending_garbage(self) -> None:
        conn = self.zygote.connect()
        pid = conn.child["pid"]
        conn.close()  # no request at all: the child just exits
        self.assertTrue(wait_until(lambda: not alive(pid)))
        conn = self.zygote.connect()
        try:
            lines = conn.ask({"v": 1, "id": "x", "op": "no_such_op", "args": {}})
            conn2 = self.zygote.connect()
            conn2.sock.sendall(b"not json\n")
            lines2 = conn2.rest()
            conn2.close()
        finally:
            conn.close()
        self.assertEqual(lines[-1]["error"]["code"], "bad_request")
        self.assertEqual((lines2[-1]["id"], lines2[-1]["error"]["code"]), ("", "bad_request"))
        self.assertTrue(self.hello()[1][-1]["ok"])


class LifecycleTest(unittest.TestCase):
    """Starting on an occupied path, and stopping: stdin EOF and SIGTERM."""

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.path = os.path.join(self.dir, "zygote.sock")
        self.zygotes: List[Zygote] = []

    def tearDown(self) -> None:
        for zygote in self.zygotes:
            zygote.cleanup()
        self.tmp.cleanup()

    def start(self, wait_ready: bool = True) -> Zygote:
        zygote = Zygote(self.path, wait_ready)
        self.zygotes.append(zygote)
        return zygote

    def start_blocked_request(self, zygote: Zygote) -> Tuple[Connection, Dict[str, int]]:
        """A connection whose child sits in build_model with a `sleep 60` in its process group."""
        model = write_model(self.dir, "blocking.py", BLOCKING_MODEL)
        params = {"pids_path": os.path.join(self.dir, "pids.json"), "go_path": os.path.join(self.dir, "go"),
                  "spawn": True}
        conn = zygote.connect()
        conn.send(train_request(model, self.dir, params))
        self.assertTrue(wait_until(lambda: os.path.exists(params["pids_path"])))
        with open(params["pids_path"]) as src:
            return conn, json.load(src)

    def assert_stopped_cleanly(self, zygote: Zygote, rc: int, conn: Connection, pids: Dict[str, int]) -> None:
        self.assertEqual(rc, 0, zygote.logs())
        self.assertFalse(alive(pids["child"]))  # reaped by the zygote before it exited
        self.assertTrue(wait_until(lambda: not alive(pids["sleeper"])))  # the whole process group was killed
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(conn.rest(), [])
        self.assertEqual(zygote.proc.stdout.read(), b"")  # nothing after the ready line
        conn.close()

    def test_stdin_eof_kills_children_and_removes_the_socket(self) -> None:
        zygote = self.start()
        conn, pids = self.start_blocked_request(zygote)
        started = time.monotonic()
        rc = zygote.close_stdin(timeout=10)
        self.assertLess(time.monotonic() - started, 5)
        self.assert_stopped_cleanly(zygote, rc, conn, pids)

    def test_sigterm_stops_like_stdin_eof(self) -> None:
        zygote = self.start()
        conn, pids = self.start_blocked_request(zygote)
        zygote.proc.send_signal(signal.SIGTERM)
        self.assert_stopped_cleanly(zygote, zygote.proc.wait(10), conn, pids)

    def test_stale_socket_file_is_replaced(self) -> None:
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.path)
        stale.close()  # the file stays behind, as after a crash
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.path).st_mode))
        zygote = self.start()
        conn = zygote.connect()
        try:
            self.assertTrue(conn.ask(HELLO)[-1]["ok"])
        finally:
            conn.close()
        self.assertEqual(zygote.close_stdin(), 0)
        self.assertFalse(os.path.exists(self.path))

    def test_path_that_is_not_a_socket_exits_2(self) -> None:
        with open(self.path, "w") as dst:
            dst.write("precious")
        zygote = self.start(wait_ready=False)
        self.assertEqual(zygote.proc.wait(TIMEOUT), 2)
        self.assertIn(self.path, zygote.logs())
        self.assertIn("not a socket", zygote.logs())
        self.assertEqual(zygote.proc.stdout.read(), b"")
        with open(self.path) as src:
            self.assertEqual(src.read(), "precious")

    def test_relative_path_exits_2(self) -> None:
        zygote = Zygote("relative.sock", wait_ready=False)
        self.zygotes.append(zygote)
        self.assertEqual(zygote.proc.wait(TIMEOUT), 2)
        self.assertIn("relative.sock", zygote.logs())


if __name__ == "__main__":
    unittest.main()
