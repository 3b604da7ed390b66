#!/usr/bin/env bash
# On the GPU machine (see DEVELOPERS.md recipe): call 1 stashes .whlA, call 2 brings .whlB and installs.
#   bench/gpu_install.sh stash    (with carry [".whlA"])
#   bench/gpu_install.sh install  (with carry [".whlB"]), then: export PYTHONPATH=/tmp/site:$PWD
set -euo pipefail
case "$1" in
  stash) mkdir -p /tmp/stash && cp .whlA/* /tmp/stash/ ;;
  install)
    cat /tmp/stash/part_aa .whlB/part_ab > /tmp/stash/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
    rm -f /tmp/stash/part_aa
    pip install -q --no-index --no-deps --target /tmp/site /tmp/stash/*.whl
    PYTHONPATH=/tmp/site python -c "import mlx.core as mx; print('mlx', mx.__version__, mx.default_device())" ;;
esac
