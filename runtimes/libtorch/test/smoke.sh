#!/usr/bin/env bash
# Smoke test of build/libtorch/ttd-libtorch-runner (Debian's libtorch 1.13) and, when
# .torch/torch-2.13 exists, of build/libtorch-2.13/ttd-libtorch-runner plus AOTInductor packages in
# both runners (runtimes/python/tests/torch2_aoti_runners.py). Build them first: infra/setup.sh.
# Usage: runtimes/libtorch/test/smoke.sh [RUNNER_113 [RUNNER_213]]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
runner113="${1:-$repo/build/libtorch/ttd-libtorch-runner}"
runner213="${2:-$repo/build/libtorch-2.13/ttd-libtorch-runner}"
py="${TTD_PYTHON:-/usr/bin/python3}"
py213="$repo/.torch/torch-2.13/bin/python"
[ -x "$runner113" ] || { echo "FAIL: runner not found at $runner113" >&2; exit 1; }
runner113="$(realpath "$runner113")"
if [ -x "$py213" ] && [ ! -x "$runner213" ]; then
  echo "FAIL: $py213 exists but the 2.13 runner is not built at $runner213" >&2; exit 1
fi
[ -x "$runner213" ] && runner213="$(realpath "$runner213")"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export PYTHONPATH="$here"

fail() { echo "FAIL: $*" >&2; exit 1; }

"$py" "$here/smoke.py" prepare "$work"

# 0. The C++ safetensors reader against the shared vectors (docs/trust-safetensors.md), in each build.
for runner in "$runner113" "$runner213"; do
  [ -x "$runner" ] || continue
  "$(dirname "$runner")/ttd-safetensors-check" --vectors "$repo/test/vectors/safetensors" \
    || fail "the C++ safetensors reader of $(dirname "$runner") disagrees with test/vectors/safetensors"
done

# expect_error RUNNER EXIT_CODE STAGE ARGS... : runner must fail with that code and error stage.
expect_error() {
  local runner="$1" want_rc="$2" stage="$3"; shift 3
  local line rc=0
  line="$("$runner" "$@" 2>"$work/stderr")" || rc=$?
  [ "$rc" -eq "$want_rc" ] || fail "expected exit $want_rc for '$*', got $rc: $line"
  LINE="$line" STAGE="$stage" "$py" -c '
import json, os
j = json.loads(os.environ["LINE"])
assert j["error"]["stage"] == os.environ["STAGE"], j
assert j["error"]["message"], j
' || fail "expected error stage '$stage' for '$*', got: $line"
  [ -s "$work/stderr" ] || fail "expected details on stderr for '$*'"
  echo "ok: exit $rc $line"
}

