"""The AOTInductor baseline: the seed's torch 2.x deploy path done by hand in one plain script, with ttd's checks.

Trains as by_hand.py (the same epochs, seed and checkpoints), switches to eval, torch.export's the model on the
first 7 validation rows with the batch dimension dynamic (1..200, as ttd derives it from trace.batch_sizes [1, 7],
the example and the validation batch), saves and loads the program back, compares it with eager on ttd's cases
(validation, the 7-row example, batch sizes 1 and 7, sign flip, ×10, ×0.1, zeros, shuffled rows), on 7-row chunks of
validation and each probe, and twice on one input; then aoti_compile_and_package, loads the package and compares it
on every case, and writes the references the deploy-side runners read (aoti-references.safetensors). With
--torchscript it then does by_hand.py's TorchScript work on the same trained model (formats: [torchscript, aoti]).
Inductor's cache is TORCHINDUCTOR_CACHE_DIR (the caller sets it). One process, torch imported once.
Prints {"compile_ms"} (the aoti_compile_and_package call alone). Usage: by_hand_aoti.py OUT_DIR [--torchscript]
"""

import os
import sys
import time

import torch
import torch._inductor
from by_hand import check, load_seed, safetensors, torchscript, train


def aoti(mod, model: torch.nn.Module, out_dir: str) -> float:
    """Export, check, compile, check; save program.pt2, model.pt2 and aoti-references.safetensors; the compile's ms."""
    model.eval()
    vx, _ = mod.dataset({}, "validation")
    example = (vx[:7],)  # the seed's example is one unbatched row: export needs a batch (ttd does the same)
    batch = torch.export.Dim("batch", min=1, max=len(vx))
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
    program = torch.export.export(model, example, dynamic_shapes=({0: batch},), strict=False)
    program_path = os.path.join(out_dir, "program.pt2")
    torch.export.save(program, program_path)
    loaded = torch.export.load(program_path)
    exported = loaded.module()
    chunk_sources = ("validation", "neg", "scale10", "scale01", "zeros", "shuffle")
    chunks = [(f"{k} rows {i}", cases[k][i : i + 7]) for k in chunk_sources for i in range(0, len(vx) - 6, 7)]
    with torch.no_grad():
        for k, v in cases.items():
            check(f"export {k}", exported(v), eager[k])
        for name, v in chunks:
            check(f"export {name}", exported(v), model(v))
        check("determinism", exported(vx), exported(vx))
    started = time.perf_counter()
    package_path = torch._inductor.aoti_compile_and_package(loaded, package_path=os.path.join(out_dir, "model.pt2"))
    compile_ms = (time.perf_counter() - started) * 1000
    runner = torch._inductor.aoti_load_package(package_path)
    with torch.no_grad():
        for k, v in cases.items():
            check(f"package {k}", runner(v), eager[k])
    tensors = {}
    for k, v in cases.items():
        tensors[f"{k}/input/0"] = v
        tensors[f"{k}/output/0"] = eager[k]
    safetensors.save(
        os.path.join(out_dir, "aoti-references.safetensors"),
        tensors,
        {"format": "ttd-references/1", "cases": ",".join(cases)},
    )
    return compile_ms


def main(out_dir: str, with_torchscript: bool) -> None:
    mod = load_seed()
    model = train(mod, out_dir)
    compile_ms = aoti(mod, model, out_dir)  # first: by_hand.torchscript turns the TensorExpr fuser on, process-wide
    if with_torchscript:
        torchscript(mod, model, out_dir)
    print(f'{{"compile_ms": {compile_ms:.1f}}}')


if __name__ == "__main__":
    main(sys.argv[1], "--torchscript" in sys.argv[2:])
