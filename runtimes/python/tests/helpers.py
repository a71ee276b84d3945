"""Shared paths and a subprocess driver for the torch-side tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypedDict, cast

import torch

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(PYTHON_DIR))
SEED_MODEL = os.path.join(REPO, "examples", "seed-mlp", "model.py")
FIXTURES = os.path.join(REPO, "test", "fixtures", "models")
RUNNER = os.path.join(PYTHON_DIR, "ttd_parity_runner.py")
PYTHON = sys.executable  # run the tests with /usr/bin/python3 (the interpreter that has torch)


class Tolerance(TypedDict):
    """atol and rtol, as request arguments and as torch.allclose's keywords."""

    atol: float
    rtol: float


TOL: Tolerance = {"atol": 1e-5, "rtol": 1e-4}


def jit_trace(fn: torch.nn.Module | Callable[..., Any], example: Any, **kwargs: Any) -> torch.jit.ScriptModule:
    """torch.jit.trace, typed as what the tests use: torch's inferred return type also lists the (graph, stack) tuple
    of an internal path that trace never takes. A traced function is a ScriptFunction, with the same graph,
    inlined_graph, save and call."""
    return cast(torch.jit.ScriptModule, torch.jit.trace(fn, example, **kwargs))


def serve(requests: list[dict[str, Any]], timeout: float = 120) -> tuple[list[dict[str, Any]], str, int]:
    """Run `python -m ttd_torch` on request lines; returns (parsed stdout lines, stderr, exit code)."""
    lines = "".join(json.dumps({"v": 1, **r}) + "\n" for r in requests)
    env = {**os.environ, "PYTHONPATH": PYTHON_DIR}
    proc = subprocess.run(
        [PYTHON, "-m", "ttd_torch"], input=lines, capture_output=True, text=True, env=env, timeout=timeout, cwd="/"
    )
    return [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr, proc.returncode


def responses(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The response (not event) lines by request id."""
    return {m["id"]: m for m in messages if "ok" in m}


def default_sigint() -> None:
    """In a child before it runs: SIGINT back to its default, whatever this process inherited."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
