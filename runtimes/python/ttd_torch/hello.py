"""The hello op: which protocol, torch and Python this server runs."""

from __future__ import annotations

import platform
from typing import Any

import torch

from . import PROTOCOL_VERSION, protocol


@protocol.op("hello")
def hello(args: dict[str, Any]) -> dict[str, Any]:
    """Report the protocol, torch and Python versions."""
    return {
        "protocol": PROTOCOL_VERSION,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }
