"""The baseline: the seed's work done by hand in one plain script, with the checks ttd makes (all gates).

Trains exactly as examples/seed-mlp/pipeline.yaml says (10 epochs, batch 1, Adam 0.001, seed 0), switches to
eval, traces, checks the trace against eager on the same kinds of probe ttd uses (validation rows, the example,
batch sizes 1 and 7, sign flip, scaling by 10 and 0.1, zeros, shuffled rows) and twice on one input, freezes and
checks the frozen graph, runs it with the TensorExpr fuser on and checks again where the build fuses (LLVM), then
saves the frozen archive and a references file for the deploy-side runners. One process, torch imported once.
Usage: by_hand.py OUT_DIR
"""

import importlib.util
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "runtimes", "python"))
from ttd_torch import safetensors  # noqa: E402  (only to write the references the runners read)

ATOL, RTOL = 1e-5, 1e-4


def check(name, got, want):
    if got.shape != want.shape or not torch.allclose(got, want, atol=ATOL, rtol=RTOL):
        raise SystemExit(f"{name}: outputs differ")


def load_seed():
    """The seed's model file, imported as a module."""
    spec = importlib.util.spec_from_file_location(
        "seed_model", os.path.join(os.path.dirname(__file__), "..", "examples", "seed-mlp", "model.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def train(mod, out_dir: str) -> torch.nn.Module:
    """Train as examples/seed-mlp/pipeline.yaml says (10 epochs, batch 1, Adam 0.001, seed 0), checkpoint per epoch."""
    torch.manual_seed(0)
    model = mod.build_model({})
    x, y = mod.dataset({}, "train")
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=1, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    for epoch in range(10):
        for xb, yb in loader:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            opt.step()
        torch.save(
            {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch},
            os.path.join(out_dir, "checkpoint.pt"),
        )
    return model


def torchscript(mod, model: torch.nn.Module, out_dir: str) -> None:
    """Trace the eval-mode model, every check ttd makes, freeze, fuse; save model.pt and references.safetensors."""
    model.eval()
    example = mod.example_inputs({})
    traced = torch.jit.trace(model, example)
    vx, _ = mod.dataset({}, "validation")
    cases = {
        "validation": vx,
        "example": example[0],
        "batch_1": vx[:1],
        "batch_7": vx[:7],
        "neg": -vx,
        "scale10": vx * 10,
        "scale01": vx * 0.1,
        "zeros": torch.zeros_like(vx),
        "shuffle": vx[torch.randperm(len(vx), generator=torch.Generator().manual_seed(1))],
    }
    with torch.no_grad():
        eager = {k: model(v) for k, v in cases.items()}
        for k, v in cases.items():
            check(f"trace {k}", traced(v), eager[k])
        check("determinism", traced(vx), traced(vx))
        frozen = torch.jit.freeze(traced)
        for k, v in cases.items():
            check(f"frozen {k}", frozen(v), eager[k])
        if torch._C._llvm_enabled():  # a build without LLVM never fuses on the CPU: nothing fused to check
            torch._C._jit_override_can_fuse_on_cpu(True)
            torch._C._jit_set_texpr_fuser_enabled(True)
            for _ in range(3):
                frozen(vx)
            for k, v in cases.items():
                check(f"fused {k}", frozen(v), eager[k])
    frozen.save(os.path.join(out_dir, "model.pt"))
    tensors = {}
    for k, v in cases.items():
        tensors[f"{k}/input/0"] = v
        tensors[f"{k}/output/0"] = eager[k]
    safetensors.save(
        os.path.join(out_dir, "references.safetensors"),
        tensors,
        {"format": "ttd-references/1", "cases": ",".join(cases)},
    )


def main(out_dir: str) -> None:
    mod = load_seed()
    torchscript(mod, train(mod, out_dir), out_dir)


if __name__ == "__main__":
    main(sys.argv[1])
