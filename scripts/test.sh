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
# one OpenBLAS thread per process (the servers, runners and ranks the tests start inherit it): two
# workers keep both cores busy, and OpenBLAS threads spin-wait at every product for a core the
# other worker holds (2 ranks + a runner + the other worker: 4-6 spinning threads on 2 cores)
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
# the same for the OpenMP threads of ollmlx's CPU kernels
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# two workers, one test module each at a time: a CPU runner decodes on one core, and many tests
# wait on process starts and timers
pytest -n "${OLLMLX_TEST_WORKERS:-2}" --dist loadfile --durations=40 "$@"
