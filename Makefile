# The two commands a fresh clone needs: `make demo` and `make test`. Both run `make setup` first.
SHELL := /bin/bash
.PHONY: setup demo test test-unit test-python test-integration bench clean

setup:
	@bash infra/setup.sh

demo: setup
	@bash examples/seed-mlp/demo.sh

test: setup
	@cd runtimes/python && /usr/bin/python3 -m unittest discover -s tests -t . 2>&1 | tail -n 3
	@bash runtimes/libtorch/test/smoke.sh
	@npx vitest run

bench: setup
	@node bench/seed-pipeline.mjs

clean:
	rm -rf dist build .ttd test-output
