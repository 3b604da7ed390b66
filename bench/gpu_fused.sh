#!/usr/bin/env bash
# On the GPU machine, after bench/gpu_install.sh: the fused decode step's GPU test, then the engine-level
# probe on random-weight 1B and 8B shapes (bench/probe_fused_step.py), then (SERVE=1) the served single
# stream with the fused step on and off.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu
out=${OUT:-/tmp}
[ -d /tmp/m1b ] || python bench/make_random_model.py --shape llama-3.2-1b --bits 4 --out /tmp/m1b >/dev/null 2>&1 &
[ -d /tmp/m8b ] || python bench/make_random_model.py --shape llama-3.1-8b --bits 4 --out /tmp/m8b >/dev/null 2>&1 &
if [ "${PROBE:-1}" = 1 ]; then
  timeout 150 python -m pytest -q -p no:cacheprovider -c /dev/null --rootdir . tests/engine/test_fused_step.py 2>&1 \
    | grep -E "^E |passed|failed" | head -20 | tee "$out/pytest-fused.txt"
  wait
  timeout 300 python bench/probe_fused_step.py --skip-kernels --model-dir /tmp/m1b --model-dir /tmp/m8b \
    --rounds "${ROUNDS:-2}" --out "$out/probe-fused.json" 2>&1 | grep "^/tmp\|Error" | tail -4
fi
wait
for shape in ${SERVE:-}; do
  for f in 1 0; do
    OLLMLX_MLX_FUSED=$f BENCH_OUT=$out timeout 280 python bench/bench_mlx_serving.py --model-dir "/tmp/$shape" \
      --skip-mlx-server --label "random-weight $shape, 4-bit, OLLMLX_MLX_FUSED=$f" --tokens 128 --concurrency 1 2>&1 \
      | grep -v "transformers\]" | grep "^|\|Turn" > "$out/serve-$shape-fused$f.txt"
    mv "$out"/mlx-serving-*.json "$out/serve-$shape-fused$f.json" 2>/dev/null
    cat "$out/serve-$shape-fused$f.txt"
    [ -s "$out/serve-$shape-fused$f.txt" ] || { ls -td /tmp/ollmlx-bench-* | head -1 | xargs -I{} tail -40 {}/ollmlx.log; }
  done
done
