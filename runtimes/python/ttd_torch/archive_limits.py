"""Expansion limits of zip archives, checked before torch loads one (docs/trust-limits.md).

TorchScript archives, torch.save files, torch.export programs and AOTInductor packages are zip files. torch reads
each record into a buffer of the size the central directory declares, so a small archive that declares gigabytes
(a zip bomb) costs gigabytes. Its central directory is read here, without inflating anything, and an archive with
too many entries, too many declared bytes, or bytes that expand too far beyond its size is refused.

The limits come from the worker (activities/torch-process/command.ts passes them in the environment), the same
numbers the TypeScript side checks foreign archives against before upload (lib/limits/archive-limits.ts).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from typing import NamedTuple

from . import codes
from .protocol import ProtocolError

MIB = 1024 * 1024
DEFAULT_MAX_MB = 4096
DEFAULT_MAX_ENTRIES = 65536
DEFAULT_MAX_RATIO = 100
# Below this many expanded bytes the ratio is not checked: a few KB of code compress well and cost nothing.
RATIO_FLOOR_BYTES = 1 * MIB


class Limits(NamedTuple):
    """The most an archive may hold: declared expanded bytes, entries, and expanded bytes per byte of file."""

    max_bytes: int
    max_entries: int
    max_ratio: float


class ArchiveTooLarge(ProtocolError):
    """An archive past a limit: refused before torch reads it (code archive_too_large, not retried)."""

    def __init__(self, message: str) -> None:
        super().__init__(codes.ARCHIVE_TOO_LARGE, message)


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ProtocolError(codes.BAD_REQUEST, f"{name}={raw!r}; expected a positive number")
    return value


def limits(env: Mapping[str, str] | None = None) -> Limits:
    """The limits from TTD_MAX_ARCHIVE_MB, TTD_MAX_ARCHIVE_ENTRIES and TTD_MAX_ARCHIVE_RATIO (defaults when unset)."""
    env = os.environ if env is None else env
    return Limits(
        max_bytes=int(_positive(env, "TTD_MAX_ARCHIVE_MB", DEFAULT_MAX_MB) * MIB),
        max_entries=int(_positive(env, "TTD_MAX_ARCHIVE_ENTRIES", DEFAULT_MAX_ENTRIES)),
        max_ratio=_positive(env, "TTD_MAX_ARCHIVE_RATIO", DEFAULT_MAX_RATIO),
    )


def check(path: str, what: str = "archive", bounds: Limits | None = None) -> None:
    """Raise ArchiveTooLarge when the zip at path exceeds a limit; a file that is not a zip is left to torch's loader
    (which refuses it with its own message)."""
    bounds = bounds or limits()
    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive:  # reads the central directory only
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    count = len(entries)
    if count > bounds.max_entries:
        raise ArchiveTooLarge(
            f"{what} {path!r} has {count} entries; the limit is {bounds.max_entries} (TTD_MAX_ARCHIVE_ENTRIES)"
        )
    expanded = sum(e.file_size for e in entries)
    if expanded > bounds.max_bytes:
        raise ArchiveTooLarge(
            f"{what} {path!r} ({size} bytes) expands to {expanded} bytes; the limit is "
            f"{bounds.max_bytes} bytes ({bounds.max_bytes // MIB} MiB, TTD_MAX_ARCHIVE_MB)"
        )
    if expanded > RATIO_FLOOR_BYTES and expanded > bounds.max_ratio * max(size, 1):
        raise ArchiveTooLarge(
            f"{what} {path!r} ({size} bytes) expands to {expanded} bytes, {expanded / max(size, 1):.0f} "
            f"times its size; the limit is {bounds.max_ratio:g} times (TTD_MAX_ARCHIVE_RATIO)"
        )
