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
from typing import Any

import torch

from ttd_torch import hello
from ttd_torch import zygote as zygote_module

from .helpers import PYTHON, PYTHON_DIR, SEED_MODEL, default_sigint, responses, serve
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


def train_request(
    model: str, out: str, params: dict[str, Any] | None = None, request_id: str = "train"
) -> dict[str, Any]:
    """A train request line (as a dict) for a model file."""
    return {
        "v": 1,
        "id": request_id,
        "op": "train",
        "args": {"model_path": model, "params": params or {}, "train": TRAIN, "out_dir": out},
    }


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


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, session, ...), or None."""
    try:
        with open(f"/proc/{pid}/stat") as src:
            return src.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def live_stat(pid: int) -> list[str]:
    """proc_stat of a process the test expects to be alive."""
    fields = proc_stat(pid)
    assert fields is not None, f"process {pid} is gone"
    return fields


def stdin_target(pid: int) -> str | None:
    """What a process's fd 0 points to, or None when it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/fd/0")
    except OSError:
        return None


def live_children(pid: int) -> set[int]:
    """The pids of pid's children that are neither zombies nor gone (from /proc/*/stat)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = proc_stat(int(entry))
            if fields is not None and int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                found.add(int(entry))
    return found


def socket_inode(path: str) -> int | None:
    """The kernel inode of the listening Unix socket bound at path (from /proc/net/unix), or None."""
    with open("/proc/net/unix") as src:
        for line in src.readlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:  # __SO_ACCEPTCON
                return int(fields[6])
    return None


def open_sockets(pid: int) -> set[int]:
    """The inodes of the sockets that pid has open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


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
        child = self.read()
        assert child is not None, "connection closed before the child line"
        self.child: dict[str, Any] = child

    def read(self) -> dict[str, Any] | None:
        """The next line as JSON, or None at EOF."""
        line = self.stream.readline()
        return json.loads(line) if line else None

    def send(self, request: dict[str, Any]) -> None:
        self.sock.sendall((json.dumps(request) + "\n").encode())

    def rest(self) -> list[dict[str, Any]]:
        """Every line until the child closes the connection."""
        lines = []
        while True:
            message = self.read()
            if message is None:
                return lines
            lines.append(message)

    def ask(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """Send one request; all lines after the child line."""
        self.send(request)
        return self.rest()

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


class Zygote:
    """A `python -m ttd_torch --listen` process with stdin held open, its stderr in a file."""

    def __init__(
        self, path: str, wait_ready: bool = True, spares: int | None = None, env: dict[str, str] | None = None
    ) -> None:
        """As `python -m ttd_torch --listen path` (the default number of spares), or with spares given as
        `python -m ttd_torch.zygote --listen path --spares N`."""
        self.path = path
        self.stderr = tempfile.TemporaryFile()
        command = [PYTHON, "-m", "ttd_torch", "--listen", path]
        if spares is not None:
            command = [PYTHON, "-m", "ttd_torch.zygote", "--listen", path, "--spares", str(spares)]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd="/",
            env={**os.environ, "PYTHONPATH": PYTHON_DIR, **(env or {})},
            # A SIGINT must reach it as Python's default: a suite run in the background (make test runs the torch side
            # beside vitest) inherits SIGINT ignored, and so would every process it starts.
            preexec_fn=default_sigint,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both PIPE
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.ready: dict[str, Any] | None = self.read_ready() if wait_ready else None

    def read_ready(self) -> dict[str, Any]:
        readable, _, _ = select.select([self.stdout], [], [], TIMEOUT)
        assert readable, f"no ready line in {TIMEOUT} s: {self.logs()}"
        line = self.stdout.readline()
        assert line, f"zygote exited before its ready line: {self.logs()}"
        return json.loads(line)

    def connect(self) -> Connection:
        return Connection(self.path)

    def children(self) -> set[int]:
        return live_children(self.proc.pid)

    def wait_for_spares(self, count: int, served: set[int], timeout: float = 10.0) -> set[int]:
        """Wait until exactly count children live, each done with its setup (past setsid() and with stdin on
        /dev/null, which detach() sets after closing the zygote's fds), none of them one that was handed a
        connection (in served): the spares; returns them (fails the wait with an AssertionError)."""
        found: set[int] = set()

        def settled() -> bool:
            nonlocal found
            found = self.children()
            return (
                len(found) == count
                and not found & served
                and all(
                    int((proc_stat(pid) or [0, 0, 0])[2]) == pid and stdin_target(pid) == os.devnull for pid in found
                )
            )

        assert wait_until(settled, timeout), f"children {sorted(found)}, served {sorted(served)}: {self.logs()}"
        return found

    def logs(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def close_stdin(self, timeout: float = 10) -> int:
        """Close stdin (as when the orchestrator exits) and wait for the exit code."""
        self.stdin.close()
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        if not self.stdin.closed:
            self.stdin.close()
        if self.proc.poll() is None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stdout.close()
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

    def hello(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        conn = self.zygote.connect()
        try:
            return conn.child, conn.ask(HELLO)
        finally:
            conn.close()

    def test_ready_line(self) -> None:
        ready = self.zygote.ready
        self.assertEqual(
            ready,
            {
                "v": 1,
                "ready": True,
                "pid": self.zygote.proc.pid,
                "torch_version": torch.__version__,
                "python_version": platform.python_version(),
                "packages": hello.exporter_versions(),
            },
        )
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
        self.assertEqual(
            lines[0]["result"],
            {
                "protocol": 1,
                "torch_version": torch.__version__,
                "python_version": platform.python_version(),
                "packages": hello.exporter_versions(),
            },
        )

    def start_blocking(self, name: str, spawn: bool = False) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """Send a train request whose model blocks in build_model (after writing its pids) until told to go."""
        out = self.out_dir(name)
        model = write_model(out, "blocking.py", BLOCKING_MODEL)
        params: dict[str, Any] = {"pids_path": os.path.join(out, "pids.json"), "go_path": os.path.join(out, "go")}
        if spawn:
            params["spawn"] = True
        conn = self.zygote.connect()
        conn.send(train_request(model, out, params))
        self.assertTrue(wait_until(lambda: os.path.exists(params["pids_path"])))
        with open(params["pids_path"]) as src:
            return conn, params, json.load(src)

    def test_each_connection_gets_a_fresh_child_in_its_own_process_group(self) -> None:
        first, second = self.hello()[0]["pid"], self.hello()[0]["pid"]
        self.assertNotEqual(first, second)
        conn, params, pids = self.start_blocking("pgid")
        try:
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
        self.assertEqual(
            events[0]["data"],
            {
                "epoch": 1,
                "epochs": 1,
                "loss": result["losses"][0],
                "checkpoint_path": os.path.join(out, "checkpoint-1.pt"),
            },
        )
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
        error = responses(
            serve([train_request(leaky, out, request_id="leaky"), train_request(checking, out, request_id="checking")])[
                0
            ]
        )["checking"]["error"]
        self.assertEqual(error["code"], "model_error")
        for leak in ("builtins.ttd_leak_marker", "sys.modules[ttd_leak_marker]", "modules ['ttd_user_model_0']"):
            self.assertIn(leak, error["message"])
        if platform.machine() in ("x86_64", "AMD64"):  # where set_flush_denormal is supported
            self.assertIn("flush_denormal", error["message"])

    def test_killed_process_group_closes_the_connection_and_the_zygote_serves_on(self) -> None:
        conn, params, pids = self.start_blocking("killed", spawn=True)
        try:
            os.killpg(conn.child["pid"], signal.SIGKILL)  # what the orchestrator does to cancel
            self.assertEqual(conn.rest(), [])  # EOF without a response
        finally:
            conn.close()
        self.assertTrue(wait_until(lambda: not alive(pids["child"]) and not alive(pids["sleeper"])))
        child, lines = self.hello()
        self.assertTrue(lines[-1]["ok"], lines)
        self.assertEqual(self.zygote.proc.poll(), None)

    def test_a_model_raising_keyboard_interrupt_is_its_error_and_a_sigint_to_the_child_is_an_interrupt(self) -> None:
        out = self.out_dir("keyboard-interrupt")
        model = write_model(
            out,
            "interrupts.py",
            "import torch\ndef build_model(params):\n    raise KeyboardInterrupt\n"
            "def dataset(params, split):\n    return torch.ones(8, 3), torch.ones(8, 1)\n",
        )
        conn = self.zygote.connect()
        try:
            error = conn.ask(train_request(model, out))[-1]["error"]
        finally:
            conn.close()
        self.assertEqual(error["code"], "model_error")
        self.assertTrue(
            error["message"].startswith(
                f"the model raised KeyboardInterrupt at {model}:3 (in build_model() of {model})"
            ),
            error,
        )
        # A SIGINT that reaches the stage child mid-request is an interrupt: the child ends without an answer.
        conn, _, pids = self.start_blocking("sigint")
        try:
            os.kill(pids["child"], signal.SIGINT)
            self.assertEqual(conn.rest(), [])
        finally:
            conn.close()
        self.assertTrue(wait_until(lambda: not alive(pids["child"])))
        self.assertTrue(self.hello()[1][-1]["ok"])
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


def hello_burst(path: str, count: int) -> list[list[dict[str, Any]]]:
    """count connections made at once, each with a hello written right away (as the orchestrator does),
    then every connection's lines read to EOF: the child line first."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            socks.append(sock)
            sock.settimeout(TIMEOUT)
            sock.connect(path)  # lands in the listen backlog until a child accepts it
            sock.sendall((json.dumps(HELLO) + "\n").encode())
        answers = []
        for sock in socks:
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            answers.append([json.loads(line) for line in data.decode().splitlines()])
        return answers
    finally:
        for sock in socks:
            sock.close()


class SocketDirTest(unittest.TestCase):
    """A fresh directory per test, and the socket path in it."""

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.path = os.path.join(self.dir, "zygote.sock")

    def tearDown(self) -> None:
        self.tmp.cleanup()


class PreloadTest(SocketDirTest):
    """TTD_TORCH_PRELOAD: modules the zygote imports once for all its children."""

    def modules(self) -> str:
        """A directory of modules: one that records each import's pid, one that starts a thread at import."""
        path = os.path.join(self.dir, "modules")
        os.mkdir(path)
        with open(os.path.join(path, "ttd_preload_marker.py"), "w", encoding="utf-8") as out:
            record = os.path.join(self.dir, "imports")
            out.write(f"import os\nwith open({record!r}, 'a') as f:\n    f.write(f'{{os.getpid()}}\\n')\n")
        with open(os.path.join(path, "ttd_preload_thread.py"), "w", encoding="utf-8") as out:
            out.write("import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n")
        return path

    def start(self, preload: dict[str, Any]) -> Zygote:
        env = {"PYTHONPATH": f"{PYTHON_DIR}:{self.modules()}", "TTD_TORCH_PRELOAD": json.dumps(preload)}
        zygote = Zygote(self.path, env=env)
        self.addCleanup(zygote.cleanup)
        return zygote

    def hello(self, zygote: Zygote) -> dict[str, Any]:
        conn = zygote.connect()
        try:
            return conn.ask(HELLO)[-1]
        finally:
            conn.close()

    def test_preloaded_modules_are_imported_once_by_the_zygote_and_a_missing_one_is_skipped(self) -> None:
        zygote = self.start({"modules": ["ttd_preload_marker", "ttd_no_such_module"]})
        for _ in range(3):
            self.assertTrue(self.hello(zygote)["ok"], zygote.logs())
        with open(os.path.join(self.dir, "imports"), encoding="utf-8") as src:
            self.assertEqual(src.read().split(), [str(zygote.proc.pid)])
        self.assertIn("preloading ttd_no_such_module failed (ModuleNotFoundError", zygote.logs())

    def test_a_module_that_starts_a_thread_makes_the_zygote_start_again_without_preloading(self) -> None:
        zygote = self.start({"modules": ["ttd_preload_thread", "ttd_preload_marker"]})
        self.assertEqual(zygote.ready and zygote.ready["pid"], zygote.proc.pid)
        self.assertTrue(self.hello(zygote)["ok"], zygote.logs())
        self.assertIn(
            "preloading ttd_preload_thread started 1 thread(s); starting again without preloading", zygote.logs()
        )
        self.assertFalse(os.path.exists(os.path.join(self.dir, "imports")))  # the rest was never preloaded

    def test_distributions_stand_for_their_public_top_level_modules(self) -> None:
        targets = zygote_module.preload_modules(json.dumps({"modules": ["json"], "distributions": ["Torch"]}))
        self.assertEqual(targets[0], ("json", None))
        self.assertIn(("torch", None), targets)
        self.assertFalse([m for m, _ in targets if m.startswith("_")])
        self.assertEqual(zygote_module.preload_modules("not json"), [])
        self.assertEqual(zygote_module.preload_modules(json.dumps({"distributions": ["no-such-dist"]})), [])

    def test_a_model_files_imports_from_those_distributions_are_hints_read_without_running_it(self) -> None:
        model = os.path.join(self.dir, "model.py")
        marker = os.path.join(self.dir, "ran")
        with open(model, "w", encoding="utf-8") as out:
            out.write(
                f"open({marker!r}, 'w').close()\n"
                "import json, torch.nn\n"
                "from torch.nn import functional as F, Linear\n"
                "from torch.fx import *\n"
                "from . import sibling\n"
                "from os import system\n"
                "def build_model(params):\n"
                "    from torch.utils import data\n"
            )
        spec = {"distributions": ["torch"], "imports_of": model}
        hinted = [t for t in zygote_module.preload_modules(json.dumps(spec)) if t[1] is not None or "." in t[0]]
        self.assertEqual(
            hinted,
            [("torch.nn", None), ("torch.nn", "functional"), ("torch.nn", "Linear"), ("torch.fx", None)]
            + [("torch.utils", "data")],
        )
        self.assertFalse(os.path.exists(marker))  # parsed, never run
        # Without distributions there is nothing to hint from; an unreadable or unparsable file gives no hints.
        self.assertEqual(zygote_module.preload_modules(json.dumps({"imports_of": model})), [])
        with open(model, "w", encoding="utf-8") as out:
            out.write("def broken(:\n")
        self.assertEqual(zygote_module.imported_names(model), [])
        self.assertEqual(zygote_module.imported_names(os.path.join(self.dir, "missing.py")), [])


class SparesTest(SocketDirTest):
    """The children forked ahead: `python -m ttd_torch --listen` keeps 2 spares blocked in accept()."""

    def setUp(self) -> None:
        super().setUp()
        self.zygote = Zygote(self.path)

    def tearDown(self) -> None:
        self.zygote.cleanup()
        super().tearDown()

    def hello(self) -> int:
        """One hello over a fresh connection; the pid of the child that served it."""
        conn = self.zygote.connect()
        try:
            lines = conn.ask(HELLO)
        finally:
            conn.close()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0]["ok"], lines)
        return conn.child["pid"]

    def test_spares_are_set_up_in_their_own_sessions_and_hold_only_the_listener(self) -> None:
        spares = self.zygote.wait_for_spares(2, set())
        listener = socket_inode(self.path)
        self.assertIsNotNone(listener)
        stdout_pipe = f"pipe:[{os.fstat(self.zygote.stdout.fileno()).st_ino}]"  # the ready line's pipe
        for pid in spares:
            ppid, pgrp, session = (int(field) for field in live_stat(pid)[1:4])
            self.assertEqual((ppid, pgrp, session), (self.zygote.proc.pid, pid, pid))
            files = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            self.assertNotIn(stdout_pipe, files)
            self.assertEqual(os.readlink(f"/proc/{pid}/fd/0"), os.devnull)
            self.assertEqual(os.readlink(f"/proc/{pid}/fd/1"), os.readlink(f"/proc/{pid}/fd/2"))
            self.assertEqual(open_sockets(pid), {listener})  # waiting in accept() on the zygote's socket
        # a spare that took a connection lets go of the listener: nothing of the zygote's outlives a request
        out = os.path.join(self.dir, "out")
        os.mkdir(out)
        model = write_model(out, "blocking.py", BLOCKING_MODEL)
        params = {"pids_path": os.path.join(out, "pids.json"), "go_path": os.path.join(out, "go")}
        conn = self.zygote.connect()
        try:
            self.assertIn(conn.child["pid"], spares)  # served by a spare forked before the connection
            conn.send(train_request(model, out, params))
            self.assertTrue(wait_until(lambda: os.path.exists(params["pids_path"])))
            self.assertNotIn(listener, open_sockets(conn.child["pid"]))
            self.assertEqual(len(open_sockets(conn.child["pid"])), 1)  # its connection
            open(params["go_path"], "w").close()
            self.assertTrue(conn.rest()[-1]["ok"])
        finally:
            conn.close()

    def test_burst_of_concurrent_connections_is_served_by_distinct_children(self) -> None:
        self.zygote.wait_for_spares(2, set())
        started = time.monotonic()
        answers = hello_burst(self.path, 20)
        elapsed = time.monotonic() - started
        pids = set()
        for lines in answers:
            self.assertEqual(len(lines), 2, lines)  # the child line and the response
            self.assertEqual((lines[0]["child"], lines[1]["id"], lines[1]["ok"]), (True, "hello", True), lines)
            pids.add(lines[0]["pid"])
        self.assertEqual(len(pids), 20)
        self.assertNotIn(self.zygote.proc.pid, pids)
        self.assertLess(elapsed, 3.0, "20 connections at once should all be answered within a few seconds")
        # back to exactly 2 spares: each one that took a connection was replaced once, no more
        self.zygote.wait_for_spares(2, pids)
        self.assertEqual(self.zygote.proc.poll(), None)

    def test_killed_spare_is_replaced(self) -> None:
        spares = self.zygote.wait_for_spares(2, set())
        victim = min(spares)
        os.kill(victim, signal.SIGKILL)
        self.assertTrue(wait_until(lambda: not alive(victim)))
        now = self.zygote.wait_for_spares(2, {victim})
        replacement = (now - spares).pop()
        self.assertEqual(
            [int(f) for f in live_stat(replacement)[1:4]], [self.zygote.proc.pid, replacement, replacement]
        )
        self.assertIn(f"spare (before any connection) {victim} was killed by signal 9", self.zygote.logs())
        served = {self.hello() for _ in range(3)}
        self.assertEqual(len(served), 3)
        self.assertNotIn(victim, served)
        self.assertEqual(self.zygote.proc.poll(), None)

    def test_spares_that_keep_dying_are_replaced_with_back_off(self) -> None:
        killed: set[int] = set()
        started = time.monotonic()
        while len(killed) < 6:  # every spare dies young, as when a spare's setup keeps crashing
            self.assertLess(time.monotonic() - started, 30, self.zygote.logs())
            for pid in self.zygote.children() - killed:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.005)
        self.assertIn("failed spare spawns in a row; next try in", self.zygote.logs())
        # it recovers: spares come back, requests are served, and an accepted connection resets the back-off
        self.zygote.wait_for_spares(2, killed)
        self.assertNotIn(self.hello(), killed)
        self.zygote.wait_for_spares(2, killed)
        self.assertEqual(self.zygote.proc.poll(), None)

    def test_stopping_kills_the_spares(self) -> None:
        spares = self.zygote.wait_for_spares(2, set())
        self.assertEqual(self.zygote.close_stdin(), 0)
        for pid in spares:
            self.assertFalse(alive(pid))
        self.assertFalse(os.path.exists(self.path))
        self.assertIn("2 of them spare(s)", self.zygote.logs())


