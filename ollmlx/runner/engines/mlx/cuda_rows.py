"""4-bit affine-quantized products of a few input rows on CUDA tensor cores (`mx.fast.cuda_kernel`).

mlx-cuda's `quantized_matmul` runs a product of 2-32 input rows through its tile kernel (qmm),
padded to a 16-row tile, and it is slow there: 28 rows through an 8B shape's down projection
take 3.9x the time of one row (bench/RESULTS.md "Few-row quantized products"). Those products
are a batched decode step (one row per stream) and a warm turn's few new prompt tokens. A
CUDA-core kernel (one FMA per weight and input row) loses to qmm past 2 rows: at 16 rows an 8B
step is ~256 GFLOP. Here the products run on tensor cores, `mma.sync.m16n8k16`, with the weight
as the 16-row operand and the input rows as the 8-column one, so 1-8 input rows cost one mma per
16 weight rows and 16 values of K:

- A block of 8 warps owns one to four 16-row tiles of weight rows (as many as 8-row tiles of
  input rows: each input value a lane reads then feeds that many mmas); its warps take turns over the
  rows' 64-value chunks (the K axis) and add their partial sums in shared memory in a fixed
  order at the end, so results do not depend on timing.
- A lane reads four packed words (32 values; two where K is not a multiple of 128) of each of its
  weight rows (two per tile) per chunk, the next
  chunk's words in flight while it computes the current one. The nibbles become 16-bit pairs
  with a mask and one subtraction (cuda_kernels.py's exponent trick), then one packed FMA with
  the group's scale and bias: the weight exactly as `mx.dequantize` gives it in 16 bits.
- A dot product does not care in which order K is summed, so each lane feeds the mma the pairs
  (0,4) (1,5) (2,6) (3,7) that masking a word yields, and reads the same pairs of the input
  rows (one 16-byte load per input row and word, and a byte permute): no shuffles, no staging.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from ollmlx.runner.engines.mlx import decoder_check
from ollmlx.runner.engines.mlx.cuda_kernels import HEADER, THREADS, reads_weights

MAX_ROWS = 32
BUCKETS = (8, 16, 32)  # kernels built per input-row bound (8-column mma tiles); rows are read at run time

# The mma and its fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16"): lane = 4 * g + t.
# a: weight rows g and g + 8 at K columns (2t, 2t+1) and (2t+8, 2t+9); b: input row g at the same
# columns; c: weight rows g and g + 8 at input rows 2t and 2t + 1. A CPU emulation defines
# OLLMLX_MMA_DEFINED and its own mma16816 (tests/emulators/cuda.py).
MMA_HEADER = r"""
namespace ollmlx {
#ifndef OLLMLX_MMA_DEFINED
template <typename T> __device__ __forceinline__ void mma16816(float* c, const uint32_t* a, const uint32_t* b);
template <> __device__ __forceinline__ void mma16816<__nv_bfloat16>(float* c, const uint32_t* a, const uint32_t* b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <> __device__ __forceinline__ void mma16816<__half>(float* c, const uint32_t* a, const uint32_t* b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif
}  // namespace ollmlx
"""
ROWS_HEADER = HEADER + MMA_HEADER

ROWS_SOURCE = r"""
  using P = ollmlx::Q4<T>;
  using T2 = typename P::T2;
  constexpr int WARPS = 8;                  // 8 warps over K; NT 16-row tiles of weight rows
  constexpr int HW = WPL / 2;               // 8-byte loads per weight row and chunk
  __shared__ float red[WARPS * MT * 8 * 16];  // one tile's partial sums: [warp][input row][tile row]
  const int M = x_shape[0], K = x_shape[1], N = w_shape[0];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int base = blockIdx.x * (16 * NT);  // NT, WPL: template constants
  const int KW = K / 8, KG = K / GROUP, C = K / (32 * WPL);  // a chunk: 4 lanes x WPL words of a row
  const uint16_t* s16 = reinterpret_cast<const uint16_t*>(s);
  const uint16_t* b16 = reinterpret_cast<const uint16_t*>(b);
  const T2 magic = ollmlx::as2<T2>(P::MAGIC);
  // this lane's weight rows: tile r, row g (h = 0) or g + 8 (h = 1)
  const uint2* wrow[NT][2];
  int srow[NT][2];
#pragma unroll
  for (int r = 0; r < NT; ++r) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = min(base + 16 * r + g + 8 * h, N - 1);
      wrow[r][h] = reinterpret_cast<const uint2*>(w + (size_t)row * KW) + t * HW;
      srow[r][h] = row * KG;
    }
  }
  float acc[NT][MT][4];
