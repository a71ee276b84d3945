"""The verify gate's verdict: which failure code applies, in a fixed precedence, and which findings only warn."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from . import captures as capture_words
from . import codes, compare

SCRIPT_HINT = "or set trace.mode: script so that TorchScript compiles the Python logic instead of recording one run"


@dataclass
class Facts:
    """Everything verify measured about a traced module."""

    cases: list[dict[str, Any]]
    atol: float
    rtol: float
    example_shape: list[list[int]] = field(default_factory=list)
    chunk_checks: dict[str, Any] = field(default_factory=dict)  # {"chunks", "failed", "first_failure"}
    train_ops: list[str] = field(default_factory=list)
    repeat: dict[str, Any] = field(default_factory=dict)  # traced twice on one input: {"case", "passed", ...}
    nondeterministic_nodes: list[str] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    target_device: str = "cpu"
    captures: list[dict[str, Any]] = field(default_factory=list)
    accept_captures: list[str] = field(default_factory=list)  # FILE:LINE of captures the spec accepts
    tracer_warnings: list[dict[str, Any]] = field(default_factory=list)  # torch's, from the user's files
    eager_failures: list[str] = field(default_factory=list)  # cases the eager model raised on (train-mode ops only)
    # batch_sizes []: every case has the example's shapes, so any failing case depends on values, never on size
    example_shaped: bool = False


def case_words(case: dict[str, Any], atol: float, rtol: float) -> str:
    """A failed comparison in words: the error, or the measured and allowed error."""
    if case.get("error"):
        return f"case {case['name']}: {short(str(case['error']))}"
    return (
        f"case {case['name']}: max abs error {case['max_abs_error']:g}, max rel error "
        f"{case['max_rel_error']:g}; allowed {compare.allowed(atol, rtol)}"
    )


def short(text: str, limit: int = 240) -> str:
    """The first sentence-ish part of a long error or warning text."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


def same_device(device: str, target: str) -> bool:
    """True when a baked-in device matches the target (the index only counts when both name one)."""
    a, b = torch.device(device), torch.device(target)
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def differing_devices(facts: Facts) -> list[dict[str, Any]]:
    """The baked-in devices that differ from the target device."""
    return [d for d in facts.devices if not same_device(str(d["device"]), facts.target_device)]


def device_words(devices: list[dict[str, Any]]) -> str:
    """Devices and the ops that use them: 'cpu (aten::zeros)'."""
    seen: dict[str, list[str]] = {}
    for d in devices:
        users = seen.setdefault(str(d["device"]), [])
        users.extend(u for u in d.get("users", []) if u not in users)
    return ", ".join(f"{dev} (used by {', '.join(users) or 'nothing'})" for dev, users in seen.items())


def value_failure(facts: Facts) -> str | None:
    """Why outputs differ at the example's own shape (value-dependent divergence), or None."""
    chunks = facts.chunk_checks
    if chunks.get("chunks") and chunks.get("failed"):
        return chunks.get("first_failure")
    if chunks.get("chunks") and not facts.example_shaped:
        return None
    # No example-shaped chunks could be cut (every failing case that is not a batch_<n> case counts), or
    # every case is example-shaped (every failing case counts: shape_specialization cannot apply).
    failed = [
        c for c in facts.cases if not c["passed"] and (facts.example_shaped or not c["name"].startswith("batch_"))
    ]
    return case_words(failed[0], facts.atol, facts.rtol) if failed else None


def accepted(capture: dict[str, Any], accept: list[str]) -> bool:
    """True when trace.accept_captures names the capture's file (by its name) and line."""
    return capture_words.where(capture) in accept


def causes(facts: Facts) -> list[dict[str, Any]]:
    """Captures that may explain a divergence: from the inputs, or of unknown origin (records before the analysis)."""
    return [c for c in facts.captures if c.get("source", "unknown") in ("input", "unknown")]


def rejected_captures(facts: Facts) -> list[dict[str, Any]]:
    """Values the trace froze although they come from the inputs and reach the outputs, not accepted by the spec.

    A bool decides a branch, so it always counts (the branch not taken may change nothing on the example, as an
    outlier guard does); a number counts unless changing it on the example left every output unchanged."""
    return [
        c
        for c in facts.captures
        if c.get("source") == "input"
        and not accepted(c, facts.accept_captures)
        and (c.get("kind") == "bool" or c.get("affects_outputs") is not False)
    ]


