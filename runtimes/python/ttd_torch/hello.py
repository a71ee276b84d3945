"""The hello op: which protocol, torch and Python this server runs."""

from __future__ import annotations

import platform
from importlib import metadata
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
        "packages": exporter_versions(),
    }


EXPORTERS = ("onnx", "onnxscript", "onnxruntime")  # what the onnx stage's output depends on beside torch


def exporter_versions() -> dict[str, str]:
    """The installed versions of the exporters' packages (read from their metadata, never imported), by name."""
    found: dict[str, str] = {}
    for name in EXPORTERS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def installed_packages() -> dict[str, str]:
    """Every distribution installed in this environment, name (lower case) to version, read from metadata: what a
    version's provenance names as its environment's resolved packages."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(str(name).lower(), dist.version)
    return dict(sorted(found.items()))
