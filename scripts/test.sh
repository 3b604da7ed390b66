#!/usr/bin/env bash
# Install everything the tests need, then run lint, type checks and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
. .venv/bin/activate
ruff check ollmlx tests bench
mypy
pytest --durations=40 "$@"
