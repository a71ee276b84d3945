#!/usr/bin/env bash
# The seed end to end: train, trace, verify, optimize, store, parity, promote; then deploy the promoted
# artifact where neither ttd nor the model file exists, and ask it for f(1, 1, 1) (the seed expects about -1.6).
set -euo pipefail
cd "$(dirname "$0")/../.."
export TTD_HOME="${TTD_HOME:-$PWD/.ttd}"

bin/ttd run examples/seed-mlp/pipeline.yaml

deploy=$(mktemp -d)
trap 'rm -rf "$deploy"' EXIT
bin/ttd pull seed-mlp@production -o "$deploy/seed-mlp.pt"
echo
echo "deploy check: a bare '/usr/bin/python3 -I' in an empty directory loads the archive and computes f(1,1,1)"
(cd "$deploy" && env -i PATH=/usr/bin:/bin /usr/bin/python3 -I -c '
import torch
m = torch.jit.load("seed-mlp.pt")
y = m(torch.tensor((1.0, 1.0, 1.0)))
print(f"f(1,1,1) = {y.item():.4f}   (the seed expects about -1.6)")
')
echo
echo "look at it: bin/ttd report <the run id above> -o report.html   ·   bin/ttd ui   (http://127.0.0.1:8780/)"
