#!/usr/bin/env bash
# The TypeScript side's guardrails (make lint): tsc over the sources, the tests and vitest.config.ts (tsconfig.check.json,
# noEmit, incremental), then ESLint (eslint.config.mjs: typescript-eslint with type information, no-floating-promises,
# type-only imports, no import cycles, and the import zones of README.md's rooms). Both run, each printing what it
# found; the script fails if either found something. ESLint runs without its cache: a file's findings depend on the
# types of the files it imports, which its cache does not follow.
set -uo pipefail
cd "$(dirname "$0")/.."
failed=0
echo "-- tsc (sources and tests)"
node_modules/.bin/tsc -p tsconfig.check.json || failed=1
echo "-- eslint"
node_modules/.bin/eslint --max-warnings 0 . || failed=1
exit "$failed"
