"""The fork server: `python -m ttd_torch --listen SOCKET` (docs/protocol.md, "Fork server").

The zygote imports torch and every stage module once, then serves each connection on its Unix socket in
a freshly forked child: one request per connection, run by the same `server.handle` as the stdio server.
Nothing a request does (a model file's import-time `torch.set_flush_denormal(True)`, module globals, RNG
state, sys.modules entries) can reach the next one, and a request costs a fork instead of `import torch`.

The zygote itself never runs a torch op: forking after torch has started its intra-op/OpenMP thread
pool is unsafe, so each child starts those pools itself.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import json
import os
import platform
import selectors
import signal
import socket
import stat
import sys
import time
from typing import Any, Dict, Optional, Set

from . import PROTOCOL_VERSION

BACKLOG = 128
REAP_INTERVAL_S = 1.0  # the select timeout: children are reaped at least this often, SIGCHLD or not
KILL_WAIT_S = 5.0  # how long shutdown waits to reap the children it killed
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
ZYGOTE_SIGNALS = (signal.SIGTERM, signal.SIGCHLD)  # the signals whose handlers the zygote replaces


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


def load_prctl() -> Optional[Any]:
    """libc's prctl on Linux (looked up once, in the zygote), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # dlopen(NULL): the process's own symbols, libc's among them
    except (OSError, AttributeError):
        return None


def set_parent_death_signal(prctl: Optional[Any], parent_pid: int) -> None:
    """Linux: SIGKILL this process when the zygote dies (best effort; a no-op elsewhere)."""
    if prctl is None:
        return
    try:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, ctypes.ArgumentError):
        return
    if os.getppid() != parent_pid:  # the zygote died before prctl took effect
        os._exit(1)


def thread_count() -> Optional[int]:
    """The number of OS threads of this process (Linux), or None where unknown."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def block_signals(how: int) -> None:
    """Block or unblock the zygote's signals around fork (so a child never runs the zygote's handlers)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(how, ZYGOTE_SIGNALS)


def read_request(conn: socket.socket) -> Optional[str]:
    """The first non-blank line from the connection; a final line without newline counts; None at EOF."""
    buf = bytearray()
    while True:
        while True:
            end = buf.find(b"\n")
            if end < 0:
                break
            line = bytes(buf[:end])
            del buf[:end + 1]
            if line.strip():
                return line.decode("utf-8", "replace")
        chunk = conn.recv(65536)
        if not chunk:
            return buf.decode("utf-8", "replace") if buf.strip() else None
        buf += chunk


def json_line(message: Dict[str, Any]) -> bytes:
    """One protocol line."""
    return (json.dumps(message) + "\n").encode("utf-8")


