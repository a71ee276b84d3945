#!/usr/bin/env bash
# make test after make setup: the torch side (infra/test-torch-side.sh: both torch environments' unittests, the
# libtorch smoke test, the fuzz run) beside vitest's projects, whose files spend much of their time waiting on servers
# and processes (TTD_TEST_SIDE_BY_SIDE=0 runs the torch side first); then the torch side's summary, and the
# suite's closing lines (infra/test-summary.mjs). Fails if either part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-output
rm -rf test-output/cpu # this run's CPU times only (test/cpu-accounting.ts)
# The torch side beside vitest by default (TTD_TEST_SIDE_BY_SIDE=0: first): with two integration files at once, 21-23 min
# against 36 one part after the other on a quiet 2-core host (README, Tests and benchmarks).
if [ "${TTD_TEST_SIDE_BY_SIDE:-1}" = 1 ]; then
  bash infra/test-torch-side.sh >test-output/torch-side.out 2>&1 &
  torch=$!
  echo "== orchestrator (vitest), the torch side beside it (test-output/torch-side.out)"
else
  echo "== torch side (python unittest on both torch environments, libtorch smoke test, safetensors fuzz)"
  torch=""
  torch_rc=0
  bash infra/test-torch-side.sh >test-output/torch-side.out 2>&1 || torch_rc=$?
  echo "== orchestrator (vitest)"
fi
vitest=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-output/vitest.json || vitest=$?
side=0
if [ -n "$torch" ]; then wait "$torch" || side=$?; else side=$torch_rc; fi
cat test-output/torch-side.out
summary=0
node infra/test-summary.mjs test-output/vitest.json test-output/python.log test-output/python-2.13.log || summary=$?
[ "$vitest" -eq 0 ] && [ "$side" -eq 0 ] && [ "$summary" -eq 0 ]
