"""One token's attention for the whole-step decode path on CUDA (fused_step.py, `mx.fast.cuda_kernel`).

mlx's fused decode attention takes the cache sliced to its current length, so each token has new
shapes and a step cannot be traced once; given a mask over a fixed-capacity buffer, it falls back
to separate kernels. This kernel reads a buffer of fixed capacity up to a position given as an
array, so the step keeps one shape until the buffer grows.

It also writes the token's key and value into the buffers, in place, at that position. A
`slice_update` with a position given as an array costs three kernels on mlx-cuda (an offset
computation, a copy, and a whole-buffer copy when the input cannot be donated), twice per layer;
measured on an H100, that took the whole step's gain back. The write is safe because the decoder
only hands this kernel buffers it made itself and holds alone (`fused_step.FusedDecoder`), and
because every later read of a buffer depends, through the tokens, on the step that wrote it.

A block per sequence and query head (and per split of the positions, for long contexts: more
blocks to read a long cache with); batch_step.py runs a batch's sequences through it at once. Each lane reads 8 values of a key and a value row, `LPP` lanes a position,
so a warp reads `PPW` positions at once, each lane group with its own running softmax (max, sum,
weighted values), combined across the warp and then the block. Scores and sums in float32, as
mlx's attention computes them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import mlx.core as mx

from ollmlx.runner.engines.mlx.cuda_kernels import HEADER, THREADS, _settled

ATTEND_HEADER = HEADER + r"""
namespace ollmlx {

// Positions [start, end) of one kv head's buffers (position n - 1 is the new token, read from
// knew/vnew) for query head `head`; each warp's running softmax lands in sm_m, sm_l, sm_acc.
template <typename T, int D, int WARPS>
__device__ __forceinline__ void attend_block(const T* qr, const T* knew, const T* vnew, const T* kb,
                                             const T* vb, int start, int end, int n, float sc,
                                             float* sm_m, float* sm_l, float (*sm_acc)[D]) {
  using P = Q4<T>;
  using T2 = typename P::T2;
  constexpr int LPP = D / 8;
  constexpr int PPW = 32 / LPP;
  const float NEG_INF = -__int_as_float(0x7f800000);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / LPP, part = lane % LPP;
  float qf[8];
  {
    const uint4 u = reinterpret_cast<const uint4*>(qr)[part];
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int a = 0; a < 4; ++a) {
      const float2 f = P::f2(as2<T2>(w[a]));
      qf[2 * a] = f.x * sc;
      qf[2 * a + 1] = f.y * sc;
    }
  }
  float m = NEG_INF, l = 0.f, acc[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) acc[e] = 0.f;
#pragma unroll 4
  for (int base = start + warp * PPW; base < end; base += WARPS * PPW) {
    const int t = base + sub;
    const bool ok = t < end;
    const T* krow = t == n - 1 ? knew : kb + (size_t)(ok ? t : start) * D;
    const T* vrow = t == n - 1 ? vnew : vb + (size_t)(ok ? t : start) * D;
    const uint4 ku = reinterpret_cast<const uint4*>(krow)[part];
    const uint4 vu = reinterpret_cast<const uint4*>(vrow)[part];
    const uint32_t kw[4] = {ku.x, ku.y, ku.z, ku.w};
    const uint32_t vw[4] = {vu.x, vu.y, vu.z, vu.w};
    float s = 0.f;
#pragma unroll
    for (int a = 0; a < 4; ++a) {
      const float2 f = P::f2(as2<T2>(kw[a]));
      s += qf[2 * a] * f.x + qf[2 * a + 1] * f.y;
    }
#pragma unroll
    for (int o = LPP / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (ok) {
      const float mn = fmaxf(m, s);
      const float c = __expf(m - mn);
      const float p = __expf(s - mn);
      l = l * c + p;
#pragma unroll
      for (int a = 0; a < 4; ++a) {
        const float2 f = P::f2(as2<T2>(vw[a]));
        acc[2 * a] = acc[2 * a] * c + p * f.x;
        acc[2 * a + 1] = acc[2 * a + 1] * c + p * f.y;
      }
      m = mn;
    }
  }
  // the warp's lane groups into one (lanes LPP apart hold the same 8 values of the row)
#pragma unroll
  for (int o = LPP; o < 32; o <<= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const float l2 = __shfl_xor_sync(0xffffffffu, l, o);
    const float mn = fmaxf(m, m2);
    const float c1 = m == NEG_INF ? 0.f : __expf(m - mn);
    const float c2 = m2 == NEG_INF ? 0.f : __expf(m2 - mn);
    l = l * c1 + l2 * c2;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float a2 = __shfl_xor_sync(0xffffffffu, acc[e], o);
      acc[e] = acc[e] * c1 + a2 * c2;
    }
    m = mn;
  }
  if (sub == 0) {
    if (part == 0) { sm_m[warp] = m; sm_l[warp] = l; }
#pragma unroll
    for (int e = 0; e < 8; ++e) sm_acc[warp][part * 8 + e] = acc[e];
  }
  __syncthreads();
}

