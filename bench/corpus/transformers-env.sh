#!/usr/bin/env bash
# The torch environment of the corpus' transformers models until declared environments (spec environment:
# { base, requirements }) land: a virtualenv at .corpus/transformers holding transformers==5.25.0 beside torch-2.13's
# own torch, hard-linked (the same files, no second torch, so torch-2.13's libtorch runner matches). Hard links rather
# than a .pth file: ttd's sandbox binds the interpreter's own prefix, and a .pth pointing elsewhere finds no torch
# there. pip only adds files (an upgrade unlinks before it writes), so torch-2.13 is never changed. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.corpus/transformers
base=.torch/torch-2.13
# onnx too: the base got the ONNX exporter after some of these were made, and the links then add what is missing.
[ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import transformers, torch, onnx, onnxscript, onnxruntime' 2>/dev/null && exit 0
interpreter=$("$base/bin/python" -c 'import sys; print(sys.base_prefix)')/bin/python3
"$interpreter" -m venv --without-pip "$venv"  # pip and setuptools come with the links: one copy of each
site=$("$base/bin/python" -c 'import site; print(site.getsitepackages()[0])')
cp -a -l -n "$(realpath "$site")"/. "$venv/lib/python3.11/site-packages/"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check transformers==5.25.0
"$venv/bin/python" -c 'import torch, transformers; assert torch.__version__.startswith("2.13"), torch.__version__'
