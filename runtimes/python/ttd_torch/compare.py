"""Comparing output lists with allclose semantics: |a - b| <= atol + rtol * |b|, b the reference."""

from __future__ import annotations

from typing import Any

import torch

TINY = torch.finfo(torch.float64).tiny


def compare(actual: list[torch.Tensor], expected: list[torch.Tensor], atol: float, rtol: float) -> dict[str, Any]:
    """Compare two output lists; returns max_abs_error, max_rel_error, passed, error (None or why)."""
    if len(actual) != len(expected):
        return mismatch(f"{len(actual)} outputs, expected {len(expected)}")
    max_abs = 0.0
    max_rel = 0.0
    passed = True
    for j, (a, b) in enumerate(zip(actual, expected, strict=True)):
        if a.shape != b.shape or a.dtype != b.dtype:
            return mismatch(f"output {j} is {a.dtype}{list(a.shape)}, expected {b.dtype}{list(b.shape)}")
        if a.numel() == 0:
            continue
        a64 = a.detach().to(torch.float64)
        b64 = b.detach().to(torch.float64)
        # Equal values (infinities and NaN at the same place included) count as zero error.
        same = (a64 == b64) | (torch.isnan(a64) & torch.isnan(b64))
        diff = torch.where(same, torch.zeros_like(a64), (a64 - b64).abs())
        diff = torch.nan_to_num(diff, nan=float("inf"), posinf=float("inf"))
        rel = diff / b64.abs().clamp_min(TINY)
        max_abs = max(max_abs, float(diff.max()))
        max_rel = max(max_rel, float(torch.nan_to_num(rel, nan=float("inf"), posinf=float("inf")).max()))
        # Like torch.isclose: a non-finite value only matches an identical one.
        close = same | (torch.isfinite(a64) & torch.isfinite(b64) & (diff <= atol + rtol * b64.abs()))
        passed = passed and bool(close.all())
    return {"max_abs_error": max_abs, "max_rel_error": max_rel, "passed": passed, "error": None}


def mismatch(error: str) -> dict[str, Any]:
    """A failed comparison without error measures."""
    return {"max_abs_error": None, "max_rel_error": None, "passed": False, "error": error}


def allowed(atol: float, rtol: float) -> str:
    """The tolerance in words, for messages."""
    return f"atol {atol:g} + rtol {rtol:g} * |reference|"


def json_float(value: float | None) -> float | None:
    """A float for JSON: None for NaN/infinite values, which JSON cannot hold."""
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return value
