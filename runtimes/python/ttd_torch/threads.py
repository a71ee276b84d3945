"""Threads of a torch request: the worker sets TTD_TORCH_THREADS so that the stages it runs at once share the host's
cores instead of each starting a pool as large as the host (lib/limits/capacity.ts)."""

from __future__ import annotations

import os

VARIABLE = "TTD_TORCH_THREADS"
MAX_THREADS = 1024  # as lib/limits/capacity.ts: MAX_CONCURRENCY


def configured() -> int | None:
    """The thread count the worker asked for; None when it asked for none or the value is not a count."""
    value = os.environ.get(VARIABLE, "").strip()
    if not value.isdigit():
        return None
    n = int(value)
    return n if 1 <= n <= MAX_THREADS else None


def requested(value: object) -> int | None:
    """A request envelope's `threads` (docs/protocol.md): a count from 1 to MAX_THREADS, else None (bools are not)."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_THREADS:
        return value
    return None


def apply(count: int | None = None) -> int | None:
    """Give this process `count` intra-op and inter-op threads (a request's own count), else the configured ones; the
    count set, or None.

    Call it in a process that has not yet run a torch op (a forked child, a fresh server), and after anything that needs
    the process to have one thread (the sandbox's unshare): torch starts the intra-op pool's threads here. The inter-op
    pool can be sized only once per process; a second call leaves it as it is."""
    n = count if count is not None else configured()
    if n is None:
        return None
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # already sized or started in this process
        pass
    return n
