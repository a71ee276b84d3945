"""Shared paths and a subprocess driver for the torch-side tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(PYTHON_DIR))
SEED_MODEL = os.path.join(REPO, "examples", "seed-mlp", "model.py")
FIXTURES = os.path.join(REPO, "test", "fixtures", "models")
RUNNER = os.path.join(PYTHON_DIR, "ttd_parity_runner.py")
PYTHON = sys.executable  # run the tests with /usr/bin/python3 (the interpreter that has torch)


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