# smoke_torchscript RUNNER: the TorchScript checks, on an archive traced by Debian's torch 1.13.
smoke_torchscript() {
  local runner="$1" flags line out
  echo "== $runner"
  # 1. Serving run (the build's own flags), then --fuser (NNC's interpreter) with 2 threads.
  for flags in "" "--fuser --threads 2"; do
    out="$work/out.safetensors"
    rm -f "$out"
    # shellcheck disable=SC2086
    # The JIT log (stderr) shows whether the TensorExpr fuser really formed fusion groups.
    line="$(PYTORCH_JIT_LOG_LEVEL=">tensorexpr_fuser" \
            "$runner" --model "$work/model.pt" --references "$work/refs.safetensors" --out "$out" $flags \
            2>"$work/jit.log")" || { cat "$work/jit.log" >&2; fail "runner exited with flags '$flags'"; }
    echo "runner [$flags]: $line"
    [ "$(printf '%s\n' "$line" | wc -l)" -eq 1 ] || fail "expected exactly one stdout line"
    LINE="$line" FLAGS="$flags" "$py" - <<'PY' || fail "bad result line"
import json, os
j = json.loads(os.environ["LINE"])
flags = os.environ["FLAGS"]
mode = "interpreter" if "--fuser" in flags else "fused" if "--fusion fused" in flags else "serving"
assert j["runtime"] == "libtorch" and j["format"] == "torchscript" and j["cases"] == 2, j
assert j["flags"] == {"fuser": mode != "serving", "mode": mode}, j
assert j["threads"] == (2 if "--threads 2" in flags else 1), j
# Neither Debian's 1.13 nor the 2.13 CPU wheel has LLVM, and neither fuses on the CPU by default.
assert j["fusion"]["llvm_enabled"] is False and j["fusion"]["can_fuse_on_cpu"] is False, j
assert j["fusion"]["te_must_use_llvm_cpu"] is True and j["fusion"]["cuda_available"] is False, j
assert isinstance(j["torch_version"], str) and j["torch_version"], j
PY
    "$py" "$here/smoke.py" check "$work" "$out" || fail "outputs differ (flags '$flags')"
    if [[ "$flags" == *--fuser* ]]; then
      grep -q "prim::TensorExprGroup" "$work/jit.log" || fail "--fuser formed no TensorExprGroup"
      echo "ok: --fuser formed TensorExpr fusion groups"
    elif grep -q "prim::TensorExprGroup" "$work/jit.log"; then
      fail "fusion groups formed with flags '$flags' on a build without LLVM"
    fi
  done

  # 2. Missing model file.
  expect_error "$runner" 1 load --model "$work/missing.pt" --references "$work/refs.safetensors" --out "$work/x.safetensors"
  # 3. Not a TorchScript archive.
  expect_error "$runner" 1 load --model "$work/refs.safetensors" --references "$work/refs.safetensors" --out "$work/x.safetensors"
  # 4. Truncated references file.
  head -c 100 "$work/refs.safetensors" > "$work/trunc.safetensors"
  expect_error "$runner" 1 read --model "$work/model.pt" --references "$work/trunc.safetensors" --out "$work/x.safetensors"
  # 5. Bad arguments; --fuser is for TorchScript only.
  expect_error "$runner" 2 args --model "$work/model.pt" --threads zero
  expect_error "$runner" 2 args --bogus
  expect_error "$runner" 2 args --model "$work/model.pt" --references "$work/refs.safetensors" --out "$work/x.safetensors" --format onnx
  expect_error "$runner" 2 args --model "$work/model.pt" --references "$work/refs.safetensors" --out "$work/x.safetensors" --format aoti --fuser
  grep -q "fuser flags apply to TorchScript only" "$work/stderr" || fail "expected 'fuser flags apply to TorchScript only'"
  # The CPU fuser switched on as torch ships it (LLVM required) on a build without LLVM: a server doing so fails.
  expect_error "$runner" 1 run --model "$work/model.pt" --references "$work/refs.safetensors" --out "$work/x.safetensors" --fusion fused
  grep -q "LLVM Backend not found" "$work/stderr" || fail "expected 'LLVM Backend not found' from --fusion fused without LLVM"
  expect_error "$runner" 2 args --model "$work/model.pt" --references "$work/refs.safetensors" --out "$work/x.safetensors" --fusion always
  grep -q "expected serving, fused or interpreter, got 'always'" "$work/stderr" || fail "expected the --fusion values named"
  # 6. Failing forward (wrong input shape).
  "$py" - "$work" <<'PY'
import sys, torch, st_util
st_util.write(f"{sys.argv[1]}/wrong.safetensors",
              {"c/input/0": torch.zeros(2, 7), "c/input/1": torch.zeros(2, 3)},
              {"format": "ttd-references/1", "cases": "c"})
PY
  expect_error "$runner" 1 run --model "$work/model.pt" --references "$work/wrong.safetensors" --out "$work/x.safetensors"
}

smoke_torchscript "$runner113"
# 7. The 1.13 runner refuses AOTInductor packages cleanly (before opening the file).
expect_error "$runner113" 1 load --model "$work/model.pt" --references "$work/refs.safetensors" --out "$work/x.safetensors" --format aoti
grep -q "without AOTInductor" "$work/stderr" || fail "1.13 runner: expected 'without AOTInductor' in its error"

if [ ! -x "$py213" ]; then
  echo "smoke: all checks passed (the 1.13 runner only: no $py213, so no 2.13 runner or AOTInductor checks)"
  exit 0
fi
smoke_torchscript "$runner213"
echo "== AOTInductor packages, both runners ($py213)"
(cd "$repo/runtimes/python" && TTD_RUNNER_113="$runner113" TTD_RUNNER_213="$runner213" \
  "$py213" -m unittest -v tests.torch2_aoti_runners) || fail "AOTInductor checks (tests.torch2_aoti_runners)"
echo "smoke: all checks passed (the 1.13 and 2.13 runners, AOTInductor packages in both runners)"
