#!/usr/bin/env bash
# On the GPU machine: build llama-cpp-python with CUDA from its (slimmed) sdist, then compare the
# two engines on one random-weight GGUF of a real shape (bench/gguf_engines.py, engine level).
#   bench/gpu_llamacpp.sh build                      (carry .sdist)
#   bench/gpu_llamacpp.sh bench llama-3.2-1b "1 16"
set -euo pipefail
export PYTHONPATH=/tmp/site:$PWD OLLMLX_MLX_DEVICE=gpu
case "$1" in
  build)
    rm -rf /tmp/lcp && mkdir -p /tmp/lcp && tar -xzf .sdist/llama-cpp-python-slim.tar.gz -C /tmp/lcp
    CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" \
      CMAKE_BUILD_PARALLEL_LEVEL=16 python -m pip install -q --no-build-isolation --no-deps --target /tmp/site /tmp/lcp/llama_cpp_python-0.3.36
    python -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__, 'gpu offload', llama_cpp.llama_supports_gpu_offload())" ;;
  bench)
    shape=${2:-llama-3.2-1b}
    python bench/make_random_gguf.py --shape "$shape" --out "/tmp/$shape-f16.gguf"
    python -c "
import llama_cpp
p = llama_cpp.llama_model_quantize_default_params(); p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0; p.nthread = 16
assert llama_cpp.llama_model_quantize(b'/tmp/$shape-f16.gguf', b'/tmp/$shape-q4_0.gguf', p) == 0"
    python -m bench.gguf_engines --gguf "/tmp/$shape-q4_0.gguf" --tokens 128 --repeat 2 --streams ${3:-1 16} | tee "${OUT:-/tmp}/gguf-engines-$shape.txt" ;;
esac