#pragma unroll
  for (int r = 0; r < NT; ++r)
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[r][m][i] = 0.f;
  uint2 wq[NT][2][HW];
  uint32_t sc[NT][2], bi[NT][2];
  // words WPL * (4c + t) ... + WPL - 1 of each row, and their group's scale and bias (one group:
  // a lane's 8 * WPL values start at a multiple of 8 * WPL, and groups hold 32 or more)
  auto load = [&](int c, uint2 (&wq)[NT][2][HW], uint32_t (&sc)[NT][2], uint32_t (&bi)[NT][2]) {
    const int grp = (c * 32 * WPL + t * 8 * WPL) / GROUP;
#pragma unroll
    for (int r = 0; r < NT; ++r) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#pragma unroll
        for (int j = 0; j < HW; ++j) wq[r][h][j] = __ldg(wrow[r][h] + 2 * WPL * c + j);
        const uint32_t sv = __ldg(s16 + srow[r][h] + grp), bv = __ldg(b16 + srow[r][h] + grp);
        sc[r][h] = sv | (sv << 16);
        bi[r][h] = bv | (bv << 16);
      }
    }
  };
  if (warp < C) load(warp, wq, sc, bi);
  for (int c = warp; c < C; c += WARPS) {
    uint2 nq[NT][2][HW];
    uint32_t ns[NT][2], nb[NT][2];
    if (c + WARPS < C) load(c + WARPS, nq, ns, nb);
#pragma unroll
    for (int d = 0; d < WPL; ++d) {
      // the input rows' pairs at this lane's K columns: input row 8m + g, word WPL * (4c + t) + d
      uint32_t xp[MT][4];
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        const int row = 8 * m + g;
        const uint4 v = row < M ? __ldg(reinterpret_cast<const uint4*>(x + (size_t)row * K) + WPL * (4 * c + t) + d)
                                : make_uint4(0u, 0u, 0u, 0u);
        xp[m][0] = __byte_perm(v.x, v.z, 0x5410);  // values 0 and 4
        xp[m][1] = __byte_perm(v.x, v.z, 0x7632);  // 1 and 5
        xp[m][2] = __byte_perm(v.y, v.w, 0x5410);  // 2 and 6
        xp[m][3] = __byte_perm(v.y, v.w, 0x7632);  // 3 and 7
      }
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int i0 = 2 * half, i1 = 2 * half + 1;  // the two pairs this mma takes of word d
#pragma unroll
        for (int r = 0; r < NT; ++r) {
          uint32_t a[4];
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const uint32_t word = (d & 1) ? wq[r][h][d >> 1].y : wq[r][h][d >> 1].x;
            const T2 s2 = ollmlx::as2<T2>(sc[r][h]), b2 = ollmlx::as2<T2>(bi[r][h]);
            const T2 q0 = __hsub2(ollmlx::as2<T2>(((word >> (4 * i0)) & 0x000F000Fu) | P::MAGIC), magic);
            const T2 q1 = __hsub2(ollmlx::as2<T2>(((word >> (4 * i1)) & 0x000F000Fu) | P::MAGIC), magic);
            a[h] = ollmlx::asu<T2>(__hfma2(q0, s2, b2));      // a0 (row g), a1 (row g + 8)
            a[2 + h] = ollmlx::asu<T2>(__hfma2(q1, s2, b2));  // a2, a3: the columns 8 further
          }
#pragma unroll
          for (int m = 0; m < MT; ++m) {
            const uint32_t bf[2] = {xp[m][i0], xp[m][i1]};
            ollmlx::mma16816<T>(acc[r][m], a, bf);
          }
        }
      }
    }
    if (c + WARPS < C) {
#pragma unroll
      for (int r = 0; r < NT; ++r) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
#pragma unroll
          for (int j = 0; j < HW; ++j) wq[r][h][j] = nq[r][h][j];
          sc[r][h] = ns[r][h];
          bi[r][h] = nb[r][h];
        }
      }
    }
  }
  // the warps' partial sums, tile by tile, added in warp order
