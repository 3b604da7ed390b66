#!/usr/bin/env bash
# On the GPU machine, after bench/gpu_install.sh: what settling constant arrays saves a decode step
# (probe_eval_cost.py, model forward and fused step, settled or not), then the served single stream
# with the fused step on and off against raw mlx-lm (probe_served_ab.py; SPY=1 adds py-spy of the
# runners).   SHAPES="m8b" bench/gpu_settle.sh
# Engine level, fused on/off inside one MLXEngine and SoloStream in the main and a worker thread:
#   OLLMLX_MLX_FUSED=1 python bench/probe_single.py --model-dir /tmp/m8b --tune --fused-ab 4
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu PATH=/tmp/site/bin:$PATH
out=${OUT:-/tmp}
for shape in ${SHAPES:-m8b}; do
  bench/gpu_install.sh model "$shape" || continue
  if [ "${PROBE:-1}" = 1 ]; then
    for f in "" --fused; do for n in "" --no-settle; do
      timeout 150 python bench/probe_eval_cost.py --model-dir /tmp/$shape --tokens 128 $f $n 2>&1 | grep -v "transformers\]" \
        | tail -1 > "$out/eval-$shape$f$n.json"; echo "$shape$f$n $(cut -c1-400 "$out/eval-$shape$f$n.json")"
    done; done
  fi
  if [ "${SERVED:-1}" = 1 ]; then
    timeout 300 python bench/probe_served_ab.py --model-dir /tmp/$shape --a OLLMLX_MLX_FUSED=1 --b OLLMLX_MLX_FUSED=0 \
      --rounds "${ROUNDS:-4}" --tokens 256 ${SPY:+--py-spy} --out "$out" 2>&1 | grep -v "transformers\]" | tail -12 > "$out/served-ab-$shape.txt"
    grep '"rows"' "$out/served-ab-$shape.txt" | cut -c1-900
  fi
done