def divergence(facts: Facts, why: str) -> tuple[str, str]:
    """control_flow_divergence or python_value_capture, from the captures the trace reported."""
    found = causes(facts)
    bools = [c for c in found if c.get("kind") == "bool"]
    numbers = [c for c in found if c.get("kind") == "number"]
    if numbers and not bools:
        return codes.PYTHON_VALUE_CAPTURE, (
            f"traced and eager outputs differ on inputs other than the example ({why}); the model turned a "
            f"tensor into a Python number at {capture_words.describe(numbers)} ({constructs(numbers)}), which the "
            "trace froze as the example's value (expected no value captured from a tensor); "
            f"{capture_words.fixes(numbers)}; {SCRIPT_HINT}"
        )
    if bools or numbers:
        return codes.CONTROL_FLOW_DIVERGENCE, (
            f"traced and eager outputs differ on inputs that take other paths ({why}); a Python condition on a "
            f"tensor at {capture_words.describe(bools + numbers)} ({constructs(bools + numbers)}) was recorded as "
            f"the branch the example took (expected identical outputs on every probe); "
            f"{capture_words.fixes(bools + numbers)}; {SCRIPT_HINT}"
        )
    return codes.CONTROL_FLOW_DIVERGENCE, (
        f"traced and eager outputs differ on inputs that take other paths ({why}) (expected identical outputs on "
        f"every probe); use torch.where or tensor ops instead of Python if/while on tensor values, {SCRIPT_HINT}"
    )


def constructs(items: list[dict[str, Any]]) -> str:
    """The constructs of captures in words, once each: 'a Python if on a tensor, .item() of a tensor'."""
    names = list(dict.fromkeys(str(c.get("construct") or "unknown") for c in items))
    return ", ".join(capture_words.CONSTRUCTS.get(n, capture_words.CONSTRUCTS["unknown"])[0] for n in names)


def capture_failure(found: list[dict[str, Any]]) -> str:
    """The python_value_capture message for values taken from the inputs that no probe showed."""
    listed = "; ".join(
        capture_words.words(c)
        + (", and changing it on the example changed the outputs" if c.get("affects_outputs") else "")
        for c in found
    )
    places = ", ".join(f"'{capture_words.where(c)}'" for c in found)
    return (
        f"the trace froze Python values taken from tensors computed from the inputs: {listed}; no probe took "
        "another path, but any input that would gets the example's branch or value from the traced graph "
        "(expected no Python value from an input-dependent tensor in a traced forward()); "
        f"{capture_words.fixes(found)}; if freezing it is safe, list {places} in trace.accept_captures, "
        f"{SCRIPT_HINT}"
    )


def shape_failure(facts: Facts) -> str:
    """The shape_specialization message for the first failing case."""
    failed = [c for c in facts.cases if not c["passed"]]
    case = ([c for c in failed if c["name"].startswith("batch_")] or failed)[0]
    # Sizes frozen by name (len, iteration, int(x.size(0))); records before the analysis only know len by its text.
    sized = [c for c in facts.captures if c.get("source") == "shape" or "len" in str(c.get("message", "")).lower()]
    hint = "".join(f"; {constructs([c])} was captured at {capture_words.describe([c])}" for c in sized[:3])
    if sized:
        hint += f" ({capture_words.fixes(sized[:3])})"
    shape = " ".join(str(s) for s in facts.example_shape) or "?"
    return (
        f"the traced graph fails or disagrees at another batch size ({case_words(case, facts.atol, facts.rtol)})"
        f"; it agrees at the example's shape {shape}{hint} (expected the same outputs at every batch size): "
        "the trace froze the batch size (a loop over range(x.size(0)) is unrolled, len(x) or a hard-coded "
        "view(4, -1) become constants); use batched tensor ops with x.shape[0] or view(x.shape[0], -1), "
        f"{SCRIPT_HINT}"
    )


def verdict(facts: Facts) -> tuple[str | None, str, list[str]]:
    """(code or None, message, warnings), codes in precedence order."""
    code, message = decide(facts)
    return code, message, gate_warnings(facts, code)


TRAIN_FIX = "call model.eval() before tracing, and pass training=self.training to F.dropout/F.batch_norm in forward()"
DEVICE_FIX = (
    "register such tensors as buffers (they move with .to(device)), use trace.mode: script with "
    "device=x.device, or trace on the target device"
)


