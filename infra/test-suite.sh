#!/usr/bin/env bash
# make test after make setup: the torch side (infra/test-torch-side.sh: both torch environments' unittests, the
# libtorch smoke test, the fuzz run) in the background while vitest runs its two projects, since vitest's files spend
# much of their time waiting on servers and processes; then the torch side's summary, and the suite's closing lines
# (infra/test-summary.mjs). Fails if either part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-output
rm -rf test-output/cpu # this run's CPU times only (test/cpu-accounting.ts)
bash infra/test-torch-side.sh >test-output/torch-side.out 2>&1 &
torch=$!
echo "== orchestrator (vitest), the torch side beside it (test-output/torch-side.out)"
vitest=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-output/vitest.json || vitest=$?
side=0
wait "$torch" || side=$?
cat test-output/torch-side.out
summary=0
node infra/test-summary.mjs test-output/vitest.json test-output/python.log test-output/python-2.13.log || summary=$?
[ "$vitest" -eq 0 ] && [ "$side" -eq 0 ] && [ "$summary" -eq 0 ]
