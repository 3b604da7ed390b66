#!/usr/bin/env bash
# Install everything the tests need, then run lint, type checks and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
. .venv/bin/activate
ruff check ollmlx tests bench
mypy
# engine tests load MLX in the pytest process: give it the BLAS the server gives its runners
eval "$(python -m ollmlx.runner.env)"
# two workers, one test module each at a time: a CPU runner decodes on one core, and many tests
# wait on process starts and timers
pytest -n "${OLLMLX_TEST_WORKERS:-2}" --dist loadfile --durations=40 "$@"
