#!/usr/bin/env bash
# Smoke test of build/libtorch/ttd-libtorch-runner (build it first, see runtimes/libtorch/CMakeLists.txt).
# Usage: runtimes/libtorch/test/smoke.sh [RUNNER]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
runner="${1:-$repo/build/libtorch/ttd-libtorch-runner}"
py="${TTD_PYTHON:-/usr/bin/python3}"
[ -x "$runner" ] || { echo "FAIL: runner not found at $runner" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export PYTHONPATH="$here"

fail() { echo "FAIL: $*" >&2; exit 1; }

"$py" "$here/smoke.py" prepare "$work"

# 1. Plain run, then with --fuser and 2 threads.
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
fuser = "--fuser" in os.environ["FLAGS"]
assert j["runtime"] == "libtorch" and j["cases"] == 2, j
assert j["flags"] == {"fuser": fuser}, j
assert j["threads"] == (2 if fuser else 1), j
assert isinstance(j["torch_version"], str) and j["torch_version"], j
PY
  "$py" "$here/smoke.py" check "$work" "$out" || fail "outputs differ (flags '$flags')"
  if [ -n "$flags" ]; then
    grep -q "prim::TensorExprGroup" "$work/jit.log" || fail "--fuser formed no TensorExprGroup"
    echo "ok: --fuser formed TensorExpr fusion groups"
  elif grep -q "prim::TensorExprGroup" "$work/jit.log"; then
    fail "fusion groups formed without --fuser"
  fi
done

# expect_error EXIT_CODE STAGE ARGS... : runner must fail with that code and error stage.
expect_error() {
  local want_rc="$1" stage="$2"; shift 2
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

# 2. Missing model file.
expect_error 1 load --model "$work/missing.pt" --references "$work/refs.safetensors" --out "$work/x.safetensors"
# 3. Not a TorchScript archive.
expect_error 1 load --model "$work/refs.safetensors" --references "$work/refs.safetensors" --out "$work/x.safetensors"
# 4. Truncated references file.
head -c 100 "$work/refs.safetensors" > "$work/trunc.safetensors"
expect_error 1 read --model "$work/model.pt" --references "$work/trunc.safetensors" --out "$work/x.safetensors"
# 5. Bad arguments.
expect_error 2 args --model "$work/model.pt" --threads zero
expect_error 2 args --bogus
# 6. Failing forward (wrong input shape).
"$py" - "$work" <<'PY'
import sys, torch, st_util
st_util.write(f"{sys.argv[1]}/wrong.safetensors",
              {"c/input/0": torch.zeros(2, 7), "c/input/1": torch.zeros(2, 3)},
              {"format": "ttd-references/1", "cases": "c"})
PY
expect_error 1 run --model "$work/model.pt" --references "$work/wrong.safetensors" --out "$work/x.safetensors"

echo "smoke: all checks passed"
