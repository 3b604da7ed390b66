#!/usr/bin/env bash
# On the GPU machine, after bench/gpu_install.sh: the few-row 4-bit kernel (cuda_rows.py) - its
# CUDA tests, then probe_rows_kernel.py (products, and a model's batched decode / warm forward).
#   bench/gpu_rows.sh
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu PATH=/tmp/site/bin:$PATH
out=${OUT:-/tmp}
[ -d /tmp/m8b ] || python bench/make_random_model.py --shape llama-3.1-8b --bits 4 --out /tmp/m8b >/dev/null 2>&1
timeout 240 python -m pytest -q -x -p no:cacheprovider -o addopts="-ra --strict-markers" tests/engine/test_cuda_rows.py 2>&1 | tail -4
timeout 300 python bench/probe_rows_kernel.py --model-dir /tmp/m8b 2>&1 | grep -v "transformers\]" | tee "$out/rows-kernel.txt" | tail -30
