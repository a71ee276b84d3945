"""The fork server: `python -m ttd_torch --listen SOCKET` (docs/protocol.md, "Fork server").

The zygote imports torch and every stage module once, then serves each connection on its Unix socket in
a freshly forked child: one request per connection, run by the same `server.handle` as the stdio server.
Nothing a request does (a model file's import-time `torch.set_flush_denormal(True)`, module globals, RNG
state, sys.modules entries) can reach the next one, and a request costs a fork instead of `import torch`.

To keep the fork and the child's setup off the request's path, the zygote keeps `spares` children forked
ahead (default 2): each has done all its setup and is blocked in accept() on the inherited listening
socket. The spare that accepts a connection writes its pid on the "taken" pipe, so that the zygote forks
a replacement at once, and then serves the connection. With spares=0 the zygote accepts and forks per
connection. Either way every request runs in its own child forked from the pristine zygote.

The zygote itself never runs a torch op (forking after torch has started its intra-op/OpenMP thread
pool is unsafe, so each child starts those pools itself), and it stays single-threaded.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import gc
import importlib
import json
import os
import platform
import re
import selectors
import signal
import socket
import stat
import struct
import sys
import time
from typing import Any

from . import PROTOCOL_VERSION, codes, sandbox, threads

BACKLOG = 128
REAP_INTERVAL_S = 1.0  # the select timeout: children are reaped at least this often, SIGCHLD or not
KILL_WAIT_S = 5.0  # how long shutdown waits to reap the children it killed
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
ZYGOTE_SIGNALS = (signal.SIGTERM, signal.SIGCHLD)  # the signals whose handlers the zygote replaces
DEFAULT_SPARES = 2  # children forked ahead of their connection, blocked in accept()
MAX_SPARES = 64
SPARE_HEALTHY_S = 1.0  # a spare that dies younger than this, without a connection, counts as a failed spawn
BACKOFF_MIN_S = 0.05  # the wait before the next spawn after a failed one, doubled per failure in a row ...
BACKOFF_MAX_S = 5.0  # ... up to this
PID = struct.Struct("=i")  # a spare's pid on the taken pipe (4 bytes: each write is atomic)


class SetupError(Exception):
    """The zygote cannot start; the message goes to stderr and the process exits 2."""


def log(message: str) -> None:
    """One line on stderr (the zygote's stdout carries only the ready line)."""
    try:
        sys.stderr.write(f"ttd_torch --listen [{os.getpid()}]: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def prepare_path(path: str) -> None:
    """Check the socket path: a stale socket there is removed, anything else is refused."""
    if not os.path.isabs(path):
        raise SetupError(f"--listen {path!r}: expected an absolute path")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SetupError(f"--listen {path}: cannot stat it ({exc})") from exc
    if not stat.S_ISSOCK(st.st_mode):
        kind = "directory" if stat.S_ISDIR(st.st_mode) else "file that is not a socket"
        raise SetupError(f"--listen {path}: the path exists and is a {kind}; remove it or choose another path")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SetupError(f"--listen {path}: cannot remove the stale socket ({exc})") from exc


def bind(path: str) -> socket.socket:
    """A non-blocking AF_UNIX stream socket listening at path, mode 0600."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # no window in which others may connect before the chmod
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise SetupError(f"--listen {path}: cannot listen there ({exc})") from exc
    finally:
        os.umask(old_umask)
    sock.setblocking(False)
    return sock


def load_prctl() -> Any | None:
    """libc's prctl on Linux (looked up once, in the zygote), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # dlopen(NULL): the process's own symbols, libc's among them
    except (OSError, AttributeError):
        return None


PR_SET_NAME = 15  # <linux/prctl.h>: the name ps, top and pgrep (without -f) show; 15 bytes at most
_prctl: Any | None = None  # set once in main()


def set_process_name(name: str) -> None:
    """Linux: name this process for ps and pgrep: ttd-zygote, ttd-spare, or ttd:<op> while serving a request."""
    if _prctl is None:
        return
    try:
        _prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, ctypes.ArgumentError):
        pass


def set_parent_death_signal(prctl: Any | None, parent_pid: int) -> None:
    """Linux: SIGKILL this process when the zygote dies (best effort; a no-op elsewhere)."""
    if prctl is None:
        return
    try:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, ctypes.ArgumentError):
        return
    if os.getppid() != parent_pid:  # the zygote died before prctl took effect
        os._exit(1)