#pragma unroll
  for (int r = 0; r < NT; ++r) {
    __syncthreads();
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      float* o = red + (warp * MT + m) * 128;
      o[(2 * t) * 16 + g] = acc[r][m][0];
      o[(2 * t + 1) * 16 + g] = acc[r][m][1];
      o[(2 * t) * 16 + g + 8] = acc[r][m][2];
      o[(2 * t + 1) * 16 + g + 8] = acc[r][m][3];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < MT * 128; i += blockDim.x) {
      float v = 0.f;
#pragma unroll
      for (int k = 0; k < WARPS; ++k) v += red[k * MT * 128 + i];
      const int m = i >> 4, n = base + 16 * r + (i & 15);
      if (m < M && n < N) out[(size_t)m * N + n] = P::from(v);
    }
  }
"""


@cache
def _kernel() -> Any:
    return mx.fast.cuda_kernel(name="ollmlx_qmm_rows_mma", input_names=["x", "w", "s", "b"], output_names=["out"],
                               source=ROWS_SOURCE, header=ROWS_HEADER)


def usable(layer: Any, x: mx.array) -> bool:
    """A layer these kernels read, with an input of 2 to 32 rows in its scales' dtype."""
    rows = x.size // x.shape[-1]
    return (2 <= rows <= MAX_ROWS and reads_weights(layer) and x.dtype == layer["scales"].dtype
            and x.dtype in (mx.bfloat16, mx.float16) and x.shape[-1] % 64 == 0)


def agrees(model: Any) -> bool:
    """The kernel against `mx.quantized_matmul` on the model's own first layer it would take, for
    2, 16 and 32 random input rows: within 2% of the largest output (logged). (A load-time check: a wrong
    product would otherwise show up only as wrong tokens.)"""
    layer = next((m for _, m in model.named_modules() if isinstance(m, nn.QuantizedLinear)), None)
    if layer is None:
        return False
    k = layer["weight"].shape[1] * 32 // layer.bits
    for rows in (2, 16, 32):
        x = (mx.random.normal((rows, k), key=mx.random.key(rows)) * 0.5).astype(layer["scales"].dtype)
        if not usable(layer, x):
            return False
        want = mx.quantized_matmul(x, layer["weight"], layer["scales"], layer["biases"], transpose=True,
                                   group_size=layer.group_size, bits=layer.bits)
        if not decoder_check.close(rows_product(layer, x), want, f"few-row kernel, {rows} rows", 0.02):
            return False
    return True


def rows_product(layer: Any, x: mx.array, tiles: int | None = None, words: int | None = None) -> mx.array:
    """x (..., K) @ W^T for a 4-bit affine-quantized layer (weight, scales, biases), as
    `mx.quantized_matmul` computes it, for up to 32 rows of x (`tiles`, `words`: launch's)."""
    w, s, b = layer["weight"], layer["scales"], layer["biases"]
    k = x.shape[-1]
    rows = x.size // k
    n = w.shape[0]
    out = _kernel()(inputs=[x.reshape(rows, k), w, s, b], **launch(rows, n, x.dtype, layer.group_size, tiles, k, words),
                    output_shapes=[(rows, n)], output_dtypes=[x.dtype])[0]
    return out.reshape(*x.shape[:-1], n)


def launch(rows: int, n: int, dtype: mx.Dtype, group: int, tiles: int | None = None, k: int = 0,
           words: int | None = None) -> dict[str, Any]:
    """The kernel's template and grid for `rows` input rows, `n` weight rows and `k` values a row:
    a block of 8 warps per `tiles` 16-row tiles of weight rows, built for the smallest row bucket
    (8-column tiles) that holds `rows`; each lane reads `words` packed words of a row at a time.
    By default as many weight tiles as input-row tiles (each input value a lane reads then feeds
    that many mmas) and 4 words where K allows (more bytes in flight): the fastest of the
    combinations on an H100 for 8B-shaped layers (bench/RESULTS.md "Few-row products on tensor
    cores")."""
    bound = next(m for m in BUCKETS if m >= rows)
    nt = tiles or bound // 8
    wpl = words or (4 if k % 128 == 0 else 2)
    return dict(template=[("T", dtype), ("GROUP", group), ("MT", bound // 8), ("NT", nt), ("WPL", wpl)],
                grid=(-(-n // (16 * nt)) * THREADS, 1, 1), threadgroup=(THREADS, 1, 1))