class Zygote:
    """The accept loop: one forked child per connection, children reaped, all killed at stdin EOF."""

    def __init__(self, path: str, sock: socket.socket, protocol_fd: int) -> None:
        self.path = path
        self.sock = sock
        self.sock_ino = os.stat(path).st_ino
        self.protocol_fd = protocol_fd
        self.pid = os.getpid()
        self.prctl = load_prctl()
        self.children: Set[int] = set()
        self.stopping: Optional[str] = None
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        try:
            self.selector.register(0, selectors.EVENT_READ)
        except (OSError, ValueError) as exc:
            self.close()
            raise SetupError("stdin cannot be watched (it is closed, a regular file or /dev/null?); --listen "
                             f"expects a pipe on stdin that the parent closes to stop the server ({exc})") from exc
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
                self.reap()
                try:
                    events = self.selector.select(REAP_INTERVAL_S)
                except InterruptedError:
                    continue
                for key, _ in events:
                    if key.fileobj is self.sock:
                        self.accept_all()
                    elif key.fd == 0:
                        self.read_stdin()
                    else:
                        self.drain_wakeup()
            self.reap()
            log(f"stopping ({self.stopping}); killing {len(self.children)} live child(ren)")
        finally:
            self.shutdown()
        return 0

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

    def accept_all(self) -> None:
        """Accept every pending connection, forking a child for each."""
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
            self.spawn(conn)

    def spawn(self, conn: socket.socket) -> None:
        """Fork a child for one connection; the parent keeps only its pid."""
        block_signals(signal.SIG_BLOCK)
        try:
            pid = os.fork()
        except OSError as exc:
            block_signals(signal.SIG_UNBLOCK)
            log(f"fork failed ({exc}); dropping the connection")
            conn.close()
            return
        if pid == 0:
            code = 1
            try:
                code = self.child(conn)
            finally:
                os._exit(code)  # never back into the zygote's loop, never the zygote's atexit handlers
        block_signals(signal.SIG_UNBLOCK)
        conn.close()
        self.children.add(pid)

    def child(self, conn: socket.socket) -> int:
        """In the forked child: detach from the zygote, then serve the connection's one request."""
        try:
            os.setsid()  # own process group: the client ends it and all it started with kill(-pid, SIGKILL)
            set_parent_death_signal(self.prctl, self.pid)
            signal.set_wakeup_fd(-1)
            for sig, handler in self.saved_handlers.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            block_signals(signal.SIG_UNBLOCK)  # a SIGTERM that came during the fork now acts by default
            self.selector.close()  # closes our copy of the epoll fd; unregistering would edit the zygote's
            self.sock.close()
            for fd in (self.wake_r, self.wake_w, self.protocol_fd):
                os.close(fd)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            sys.stdout.flush()
            os.dup2(2, 1)  # as server.main(): user prints and C-level fd 1 writes land on stderr
            sys.stdout = sys.stderr
            reseed()
            conn.setblocking(True)
            from .protocol import Writer
            from .server import handle
            writer = Writer(os.dup(conn.fileno()))
            writer.line({"v": PROTOCOL_VERSION, "child": True, "pid": os.getpid()})
        except BaseException as exc:
            try:
                conn.sendall(json_line({"v": PROTOCOL_VERSION, "id": "", "ok": False, "error": {
                    "code": "internal", "message": f"fork server child setup failed: {type(exc).__name__}: {exc}",
                    "traceback": ""}}))
            except BaseException:
                pass
            log(f"child setup failed: {type(exc).__name__}: {exc}")
            return 1
        try:
            line = read_request(conn)
            if line is not None:
                handle(line, writer)
        except OSError as exc:  # the client went away mid-request
            log(f"connection lost: {type(exc).__name__}: {exc}")
            return 1
        finally:
            for stream in (sys.stderr, sys.__stdout__):
                try:
                    stream.flush()
                except (OSError, ValueError, AttributeError):
                    pass
        return 0

    def reap(self) -> None:
        """Collect every exited child without blocking."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            self.children.discard(pid)
            if os.WIFSIGNALED(status):
                log(f"child {pid} was killed by signal {os.WTERMSIG(status)}")
            elif os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0:
                log(f"child {pid} exited {os.WEXITSTATUS(status)}")

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
        for fd in (self.wake_r, self.wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            if os.stat(self.path).st_ino == self.sock_ino:  # not a successor's socket at the same path
                os.unlink(self.path)
        except OSError:
            pass


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


def main(path: str) -> int:
    """Run the fork server at path; 0 after stdin EOF or SIGTERM, 2 when it cannot start."""
    try:
        prepare_path(path)
        import torch  # noqa: F401  (imports only: no torch op may run before fork)

        from . import server  # noqa: F401  (imports every stage module)
        protocol_fd = os.dup(1)
        sys.stdout.flush()
        os.dup2(2, 1)  # stray prints of the zygote go to stderr; stdout carries only the ready line
        sys.stdout = sys.stderr
        zygote = Zygote(path, bind(path), protocol_fd)  # on SetupError it has closed and unlinked its socket
    except SetupError as exc:
        sys.stderr.write(f"python -m ttd_torch: {exc}\n")
        sys.stderr.flush()
        return 2
    threads = thread_count()
    if threads is not None and threads > 1:
        log(f"warning: {threads} threads before the first fork; a child may inherit a held lock")
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()  # children do not touch (copy) the zygote's objects when they collect garbage
    try:
        os.write(protocol_fd, json_line({"v": PROTOCOL_VERSION, "ready": True, "pid": os.getpid(),
                                         "torch_version": torch.__version__,
                                         "python_version": platform.python_version()}))
    except OSError as exc:  # nobody reads our stdout: there is no parent to serve
        log(f"cannot write the ready line ({exc}); exiting")
        zygote.shutdown()
        return 1
    try:
        return zygote.serve()
    except KeyboardInterrupt:  # serve() has already killed the children and removed the socket
        return 130
