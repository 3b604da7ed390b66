#!/usr/bin/env bash
# On the GPU machine, after bench/gpu_install.sh: the fused decode step as one compiled whole step
# (OLLMLX_MLX_FUSED=whole: ollmlx's attention kernel over fixed-capacity KV buffers) against the
# per-layer fused calls (=layers): the CUDA logits tests, the engine-level step split (build,
# async_eval, wait) at a short and a long context, then served A/B against raw mlx-lm.
#   SHAPES="m8b m1b" bench/gpu_whole.sh     (TEST=0 / PROBE=0 / SERVED=0 skip a part)
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu PATH=/tmp/site/bin:$PATH
out=${OUT:-/tmp}
if [ "${TEST:-1}" = 1 ]; then
  timeout 300 python -m pytest -q -x -p no:cacheprovider -o addopts="-ra --strict-markers" tests/engine/test_fused_step.py 2>&1 | tail -4
fi
for shape in ${SHAPES:-m8b}; do
  bench/gpu_install.sh model "$shape" 2>/dev/null || continue
  if [ "${PROBE:-1}" = 1 ]; then
    for len in ${LENS:-40 2000}; do for mode in layers whole; do
      OLLMLX_MLX_FUSED=$mode timeout 150 python bench/probe_eval_cost.py --model-dir /tmp/$shape --tokens 128 --fused \
        --prompt-len $len 2>&1 | grep -v "transformers\]" | tail -1 > "$out/eval-$shape-$mode-$len.json"
      echo "$shape $mode $len $(cut -c1-300 "$out/eval-$shape-$mode-$len.json")"
    done; done
  fi
  if [ "${SERVED:-1}" = 1 ]; then
    timeout 300 python bench/probe_served_ab.py --model-dir /tmp/$shape --a OLLMLX_MLX_FUSED=whole \
      --b OLLMLX_MLX_FUSED=layers --rounds "${ROUNDS:-4}" --tokens 256 --out "$out" 2>&1 \
      | grep -v "transformers\]" | tail -12 > "$out/served-whole-$shape.txt"
    grep '"rows"' "$out/served-whole-$shape.txt" | cut -c1-900
  fi
done
