#!/usr/bin/env bash
# One part of the torch side's unittest suite, on one torch environment: a module, a class or a single test, named as
# unittest names them (tests.test_contract.ValidatorTest.test_an_enum_lists_its_options) or as a file
# (runtimes/python/tests/test_contract.py). No names: the whole suite. TORCH=1.13 runs Debian's torch (the
# interpreter make test uses for it), else the project's torch 2.13 environment.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
case "${TORCH:-2.13}" in
  1.13) python=/usr/bin/python3 ;;
  2.13) python="$repo/.torch/torch-2.13/bin/python" ;;
  *) echo "test-python: TORCH='${TORCH}' is not a torch environment of make test; expected 1.13 or 2.13" >&2; exit 2 ;;
esac
names=()
for arg in "$@"; do
  # A file path becomes its module name, relative to runtimes/python (where unittest's top level is).
  if [[ "$arg" == *.py ]]; then
    rel=$(realpath --relative-to="$repo/runtimes/python" "$arg")
    [[ "$rel" == tests/* ]] || { echo "test-python: '$arg' is not under runtimes/python/tests; expected a test file there" >&2; exit 2; }
    rel=${rel%.py}
    names+=("${rel//\//.}")
  else
    names+=("$arg")
  fi
done
cd runtimes/python
if [ ${#names[@]} -eq 0 ]; then
  exec "$python" -m unittest discover -s tests -t .
fi
exec "$python" -m unittest -v "${names[@]}"
