"""Loading the user's model file and calling into it, turning its exceptions into model_error."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from . import interrupts, sandbox
from .protocol import ModelError, traceback_tail

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

REQUIRED = ("build_model", "dataset")
_counter = itertools.count()


@contextlib.contextmanager
def user_code(path: str, what: str) -> Iterator[None]:
    """Run a block of user code; any exception it raises becomes a model_error naming the file."""
    try:
        yield
    except ModelError:
        raise
    except interrupts.NOT_EXCEPTIONS as exc:  # a model file calling sys.exit (or raising these) must not end the server
        if interrupts.is_real_interrupt(exc):
            raise  # a SIGINT to this process: it ends as it always has
        raise ModelError(interrupts.describe(exc, what, path), user_traceback(exc)) from exc
    except Exception as exc:
        sandbox.raise_if_refused(exc)
        raise ModelError(f"{type(exc).__name__}: {exc} (in {what} of {path})", user_traceback(exc)) from exc


def user_traceback(exc: BaseException) -> str:
    """The traceback tail without our own leading frames, so it starts in the user's code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename.startswith(PACKAGE_DIR):
        tb = tb.tb_next
    return traceback_tail(exc.with_traceback(tb))


def load(path: str) -> ModuleType:
    """Import a model file afresh under a unique name and check its required functions."""
    if not os.path.isfile(path):
        raise ModelError(f"model file {path} does not exist")
    name = f"ttd_user_model_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"model file {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up here
    with user_code(path, "import"):
        spec.loader.exec_module(module)
    for fn in REQUIRED:
        if not callable(getattr(module, fn, None)):
            raise ModelError(f"model file {path} lacks the function {fn}(); expected {fn} to be defined")
    return module


def optional(module: ModuleType, name: str) -> Callable[..., Any] | None:
    """The model file's optional function by name, or None."""
    fn = getattr(module, name, None)
    return fn if callable(fn) else None


def call(module: ModuleType, name: str, *args: Any) -> Any:
    """Call a function of the model file, reporting its exceptions as model_error."""
    with user_code(module.__file__ or "?", f"{name}()"):
        return getattr(module, name)(*args)
