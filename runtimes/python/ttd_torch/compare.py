"""Comparing output lists with allclose semantics: |a - b| <= atol + rtol * |b|, b the reference."""

from __future__ import annotations

from typing import Any

import torch

TINY = torch.finfo(torch.float64).tiny


CHUNK = 1 << 20  # elements measured at once: the float64 temporaries stay a few MiB whatever an output's size


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
        # Flat and a chunk at a time (a language model's logits are hundreds of MB; measured whole in float64, each
        # temporary was eight times that): the maxima and the verdict are the same as measured whole.
        a_flat, b_flat = a.detach().reshape(-1), b.detach().reshape(-1)
        for start in range(0, a_flat.numel(), CHUNK):
            chunk_abs, chunk_rel, chunk_passed = measure(
                a_flat[start : start + CHUNK], b_flat[start : start + CHUNK], atol, rtol
            )
            max_abs, max_rel = max(max_abs, chunk_abs), max(max_rel, chunk_rel)
            passed = passed and chunk_passed
    return {"max_abs_error": max_abs, "max_rel_error": max_rel, "passed": passed, "error": None}


def measure(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> tuple[float, float, bool]:
    """(max abs error, max rel error, all close) of a against b, two non-empty tensors of one shape and dtype."""
    a64 = a.to(torch.float64)
    b64 = b.to(torch.float64)
    # Equal values (infinities and NaN at the same place included) count as zero error.
    same = (a64 == b64) | (torch.isnan(a64) & torch.isnan(b64))
    diff = torch.where(same, torch.zeros_like(a64), (a64 - b64).abs())
    diff = torch.nan_to_num(diff, nan=float("inf"), posinf=float("inf"))
    # Equal values have no relative error either (a NaN in both was 0 / NaN, an infinite relative error).
    rel = torch.where(same, torch.zeros_like(diff), diff / b64.abs().clamp_min(TINY))
    max_rel = float(torch.nan_to_num(rel, nan=float("inf"), posinf=float("inf")).max())
    # Like torch.isclose: a non-finite value only matches an identical one.
    close = same | (torch.isfinite(a64) & torch.isfinite(b64) & (diff <= atol + rtol * b64.abs()))
    return float(diff.max()), max_rel, bool(close.all())


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
