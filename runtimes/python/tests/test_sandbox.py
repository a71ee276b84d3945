"""The torch side of the sandbox (ttd_torch/sandbox.py): the refusal rule, and a real fork server under bubblewrap whose
children each see only their own request's directory and report refused operations as sandbox_refused."""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from typing import Any

from ttd_torch import sandbox

from .helpers import PYTHON, PYTHON_DIR
from .test_server import TRAIN

BWRAP = "/usr/bin/bwrap"  # infra/setup.sh installs Debian's bubblewrap
TIMEOUT = 120

# Looks around from inside a request at import time and writes what it saw into its own work dir (params.out).
PROBING_MODEL = """
import ctypes, json, os
import torch

def probe(params):
    seen = {}
    root = params["root"]
    seen["work_root"] = sorted(os.listdir(root))
    try:
        with open(os.path.join(params["sibling"], "secret.txt")) as src:
            seen["sibling"] = src.read()
    except OSError as exc:
        seen["sibling"] = type(exc).__name__
    seen["socket_visible"] = os.path.exists(params["socket"])
    seen["host_file_visible"] = os.path.exists(params["host_file"])
    libc = ctypes.CDLL(None, use_errno=True)
    seen["umount_tmp"] = libc.umount2(b"/tmp", 2)  # MNT_DETACH: would show what the tmpfs hides
    seen["umount_root"] = libc.umount2(root.encode(), 2)
    try:
        seen["zygote_root"] = os.listdir("/proc/1/root" + root)
    except OSError as exc:
        seen["zygote_root"] = type(exc).__name__
    with open("/proc/self/status") as src:
        seen["cap_eff"] = [l.split()[1] for l in src if l.startswith("CapEff")][0]
    seen["environ"] = sorted(os.environ)
    with open(os.path.join(params["out"], "seen.json"), "w") as dst:
        json.dump(seen, dst)

def build_model(params):
    probe(params)
    return torch.nn.Linear(3, 1)

def dataset(params, split):
    return torch.ones(8, 3), torch.ones(8, 1)
"""

# Leaves a process running after its request (params.pid_path: where it writes that process's pid).
LINGERING_MODEL = """
import subprocess
import torch

def build_model(params):
    with open(params["pid_path"], "w") as dst:
        dst.write(str(subprocess.Popen(["sleep", "60"]).pid))
    return torch.nn.Linear(3, 1)

def dataset(params, split):
    return torch.ones(8, 3), torch.ones(8, 1)
"""

# Tries one thing the sandbox refuses (params.attempt), or a missing file of its own.
REFUSED_MODEL = """
import os, socket
import torch

def build_model(params):
    attempt = params["attempt"]
    if attempt == "write_package":
        with open(os.path.join(params["package"], "planted.py"), "w") as dst:
            dst.write("x = 1")
    elif attempt == "network":
        socket.create_connection(("192.0.2.1", 80), timeout=5)
    elif attempt == "own_missing":
        open(os.path.join(params["out"], "not-there.csv"))
    return torch.nn.Linear(3, 1)

def dataset(params, split):
    return torch.ones(8, 3), torch.ones(8, 1)
"""


class RefusalRuleTest(unittest.TestCase):
    def test_a_host_path_outside_the_request_dirs_is_a_refusal(self) -> None:
        text = (
            "RuntimeError: unable to open file </tmp/ttd-test-x/host.txt> in read-write mode: "
            "No such file or directory (2)"
        )
        self.assertEqual(
            sandbox.refusal(text, ["/tmp/ttd-work-1/ttd-stage-2"]),
            "access to '/tmp/ttd-test-x/host.txt' (No such file or directory), outside the request's work directory",
        )

    def test_a_read_only_system_path_and_the_network_are_refusals(self) -> None:
        self.assertIn(
            "'/usr/lib/python3/x.py' (Read-only file system)",
            sandbox.refusal("OSError: [Errno 30] Read-only file system: '/usr/lib/python3/x.py'", []) or "",
        )
        self.assertEqual(
            sandbox.refusal("OSError: [Errno 101] Network is unreachable", []),
            "a network operation (Network is unreachable): the sandbox has no network",
        )

    def test_a_missing_file_of_the_request_or_of_its_scratch_is_not_a_refusal(self) -> None:
        own = "FileNotFoundError: [Errno 2] No such file or directory: '/tmp/ttd-work-1/ttd-stage-2/data.csv'"
        self.assertIsNone(sandbox.refusal(own, ["/tmp/ttd-work-1/ttd-stage-2"]))
        scratch = "FileNotFoundError: [Errno 2] No such file or directory: '/tmp/never-written.txt'"
        self.assertIsNone(sandbox.refusal(scratch, []))  # /tmp exists: a file the model did not create
        self.assertIsNone(sandbox.refusal("ValueError: bad layer size", []))

    def test_request_dirs_follows_path_arguments_only_never_params_or_the_work_root_itself(self) -> None:
        args = {
            "model_path": "/w/ttd-stage-1/m.py",
            "out_dir": "/w/ttd-stage-1",
            "cache_dir": "/c",
            "artifacts": [{"name": "a", "path": "/w/ttd-stage-3/a.pt"}],
            "params": {"data_dir": "/w/ttd-stage-2"},
            "other_dir": "/w",
            "note": "/w/ttd-stage-4",
            "escape_path": "/w/../etc",
            "x_path": "/wx/y",
        }
        self.assertEqual(sandbox.request_dirs(args, ["/w"], ["/c"]), ["/c", "/w/ttd-stage-1", "/w/ttd-stage-3"])


