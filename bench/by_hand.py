"""The baseline: the seed's work done by hand in one plain script (train, eval, trace, save, references).

Trains exactly as examples/seed-mlp/pipeline.yaml says (10 epochs, batch 1, Adam 0.001, seed 0), then writes
the traced archive and a references file that the deploy-side runners read. Usage: by_hand.py OUT_DIR
"""
import importlib.util
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "runtimes", "python"))
from ttd_torch import safetensors  # noqa: E402  (only to write the references the runners read)


def main(out_dir: str) -> None:
    spec = importlib.util.spec_from_file_location(
        "seed_model", os.path.join(os.path.dirname(__file__), "..", "examples", "seed-mlp", "model.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    model = mod.build_model({})
    x, y = mod.dataset({}, "train")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=1, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    for _ in range(10):
        for xb, yb in loader:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            opt.step()
    model.eval()
    traced = torch.jit.trace(model, mod.example_inputs({}))
    traced.save(os.path.join(out_dir, "model.pt"))
    vx, _ = mod.dataset({}, "validation")
    with torch.no_grad():
        out = model(vx)
    safetensors.save(os.path.join(out_dir, "references.safetensors"),
                     {"validation/input/0": vx, "validation/output/0": out},
                     {"format": "ttd-references/1", "cases": "validation"})


if __name__ == "__main__":
    main(sys.argv[1])
