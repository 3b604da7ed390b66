#!/usr/bin/env bash
# On the GPU machine, after bench/gpu_install.sh: where the fused step's engine-level gain goes when
# served. Engine level: MLXEngine / SoloStream (main thread and a worker thread), fused on and off,
# alternating with raw mlx-lm (probe_single.py --fused-ab). Served: two servers (fused on / off) and
# raw mlx-lm loaded at once, alternating rounds, runners recorded with py-spy (probe_served_ab.py).
#   SHAPES="m8b m1b" ROUNDS=4 bench/gpu_ab.sh
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu PATH=/tmp/site/bin:$PATH
out=${OUT:-/tmp}
for shape in ${SHAPES:-m8b}; do
  case $shape in m1b) s=llama-3.2-1b ;; m8b) s=llama-3.1-8b ;; esac
  [ -d /tmp/$shape ] || python bench/make_random_model.py --shape $s --bits 4 --out /tmp/$shape >/dev/null 2>&1
done
for shape in ${SHAPES:-m8b}; do
  if [ "${ENGINE:-1}" = 1 ]; then
    OLLMLX_MLX_FUSED=1 timeout 240 python bench/probe_single.py --model-dir /tmp/$shape --tune --fused-ab "${ROUNDS:-4}" \
      2>&1 | grep -v "transformers\]" | tail -3 > "$out/engine-ab-$shape.txt"; tail -1 "$out/engine-ab-$shape.txt"
  fi
  if [ "${SERVED:-1}" = 1 ]; then
    timeout 300 python bench/probe_served_ab.py --model-dir /tmp/$shape --a OLLMLX_MLX_FUSED=1 --b OLLMLX_MLX_FUSED=0 \
      --rounds "${ROUNDS:-4}" --tokens 256 ${SPY:+--py-spy} --out "$out/spy-$shape" 2>&1 | grep -v "transformers\]" \
      | tail -12 > "$out/served-ab-$shape.txt"; cat "$out/served-ab-$shape.txt" | cut -c1-600
  fi
done
