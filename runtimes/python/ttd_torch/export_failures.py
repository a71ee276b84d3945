"""Why torch.export refused a model: the code, the user's file and line, and the fix, from the exception and logs."""

from __future__ import annotations

import contextlib
import linecache
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from . import codes

# torch.export decides a dimension's fate here: "eval Eq(s77, 4) [guard added]", "set_replacement s77 = 4".
SHAPES_LOGGER = "torch.fx.experimental.symbolic_shapes"
EXPORT_DOCS = "https://pytorch.org/docs/stable/export.html (Limitations; ExportDB lists each supported construct)"
MAX_REASON = 400  # characters of torch's own message quoted


@dataclass
class Site:
    """A line of the user's code: file, line number and its source text."""

    filename: str
    lineno: int

    def words(self) -> str:
        code = linecache.getline(self.filename, self.lineno).strip()
        return f"{self.filename}:{self.lineno}" + (f" (`{code}`)" if code else "")


class GuardSites(logging.Handler):
    """Records the user's line at each shape guard torch.export adds (its logs run inside the user's forward())."""

    def __init__(self, model_path: str) -> None:
        super().__init__(logging.INFO)
        self.model_path = model_path
        self.sites: list[tuple[str, Site]] = []  # (torch's log message, the user's line then)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "[guard added]" not in message and not message.startswith("set_replacement"):
            return
        frame = sys._getframe()
        site = None
        while frame is not None and site is None:
            if is_user_file(frame.f_code.co_filename, self.model_path):
                site = Site(frame.f_code.co_filename, frame.f_lineno)
            frame = frame.f_back
        if site is not None:
            self.sites.append((message, site))

    def specialising(self) -> Site | None:
        """The line where a dimension became a constant (set_replacement to a number), else the last guarded line."""
        fixed = [s for m, s in self.sites if re.match(r"set_replacement \S+ = -?\d+\b", m)]
        if fixed:
            return fixed[0]
        return self.sites[-1][1] if self.sites else None


@contextlib.contextmanager
def guard_sites(model_path: str) -> Iterator[GuardSites]:
    """Collect GuardSites for the duration; torch's shape logger gets its level and propagation back afterwards."""
    logger = logging.getLogger(SHAPES_LOGGER)
    handler = GuardSites(model_path)
    level, propagate = logger.level, logger.propagate
    others = {h: h.level for h in logger.handlers}
    if not logger.isEnabledFor(logging.INFO):
        # The INFO records we ask for are ours, not the server's stderr: torch's own handlers keep seeing warnings only.
        for other in others:
            other.setLevel(max(other.level, logging.WARNING))
        logger.setLevel(logging.INFO)
        logger.propagate = False
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        for other, other_level in others.items():
            other.setLevel(other_level)


def is_user_file(filename: str, model_path: str) -> bool:
    """The model file itself, or a file beside it that it imports."""
    return filename == model_path or os.path.dirname(os.path.abspath(filename)) == os.path.dirname(model_path)


def chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes/contexts, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def traceback_site(errors: list[BaseException], model_path: str) -> Site | None:
    """The innermost frame in the user's files of any exception in the chain."""
    for err in errors:
        tb, found = err.__traceback__, None
        while tb is not None:
            if is_user_file(tb.tb_frame.f_code.co_filename, model_path):
                found = Site(tb.tb_frame.f_code.co_filename, tb.tb_lineno)
            tb = tb.tb_next
        if found is not None:
            return found
    return None


def text_site(errors: list[BaseException], model_path: str) -> Site | None:
    """A `File "<model file>", line N` that torch quotes in its message ("The following call raised this error")."""
    pattern = re.compile(r'File "([^"]+)", line (\d+)')
    for err in errors:
        for filename, line in pattern.findall(str(err)):
            if is_user_file(filename, model_path):
                return Site(filename, int(line))
    return None


def reason(exc: BaseException) -> str:
    """torch's message, first lines only (its debugging advice left out), on one line."""
    kept = []
    for line in str(exc).splitlines():
        if line.startswith(
            (
                "For more information",
                "For extended logs",
                "If you suspect",
                "For more debugging",
                "For C++ stack trace",
                "The error above occurred",
                "consider using",
            )
        ):
            continue
        kept.append(line.strip())
    text = " ".join(" ".join(kept).split())
    return text if len(text) <= MAX_REASON else text[:MAX_REASON].rstrip() + " …"


def names(errors: list[BaseException]) -> list[str]:
    """The class names in the chain and their bases (GuardOnDataDependentSymNode, ConstraintViolationError, …)."""
    return [cls.__name__ for err in errors for cls in type(err).__mro__]


def classify(exc: BaseException, model_path: str, batch_words: str, sites: GuardSites | None = None) -> tuple[str, str]:
    """(code, message) for an exception torch.export raised on the user's model."""
    errors = chain(exc)
    kinds = names(errors)
    text = " ".join(str(e) for e in errors)
    site = traceback_site(errors, model_path) or text_site(errors, model_path)
    what = f"{type(exc).__name__}: {reason(exc)}"
    if "GuardOnDataDependentSymNode" in kinds or "data-dependent" in text or "data dependent" in text:
        where = f"at {site.words()}" if site else f"in {model_path} (torch named no line)"
        return codes.DATA_DEPENDENT_CONTROL_FLOW, (
            f"torch.export cannot export the model {where}: Python control flow or a Python value depends on a "
            f"tensor's values ({what}); an exported graph holds no Python branches (expected conditions on shapes "
            "only); write the branch as tensor ops: torch.where(cond, a, b) to choose values, or "
            "torch.cond(pred, true_fn, false_fn, (x,)) for two sub-graphs, and keep float(t) / t.item() as tensors"
        )
    if "ConstraintViolationError" in kinds or "Constraints violated" in text or "specialized" in text:
        site = site or (sites.specialising() if sites else None)
        where = f"at {site.words()}" if site else f"in {model_path} (torch named no line)"
        return codes.DYNAMIC_SHAPE_VIOLATION, (
            f"torch.export cannot keep the batch dimension dynamic {where}: the code fixes it to a constant or "
            f"breaks its range ({what}), but the program must serve {batch_words} (expected the batch size to stay "
            "symbolic); use x.shape[0] (e.g. x.view(x.shape[0], -1)) instead of a fixed size, len(x) or "
            "int(x.size(0)), or set trace.batch_sizes: [] to export the example's shape only"
        )
    where = f" at {site.words()}" if site else ""
    return codes.UNSUPPORTED_CONSTRUCT, (
        f"torch.export cannot export the model in {model_path}{where}: {what} (expected code torch.export can "
        f"capture); rewrite the construct named above, see {EXPORT_DOCS}"
    )
