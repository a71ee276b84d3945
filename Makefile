# The two commands a fresh clone needs: `make demo` and `make test`. Both run `make setup` first.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
RUNS ?= 5
CAPACITY_ROUNDS ?= 1
.PHONY: setup demo test test-unit test-integration test-torch-side test-python lint lint-python lint-cpp lint-runtimes format-runtimes bench corpus clean

setup:
	@bash infra/setup.sh

demo: setup
	@bash examples/seed-mlp/demo.sh

# The whole suite: the TypeScript side's checks (tsc over sources and tests, ESLint) and the runtimes' linters (ruff,
# pyright, clang-format; so a finding fails before the long parts), then (infra/test-suite.sh) vitest (unit, then
# integration on a real Temporal dev server and real torch) and beside it the torch side (infra/test-torch-side.sh):
# the unittests on both torch environments, the libtorch runners' smoke test and the safetensors readers' differential
# fuzz (bounded by TTD_FUZZ_SECONDS, default 30).
test: setup
	@echo "== TypeScript's checks (tsc, ESLint)"
	@bash infra/lint-ts.sh
	@echo "== runtimes' linters (ruff, pyright, clang-format)"
	@bash infra/lint-python.sh
	@bash infra/lint-cpp.sh
	@bash infra/test-suite.sh

# One part at a time (README, "Tests and benchmarks"). The unit project: no Temporal server, no torch, in parallel.
test-unit: setup
	@npx vitest run --project unit

# The integration projects: one real Temporal dev server, real torch, two files at once (TTD_TEST_FORKS=1: one), then
# the files that assert wall-clock bounds one after another.
test-integration: setup
	@npx vitest run --project integration --project integration-alone

# The torch side's unittests on both torch environments, the libtorch smoke test and the fuzz run, without vitest.
test-torch-side: setup
	@bash infra/test-torch-side.sh

# One Python test (or module, or class) on one torch environment: make test-python T=tests.test_contract TORCH=1.13
test-python: setup
	@bash infra/test-python.sh $(T)

# The TypeScript side's checks: tsc over the sources, the tests and vitest.config.ts (tsconfig.check.json), then ESLint
# (eslint.config.mjs: typescript-eslint with types, no-floating-promises, type-only imports, no cycles, the rooms).
lint: setup
	@bash infra/lint-ts.sh

# The torch side's linters: ruff check, ruff format --check (every Python file, ruff.toml) and pyright
# (runtimes/python on torch 2.13, pyrightconfig.json).
lint-python: setup
	@bash infra/lint-python.sh

# The C++ runner's linter: clang-format --dry-run --Werror (runtimes/libtorch/.clang-format).
lint-cpp: setup
	@bash infra/lint-cpp.sh

lint-runtimes: lint-python lint-cpp

# What the runtimes' linters can fix themselves: ruff's fixes and formatting, clang-format in place.
format-runtimes: setup
	@.venv/bin/ruff check --fix --quiet . || true
	@.venv/bin/ruff format .
	@find runtimes/libtorch -name '*.cpp' -o -name '*.hpp' | xargs .venv/bin/clang-format -i

bench: setup
	@node bench/seed-pipeline.mjs $(RUNS)
	@node bench/capacity.mjs 20 $(CAPACITY_ROUNDS)
	@CAP_SPEC=bench/corpus/small-cnn/pipeline.yaml node bench/capacity.mjs 20 $(CAPACITY_ROUNDS)
	@node bench/aoti.mjs $(RUNS)
	@node bench/onnx.mjs $(RUNS)

# The real-model corpus (bench/corpus/, a benchmark, never part of make test): each model through ttd and by hand,
# interleaved; writes docs/real-models.md. REDUCED=1: CI's small sizes, printed instead; CORPUS_LARGE=1 adds the > 1 GB
# model (on the filesystem store and on S3 through a moto_server of its own, and again at CI's sizes: a section of its
# own, with the worker's peak RSS); ONLY=a,b picks models.
corpus: setup
	@node bench/corpus.mjs $(if $(REDUCED),--reduced) $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf dist build .ttd test-output
