#!/usr/bin/env bash
# On the GPU machine, after bench/gpu_install.sh: random-weight models of real shapes (weights cannot
# travel), then bench_mlx_serving.py on each. Results land in $OUT (and are committed by hand).
#   bench/gpu_bench.sh llama-3.2-1b "1,4,16,32,64"
set -euo pipefail
shape=${1:-llama-3.2-1b}
levels=${2:-1,4,16,32,64}
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python bench/make_random_model.py --shape "$shape" --bits 4 --out "/tmp/$shape"
BENCH_OUT=${OUT:-/tmp} python bench/bench_mlx_serving.py --model-dir "/tmp/$shape" --label "random-weight $shape, 4-bit (mlx-cuda 0.32.4)" \
  --tokens 128 --conc-tokens "${CONC_TOKENS:-256}" --concurrency "$levels" 2>&1 | grep -v "transformers\]" | tee "${OUT:-/tmp}/bench-$shape.txt"
mv "${OUT:-/tmp}"/mlx-serving-*.json "${OUT:-/tmp}/$shape.json" 2>/dev/null || true
