#!/usr/bin/env bash
# On the GPU machine, after bench/gpu_install.sh: the few-row 4-bit kernel (cuda_rows.py) - its
# CUDA tests, probe_rows_kernel.py (products, and a model's batched decode / warm forward), the
# batch step's probe with the kernel on and off (BATCH=1), then (SERVED=1) the served benchmark
# with OLLMLX_MLX_ROWS_KERNEL=1 and =0 one after the other (16 and 64 clients, turn 2 warm/cold).
#   TEST=1 PROBE=1 BATCH=1 SERVED=0 bench/gpu_rows.sh     (SERVED=1 ROWS_VALUES=1 LEVELS=1,16,32: one side)
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu PATH=/tmp/site/bin:$PATH
out=${OUT:-/tmp}
bench/gpu_install.sh model m8b
if [ "${TEST:-1}" = 1 ]; then
  timeout 420 python -m pytest -q -x -p no:cacheprovider -o addopts="-ra --strict-markers" tests/engine/test_cuda_rows.py \
    tests/engine/test_batch_step.py 2>&1 | tee "$out/tests-rows.txt" | tail -4
fi
if [ "${PROBE:-1}" = 1 ]; then
  timeout 300 python bench/probe_rows_kernel.py --model-dir /tmp/m8b 2>&1 | grep -v "transformers\]" | tee "$out/rows-kernel.txt" | tail -30
fi
if [ "${BATCH:-0}" = 1 ]; then
  for flag in --rows-kernel ""; do
    timeout 200 python bench/probe_batch_step.py --flatten --batch-step $flag --model-dir /tmp/m8b --batches "${BATCHES:-16,64}" \
      2>&1 | grep -v "transformers\]" | tee "$out/batch-step${flag:+-rows}.txt" | tail -3
  done
fi
if [ "${SERVED:-0}" = 1 ]; then
  for on in ${ROWS_VALUES:-1 0}; do
    OLLMLX_MLX_ROWS_KERNEL=$on BENCH_OUT=$out timeout 280 python bench/bench_mlx_serving.py --model-dir /tmp/m8b \
      --label "random-weight llama-3.1-8b, 4-bit, OLLMLX_MLX_ROWS_KERNEL=$on" --tokens 128 --conc-tokens 128 \
      --concurrency "${LEVELS:-1,16,64}" --skip-mlx-server 2>&1 | grep -v "transformers\]" > "$out/serve-rows-$on.txt"
    grep -E "^\| (1|16|32|64) \||Turn-2" "$out/serve-rows-$on.txt"
  done
fi
