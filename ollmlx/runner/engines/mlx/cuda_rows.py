"""4-bit affine-quantized products of a few input rows on CUDA (`mx.fast.cuda_kernel`).

mlx-cuda's `quantized_matmul` runs a product of 2-32 input rows through its tile kernel (qmm),
padded to a 16-row tile, and it is slow there: 28 rows through an 8B shape's down projection
take 3.9x the time of one row (bench/RESULTS.md "Few-row quantized products"). Those products
are a batched decode step (one row per stream) and a warm turn's few new prompt tokens. Here
each lane owns one weight row and reads it once for every input row: the block's warps take
turns over the row's 32-value chunks, the input rows sit in shared memory (read by every lane
at the same address, one broadcast), and the nibbles become 16-bit pairs with a mask and one
subtraction, then one packed FMA per pair and input row (cuda_kernels.py's `word_dot`, codes
centred); the 16-bit sums of 8 products add up in float32.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import mlx.core as mx

from ollmlx.runner.engines.mlx.cuda_kernels import HEADER, THREADS, reads_weights

MAX_ROWS = 32
BUCKETS = (4, 8, 16, 32)  # kernels built per input-row bound; the row count itself is read at run time

# x (M, K) in shared memory per K tile: KT values of every input row, 32 KB at most.
ROWS_SOURCE = r"""
  using P = ollmlx::Q4<T>;
  constexpr int WARPS = 8;
  constexpr int KT = 16384 / MMAX;          // K values per tile
  constexpr int TU = KT / 32;               // 32-value chunks per tile
  __shared__ uint4 xs[MMAX * TU * 4];       // [m][chunk][word]: a word's pairs (0,4) (1,5) (2,6) (3,7)
  __shared__ float xsum[MMAX * TU];         // [m][chunk]: the chunk's sum (times the group bias)
  const int M = x_shape[0], K = x_shape[1], N = w_shape[0];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int row = blockIdx.x * 32 + lane;
  const bool live = row < N;
  const int wrow = live ? row : N - 1;
  const uint4* wp = reinterpret_cast<const uint4*>(w) + (size_t)wrow * (K / 32);
  const T* sp = s + (size_t)wrow * (K / GROUP);
  const T* bp = b + (size_t)wrow * (K / GROUP);
  float acc[MMAX];
#pragma unroll
  for (int m = 0; m < MMAX; ++m) acc[m] = 0.f;
  for (int k0 = 0; k0 < K; k0 += KT) {
    const int tu = min(TU, (K - k0) / 32);
    __syncthreads();  // the previous tile is read
    for (int i = threadIdx.x; i < M * tu; i += blockDim.x) {
      const int m = i / tu, c = i % tu;
      const uint4* xv = reinterpret_cast<const uint4*>(x + (size_t)m * K + k0) + c * 4;
      float sum = 0.f;
#pragma unroll
      for (int a = 0; a < 4; ++a) sum += ollmlx::pair_word<T>(xv[a], &xs[(m * TU + c) * 4 + a]);
      xsum[m * TU + c] = sum;
    }
    __syncthreads();
    // each warp's next chunk is loaded while it computes the current one (one load in flight
    // per warp otherwise: a few chunks per tile leave the weights' latency exposed)
    uint4 wq = warp < tu ? __ldg(wp + k0 / 32 + warp) : make_uint4(0u, 0u, 0u, 0u);
    for (int c = warp; c < tu; c += WARPS) {
      const int chunk = k0 / 32 + c;
      const uint4 wnext = c + WARPS < tu ? __ldg(wp + chunk + WARPS) : wq;
      const int g = (chunk * 32) / GROUP;
      const float sc = P::f(sp[g]), bi = P::f(bp[g]);
      const uint32_t words[4] = {wq.x, wq.y, wq.z, wq.w};
      float d[MMAX];
#pragma unroll
      for (int m = 0; m < MMAX; ++m) d[m] = 0.f;
#pragma unroll
      for (int a = 0; a < 4; ++a) {
#pragma unroll
        for (int m = 0; m < MMAX; ++m) {
          if (m < M) d[m] += ollmlx::word_dot<T>(words[a], xs[(m * TU + c) * 4 + a]);
        }
      }
#pragma unroll
      for (int m = 0; m < MMAX; ++m) {
        if (m < M) acc[m] += sc * d[m] + (bi + 8.f * sc) * xsum[m * TU + c];
      }
      wq = wnext;
    }
  }
  // the warps' partial sums over their chunks, added per (input row, weight row)
  __syncthreads();
  float* red = reinterpret_cast<float*>(xs);  // [warp][m][lane], 32 KB at most
#pragma unroll
  for (int m = 0; m < MMAX; ++m) {
    if (m < M) red[(warp * MMAX + m) * 32 + lane] = acc[m];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < M * 32; i += blockDim.x) {
    const int m = i / 32, r = i % 32;
    float v = 0.f;
#pragma unroll
    for (int k = 0; k < WARPS; ++k) v += red[(k * MMAX + m) * 32 + r];
    const int n = blockIdx.x * 32 + r;
    if (n < N) out[(size_t)m * N + n] = P::from(v);
  }
"""


@cache
def _kernel() -> Any:
    return mx.fast.cuda_kernel(name="ollmlx_qmm_rows", input_names=["x", "w", "s", "b"], output_names=["out"],
                               source=ROWS_SOURCE, header=HEADER)


def usable(layer: Any, x: mx.array) -> bool:
    """A layer these kernels read, with an input of 2 to 32 rows in its scales' dtype."""
    rows = x.size // x.shape[-1]
    return (2 <= rows <= MAX_ROWS and reads_weights(layer) and x.dtype == layer["scales"].dtype
            and x.dtype in (mx.bfloat16, mx.float16) and x.shape[-1] % 32 == 0)


def rows_product(layer: Any, x: mx.array) -> mx.array:
    """x (..., K) @ W^T for a 4-bit affine-quantized layer (weight, scales, biases), as
    `mx.quantized_matmul` computes it, for 2 to 32 rows of x."""
    w, s, b = layer["weight"], layer["scales"], layer["biases"]
    k = x.shape[-1]
    rows = x.size // k
    n = w.shape[0]
    out = _kernel()(inputs=[x.reshape(rows, k), w, s, b], **launch(rows, n, x.dtype, layer.group_size),
                    output_shapes=[(rows, n)], output_dtypes=[x.dtype])[0]
    return out.reshape(*x.shape[:-1], n)


def launch(rows: int, n: int, dtype: mx.Dtype, group: int) -> dict[str, Any]:
    """The kernel's template and grid for `rows` input rows and `n` weight rows: a block of 8 warps
    per 32 weight rows, built for the smallest row bucket that holds `rows`."""
    bound = next(m for m in BUCKETS if m >= rows)
    return dict(template=[("T", dtype), ("GROUP", group), ("MMAX", bound)], grid=(-(-n // 32) * THREADS, 1, 1),
                threadgroup=(THREADS, 1, 1))

