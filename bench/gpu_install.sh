#!/usr/bin/env bash
# On the GPU machine (see DEVELOPERS.md recipe): call 1 stashes .whlA, call 2 brings .whlB and installs.
#   bench/gpu_install.sh stash    (with carry [".whlA"])
#   bench/gpu_install.sh install  (with carry [".whlB"]), then: export PYTHONPATH=/tmp/site:$PWD
#   bench/gpu_install.sh model m8b   a random-weight 4-bit Llama-3.1-8B shape in /tmp/m8b (m1b: 3.2-1B),
#                                    made unless complete (its config.json is written last)
set -euo pipefail
case "$1" in
  stash) mkdir -p /tmp/stash && cp .whlA/* /tmp/stash/ ;;
  install)
    cat /tmp/stash/part_aa .whlB/part_ab > /tmp/stash/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
    rm -f /tmp/stash/part_aa
    pip install -q --no-index --no-deps --target /tmp/site /tmp/stash/*.whl
    PYTHONPATH=/tmp/site python -c "import mlx.core as mx; print('mlx', mx.__version__, mx.default_device())" ;;
  model)
    case "$2" in m1b) shape=llama-3.2-1b ;; m8b) shape=llama-3.1-8b ;; *) echo "no shape $2" >&2; exit 2 ;; esac
    [ -f "/tmp/$2/config.json" ] || PYTHONPATH=/tmp/site:$PWD python bench/make_random_model.py --shape $shape --bits 4 \
      --out "/tmp/$2" >/dev/null 2>&1 ;;
esac
