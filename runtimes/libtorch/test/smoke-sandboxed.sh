#!/usr/bin/env bash
# The smoke test (smoke.sh) with each libtorch runner in ttd's sandbox, as the parity stage runs them
# (infra/sandbox-exec.js: no network, the host read-only, writes only to the runner's directories).
# Needs the TypeScript build (dist/) and bubblewrap. Usage: runtimes/libtorch/test/smoke-sandboxed.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
node="$(command -v node)"
wrappers="$(mktemp -d)"
trap 'rm -rf "$wrappers"' EXIT

# wrap NAME RUNNER PYTHON: a script that runs RUNNER in the sandbox with PYTHON's torch visible (its libraries).
wrap() {
  printf '#!/bin/sh\nexec "%s" "%s" --python "%s" -- "%s" "$@"\n' "$node" "$repo/infra/sandbox-exec.js" "$3" "$2" >"$wrappers/$1"
  chmod +x "$wrappers/$1"
}
wrap runner-1.13 "$repo/build/libtorch/ttd-libtorch-runner" /usr/bin/python3
args=("$wrappers/runner-1.13")
if [ -x "$repo/build/libtorch-2.13/ttd-libtorch-runner" ]; then
  wrap runner-2.13 "$repo/build/libtorch-2.13/ttd-libtorch-runner" "$repo/.torch/torch-2.13/bin/python"
  args+=("$wrappers/runner-2.13")
fi
"$here/smoke.sh" "${args[@]}"
