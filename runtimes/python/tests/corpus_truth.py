"""Ground truth for the tracer corpus (test/fixtures/tracer-corpus): eager against traced, measured with
torch.jit.trace directly, without any of ttd's gates; and ttd's verdict on the same models.

Each corpus file is named <expected>-<name>.py, where <expected> is `healthy` or the trace gate's code. The
ground truth says what really goes wrong with the traced module; `consistent` says whether that fits the
expected code. Print the table (and ttd's verdicts) on the torch you run it with:

    cd runtimes/python && python3 -m tests.corpus_truth
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import torch

from ttd_torch import data, server, trace, user_model

from .helpers import REPO, TOL, jit_trace

CORPUS = os.path.join(REPO, "test", "fixtures", "tracer-corpus")
Case = tuple[str, data.Inputs]
NOOP = lambda data: None  # noqa: E731 - progress events are not under test

# Transformations of floating inputs that take other paths than typical data: sign, scale, outliers, zeros.
TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "neg": lambda t: -t,
    "x10": lambda t: t * 10,
    "x0.1": lambda t: t * 0.1,
    "x1000": lambda t: t * 1000,
    "all_negative": lambda t: -t.abs() - 0.1,
    "zeros": torch.zeros_like,
}


def corpus_files() -> list[str]:
    """Every corpus model file, sorted."""
    return sorted(os.path.join(CORPUS, f) for f in os.listdir(CORPUS) if f.endswith(".py"))


def expected_code(path: str) -> str | None:
    """The code a file's name promises (None: healthy)."""
    prefix = os.path.basename(path).split("-", 1)[0]
    return None if prefix == "healthy" else prefix


def load(path: str) -> tuple[torch.nn.Module, data.Inputs, data.Inputs]:
    """(model in eval mode with seed-0 initial weights, example, validation inputs)."""
    module = user_model.load(path)
    torch.manual_seed(0)
    model = data.build(module, {}).eval()
    validation, _ = data.load_split(module, {}, "validation")
    return model, trace.example_inputs(module, {}), validation


def transformed(inputs: data.Inputs, fn: Callable[[torch.Tensor], torch.Tensor]) -> data.Inputs:
    """fn applied to the floating inputs."""
    return tuple(fn(t) if t.is_floating_point() else t for t in inputs)


def with_outlier(inputs: data.Inputs) -> data.Inputs:
    """A copy with one value of the first floating input set to 1000."""
    out = [t.clone() for t in inputs]
    for t in out:
        if t.is_floating_point():
            t.view(-1)[0] = 1000.0
            break
    return tuple(out)


def cases(example: data.Inputs, validation: data.Inputs) -> tuple[list[Case], list[Case]]:
    """(cases at the example's shape, cases at other batch sizes)."""
    rows = example[0].shape[0]
    chunks = [
        (f"rows_{i}", tuple(t[i : i + rows] for t in validation))
        for i in range(0, validation[0].shape[0] - rows + 1, rows)
    ][:6]
    same: list[Case] = [("example", example), ("example_outlier", with_outlier(example))] + chunks
    same += [
        (f"{name}_{label}", transformed(inputs, fn)) for label, inputs in chunks[:2] for name, fn in TRANSFORMS.items()
    ]
    other: list[Case] = [(f"first_{n}", tuple(t[:n] for t in validation)) for n in (1, 7) if n != rows]
    other += [("validation", validation)] + [
        (f"validation_{name}", transformed(validation, fn)) for name, fn in TRANSFORMS.items()
    ]
    return same, other


def outputs(fn: Callable[..., Any], inputs: data.Inputs) -> Any:
    """fn's flattened outputs under no_grad, or the exception it raised."""
    try:
        with torch.no_grad():
            return data.flatten(fn(*inputs), "forward()")
    except Exception as exc:  # a raising side is a finding, compared like an output
        return exc


