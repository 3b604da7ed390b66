#!/usr/bin/env bash
# On the GPU machine (see DEVELOPERS.md recipe): call 1 stashes .whlA (+ .whlC), call 2 brings .whlB and
# installs. Here: mlx, mlx-lm and the mlx-cuda wheel's first part (`split -b 38000000`: part_aa) in .whlA,
# its other parts (part_ab, part_ac) in .whlB; .whlC the server's pure-Python needs for Python 3.12
# (fastapi, starlette, uvicorn, pydantic, opentelemetry-api, annotated-doc, llguidance, rapidfuzz...).
#   bench/gpu_install.sh stash    (with carry [".whlA", ".whlC"])
#   bench/gpu_install.sh install  (with carry [".whlB"]), then: export PYTHONPATH=/tmp/site:$PWD
#   bench/gpu_install.sh model m8b   a random-weight 4-bit Llama-3.1-8B shape in /tmp/m8b (m1b: 3.2-1B),
#                                    made unless complete (its config.json is written last)
set -euo pipefail
case "$1" in
  # .whlC (optional): the server's pure-Python needs; each is installed only where the image lacks it,
  # so torch/transformers keep the versions they were built with
  stash) mkdir -p /tmp/stash/extra && cp .whlA/* /tmp/stash/ && { cp .whlC/* /tmp/stash/extra/ 2>/dev/null || true; } ;;
  install)
    cat /tmp/stash/part_aa .whlB/part_a[b-z] > /tmp/stash/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
    rm -f /tmp/stash/part_aa
    mkdir -p /tmp/stash/extra && { cp .whlB/*.whl /tmp/stash/extra/ 2>/dev/null || true; }  # what did not fit .whlC
    pip install -q --no-index --no-deps --target /tmp/site /tmp/stash/*.whl
    for w in /tmp/stash/extra/*.whl; do
      [ -e "$w" ] || continue
      dist=$(basename "$w" | cut -d- -f1)
      python -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$dist" 2>/dev/null \
        || pip install -q --no-index --no-deps --target /tmp/site "$w"
    done
    PYTHONPATH=/tmp/site python -c "import mlx.core as mx; print('mlx', mx.__version__, mx.default_device())" ;;
  model)
    case "$2" in m1b) shape=llama-3.2-1b ;; m8b) shape=llama-3.1-8b ;; *) echo "no shape $2" >&2; exit 2 ;; esac
    [ -f "/tmp/$2/config.json" ] || PYTHONPATH=/tmp/site:$PWD python bench/make_random_model.py --shape $shape --bits 4 \
      --out "/tmp/$2" >/dev/null 2>&1 ;;
esac
