#!/usr/bin/env bash
# On the GPU machine, after bench/gpu_install.sh: where a warm turn 2's time to first token goes.
#   TEST=1: the few-row kernel's and the batch step's CUDA tests first.
#   ENGINE=1: engine level with the runner's host tuning (probe_warm_ttft.py --tuned --timeline).
#   SERVED=1: served (probe_server_path.py) on the 8B shape and on the tiny model, this tree's code
#     and, where ./old holds an earlier tree (`git archive <commit> ollmlx bench | tar -x -C old`),
#     that one's too, one after the other on the same machine.
#   BUCKETS=1 / BUCKETS_SERVED=1: prefill_buckets.py off and on, engine level / served (bench_mlx_serving turn 2);
#     BUCKETS_CHECK=1: its logits against the model's own (probe_prefill_buckets.py).
#   TEST=1 ENGINE=1 SERVED=1 bench/gpu_warm.sh
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu PATH=/tmp/site/bin:$PATH
out=${OUT:-/tmp}
bench/gpu_install.sh model m8b
if [ "${TEST:-0}" = 1 ]; then
  timeout "${TEST_S:-330}" python -m pytest -q -p no:cacheprovider -o addopts="-ra --strict-markers" \
    ${TESTS:-tests/engine/test_cuda_rows.py tests/engine/test_batch_step.py tests/engine/test_prefill_buckets.py} \
    -k "not same_tokens" --durations=6 > "$out/tests-rows.txt" 2>&1
  tail -15 "$out/tests-rows.txt"
fi
if [ "${ENGINE:-0}" = 1 ]; then
  timeout 200 python bench/probe_warm_ttft.py --tuned --timeline --model-dir /tmp/m8b 2>&1 \
    | grep -v "transformers\]" > "$out/warm-engine.txt"
  grep -E "case|timeline" "$out/warm-engine.txt" | head -60
fi
if [ "${SERVED:-0}" = 1 ]; then
  [ -f /tmp/tiny/config.json ] || python bench/make_random_model.py --shape tiny --bits 0 --out /tmp/tiny >/dev/null 2>&1
  for m in m8b tiny; do
    for tree in . old; do
      [ -f "$tree/bench/probe_server_path.py" ] || continue
      echo "== $m, tree $tree"
      (cd "$tree" && PYTHONPATH=/tmp/site:$PWD timeout 150 python bench/probe_server_path.py --model-dir "/tmp/$m" \
        --turns "${TURNS:-10}" 2>&1 | grep -v "transformers\]" > "$out/served-$m-${tree//./new}.txt")
      tail -3 "$out/served-$m-${tree//./new}.txt"
    done
  done
fi
if [ "${SDPA:-0}" = 1 ]; then  # mlx-cuda's cuDNN attention (a graph built per new shape) on and off
  for v in 1 0; do
    echo "== MLX_CUDA_USE_CUDNN_SDPA=$v"
    MLX_CUDA_USE_CUDNN_SDPA=$v timeout 200 python bench/probe_warm_ttft.py --tuned --model-dir /tmp/m8b --fresh-only \
      --fresh-lengths "${LENGTHS:-1100,1400,1700,1900,2100,2300,2600,2900}" 2>&1 | grep -v "transformers\]" \
      > "$out/sdpa-$v.txt"
    grep -E "fresh|decode|forward" "$out/sdpa-$v.txt"
  done
fi
if [ "${GRAPHS:-0}" = 1 ]; then  # mlx-cuda's CUDA graphs (instantiated per new graph) on and off, cuDNN off
  for v in 1 0; do
    echo "== MLX_USE_CUDA_GRAPHS=$v"
    MLX_USE_CUDA_GRAPHS=$v timeout 200 python bench/probe_warm_ttft.py --tuned --model-dir /tmp/m8b --fresh-only --timeline \
      --fresh-lengths "${LENGTHS:-1100,1400,1700,1900,2100,2300,2600,2900}" 2>&1 | grep -v "transformers\]" \
      > "$out/graphs-$v.txt"
    grep -E "fresh|decode|forward" "$out/graphs-$v.txt" | head -40
  done
fi
if [ "${BUCKETS:-0}" = 1 ]; then  # a prompt's last chunk at bucketed shapes (prefill_buckets.py) off and on
  for v in ${BUCKET_SETTINGS:-0 1}; do  # 1c: on, through mx.compile
    echo "== OLLMLX_MLX_PREFILL_BUCKETS=$v, engine"
    OLLMLX_MLX_PREFILL_BUCKETS=${v%c} OLLMLX_MLX_PREFILL_COMPILE=$([ "${v: -1}" = c ] && echo 1 || echo 0) timeout 240 python bench/probe_warm_ttft.py --tuned --model-dir /tmp/m8b --fresh-only \
      --fresh-passes 2 --fresh-lengths "${LENGTHS:-1100,1400,1700,1900,2100,2300,2600,2900}" 2>&1 \
      | grep -v "transformers\]" > "$out/buckets-$v.txt"
    grep -E "fresh_length|fresh_pass|decode" "$out/buckets-$v.txt"
  done
fi
if [ "${BUCKETS_CHECK:-0}" = 1 ]; then  # the bucketed chunk's logits against the model's own, on this device
  timeout 200 python bench/probe_prefill_buckets.py --model-dir /tmp/m8b 2>&1 | grep -v "transformers\]" \
    | tee "$out/buckets-check.txt" | tail -6
fi
if [ "${BUCKETS_SERVED:-0}" = 1 ]; then  # the same, served: bench_mlx_serving.py's turn 2, one stream
  for v in ${BUCKET_SETTINGS:-1 0}; do
    echo "== OLLMLX_MLX_PREFILL_BUCKETS=$v, served"
    OLLMLX_MLX_PREFILL_BUCKETS=${v%c} OLLMLX_MLX_PREFILL_COMPILE=$([ "${v: -1}" = c ] && echo 1 || echo 0) \
      BENCH_OUT=$out timeout "${SERVED_S:-300}" python bench/bench_mlx_serving.py --model-dir /tmp/m8b \
      --skip-mlx-server --label "random-weight llama-3.1-8b, 4-bit, OLLMLX_MLX_PREFILL_BUCKETS=$v" --tokens 128 \
      --concurrency 1 2>&1 | grep -v "transformers\]" > "$out/serve-buckets$v.txt"
    mv "$out"/mlx-serving-*.json "$out/serve-buckets$v.json" 2>/dev/null
    grep -E "turn2|Turn-2|^\| 1 " "$out/serve-buckets$v.txt" | cut -c1-400
  done
fi