def differ(a: Any, b: Any) -> str | None:
    """Why two outputs differ (None when they agree within the gate's default tolerances)."""
    if isinstance(a, Exception) or isinstance(b, Exception):
        if isinstance(a, Exception) and isinstance(b, Exception):
            return None
        raised = a if isinstance(a, Exception) else b
        return f"{'eager' if raised is a else 'traced'} raised {type(raised).__name__}"
    if len(a) != len(b):
        return f"{len(a)} outputs against {len(b)}"
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape:
            return f"shape {list(x.shape)} against {list(y.shape)}"
        if not torch.allclose(x, y, equal_nan=True, **TOL):
            return f"max abs error {float((x - y).abs().max()):.4g}"
    return None


def truth(path: str) -> dict[str, Any]:
    """What goes wrong with the traced module, measured: value, shape, random, batch (each a reason or None)."""
    model, example, validation = load(path)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = jit_trace(model, example, check_trace=False)
    same, other = cases(example, validation)

    def first(found: list[Case]) -> str | None:
        for name, inputs in found:
            why = differ(outputs(model, inputs), outputs(traced, inputs))
            if why:
                return f"{name}: {why}"
        return None

    random = differ(outputs(traced, validation), outputs(traced, validation))
    alone, together = outputs(traced, tuple(t[:1] for t in validation)), outputs(traced, validation)
    batch = None
    if isinstance(outputs(model, tuple(t[:1] for t in validation)), Exception):
        batch = "eager raises on one row"
    elif not isinstance(alone, Exception) and not isinstance(together, Exception) and not random:
        batch = differ(alone, [t[:1] for t in together])
        batch = f"row 0 alone and in the batch: {batch}" if batch else None
    return {"value": first(same), "shape": first(other), "random": random and f"two runs: {random}", "batch": batch}


def consistent(code: str | None, found: dict[str, Any]) -> bool:
    """Whether measured ground truth fits the expected code."""
    if code is None:
        return not any(found.values())
    if code in ("python_value_capture", "control_flow_divergence"):
        return found["value"] is not None
    if code == "shape_specialization":
        return found["shape"] is not None and found["value"] is None
    if code == "nondeterministic":
        return found["random"] is not None
    if code == "train_mode_ops":
        return found["random"] is not None or found["batch"] is not None
    return False


def gate(path: str, out_dir: str) -> dict[str, Any]:
    """ttd's trace and verify ops on the model with its seed-0 initial weights: (trace result, verify result)."""
    model, _, _ = load(path)
    weights = os.path.join(out_dir, "weights.pt")
    torch.save(model.state_dict(), weights)
    base = {"model_path": path, "params": {}, "out_dir": out_dir, "weights_path": weights}
    traced = server.dispatch("trace", {**base, "mode": "trace"}, NOOP)
    verified = server.dispatch(
        "verify",
        {
            **base,
            **TOL,
            "batch_sizes": [1, 7],
            "traced_path": traced["traced_path"],
            "captures": traced["captures"],
            "tracer_warnings": traced["tracer_warnings"],
        },
        NOOP,
    )
    return {"trace": traced, "verify": verified}


def main() -> None:
    """Print one line per corpus model: expected, measured ground truth, ttd's code; then the counts per code."""
    rows, counts = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in corpus_files():
            name = os.path.basename(path)[:-3]
            code = expected_code(path)
            found = truth(path)
            out = os.path.join(tmp, name)
            os.makedirs(out)
            got = gate(path, out)["verify"]["code"]
            evidence = "; ".join(f"{k}: {v}" for k, v in found.items() if v) or "eager = traced on every case"
            rows.append(
                (name, code or "healthy", "yes" if consistent(code, found) else "NO", got or "passed", evidence)
            )
            key = code or "healthy"
            total, caught = counts.get(key, (0, 0))
            counts[key] = (total + 1, caught + (got == code))
    print(f"torch {torch.__version__}")
    print("| model | expected | ground truth fits | ttd | measured (eager against traced) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    for key, (total, caught) in sorted(counts.items()):
        verb = "passed" if key == "healthy" else "caught"
        print(f"{key}: {caught} of {total} {verb}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
