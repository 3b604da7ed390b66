#!/usr/bin/env bash
# On the GPU machine, after bench/gpu_install.sh: the batch's decode step as one compiled call
# (batch_step.py) - its CUDA tests, the engine-level probe (BatchGenerator with and without it),
# then (SERVED=1) the served benchmark with OLLMLX_MLX_BATCH_FUSED=1 and =0 one after the other.
#   TEST=1 PROBE=1 SERVED=1 bench/gpu_batch.sh
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu PATH=/tmp/site/bin:$PATH
out=${OUT:-/tmp}
bench/gpu_install.sh model m8b
if [ "${TEST:-1}" = 1 ]; then
  timeout 240 python -m pytest -q -x -p no:cacheprovider -o addopts="-ra --strict-markers" tests/engine/test_batch_step.py 2>&1 | tail -4
fi
if [ "${PROBE:-1}" = 1 ]; then
  timeout 300 python bench/probe_batch_step.py --flatten --batch-step --model-dir /tmp/m8b --batches "${BATCHES:-16,64}" \
    2>&1 | grep -v "transformers\]" | tee "$out/batch-step-fused.txt" | tail -4
fi
if [ "${SERVED:-0}" = 1 ]; then
  for on in 1 0; do
    OLLMLX_MLX_BATCH_FUSED=$on BENCH_OUT=$out timeout 280 python bench/bench_mlx_serving.py --model-dir /tmp/m8b \
      --label "random-weight llama-3.1-8b, 4-bit, OLLMLX_MLX_BATCH_FUSED=$on" --tokens 128 --conc-tokens 128 \
      --concurrency "${LEVELS:-1,16,64}" --skip-mlx-server 2>&1 | grep -v "transformers\]" > "$out/serve-batch-$on.txt"
    grep -E "^\| (1|16|32|64) \||Turn-2" "$out/serve-batch-$on.txt"
  done
fi