class NoSparesTest(SocketDirTest):
    """`--spares 0`: the zygote accepts each connection itself and forks its child then."""

    def test_forks_on_accept(self) -> None:
        zygote = Zygote(self.path, spares=0)
        try:
            time.sleep(0.2)
            self.assertEqual(zygote.children(), set())  # nothing forked ahead
            first, second = zygote.connect(), zygote.connect()
            try:
                self.assertNotEqual(first.child["pid"], second.child["pid"])
                for conn in (first, second):
                    self.assertEqual(
                        [int(f) for f in live_stat(conn.child["pid"])[1:4]],
                        [zygote.proc.pid, conn.child["pid"], conn.child["pid"]],
                    )
                    lines = conn.ask(HELLO)
                    self.assertTrue(lines[-1]["ok"], lines)
            finally:
                first.close()
                second.close()
            answers = hello_burst(self.path, 20)
            self.assertEqual(len({lines[0]["pid"] for lines in answers}), 20)
            self.assertTrue(all(lines[-1]["ok"] for lines in answers), answers)
            self.assertTrue(wait_until(lambda: zygote.children() == set()))
            self.assertEqual(zygote.close_stdin(), 0)
            self.assertFalse(os.path.exists(self.path))
        finally:
            zygote.cleanup()

    def test_bad_spares_count_exits_2(self) -> None:
        zygote = Zygote(self.path, wait_ready=False, spares=-1)
        try:
            self.assertEqual(zygote.proc.wait(TIMEOUT), 2)
            self.assertIn("--spares -1", zygote.logs())
            self.assertFalse(os.path.exists(self.path))
        finally:
            zygote.cleanup()


