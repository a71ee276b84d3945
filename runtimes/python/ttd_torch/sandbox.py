"""The torch side of the sandbox (docs/trust.md): each request of the fork server sees only its own directories,
and an operation the sandbox refused ends the request with the code sandbox_refused.

The TypeScript side starts this process under bubblewrap (lib/environments/sandbox.ts) with TTD_SANDBOX=on and
three lists of directories that all requests of a fork server share: TTD_SANDBOX_PRIVATE (the work root), of which a
request sees only the entries its path arguments lie in (its own work dir); TTD_SANDBOX_SHARED (the Inductor cache),
which a request sees only when a path argument names it (compile); TTD_SANDBOX_HIDDEN (the server's socket), which
no request sees.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
from collections.abc import Iterable
from typing import Any

from . import codes
from .protocol import ProtocolError

SCRATCH = "/tmp"  # the sandbox's private tmpfs
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
CAP_LAST = 63  # cap numbers above the kernel's last one fail with EINVAL, which drop_capabilities ignores
LINUX_CAPABILITY_VERSION_3 = 0x20080522

# The request's own directories (set by allow()): a refusal is an operation outside them.
_allowed: list[str] = []


class SandboxRefused(ProtocolError):
    """The sandbox refused an operation of the model's code (a host file, the network)."""

    def __init__(self, message: str) -> None:
        super().__init__(codes.SANDBOX_REFUSED, message)


class IsolationFailed(Exception):
    """A fork server child could not narrow its view to its request."""


def enabled() -> bool:
    """Whether this process runs in ttd's sandbox."""
    return os.environ.get("TTD_SANDBOX") == "on"


def env_list(name: str) -> list[str]:
    """A JSON list of absolute paths from the environment (empty when unset)."""
    try:
        value = json.loads(os.environ.get(name) or "[]")
    except ValueError:
        return []
    return [p for p in value if isinstance(p, str) and p.startswith("/")] if isinstance(value, list) else []


def path_args(value: Any, key: str = "") -> Iterable[str]:
    """The path arguments of a request, named as docs/protocol.md names them (`path`, `*_path`, `*_dir`), through
    objects and arrays; never inside `params`, the user's free-form record."""
    if isinstance(value, str):
        if key == "path" or key.endswith(("_path", "_dir")):
            yield value
    elif isinstance(value, list):
        for v in value:
            yield from path_args(v, key)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k != "params":
                yield from path_args(v, str(k))


def request_dirs(args: Any, work_roots: list[str], shared: list[str]) -> list[str]:
    """The directories a request may see: for each path argument under a work root, the root's entry it lies in (a
    stage's work dir; never the root itself), and each shared directory (the Inductor cache) it names or lies in.
    The same rule as requestDirs in activities/torch-process/command.ts."""
    found: set[str] = set()
    for s in path_args(args):
        for root in work_roots:
            if s.startswith(root + "/"):
                entry = s[len(root) + 1 :].split("/")[0]
                if entry not in ("", ".", ".."):
                    found.add(os.path.join(root, entry))
        for d in shared:
            if s == d or s.startswith(d + "/"):
                found.add(d)
    return sorted(found)


def allow(args: Any) -> None:
    """Record the request's own directories, against which refusals are judged."""
    _allowed[:] = request_dirs(args, env_list("TTD_SANDBOX_PRIVATE"), env_list("TTD_SANDBOX_SHARED"))


def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    return libc


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise IsolationFailed(f"{what}: {os.strerror(err)} (errno {err})")


def _new_user_and_mount_namespace(libc: Any) -> None:
    """Enter a new user and mount namespace, keeping our uid and gid (mapped to themselves)."""
    uid, gid = os.getuid(), os.getgid()
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(CLONE_NEWUSER | CLONE_NEWNS)")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


def _covered(path: str, by: Iterable[str]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in by)


