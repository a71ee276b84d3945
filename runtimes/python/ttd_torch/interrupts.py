"""A model's own KeyboardInterrupt, SystemExit or GeneratorExit, told apart from a real interrupt of the stage.

None of the three is an Exception, so `except Exception` lets them through and, uncaught, they end the stage process
with a status that names nothing. Raised by model code they are the model's error (model_error, naming the exception and
where it was raised); a KeyboardInterrupt is a real interrupt only when this process received a SIGINT, and that one
still ends the process as Python's default handler would. Cancellation kills the stage's process group (SIGKILL) and
is not affected."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType

# What a model may raise that is not an Exception, and that ttd reports as the model's error.
NOT_EXCEPTIONS = (KeyboardInterrupt, SystemExit, GeneratorExit)

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

_sigint_received = False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _sigint_received
    _sigint_received = True
    signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt, as before


def watch_sigint() -> None:
    """Note every SIGINT this process receives from now on (from the main thread only, where handlers are set); a
    SIGINT still raises KeyboardInterrupt. A process that ignores SIGINT keeps ignoring it."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def is_real_interrupt(exc: BaseException) -> bool:
    """Whether exc is an interrupt this process received (a SIGINT came), not one the model raised."""
    return isinstance(exc, KeyboardInterrupt) and _sigint_received


def raised_at(exc: BaseException, path: str | None = None) -> str | None:
    """`file:line` where exc was raised: the deepest frame in `path` (the model file) when it has one, else the
    deepest frame outside this package; None without a traceback."""
    frames: list[TracebackType] = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    if path:
        wanted = os.path.realpath(path)
        in_model = [f for f in frames if os.path.realpath(f.tb_frame.f_code.co_filename) == wanted]
        if in_model:
            return f"{path}:{in_model[-1].tb_lineno}"
    outside = [f for f in frames if not f.tb_frame.f_code.co_filename.startswith(PACKAGE_DIR)]
    if not outside:
        return None
    last = outside[-1]
    return f"{last.tb_frame.f_code.co_filename}:{last.tb_lineno}"


def describe(exc: BaseException, what: str, path: str | None) -> str:
    """The message of a model_error for a KeyboardInterrupt, SystemExit or GeneratorExit the model raised."""
    name = type(exc).__name__
    shown = f"{name}({exc})" if str(exc) else name
    site = raised_at(exc, path)
    where = f" at {site}" if site else ""
    context = f" (in {what} of {path})" if path else f" (in {what})"
    if isinstance(exc, KeyboardInterrupt):
        why = "no SIGINT reached the stage, so this is the model's error, not an interrupt of the stage"
    elif isinstance(exc, SystemExit):
        why = "a model file must not exit the process (sys.exit, exit(), quit())"
    else:
        why = "GeneratorExit outside a generator being closed"
    expected = "expected the model's functions to return or raise an Exception"
    return f"the model raised {shown}{where}{context}; {why}; {expected}"