# What the sandbox reads, bound again after its /tmp: the ttd package and the Python's own installation (a venv, and
# the installation it was made from), which a checkout under /tmp (as CI clones it) would otherwise hide.
READ_ONLY = sorted({os.path.realpath(p) for p in (PYTHON_DIR, sys.prefix, sys.base_prefix)} - {"/usr", "/"})


def bwrap_command(work_root: str, socket_dir: str, command: list[str], env: dict[str, str]) -> list[str]:
    """A sandbox like the one lib/environments/sandbox.ts builds, reduced to what this test needs: the host read-only,
    a tmpfs on /tmp, the work root and socket dir read-write, no capabilities, a cleared environment, not uid 0."""
    args = [
        BWRAP,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        str(os.getuid() or 1000),
        "--gid",
        str(os.getgid() or 1000),
        "--clearenv",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        # After the tmpfs: a checkout under /tmp (CI clones there) would be hidden by it otherwise.
        *[arg for path in READ_ONLY for arg in ("--ro-bind", path, path)],
        "--bind",
        work_root,
        work_root,
        "--bind",
        socket_dir,
        socket_dir,
        "--chdir",
        "/tmp",
    ]
    for name, value in env.items():
        args += ["--setenv", name, value]
    return args + ["--as-pid-1", *command]