class LifecycleTest(SocketDirTest):
    """Starting on an occupied path, and stopping: stdin EOF and SIGTERM."""

    def setUp(self) -> None:
        super().setUp()
        self.zygotes: list[Zygote] = []

    def tearDown(self) -> None:
        for zygote in self.zygotes:
            zygote.cleanup()
        super().tearDown()

    def start(self, wait_ready: bool = True) -> Zygote:
        zygote = Zygote(self.path, wait_ready)
        self.zygotes.append(zygote)
        return zygote

    def start_blocked_request(self, zygote: Zygote) -> tuple[Connection, dict[str, int]]:
        """A connection whose child sits in build_model with a `sleep 60` in its process group."""
        model = write_model(self.dir, "blocking.py", BLOCKING_MODEL)
        params = {
            "pids_path": os.path.join(self.dir, "pids.json"),
            "go_path": os.path.join(self.dir, "go"),
            "spawn": True,
        }
        conn = zygote.connect()
        conn.send(train_request(model, self.dir, params))
        self.assertTrue(wait_until(lambda: os.path.exists(params["pids_path"])))
        with open(params["pids_path"]) as src:
            return conn, json.load(src)

    def assert_stopped_cleanly(self, zygote: Zygote, rc: int, conn: Connection, pids: dict[str, int]) -> None:
        self.assertEqual(rc, 0, zygote.logs())
        self.assertFalse(alive(pids["child"]))  # reaped by the zygote before it exited
        self.assertTrue(wait_until(lambda: not alive(pids["sleeper"])))  # the whole process group was killed
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(conn.rest(), [])
        self.assertEqual(zygote.stdout.read(), b"")  # nothing after the ready line
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
        self.assertEqual(zygote.stdout.read(), b"")
        with open(self.path) as src:
            self.assertEqual(src.read(), "precious")

    def test_relative_path_exits_2(self) -> None:
        zygote = Zygote("relative.sock", wait_ready=False)
        self.zygotes.append(zygote)
        self.assertEqual(zygote.proc.wait(TIMEOUT), 2)
        self.assertIn("relative.sock", zygote.logs())


if __name__ == "__main__":
    unittest.main()
