"""Benchmark (not a test): ttd's reproducible TorchScript save (ttd_torch.archive.save) against the way it saved
before, torch.jit.save into memory and the stripped records copied from there, on one module of a given size.

Each round saves the same module both ways into fresh files, interleaved; the bytes must be identical. Prints the
median seconds of each and their ratio, then the peak RSS growth of each way, measured in a child process of its own
(ru_maxrss only grows, so one process per way).
Usage: archive_save.py [MiB of weights, default 1024] [rounds, default 3]
"""

import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "runtimes", "python"))
from ttd_torch import archive  # noqa: E402


def in_memory(module: torch.jit.ScriptModule, path: str) -> None:
    """The former archive.save: the whole archive in a buffer, each record read whole and written stripped."""
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    with zipfile.ZipFile(buffer) as src, open(path, "wb") as out, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename.endswith((archive.DEBUG_SUFFIX, archive.PER_PROCESS)):
                continue
            entry = zipfile.ZipInfo(info.filename, date_time=archive.FIXED_TIME)
            entry.external_attr = 0o644 << 16
            entry.extra = archive.padding(out.tell(), info.filename)
            dst.writestr(entry, src.read(info))


def module_of(mib: int) -> torch.jit.ScriptModule:
    """Linear layers of 4096 x 4096 floats (64 MiB each) adding up to about `mib` MiB."""
    layers = [torch.nn.Linear(4096, 4096, bias=False) for _ in range(max(1, mib // 64))]
    return torch.jit.trace(torch.nn.Sequential(*layers).eval(), torch.zeros(1, 4096))


def peak_growth(way: str, mib: int) -> int:
    """MiB the peak RSS of a fresh process grows by while saving one way."""
    code = (
        f"import resource, sys, tempfile; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
        f"import archive_save as b; m = b.module_of({mib}); "
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; d = tempfile.mkdtemp(); "
        f"(b.in_memory if {way!r} == 'in_memory' else b.archive.save)(m, d + '/x.pt'); "
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) >> 10); "
        "import shutil; shutil.rmtree(d)"
    )
    return int(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)


def main(mib: int, rounds: int) -> None:
    # First, while this process is small: a child's ru_maxrss starts from its parent's resident size at the fork.
    growth = {way: peak_growth(way, mib) for way in ("in_memory", "archive.save")}
    module = module_of(mib)
    times: dict[str, list[float]] = {"in_memory": [], "archive.save": []}
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(rounds):
            paths = {}
            for way, save in (("in_memory", in_memory), ("archive.save", archive.save)):
                paths[way] = os.path.join(scratch, f"{way}-{i}.pt")
                started = time.perf_counter()
                save(module, paths[way])
                times[way].append(time.perf_counter() - started)
            with open(paths["in_memory"], "rb") as a, open(paths["archive.save"], "rb") as b:
                if a.read() != b.read():
                    raise SystemExit("the two ways wrote different bytes")
            for path in paths.values():
                os.remove(path)
    median = {way: statistics.median(t) for way, t in times.items()}
    print(f"torch {torch.__version__}, {mib} MiB of weights, {rounds} rounds, medians:")
    print(
        f"  in memory (before): {median['in_memory']:.2f} s; archive.save: {median['archive.save']:.2f} s; "
        f"ratio {median['archive.save'] / median['in_memory']:.2f}x"
    )
    print(f"  peak RSS growth: in memory {growth['in_memory']} MiB; archive.save {growth['archive.save']} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