class SandboxedZygote:
    """`python -m ttd_torch --listen` under bwrap with TTD_SANDBOX=on, as activities/torch-process/fork-server.ts
    starts it."""

    def __init__(self, work_root: str, socket_dir: str) -> None:
        self.path = os.path.join(socket_dir, "server.sock")
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": "/tmp",
            "PYTHONPATH": PYTHON_DIR,
            "PYTHONDONTWRITEBYTECODE": "1",
            "TTD_SANDBOX": "on",
            "TTD_SANDBOX_PRIVATE": json.dumps([work_root]),
            "TTD_SANDBOX_HIDDEN": json.dumps([socket_dir]),
            "TTD_SANDBOX_READONLY": json.dumps(READ_ONLY),
        }
        self.stderr = tempfile.TemporaryFile()
        command = bwrap_command(work_root, socket_dir, [PYTHON, "-m", "ttd_torch", "--listen", self.path], env)
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both PIPE
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        readable, _, _ = select.select([self.stdout], [], [], TIMEOUT)
        line = self.stdout.readline() if readable else b""
        assert line, f"the sandboxed zygote sent no ready line: {self.logs()}"

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request on a connection of its own; its response line."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        sock.connect(self.path)
        stream = sock.makefile("rb")
        sock.sendall((json.dumps({"v": 1, **request}) + "\n").encode())
        response: dict[str, Any] | None = None
        for line in stream:
            message = json.loads(line)
            if "ok" in message:
                response = message
        stream.close()
        sock.close()
        assert response is not None, f"no response: {self.logs()}"
        return response

    def logs(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def close(self) -> None:
        self.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stdout.close()
        self.stderr.close()


class SandboxedForkServerTest(unittest.TestCase):
    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(
            prefix="ttd-sandbox-test-", dir="/var/tmp"
        )  # outside /tmp: not hidden by its tmpfs
        self.work_root = os.path.join(self.base, "work")
        self.socket_dir = os.path.join(self.base, "sock")
        os.makedirs(self.work_root)
        os.makedirs(self.socket_dir)
        self.mine = os.path.join(self.work_root, "ttd-stage-mine")
        self.sibling = os.path.join(self.work_root, "ttd-stage-sibling")
        os.makedirs(self.mine)
        os.makedirs(self.sibling)
        with open(os.path.join(self.sibling, "secret.txt"), "w") as dst:
            dst.write("another request's data")
        self.host_file = os.path.join(self.base, "host.txt")
        with open(self.host_file, "w") as dst:
            dst.write("host data")
        self.zygote = SandboxedZygote(self.work_root, self.socket_dir)

    def tearDown(self) -> None:
        self.zygote.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def train(self, source: str, params: dict[str, Any]) -> dict[str, Any]:
        model = os.path.join(self.mine, "model.py")
        with open(model, "w") as dst:
            dst.write(textwrap.dedent(source))
        return self.zygote.ask(
            {
                "id": "t",
                "op": "train",
                "args": {"model_path": model, "params": params, "train": TRAIN, "out_dir": self.mine},
            }
        )

    def test_a_request_sees_only_its_own_work_dir_and_cannot_undo_the_mounts_that_hide_the_rest(self) -> None:
        response = self.train(
            PROBING_MODEL,
            {
                "root": self.work_root,
                "sibling": self.sibling,
                "out": self.mine,
                "socket": self.zygote.path,
                "host_file": self.host_file,
            },
        )
        self.assertTrue(response["ok"], response)
        with open(os.path.join(self.mine, "seen.json")) as src:
            seen = json.load(src)
        self.assertEqual(seen["work_root"], ["ttd-stage-mine"])
        self.assertEqual(seen["sibling"], "FileNotFoundError")
        self.assertFalse(seen["socket_visible"])
        self.assertTrue(seen["host_file_visible"])  # this test's outer sandbox shows the host read-only
        self.assertEqual(seen["umount_tmp"], -1)
        self.assertEqual(seen["umount_root"], -1)
        self.assertEqual(seen["zygote_root"], "PermissionError")
        self.assertEqual(seen["cap_eff"], "0000000000000000")
        self.assertNotIn("AWS_SECRET_ACCESS_KEY", seen["environ"])
        with open(os.path.join(self.sibling, "secret.txt")) as src:
            self.assertEqual(src.read(), "another request's data")

    def test_what_a_request_leaves_running_is_killed_when_it_ends(self) -> None:
        pid_path = os.path.join(self.mine, "sleeper.pid")
        response = self.train(LINGERING_MODEL, {"pid_path": pid_path})
        self.assertTrue(response["ok"], response)
        with open(pid_path) as src:
            inner = int(src.read())  # its pid in the sandbox's pid namespace

        def sleepers() -> list[str]:
            ps = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
            return [
                line for line in ps.splitlines() if "sleep 60" in line and self.zygote_host_pid() in line.split()[1:2]
            ]

        deadline = time.monotonic() + 10
        while sleepers() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(sleepers(), [], f"the request's sleep (pid {inner} in the sandbox) outlived it")

    def zygote_host_pid(self) -> str:
        """The sandboxed zygote's pid on the host: bwrap's child (--as-pid-1)."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.zygote.proc.pid)], capture_output=True, text=True)
        return out.stdout.split()[0]

    def test_writing_a_read_only_host_path_ends_the_request_with_sandbox_refused(self) -> None:
        response = self.train(REFUSED_MODEL, {"attempt": "write_package", "package": PYTHON_DIR, "out": self.mine})
        self.assertFalse(response["ok"])
        self.assertEqual(response["error"]["code"], "sandbox_refused")
        self.assertIn(
            f"the sandbox refused access to '{PYTHON_DIR}/planted.py' (Read-only file system)",
            response["error"]["message"],
        )
        self.assertFalse(os.path.exists(os.path.join(PYTHON_DIR, "planted.py")))

    def test_a_network_connection_ends_the_request_with_sandbox_refused(self) -> None:
        response = self.train(REFUSED_MODEL, {"attempt": "network", "out": self.mine})
        self.assertFalse(response["ok"])
        self.assertEqual(response["error"]["code"], "sandbox_refused")
        self.assertIn("a network operation (Network is unreachable)", response["error"]["message"])

    def test_a_missing_file_in_its_own_work_dir_stays_a_model_error(self) -> None:
        response = self.train(REFUSED_MODEL, {"attempt": "own_missing", "out": self.mine})
        self.assertFalse(response["ok"])
        self.assertEqual(response["error"]["code"], "model_error")
        self.assertIn("not-there.csv", response["error"]["message"])


if __name__ == "__main__":
    unittest.main()
