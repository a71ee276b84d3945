#!/usr/bin/env bash
# The torch side's guardrails (make lint-python): ruff's lint and format check over every Python file of the repository
# (ruff.toml), then pyright over runtimes/python with torch 2.13's environment as the interpreter (pyrightconfig.json).
# All three run, each printing what it found; the script fails if any found something. `make format-runtimes` applies
# ruff's fixes and formatting (pyright's findings are fixed by hand).
set -uo pipefail
cd "$(dirname "$0")/.."
failed=0
echo "-- ruff check"
.venv/bin/ruff check . || failed=1
echo "-- ruff format --check"
.venv/bin/ruff format --check . || failed=1
echo "-- pyright (runtimes/python, torch 2.13)"
node_modules/.bin/pyright || failed=1
exit "$failed"