// One value of the softmax-weighted sum over `count` partial results: maxes m and sums l
// (`ms` apart), weighted values acc (`astride` apart). An empty part has max -inf and sum 0.
__device__ __forceinline__ void merge(const float* m, const float* l, int ms, const float* acc, int astride,
                                      int count, float* top_out, float* den_out, float* num_out) {
  const float NEG_INF = -__int_as_float(0x7f800000);
  float top = NEG_INF;
  for (int i = 0; i < count; ++i) top = fmaxf(top, m[i * ms]);
  float den = 0.f, num = 0.f;
  for (int i = 0; i < count; ++i) {
    const float c = m[i * ms] == NEG_INF ? 0.f : __expf(m[i * ms] - top);
    den += l[i * ms] * c;
    num += acc[i * astride] * c;
  }
  *top_out = top;
  *den_out = den;
  *num_out = num;
}

}  // namespace ollmlx
"""

# Shared by both kernels: the block's sequence, head, kv head and position range; the new row
# written. Blocks run sequence by sequence, head by head, split by split. Every sequence writes at
# the same position (a batch's caches share their length); sequence b's own positions start at
# lp[b] (its left padding in mlx-lm's BatchKVCache; 0 for a lone stream).
ATTEND_PROLOGUE = r"""
  constexpr int WARPS = 8;
  __shared__ float sm_m[WARPS];
  __shared__ float sm_l[WARPS];
  __shared__ float sm_acc[WARPS][D];
  const int seq = blockIdx.x / (H * S), head = (blockIdx.x / S) % H, split = blockIdx.x % S;
  const int kvh = head / (H / KVH);
  const int n = pos[0] + 1;
  const size_t cap = kc_shape[2];
  const int first = lp[seq];
  const int chunk = (n - first + S - 1) / S;
  const int start = first + split * chunk, end = min(n, start + chunk);
  const size_t qrow = (size_t)seq * H + head, kvrow = (size_t)seq * KVH + kvh;
  T* kb = const_cast<T*>(kc) + kvrow * cap * D;
  T* vb = const_cast<T*>(vc) + kvrow * cap * D;
  if (split == 0 && head % (H / KVH) == 0 && threadIdx.x < D) {  // the token's row, in place
    kb[(size_t)(n - 1) * D + threadIdx.x] = kn[kvrow * D + threadIdx.x];
    vb[(size_t)(n - 1) * D + threadIdx.x] = vn[kvrow * D + threadIdx.x];
  }
  ollmlx::attend_block<T, D, WARPS>(qr + qrow * D, kn + kvrow * D, vn + kvrow * D, kb, vb,
                                    start, end, n, scale[0], sm_m, sm_l, sm_acc);
"""

# S == 1: the block's result is the head's output.
ATTEND_SOURCE = ATTEND_PROLOGUE + r"""
  if (threadIdx.x < D) {
    float top, den, num;
    ollmlx::merge(sm_m, sm_l, 1, &sm_acc[0][threadIdx.x], D, WARPS, &top, &den, &num);
    out[qrow * D + threadIdx.x] = ollmlx::Q4<T>::from(num / den);
  }
"""

# S > 1: each block leaves its (max, sum, D weighted values) for the merge kernel.
ATTEND_SPLIT_SOURCE = ATTEND_PROLOGUE + r"""
  float* o = out + (size_t)blockIdx.x * (D + 2);
  if (threadIdx.x < D) {
    float top, den, num;
    ollmlx::merge(sm_m, sm_l, 1, &sm_acc[0][threadIdx.x], D, WARPS, &top, &den, &num);
    o[threadIdx.x] = num;
    if (threadIdx.x == 0) { o[D] = top; o[D + 1] = den; }
  }
