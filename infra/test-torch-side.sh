#!/usr/bin/env bash
# The suite's parts outside vitest, side by side (each is its own processes and folders; on 2 cores this saves about
# two minutes over one after another): the torch side's unittests on torch 1.13 and on torch 2.13, the libtorch
# runners' smoke test, and the safetensors readers' differential fuzz. Logs in test-output/; each part's summary is
# printed in that order once all have ended, and the script fails if any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-output

(cd runtimes/python && /usr/bin/python3 -m unittest discover -s tests -t . >../../test-output/python.log 2>&1) &
p113=$!
(cd runtimes/python && ../../.torch/torch-2.13/bin/python -m unittest discover -s tests -t . >../../test-output/python-2.13.log 2>&1) &
p213=$!
bash runtimes/libtorch/test/smoke.sh >test-output/libtorch-smoke.log 2>&1 &
smoke=$!
bash infra/fuzz-safetensors.sh >test-output/fuzz-safetensors.out 2>&1 &
fuzz=$!

failed=0
report() { # NAME PID LOG LINES
  local rc=0
  wait "$2" || rc=$?
  echo "== $1"
  if [ "$rc" -ne 0 ]; then
    cat "$3"
    failed=1
  else
    tail -n "$4" "$3"
  fi
}
report "torch side (python unittest, torch 1.13)" "$p113" test-output/python.log 4
report "torch side (python unittest, torch 2.13)" "$p213" test-output/python-2.13.log 4
report "libtorch runner (smoke)" "$smoke" test-output/libtorch-smoke.log 1
report "safetensors readers (differential fuzz, ${TTD_FUZZ_SECONDS:-30} s)" "$fuzz" test-output/fuzz-safetensors.out 3
exit "$failed"