def thread_count() -> int | None:
    """The number of OS threads of this process (Linux), or None where unknown."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def block_signals(how: int) -> None:
    """Block or unblock the zygote's signals around fork (so a child never runs the zygote's handlers)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(how, ZYGOTE_SIGNALS)


def read_request(conn: socket.socket) -> str | None:
    """The first non-blank line from the connection; a final line without newline counts; None at EOF."""
    buf = bytearray()
    while True:
        while True:
            end = buf.find(b"\n")
            if end < 0:
                break
            line = bytes(buf[:end])
            del buf[: end + 1]
            if line.strip():
                return line.decode("utf-8", "replace")
        chunk = conn.recv(65536)
        if not chunk:
            return buf.decode("utf-8", "replace") if buf.strip() else None
        buf += chunk


def json_line(message: dict[str, Any]) -> bytes:
    """One protocol line."""
    return (json.dumps(message) + "\n").encode("utf-8")


class Zygote:
    """The zygote's loop: spare children kept forked ahead (or, with spares=0, one forked per accepted
    connection), children reaped, all killed at stdin EOF or SIGTERM."""

    def __init__(self, path: str, sock: socket.socket, protocol_fd: int, spares: int = DEFAULT_SPARES) -> None:
        self.path = path
        self.sock = sock
        self.sock_ino = os.stat(path).st_ino
        self.protocol_fd = protocol_fd
        self.pid = os.getpid()
        self.prctl = load_prctl()
        self.children: set[int] = set()  # every live child: spares and those serving a connection
        self.spare_target = spares
        self.spares: dict[int, float] = {}  # spares not yet handed a connection: pid -> time.monotonic() at fork
        self.failures = 0  # failed spawns in a row (fork failed, or a spare died young without a connection)
        self.next_spawn = 0.0  # time.monotonic() before which no spare is forked (back-off)
        self.taken_buf = bytearray()
        self.stopping: str | None = None
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.taken_r, self.taken_w = os.pipe()  # a spare that accepted writes its pid here
        os.set_blocking(self.taken_r, False)
        os.set_blocking(self.taken_w, False)  # a (never) full pipe must not stall a spare: it only delays a refill
        try:
            self.selector.register(0, selectors.EVENT_READ)
        except (OSError, ValueError) as exc:
            self.close()
            raise SetupError(
                "stdin cannot be watched (it is closed, a regular file or /dev/null?); --listen "
                f"expects a pipe on stdin that the parent closes to stop the server ({exc})"
            ) from exc
        if spares:
            self.sock.setblocking(True)  # the spares block in accept(); the zygote itself never accepts
            self.selector.register(self.taken_r, selectors.EVENT_READ)
        else:
            self.selector.register(self.sock, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.saved_handlers = {sig: signal.getsignal(sig) for sig in ZYGOTE_SIGNALS}
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self.on_sigterm)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # the wakeup fd makes select return

    def on_sigterm(self, signum: int, frame: Any) -> None:
        self.stopping = "SIGTERM"

    def serve(self) -> int:
        """Serve until stdin EOF or SIGTERM; then kill every child's process group and clean up."""
        try:
            while self.stopping is None:
                self.drain_taken()
                self.reap()
                self.fill_spares()
                try:
                    events = self.selector.select(self.select_timeout())
                except InterruptedError:
                    continue
                for key, _ in events:
                    if key.fileobj is self.sock:
                        self.accept_all()
                    elif key.fd == 0:
                        self.read_stdin()
                    elif key.fd == self.taken_r:
                        pass  # drained at the top of the loop, which also forks the replacement
                    else:
                        self.drain_wakeup()
            self.reap()
            log(
                f"stopping ({self.stopping}); killing {len(self.children)} live child(ren), "
                f"{len(self.spares)} of them spare(s)"
            )
        finally:
            self.shutdown()
        return 0

    def select_timeout(self) -> float:
        """REAP_INTERVAL_S, or less when a spare is missing and its back-off ends sooner."""
        if self.stopping is None and len(self.spares) < self.spare_target:
            return max(0.0, min(REAP_INTERVAL_S, self.next_spawn - time.monotonic()))
        return REAP_INTERVAL_S

    def read_stdin(self) -> None:
        """Discard input; EOF (the parent closed stdin or died) stops the server."""
        try:
            data = os.read(0, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log(f"stdin read failed ({exc}); treating it as EOF")
            data = b""
        if not data:
            self.stopping = "stdin EOF"

    def drain_wakeup(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def drain_taken(self) -> None:
        """Read the pids of spares that accepted a connection: they are spares no longer."""
        try:
            while True:
                data = os.read(self.taken_r, 4096)
                if not data:
                    break
                self.taken_buf += data
        except (BlockingIOError, InterruptedError):
            pass
        while len(self.taken_buf) >= PID.size:
            (pid,) = PID.unpack_from(self.taken_buf)
            del self.taken_buf[: PID.size]
            if self.spares.pop(pid, None) is not None:
                self.failures = 0  # a spare got as far as a connection: spawning works
                self.next_spawn = 0.0

    def fill_spares(self) -> None:
        """Fork spares until there are spare_target of them, unless backing off after failures."""
        while self.stopping is None and len(self.spares) < self.spare_target:
            if time.monotonic() < self.next_spawn:
                return
            pid = self.fork(None)
            if pid is None:
                self.spawn_failed()
                return
            self.spares[pid] = time.monotonic()

    def spawn_failed(self) -> None:
        """Back off before the next spawn: BACKOFF_MIN_S, doubled per failure in a row, up to BACKOFF_MAX_S."""
        self.failures += 1
        delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** min(self.failures - 1, 16))
        self.next_spawn = time.monotonic() + delay
        if self.failures > 1:
            log(f"{self.failures} failed spare spawns in a row; next try in {delay:.2f} s")

    def accept_all(self) -> None:
        """spares=0: accept every pending connection, forking a child for each."""
        while self.stopping is None:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log(f"accept failed ({exc}); retrying shortly")
                    time.sleep(0.05)
                    return
                raise
            if self.fork(conn) is None:
                log("dropping the connection")
            conn.close()

    def fork(self, conn: socket.socket | None) -> int | None:
        """Fork a child for one accepted connection, or a spare when conn is None; the parent keeps only
        its pid (None when fork failed)."""
        block_signals(signal.SIG_BLOCK)
        try:
            pid = os.fork()
        except OSError as exc:
            block_signals(signal.SIG_UNBLOCK)
            log(f"fork failed ({exc})")
            return None
        if pid == 0:
            code = 1
            try:
                code = self.child(conn) if conn is not None else self.spare()
            finally:
                os._exit(code)  # never back into the zygote's loop, never the zygote's atexit handlers
        block_signals(signal.SIG_UNBLOCK)
        self.children.add(pid)
        return pid

    def detach(self) -> None:
        """In a forked child: everything that makes it a fresh, separate process; the listening socket and
        the taken pipe's write end stay open (a spare still needs them)."""
        os.setsid()  # own process group: the client ends it and all it started with kill(-pid, SIGKILL)
        set_parent_death_signal(self.prctl, self.pid)
        signal.set_wakeup_fd(-1)
        for sig, handler in self.saved_handlers.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        block_signals(signal.SIG_UNBLOCK)  # a SIGTERM that came during the fork now acts by default
        self.selector.close()  # closes our copy of the epoll fd; unregistering would edit the zygote's
        for fd in (self.wake_r, self.wake_w, self.protocol_fd, self.taken_r):
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        sys.stdout.flush()
        os.dup2(2, 1)  # as server.main(): user prints and C-level fd 1 writes land on stderr
        sys.stdout = sys.stderr
        reseed()
        set_process_name("ttd-spare")

    def close_listener(self) -> None:
        """In a child that has its connection: drop the zygote's listening socket and the taken pipe."""
        self.sock.close()
        os.close(self.taken_w)

    def child(self, conn: socket.socket) -> int:
        """spares=0, in the child forked for an accepted connection: set up, then serve its one request."""
        try:
            self.detach()
            self.close_listener()
        except BaseException as exc:
            return setup_failed(conn, exc)
        return serve_connection(conn)

    def spare(self) -> int:
        """In a spare: set up now, then accept one connection, tell the zygote, serve the connection.

        A spare whose setup failed still takes a connection, to answer it with the setup error (as a child
        forked on accept would), instead of dying and leaving connections unanswered in the backlog."""
        error: BaseException | None = None
        try:
            self.detach()
        except BaseException as exc:
            error = exc
        while True:
            try:
                conn, _ = self.sock.accept()  # blocking; when several spares wait, Linux wakes one
                break
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                log(f"spare: accept failed ({exc}); exiting")
                return 1
        try:
            os.write(self.taken_w, PID.pack(os.getpid()))  # the zygote forks a replacement at once
        except OSError as exc:
            log(f"spare: cannot tell the zygote it took a connection ({exc})")
        try:
            self.close_listener()
        except BaseException as exc:
            error = error or exc
        if error is not None:
            return setup_failed(conn, error)
        return serve_connection(conn)

    def reap(self) -> None:
        """Collect every exited child without blocking; a spare that died without a connection is replaced
        (by fill_spares), after a back-off when it died young."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                self.spares.clear()
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            self.children.discard(pid)
            if sandbox.enabled():
                kill_group(pid)  # what the request started and left running (in the sandbox: code we did not write)
            if pid in self.spares:
                self.drain_taken()  # it may have taken a connection (and written so) since the last drain
            born = self.spares.pop(pid, None)
            what = "child" if born is None else "spare (before any connection)"
            if os.WIFSIGNALED(status):
                log(f"{what} {pid} was killed by signal {os.WTERMSIG(status)}")
            elif os.WIFEXITED(status):
                # Every child's end is said (exit 0 too): a request whose child ended without answering is reported
                # with this status (activities/torch-process/fork-server.ts reads it).
                log(f"{what} {pid} exited {os.WEXITSTATUS(status)}")
            if born is not None and self.stopping is None:
                if time.monotonic() - born < SPARE_HEALTHY_S:
                    self.spawn_failed()
                else:
                    self.failures = 0

    def shutdown(self) -> None:
        """SIGKILL every live child's process group, reap them, close and unlink the socket."""
        for pid in self.children:
            kill_group(pid)
        deadline = time.monotonic() + KILL_WAIT_S
        while self.children and time.monotonic() < deadline:
            self.reap()
            if self.children:
                time.sleep(0.01)
        if self.children:
            log(f"children {sorted(self.children)} did not exit after SIGKILL")
        signal.set_wakeup_fd(-1)
        for sig, handler in self.saved_handlers.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self.close()

    def close(self) -> None:
        self.selector.close()
        self.sock.close()
        for fd in (self.wake_r, self.wake_w, self.taken_r, self.taken_w):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            if os.stat(self.path).st_ino == self.sock_ino:  # not a successor's socket at the same path
                os.unlink(self.path)
        except OSError:
            pass


def setup_failed(conn: socket.socket, exc: BaseException) -> int:
    """A child that cannot serve: an internal error on the connection (best effort), exit code 1."""
    try:
        conn.sendall(
            json_line(
                {
                    "v": PROTOCOL_VERSION,
                    "id": "",
                    "ok": False,
                    "error": {
                        "code": codes.INTERNAL,
                        "message": f"fork server child setup failed: {type(exc).__name__}: {exc}",
                        "traceback": "",
                    },
                }
            )
        )
    except BaseException:
        pass
    log(f"child setup failed: {type(exc).__name__}: {exc}")
    return 1


def serve_connection(conn: socket.socket) -> int:
    """In a set-up child: the child line, then the connection's one request, served as the stdio server
    would; the exit code."""
    try:
        conn.setblocking(True)
        from .protocol import Writer
        from .server import handle

        writer = Writer(os.dup(conn.fileno()))
        writer.line({"v": PROTOCOL_VERSION, "child": True, "pid": os.getpid()})
    except BaseException as exc:
        return setup_failed(conn, exc)
    try:
        line = read_request(conn)
        if line is not None:
            set_process_name(f"ttd:{request_op(line)}")
            if sandbox.enabled() and not isolated(line, writer):
                return 1
            # Only now: sizing the pools starts their threads, and isolation needs a process of one thread.
            threads.apply(request_threads(line))
            handle(line, writer)
            # Answered: what is left is exiting, which can take a moment after the worker has started the next stage.
            set_process_name("ttd-done")
    except OSError as exc:  # the client went away mid-request
        log(f"connection lost: {type(exc).__name__}: {exc}")
        return 1
    finally:
        for stream in (sys.stderr, sys.__stdout__):
            try:
                if stream is not None:  # sys.__stdout__ is None without a stdout
                    stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
    return 0


def isolated(line: str, writer: Any) -> bool:
    """In the sandbox: narrow this child's view to the directories its request names (ttd_torch/sandbox.py); when
    that fails, answer the request with an internal error instead of serving it with a wider view."""
    try:
        request = json.loads(line)
    except ValueError:
        request = None
    request = request if isinstance(request, dict) else {}
    try:
        sandbox.isolate(request.get("args"))
        return True
    except (sandbox.IsolationFailed, OSError) as exc:
        from .protocol import ProtocolError

        request_id = request.get("id") if isinstance(request.get("id"), str) else ""
        writer.failure(request_id, ProtocolError(codes.INTERNAL, f"cannot isolate the request in the sandbox: {exc}"))
        log(f"isolation failed: {type(exc).__name__}: {exc} at {traceback_line(exc)}")
        return False


def traceback_line(exc: BaseException) -> str:
    """Where an exception was raised: file:line of its innermost frame."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"


def request_threads(line: str) -> int | None:
    """The intra-op threads a request asks for (its envelope's `threads`: the worker sizes each stage by the stages
    running beside it); None when it names none, and the configured count applies."""
    try:
        request = json.loads(line)
    except ValueError:
        return None
    return threads.requested(request.get("threads")) if isinstance(request, dict) else None


def request_op(line: str) -> str:
    """The op a request line names, for the process name only (handle() validates it)."""
    try:
        op = json.loads(line).get("op")
    except (ValueError, AttributeError):
        return "request"
    return op if isinstance(op, str) and op.isidentifier() else "request"


def kill_group(pid: int) -> None:
    """SIGKILL a child's process group, and the child itself in case it has not yet called setsid."""
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def reseed() -> None:
    """Fresh global RNG seeds for the child, as a fresh process would have: torch seeds its default CPU
    generator from the OS at start-up, numpy seeds its global RandomState at import; forked children would
    otherwise all share the zygote's (Python's random reseeds itself after fork)."""
    import torch

    torch.default_generator.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        try:
            numpy.random.seed()
        except Exception:  # an unusual numpy: its RNG is not ours to fix
            pass


def preload_modules(spec: str) -> list[tuple[str, str | None]]:
    """What TTD_TORCH_PRELOAD names (docs/protocol.md, "Preloading"), as (module, attribute or None) in import order: a
    JSON object whose `modules` are imported as named, whose `distributions` (installed package names, such as a
    declared environment's requirements) stand for their top-level modules, and whose `imports_of` names a model file
    whose import statements, read without running it, add what it imports from those distributions' modules (`from
    transformers import GPT2LMHeadModel` loads transformers' modeling code on that attribute). Unknown distributions,
    private modules (a leading underscore) and imports from anything but those distributions are left out."""
    try:
        wanted = json.loads(spec)
    except ValueError:
        log(f"warning: TTD_TORCH_PRELOAD is not JSON ({spec[:80]!r}); nothing preloaded")
        return []
    if not isinstance(wanted, dict):
        return []
    targets: list[tuple[str, str | None]] = [(m, None) for m in wanted.get("modules", []) if isinstance(m, str)]
    distributions = {canonical(d) for d in wanted.get("distributions", []) if isinstance(d, str)}
    roots: set[str] = set()
    if distributions:
        import importlib.metadata

        for module, owners in sorted(importlib.metadata.packages_distributions().items()):
            if not module.startswith("_") and distributions & {canonical(o) for o in owners}:
                roots.add(module)
                targets.append((module, None))
    source = wanted.get("imports_of")
    if isinstance(source, str) and roots:
        hinted = [(m, name) for m, name in imported_names(source) if m.split(".")[0] in roots]
        targets += list(dict.fromkeys(hinted))[:MAX_HINTS]
    return targets


MAX_HINT_BYTES = 1 << 20  # a model file larger than this gives no hints
MAX_HINTS = 64  # imports taken from one model file, at most (the fork server is shared by every run of its environment)


def imported_names(path: str) -> list[tuple[str, str | None]]:
    """(module, name or None) for each absolute import statement of a Python file, parsed, never run; [] when it cannot
    be read or parsed."""
    import ast

    try:
        with open(path, "rb") as src:
            text = src.read(MAX_HINT_BYTES + 1)
        if len(text) > MAX_HINT_BYTES:
            raise ValueError(f"larger than {MAX_HINT_BYTES} bytes")
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        log(f"warning: no import hints from {path} ({type(exc).__name__}: {exc})")
        return []
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.module, None if alias.name == "*" else alias.name) for alias in node.names]
    return found


