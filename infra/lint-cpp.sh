#!/usr/bin/env bash
# The C++ runner's guardrail (make lint-cpp): clang-format's check of every source of runtimes/libtorch against its
# .clang-format. `make format-runtimes` formats them.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t sources < <(find runtimes/libtorch -name '*.cpp' -o -name '*.hpp' | sort)
echo "-- clang-format --dry-run --Werror (${#sources[@]} files)"
.venv/bin/clang-format --dry-run --Werror "${sources[@]}"
echo "clang-format: all files formatted"
