#!/usr/bin/env bash
# On the GPU machine, after bench/gpu_install.sh: where a warm turn 2's time to first token goes,
# engine level with the runner's host tuning (probe_warm_ttft.py --tuned), with the few-row kernel
# on and off; then (TEST=1) the few-row kernel's and the batch step's CUDA tests.
#   TEST=1 bench/gpu_warm.sh
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu PATH=/tmp/site/bin:$PATH
out=${OUT:-/tmp}
bench/gpu_install.sh model m8b
for on in 1 0; do
  OLLMLX_MLX_ROWS_KERNEL=$on timeout 150 python bench/probe_warm_ttft.py --tuned --model-dir /tmp/m8b 2>&1 \
    | grep -v "transformers\]" > "$out/warm-rows-$on.txt"
  echo "rows kernel $on:"; grep -E "case" "$out/warm-rows-$on.txt"
done
if [ "${TEST:-0}" = 1 ]; then
  timeout 330 python -m pytest -q -p no:cacheprovider -o addopts="-ra --strict-markers" tests/engine/test_cuda_rows.py \
    tests/engine/test_batch_step.py --durations=6 > "$out/tests-rows.txt" 2>&1
  tail -15 "$out/tests-rows.txt"
fi