def canonical(name: str) -> str:
    """A distribution name as packaging compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def preload(spec: str | None) -> None:
    """Import what TTD_TORCH_PRELOAD names, once, so that no child imports it again (a transformers model's every stage
    paid 1.6 s for it). What fails to import is skipped; an import that starts a thread would make forking unsafe, so
    the zygote then starts afresh without preloading (re-executing itself)."""
    if not spec:
        return
    before = thread_count()
    for module, attribute in preload_modules(spec):
        what = f"{module}.{attribute}" if attribute else module
        started = time.monotonic()
        try:
            loaded = importlib.import_module(module)
            if attribute:
                getattr(loaded, attribute)  # a lazy package (transformers) imports the attribute's module now
        except BaseException as exc:  # noqa: BLE001 (a package's import may raise anything, SystemExit included)
            log(f"warning: preloading {what} failed ({type(exc).__name__}: {exc}); its importers pay for it")
            continue
        after = thread_count()
        if before is not None and after is not None and after > before:
            log(f"preloading {what} started {after - before} thread(s); starting again without preloading")
            env = {k: v for k, v in os.environ.items() if k != "TTD_TORCH_PRELOAD"}
            sys.stderr.flush()
            os.execve(sys.executable, sys.orig_argv, env)
        elapsed = time.monotonic() - started
        if elapsed >= 0.01:
            log(f"preloaded {what} in {elapsed:.2f} s")


def main(path: str, spares: int | None = None) -> int:
    """Run the fork server at path with spares children forked ahead (None: DEFAULT_SPARES; 0: fork on
    accept); 0 after stdin EOF or SIGTERM, 2 when it cannot start."""
    try:
        if spares is None:
            spares = DEFAULT_SPARES
        if not 0 <= spares <= MAX_SPARES:
            raise SetupError(f"--spares {spares}: expected a number from 0 to {MAX_SPARES}")
        prepare_path(path)
        if sandbox.enabled():
            sandbox.not_dumpable()  # inherited by every child
        import torch  # noqa: F401  (imports only: no torch op may run before fork)

        from . import contract, server  # noqa: F401  (imports every module of the package: the ops register)

        preload(os.environ.get("TTD_TORCH_PRELOAD"))

        try:
            if contract.load() is None:  # parsed once here, inherited by every child
                log(
                    f"warning: {contract.default_path()} missing (run make setup); each request will fail with an "
                    "internal error"
                )
        except contract.SchemaError as exc:
            log(f"warning: {exc}; each request will fail with an internal error")
        protocol_fd = os.dup(1)
        sys.stdout.flush()
        os.dup2(2, 1)  # stray prints of the zygote go to stderr; stdout carries only the ready line
        sys.stdout = sys.stderr
        zygote = Zygote(path, bind(path), protocol_fd, spares)  # on SetupError it has closed and unlinked its socket
        global _prctl
        _prctl = zygote.prctl
        set_process_name("ttd-zygote")
    except SetupError as exc:
        sys.stderr.write(f"python -m ttd_torch: {exc}\n")
        sys.stderr.flush()
        return 2
    live = thread_count()
    if live is not None and live > 1:
        log(f"warning: {live} threads before the first fork; a child may inherit a held lock")
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()  # children do not touch (copy) the zygote's objects when they collect garbage
    zygote.fill_spares()  # so that the first connection after the ready line finds a spare
    from .hello import exporter_versions  # torch is imported by now

    try:
        os.write(
            protocol_fd,
            json_line(
                {
                    "v": PROTOCOL_VERSION,
                    "ready": True,
                    "pid": os.getpid(),
                    "torch_version": torch.__version__,
                    "python_version": platform.python_version(),
                    "packages": exporter_versions(),
                }
            ),
        )
    except OSError as exc:  # nobody reads our stdout: there is no parent to serve
        log(f"cannot write the ready line ({exc}); exiting")
        zygote.shutdown()
        return 1
    try:
        return zygote.serve()
    except KeyboardInterrupt:  # serve() has already killed the children and removed the socket
        return 130


def cli(argv: list[str] | None = None) -> int:
    """`python -m ttd_torch.zygote --listen SOCKET [--spares N]`: the fork server with its own options
    (`python -m ttd_torch --listen SOCKET` runs it with the default number of spares)."""
    parser = argparse.ArgumentParser(
        prog="python -m ttd_torch.zygote", description="The fork server of ttd's torch stages (docs/protocol.md)."
    )
    parser.add_argument("--listen", metavar="SOCKET", required=True, help="the Unix socket path to serve")
    parser.add_argument(
        "--spares",
        metavar="N",
        type=int,
        default=DEFAULT_SPARES,
        help=f"children forked ahead, waiting for a connection (default {DEFAULT_SPARES}; "
        "0: fork when a connection comes)",
    )
    args = parser.parse_args(argv)
    return main(args.listen, args.spares)


if __name__ == "__main__":
    sys.exit(cli())