def isolate(args: Any) -> None:
    """In a fork server child: a mount namespace of its own in which the sandbox's scratch is a fresh tmpfs, the shared
    directories show only what this request names, and the hidden ones nothing; then a second user namespace, so the
    model's code cannot unmount what hides the rest (the mounts are locked). Raises IsolationFailed."""
    private = env_list("TTD_SANDBOX_PRIVATE")
    shared = env_list("TTD_SANDBOX_SHARED")
    hidden = env_list("TTD_SANDBOX_HIDDEN")
    readonly = env_list("TTD_SANDBOX_READONLY")
    keep = request_dirs(args, private, shared)
    libc = _libc()
    _new_user_and_mount_namespace(libc)
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making / private")
    fds = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in keep if os.path.isdir(path)]
    # The read-only paths (the torch environment, the ttd package) under the scratch, when the checkout lies in /tmp:
    # the fresh scratch would hide them, so they are bound again from what this process sees now. A bind keeps its
    # source's read-only flag (and bwrap's mounts are locked read-only in this user namespace): they stay read-only.
    ro_fds = [
        (path, os.open(path, os.O_PATH | os.O_DIRECTORY))
        for path in readonly
        if _covered(path, [SCRATCH, *private, *shared, *hidden]) and os.path.isdir(path)
    ]
    # Outermost first; a directory inside one already covered by a fresh tmpfs has vanished with it.
    covered: list[str] = []
    for path in sorted({SCRATCH, *private, *shared, *hidden}, key=len):
        if path in keep or _covered(path, covered) or not os.path.isdir(path):
            continue
        _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", 0, b"mode=0755"), f"a tmpfs on {path}")
        covered.append(path)
    for path, fd in ro_fds:
        os.makedirs(path, exist_ok=True)
        _check(
            libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND | MS_REC, None), f"binding {path}"
        )
        os.close(fd)
    for path, fd in fds:
        os.makedirs(path, exist_ok=True)
        _check(
            libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND | MS_REC, None), f"binding {path}"
        )
        os.close(fd)
    _new_user_and_mount_namespace(libc)
    drop_capabilities(libc)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities(libc: Any) -> None:
    """Drop every capability the innermost user namespace gave us: the bounding set, then the capability sets."""
    for cap in range(CAP_LAST + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    data = (_CapData * 2)()
    _check(libc.capset(ctypes.byref(_CapHeader(LINUX_CAPABILITY_VERSION_3, 0)), data), "capset (dropping all)")


def not_dumpable() -> None:
    """The fork server and its children cannot be read through /proc/PID (root, mem, fd) by a sibling request."""
    try:
        _check(_libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE, 0)")
    except (OSError, AttributeError, IsolationFailed):
        pass


FS_REFUSAL = re.compile(r"(No such file or directory|Permission denied|Read-only file system|Operation not permitted)")
NET_REFUSAL = re.compile(
    r"(Network is unreachable|Temporary failure in name resolution|Name or service not known|"
    r"Connection refused|Address family not supported)"
)
PATH_NEAR = re.compile(r"(?<![\w.])(/(?:[\w.@+~-]+/?)+)")
SOURCE_LINE = re.compile(r'File "[^"]*", line \d+')


def refusal(text: str, allowed: list[str]) -> str | None:
    """What the sandbox refused, judged from an error's text: a network operation, or a file operation on a path
    outside the request's directories (a missing file of its own scratch is not a refusal); None when none shows.
    The same rule as sandboxRefusal in lib/environments/sandbox.ts, plus the scratch check only this side can make."""
    net = NET_REFUSAL.search(text)
    if net:
        return f"a network operation ({net.group(1)}): the sandbox has no network"
    for m in FS_REFUSAL.finditer(text):
        near = SOURCE_LINE.sub("", text[max(0, m.start() - 300) : m.end() + 300])
        for p in PATH_NEAR.finditer(near):
            path = p.group(1).rstrip("/.") or "/"
            if _covered(path, allowed):
                continue
            if (
                m.group(1) == "No such file or directory"
                and _covered(path, [SCRATCH])
                and not _covered(path, env_list("TTD_SANDBOX_READONLY"))
                and os.path.isdir(os.path.dirname(path))
            ):
                continue  # its own scratch: a file it did not create (not the read-only paths a checkout in /tmp adds)
            return f"access to '{path}' ({m.group(1)}), outside the request's work directory"
    return None


def exception_text(exc: BaseException) -> str:
    """An exception's message with those of its causes (torch wraps the OS error in its own)."""
    parts, seen = [], set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        parts.append(f"{type(cur).__name__}: {cur}")
        cur = cur.__cause__ or cur.__context__
    return "\n".join(parts)


def raise_if_refused(exc: BaseException) -> None:
    """Raise SandboxRefused when exc shows an operation the sandbox refused (only in the sandbox); else return, and
    the caller goes on treating exc as before."""
    if isinstance(exc, SandboxRefused):
        raise exc
    if not enabled():
        return
    text = exception_text(exc)
    what = refusal(text, _allowed)
    if what is None:
        return
    first = " ".join(text.strip().splitlines()[-1:])[:300]
    raise SandboxRefused(
        f"the sandbox refused {what}: {first}; model files and foreign archives run without network "
        "or credentials and see the host read-only, except their own work directory (docs/trust.md)"
    )
