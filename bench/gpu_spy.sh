#!/usr/bin/env bash
# On the GPU machine: py-spy --native of a lone stream's decode loop (probe_eval_cost.py), to see
# where mlx's async_eval spends a step. Collapsed stacks go to $OUT/spy-<mode>.txt.
#   MODES="whole layers" bench/gpu_spy.sh
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu PATH=/tmp/site/bin:$PATH
out=${OUT:-/tmp}
for mode in ${MODES:-whole}; do
  OLLMLX_MLX_FUSED=$mode timeout 200 python bench/probe_eval_cost.py --model-dir /tmp/${SHAPE:-m8b} --tokens 40000 --fused \
    > "$out/spy-probe-$mode.log" 2>&1 &
  pid=$!
  sleep "${WARM_S:-50}"
  py-spy record --native -d "${SPY_S:-8}" -r 250 -f raw -o "$out/spy-$mode.txt" --pid $pid 2>&1 | tail -3
  kill $pid; wait $pid 2>/dev/null
  echo "$mode: $(wc -l < "$out/spy-$mode.txt" 2>/dev/null || echo no) stacks"
done