"""

MERGE_SOURCE = r"""
  const size_t row = blockIdx.x;  // sequence * heads + head
  const float* p = part + row * S * (D + 2);
  if (threadIdx.x < D) {
    float top, den, num;
    ollmlx::merge(p + D, p + D + 1, D + 2, p + threadIdx.x, D + 2, S, &top, &den, &num);
    out[row * D + threadIdx.x] = ollmlx::Q4<T>::from(num / den);
  }
"""

_INPUTS = ["qr", "kn", "vn", "kc", "vc", "pos", "lp", "scale"]


@cache
def _kernels() -> tuple[Any, Any, Any]:
    return (
        mx.fast.cuda_kernel(name="ollmlx_attend", input_names=_INPUTS, output_names=["out"],
                            source=ATTEND_SOURCE, header=ATTEND_HEADER),
        mx.fast.cuda_kernel(name="ollmlx_attend_split", input_names=_INPUTS, output_names=["out"],
                            source=ATTEND_SPLIT_SOURCE, header=ATTEND_HEADER),
        mx.fast.cuda_kernel(name="ollmlx_attend_merge", input_names=["part"], output_names=["out"],
                            source=MERGE_SOURCE, header=ATTEND_HEADER),
    )


def splits(capacity: int) -> int:
    """Blocks per head: one up to 512 positions (a second kernel to merge costs more than it
    saves there); then one per 256 positions of capacity, up to 16."""
    return 1 if capacity <= 512 else min(16, capacity // 256)


def takes(heads: int, kv_heads: int, head_dim: int) -> bool:
    """Whether the kernels read these heads: 8 values a lane, a position's lanes within a warp, a
    value per thread of the block, whole groups of query heads per kv head."""
    return not (head_dim % 8 or head_dim > THREADS or heads % kv_heads or 32 % (head_dim // 8))


class DecodeAttention:
    """softmax(q k^T * scale) v for one token of each of B sequences: q (B, heads, 1, head_dim), the
    tokens' k and v (B, kv_heads, 1, head_dim), over KV buffers (B, kv_heads, capacity, head_dim)
    that hold the positions before pos[0]; k and v are written into the buffers at pos[0].
    Sequence b reads positions from first[b] (its left padding; none when first is None). The
    capacity and the batch stay out of the kernels' builds, so growing buffers reuse them."""

    def __init__(self, heads: int, kv_heads: int, head_dim: int, scale: float, dtype: mx.Dtype) -> None:
        if not takes(heads, kv_heads, head_dim):
            raise ValueError(f"no decode attention kernel for head_dim {head_dim}")
        self.heads, self.head_dim, self.dtype = heads, head_dim, dtype
        self._scale = mx.array([scale], dtype=mx.float32)
        self._none = mx.zeros((1,), dtype=mx.int32)
        _settled(self._scale, self._none)
        self._template = [("T", dtype), ("D", head_dim), ("H", heads), ("KVH", kv_heads)]

    def __call__(self, q: mx.array, k: mx.array, v: mx.array, keys: mx.array, values: mx.array,
                 pos: mx.array, first: mx.array | None = None) -> mx.array:
        attend, attend_split, merge = _kernels()
        s = splits(keys.shape[2])
        batch = q.shape[0]
        rows = batch * self.heads
        inputs = [q, k, v, keys, values, pos, self._none if first is None else first, self._scale]
        shape = (batch, self.heads, 1, self.head_dim)
        if s == 1:
            return attend(inputs=inputs, template=[*self._template, ("S", 1)], grid=(rows * THREADS, 1, 1),
                          threadgroup=(THREADS, 1, 1), output_shapes=[shape], output_dtypes=[self.dtype])[0]
        part = attend_split(inputs=inputs, template=[*self._template, ("S", s)],
                            grid=(rows * s * THREADS, 1, 1), threadgroup=(THREADS, 1, 1),
                            output_shapes=[(rows * s * (self.head_dim + 2),)],
                            output_dtypes=[mx.float32])[0]
        return merge(inputs=[part], template=[("T", self.dtype), ("D", self.head_dim), ("S", s)],
                     grid=(rows * THREADS, 1, 1), threadgroup=(THREADS, 1, 1), output_shapes=[shape],
                     output_dtypes=[self.dtype])[0]