def graph_decision(facts: Facts, train_fix: str = TRAIN_FIX, device_fix: str = DEVICE_FIX) -> tuple[str, str] | None:
    """(code, message) for what the graph itself shows: train_mode_ops, nondeterministic, device_constant; else None."""
    if facts.train_ops:
        eager = f"; the eager model itself raised on {'; '.join(facts.eager_failures)}" if facts.eager_failures else ""
        return codes.TRAIN_MODE_OPS, (
            f"the traced graph keeps {', '.join(facts.train_ops)} in training mode "
            f"(expected no train-mode ops){eager}; {train_fix}"
        )
    if facts.repeat and not facts.repeat.get("passed", True):
        nodes = ", ".join(facts.nondeterministic_nodes) or "none that TorchScript marks"
        return codes.NONDETERMINISTIC, (
            f"two runs of the traced module on case {facts.repeat['case']} differ "
            f"({facts.repeat['words']}; expected identical outputs); random ops in the "
            f"graph: {nodes}; draw random numbers only when self.training, or remove them "
            "from forward()"
        )
    differing = differing_devices(facts)
    if differing:
        return codes.DEVICE_CONSTANT, (
            f"the traced graph bakes device {device_words(differing)} into constants but "
            f"target_device is {facts.target_device} (expected no device other than the "
            "target; a trace records every factory call's device, x.new_zeros and torch.zeros_like "
            f"included); {device_fix}"
        )
    return None


def decide(facts: Facts) -> tuple[str | None, str]:
    """(code or None, message): train_mode_ops, nondeterministic, device_constant, divergence, shape."""
    found = graph_decision(facts)
    if found is not None:
        return found
    why = value_failure(facts)
    if why is not None:
        return divergence(facts, why)
    frozen = rejected_captures(facts)
    if frozen:
        return codes.PYTHON_VALUE_CAPTURE, capture_failure(frozen)
    if any(not c["passed"] for c in facts.cases):
        return codes.SHAPE_SPECIALIZATION, shape_failure(facts)
    worst = max((c["max_abs_error"] or 0.0) for c in facts.cases) if facts.cases else 0.0
    return None, (
        f"traced and eager agree on {len(facts.cases)} cases ({case_names(facts.cases)})"
        f" and {facts.chunk_checks.get('chunks', 0)} example-shaped chunks; max abs error {worst:.2e}, "
        f"allowed {compare.allowed(facts.atol, facts.rtol)}"
    )


def case_names(cases: list[dict[str, Any]], shown: int = 12) -> str:
    """Case names for a message; past `shown` of them (example-shaped rows), the first ones and a count."""
    names = [c["name"] for c in cases]
    return ", ".join(names) if len(names) <= shown else f"{', '.join(names[:shown])} and {len(names) - shown} more"


def capture_warning(c: dict[str, Any], facts: Facts) -> str:
    """One capture that did not reject, in words that say why it did not."""
    said = f"the trace froze {capture_words.words(c)}"
    source = c.get("source", "unknown")
    if source == "input" and accepted(c, facts.accept_captures):
        return f"{said}; accepted by trace.accept_captures, so every input gets the example's branch or value"
    if source == "input":
        return (
            f"{said}; changing its value on the example left every output unchanged, so it is harmless here, "
            "but it is frozen to the example's value in the graph"
        )
    if source in ("parameter", "constant"):
        return f"{said}; it does not depend on the inputs, so freezing it is safe while the weights stay as traced"
    if source == "shape":
        return (
            f"{said}; it is frozen to the example's shape, and the trace.batch_sizes cases check the sizes "
            "the graph must serve"
        )
    return (
        f"the trace captured a tensor as a Python {'boolean' if c.get('kind') == 'bool' else 'number'} at "
        f"{capture_words.where(c)} ({short(str(c.get('message', '')), 90)}); no probe's outputs depend on it, so "
        "it is harmless here, but it is frozen to the example's value in the graph"
    )


def gate_warnings(facts: Facts, code: str | None) -> list[str]:
    """One-line warnings: captures that did not reject (only when passed), accept entries that match nothing, torch's
    TracerWarnings from the user's files, same-device constants, repeatable random ops."""
    out: list[str] = []
    for c in facts.captures if code is None else []:
        out.append(capture_warning(c, facts))
    places = {capture_words.where(c) for c in facts.captures}
    for entry in facts.accept_captures:
        if entry not in places:
            out.append(
                f"trace.accept_captures lists '{entry}' but the trace took no Python value from a tensor "
                "there; remove the entry"
            )
    for w in facts.tracer_warnings:
        out.append(f"torch warned while tracing at {capture_words.where(w)}: {short(str(w.get('message', '')), 160)}")
    same = [d for d in facts.devices if same_device(str(d["device"]), facts.target_device)]
    if same:
        out.append(
            f"the traced graph bakes device {device_words(same)} into constants; it matches target_device "
            f"{facts.target_device}, but the artifact will not run on another device"
        )
    if facts.nondeterministic_nodes and facts.repeat.get("passed", True):
        out.append(
            f"the graph holds ops TorchScript marks nondeterministic ({', '.join(facts.nondeterministic_nodes)})"
            " but two runs gave identical outputs"
        )
    return out
