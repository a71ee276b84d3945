#!/usr/bin/env bash
# Differential fuzzing of the three safetensors readers (docs/trust-safetensors.md) for a bounded time. atheris mutates
# the shared vectors (test/vectors/safetensors) and drives the Python reader; every input also goes to the C++ reader
# (built here with AddressSanitizer and UBSan) and to the TypeScript reader (dist/). A crash, a hang, a memory error or
# a disagreement fails the run; the log and the failing input are left in test-output/fuzz-safetensors/.
# Usage: infra/fuzz-safetensors.sh [SECONDS]   (default: $TTD_FUZZ_SECONDS, else 30). Needs `make setup`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-${TTD_FUZZ_SECONDS:-30}}"
out=test-output/fuzz-safetensors
py=.fuzz/bin/python
fail() { echo "FAIL: $*" >&2; exit 1; }
"$py" -c 'import atheris' 2>/dev/null || fail "$py with atheris is missing; make setup creates it"
[ -f dist/lib/parity/safetensors.js ] || fail "dist/lib/parity/safetensors.js is missing; make setup builds it"

# The C++ reader with sanitizers: an out-of-bounds read is a finding even when the verdict agrees.
checker=build/fuzz/ttd-safetensors-check
sources=(runtimes/libtorch/src/safetensors.cpp runtimes/libtorch/tools/safetensors_check.cpp)
if [ ! -x "$checker" ] || [ -n "$(find "${sources[@]}" runtimes/libtorch/src/safetensors.hpp -newer "$checker" -print -quit)" ]; then
  mkdir -p build/fuzz
  g++ -std=c++17 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -Iruntimes/libtorch/src \
    "${sources[@]}" -o "$checker"
fi

rm -rf "$out"
mkdir -p "$out/corpus"
cp test/vectors/safetensors/*.safetensors "$out/corpus/"
if ! "$py" test/fuzz/safetensors_differential.py "$checker" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -dict=test/fuzz/safetensors.dict -artifact_prefix="$out/" "$out/corpus" >"$out/fuzz.log" 2>&1; then
  tail -n 40 "$out/fuzz.log" >&2
  fail "the safetensors readers crashed or disagreed; the input is in $out/ (see $out/fuzz.log)"
fi
runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$out/fuzz.log")
[ -n "$runs" ] && [ "$runs" -gt 0 ] || fail "the fuzzer ran no input (see $out/fuzz.log)"
echo "safetensors fuzz: the Python, C++ and TypeScript readers agreed on all $runs inputs in ${seconds}s"
