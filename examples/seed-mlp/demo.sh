#!/usr/bin/env bash
# The seed end to end: train, trace, verify, optimize, export, compile, store, parity, promote; then deploy both
# promoted artifacts (the TorchScript archive and the AOTInductor package) where neither ttd nor the model file
# exists, and ask each for f(1, 1, 1) (the seed expects about -1.6).
set -euo pipefail
cd "$(dirname "$0")/../.."
export TTD_HOME="${TTD_HOME:-$PWD/.ttd}"

bin/ttd env list
echo
bin/ttd run examples/seed-mlp/pipeline.yaml

deploy=$(mktemp -d)
trap 'rm -rf "$deploy"' EXIT
bin/ttd pull seed-mlp@production -o "$deploy/seed-mlp.pt"
bin/ttd pull seed-mlp@production --format aoti -o "$deploy/seed-mlp.pt2"
python=$PWD/.torch/torch-2.13/bin/python
echo
echo "deploy check: a bare '$python -I' in an empty directory loads each artifact and computes f(1,1,1)"
(cd "$deploy" && env -i PATH=/usr/bin:/bin "$python" -I -c '
import torch, torch._inductor
x = torch.tensor(((1.0, 1.0, 1.0),))
ts = torch.jit.load("seed-mlp.pt")(x)
pt2 = torch._inductor.aoti_load_package("seed-mlp.pt2")(x)
pt2 = pt2[0] if isinstance(pt2, (list, tuple)) else pt2
print(f"f(1,1,1) = {ts.item():.4f} (TorchScript), {pt2.item():.4f} (AOTInductor)   (the seed expects about -1.6)")
' 2>&1 | grep -v -i "warn")
echo
echo "look at it: bin/ttd report <the run id above> -o report.html   ·   bin/ttd ui   (http://127.0.0.1:8780/)"
