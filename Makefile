# The two commands a fresh clone needs: `make demo` and `make test`. Both run `make setup` first.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
RUNS ?= 5
CAPACITY_ROUNDS ?= 1
.PHONY: setup demo test bench clean

setup:
	@bash infra/setup.sh

demo: setup
	@bash examples/seed-mlp/demo.sh

# The whole suite: the torch side (unittest) on both torch environments, the libtorch runners' smoke test, the
# safetensors readers' differential fuzz (bounded by TTD_FUZZ_SECONDS, default 30), then
# vitest (unit and integration, on a real Temporal dev server and real torch).
test: setup
	@mkdir -p test-output
	@echo "== torch side (python unittest, torch 1.13)"
	@cd runtimes/python && /usr/bin/python3 -m unittest discover -s tests -t . 2>&1 | tee ../../test-output/python.log | tail -n 4
	@echo "== torch side (python unittest, torch 2.13)"
	@cd runtimes/python && ../../.torch/torch-2.13/bin/python -m unittest discover -s tests -t . 2>&1 | tee ../../test-output/python-2.13.log | tail -n 4
	@echo "== libtorch runner (smoke)"
	@bash runtimes/libtorch/test/smoke.sh > test-output/libtorch-smoke.log 2>&1 || { cat test-output/libtorch-smoke.log; exit 1; }
	@tail -n 1 test-output/libtorch-smoke.log
	@echo "== safetensors readers (differential fuzz, $${TTD_FUZZ_SECONDS:-30} s)"
	@bash infra/fuzz-safetensors.sh
	@echo "== orchestrator (vitest)"
	@npx vitest run --reporter=default --reporter=json --outputFile.json=test-output/vitest.json
	@node infra/test-summary.mjs test-output/vitest.json test-output/python.log test-output/python-2.13.log

bench: setup
	@node bench/seed-pipeline.mjs $(RUNS)
	@node bench/capacity.mjs 20 $(CAPACITY_ROUNDS)
	@node bench/aoti.mjs $(RUNS)

clean:
	rm -rf dist build .ttd test-output
