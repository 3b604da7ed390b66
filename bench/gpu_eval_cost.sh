#!/usr/bin/env bash
# On the GPU machine, after bench/gpu_install.sh: bench/probe_eval_cost.py on a random-weight shape under
# mlx-cuda's graph settings, the model's forward and the fused step.   SHAPE=m8b bench/gpu_eval_cost.sh
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu
out=${OUT:-/tmp}; shape=${SHAPE:-m8b}
bench/gpu_install.sh model "$shape"
run() {  # name, env..., -- args
  local name=$1; shift
  env "$@" timeout 120 python bench/probe_eval_cost.py --model-dir /tmp/$shape --sleep-ms "${SLEEPS:-0,3}" ${FUSED:+--fused} \
    2>&1 | grep -v "transformers\]" | tail -1 > "$out/eval-$shape-$name.json"; echo "$name $(cat "$out/eval-$shape-$name.json" | cut -c1-700)"
}
for cfg in ${CONFIGS:-default ops1000 ops30 nographs}; do
  case $cfg in
    default) e=(X=1) ;; ops1000) e=(MLX_MAX_OPS_PER_BUFFER=1000 MLX_MAX_MB_PER_BUFFER=100000) ;;
    ops30) e=(MLX_MAX_OPS_PER_BUFFER=30) ;; nographs) e=(MLX_USE_CUDA_GRAPHS=0) ;;
  esac
  FUSED= run "$cfg" "${e[@]}"
  [ "${WITH_FUSED:-1}" = 1 ] && FUSED=1 run "$cfg-fused" "${e[@]}"
done
