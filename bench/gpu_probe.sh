#!/usr/bin/env bash
# On the GPU machine, after bench/gpu_install.sh: the engine-overhead / warm-TTFT probe, then the
# serving benchmark at 16 and 64 streams with the runner's default GIL switch interval and a short one.
#   bench/gpu_probe.sh llama-3.2-1b
set -uo pipefail
shape=${1:-llama-3.2-1b}
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu
out=${OUT:-/tmp}
[ -d "/tmp/$shape" ] || python bench/make_random_model.py --shape "$shape" --bits 4 --out "/tmp/$shape"
timeout 240 python bench/probe_overhead.py --model-dir "/tmp/$shape" --levels 16,64 2>&1 | grep -v "transformers\]" | tee "$out/probe-$shape.txt"
for si in ${SWITCH_INTERVALS:-default 0.0005}; do
  [ "$si" = default ] && unset OLLMLX_SWITCH_INTERVAL || export OLLMLX_SWITCH_INTERVAL=$si
  BENCH_OUT=$out timeout 240 python bench/bench_mlx_serving.py --model-dir "/tmp/$shape" --skip-mlx-server \
    --label "random-weight $shape, 4-bit, switch interval $si" --tokens 128 --conc-tokens 64 --concurrency 16,64 \
    2>&1 | grep -v "transformers\]" | tail -25 | tee "$out/serve-$shape-$si.txt"
  mv "$out"/mlx-serving-*.json "$out/serve-$shape-$si.json" 2>/dev/null
done
