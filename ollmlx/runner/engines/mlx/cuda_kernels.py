"""Fused one-row kernels for 4-bit affine-quantized products on CUDA (`mx.fast.cuda_kernel`).

A lone stream's decode step on mlx-cuda is bound by launches, not by memory: an 8B 4-bit Llama
step reads ~4.5 GB (1.3 ms at an H100's bandwidth) but takes 6-7 ms over ~18 kernels per layer
(bench/probe_fused_step.py). These kernels fold the neighbours of each quantized product into it:

- `Qmv`: one to three weights side by side (q, k and v read the same input), optionally with the
  RMSNorm in front (each block normalizes its own copy of the input row) and a residual added to
  the result;
- `QmvSwiglu`: gate and up products with RMSNorm in front and silu(gate) * up after;
- `QkvRope`: RMSNorm, the q, k and v products and RoPE on q and k, in attention's layout.

Layout: mlx packs eight 4-bit values per uint32, lowest nibble first, with one scale and one bias
per `group_size` values of a row. Each warp computes R rows; each lane reads 16 bytes (32 values)
of a row at a time. A block first stages its input in shared memory, its 8-value words
reordered to the pairs (0,4) (1,5) (2,6) (3,7) that masking a packed word yields, so that the
inner loop turns nibbles into 16-bit pairs with a mask and one subtraction (the exponent trick:
0x4300 | q is 128 + q in bfloat16, 0x6400 | q is 1024 + q in float16; subtracting 136 or 1032
leaves q - 8, the code centred) and multiplies them with packed 16-bit FMAs. Sums leave 16 bits
after every 8 values and add up in float32; the bias term takes the centring back exactly.
bench/cuda_emulate.py runs these sources on a CPU against float32: bf16 products within
0.4-0.6% of the largest output (1.2% before the centring).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import mlx.core as mx

THREADS = 256  # 8 warps a block

HEADER = r"""
namespace ollmlx {

template <typename T> struct Q4;
template <> struct Q4<__nv_bfloat16> {
  using T2 = __nv_bfloat162;
  static constexpr uint32_t MAGIC = 0x43004300u;  // 128.0 in both halves
  static __device__ __forceinline__ float2 f2(T2 v) { return __bfloat1622float2(v); }
  static __device__ __forceinline__ float f(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 from(float v) { return __float2bfloat16(v); }
};
template <> struct Q4<__half> {
  using T2 = __half2;
  static constexpr uint32_t MAGIC = 0x64006400u;  // 1024.0 in both halves
  static __device__ __forceinline__ float2 f2(T2 v) { return __half22float2(v); }
  static __device__ __forceinline__ float f(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half from(float v) { return __float2half(v); }
};

template <typename T2> __device__ __forceinline__ T2 as2(uint32_t u) {
  return *reinterpret_cast<T2*>(&u);
}
template <typename T2> __device__ __forceinline__ uint32_t asu(T2 v) {
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One 8-value word of an input row as the pairs (0,4) (1,5) (2,6) (3,7) that masking a packed
// 4-bit word yields (word_dot's layout); returns the 8 values' sum (it multiplies the bias).
template <typename T>
__device__ __forceinline__ float pair_word(uint4 v, uint4* dst) {
  using P = Q4<T>;
  using T2 = typename P::T2;
  const float2 f0 = P::f2(as2<T2>(v.x)), f1 = P::f2(as2<T2>(v.y));
  const float2 f2 = P::f2(as2<T2>(v.z)), f3 = P::f2(as2<T2>(v.w));
  uint4 p;
  p.x = __byte_perm(v.x, v.z, 0x5410);  // values 0 and 4
  p.y = __byte_perm(v.x, v.z, 0x7632);  // 1 and 5
  p.z = __byte_perm(v.y, v.w, 0x5410);  // 2 and 6
  p.w = __byte_perm(v.y, v.w, 0x7632);  // 3 and 7
  *dst = p;
  return (f0.x + f0.y) + (f1.x + f1.y) + (f2.x + f2.y) + (f3.x + f3.y);
}

// The 8 4-bit codes of a packed weight word times 8 input values staged by pair_word, summed in
// 16 bits. The codes are centred, q - 8 (subtracting 136 or 1032 in the exponent trick): the
// sums then carry no common part (8 * the inputs' sum) for the bias term to cancel afterwards,
// which bf16's 8-bit mantissa would lose (bench/cuda_emulate.py: error against float32 2-3x
// smaller). The caller adds 8 * scale into the bias term.
template <typename T>
__device__ __forceinline__ float word_dot(uint32_t W, uint4 xp) {
  using P = Q4<T>;
  using T2 = typename P::T2;
  const T2 center = as2<T2>(P::MAGIC | 0x00080008u);
  const T2 q0 = __hsub2(as2<T2>((W & 0x000F000Fu) | P::MAGIC), center);
  const T2 q1 = __hsub2(as2<T2>(((W >> 4) & 0x000F000Fu) | P::MAGIC), center);
  const T2 q2 = __hsub2(as2<T2>(((W >> 8) & 0x000F000Fu) | P::MAGIC), center);
  const T2 q3 = __hsub2(as2<T2>(((W >> 12) & 0x000F000Fu) | P::MAGIC), center);
  T2 p = __hmul2(q0, as2<T2>(xp.x));
  p = __hfma2(q1, as2<T2>(xp.y), p);
  p = __hfma2(q2, as2<T2>(xp.z), p);
  p = __hfma2(q3, as2<T2>(xp.w), p);
  const float2 pf = P::f2(p);
  return pf.x + pf.y;
}

// Stage the input row (K values) in shared memory. xs[a * K/32 + c] holds word a (values
// 8a..8a+7) of 32-value chunk c as the pairs (0,4) (1,5) (2,6) (3,7); xsum[c] is the chunk's sum
// (it multiplies the group bias). With NORM the staged values are x * gamma and *rnorm is
// 1/sqrt(mean(x^2) + eps), applied to the products' results.
template <typename T, int K, bool NORM>
__device__ __forceinline__ void stage_x(const T* x, const T* gamma, const float* eps, uint4* xs,
                                        float* xsum, float* rnorm, float* red) {
  using P = Q4<T>;
  using T2 = typename P::T2;
  constexpr int C = K / 32;
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  const uint4* gv = reinterpret_cast<const uint4*>(gamma);
  float sq = 0.f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float s = 0.f;
#pragma unroll
    for (int a = 0; a < 4; ++a) {
      uint4 v = xv[c * 4 + a];
      if constexpr (NORM) {
        uint4 g = gv[c * 4 + a];
        float2 f;
        f = P::f2(as2<T2>(v.x)); sq += f.x * f.x + f.y * f.y;
        f = P::f2(as2<T2>(v.y)); sq += f.x * f.x + f.y * f.y;
        f = P::f2(as2<T2>(v.z)); sq += f.x * f.x + f.y * f.y;
        f = P::f2(as2<T2>(v.w)); sq += f.x * f.x + f.y * f.y;
        v.x = asu<T2>(__hmul2(as2<T2>(v.x), as2<T2>(g.x)));
        v.y = asu<T2>(__hmul2(as2<T2>(v.y), as2<T2>(g.y)));
        v.z = asu<T2>(__hmul2(as2<T2>(v.z), as2<T2>(g.z)));
        v.w = asu<T2>(__hmul2(as2<T2>(v.w), as2<T2>(g.w)));
      }
      s += pair_word<T>(v, &xs[a * C + c]);
    }
    xsum[c] = s;
  }
  if constexpr (NORM) {
    sq = warp_sum(sq);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = sq;
    __syncthreads();
    if (threadIdx.x == 0) {
      float t = 0.f;
      for (int i = 0; i < (int)(blockDim.x >> 5); ++i) t += red[i];
      *rnorm = rsqrtf(t / K + eps[0]);
    }
  }
  __syncthreads();
}

// Lane-partial dot products of NR packed rows with the staged input.
template <typename T, int K, int GROUP, int NR>
__device__ __forceinline__ void rows_dot(const uint32_t* const* w, const T* const* s,
                                         const T* const* b, const uint4* xs, const float* xsum,
                                         int lane, float* acc) {
  using P = Q4<T>;
  constexpr int C = K / 32;
#pragma unroll
  for (int r = 0; r < NR; ++r) acc[r] = 0.f;
#pragma unroll 4
  for (int c = lane; c < C; c += 32) {
    uint4 wq[NR];
#pragma unroll
    for (int r = 0; r < NR; ++r) wq[r] = __ldg(reinterpret_cast<const uint4*>(w[r]) + c);
    uint4 xp[4];
#pragma unroll
    for (int a = 0; a < 4; ++a) xp[a] = xs[a * C + c];
    const float xs_c = xsum[c];
    const int g = (c * 32) / GROUP;
#pragma unroll
    for (int r = 0; r < NR; ++r) {
      const float d = word_dot<T>(wq[r].x, xp[0]) + word_dot<T>(wq[r].y, xp[1]) + word_dot<T>(wq[r].z, xp[2])
                      + word_dot<T>(wq[r].w, xp[3]);
      const float sc = P::f(s[r][g]);
      acc[r] += sc * d + (P::f(b[r][g]) + 8.f * sc) * xs_c;
    }
  }
}

}  // namespace ollmlx
"""

# Every kernel's prologue: the block stages its input row (stage_x); `lane` is the thread's lane.
STAGED_INPUT = r"""  __shared__ uint4 xs[K / 8];
  __shared__ float xsum[K / 32];
  __shared__ float red[32];
  __shared__ float rnorm;
  ollmlx::stage_x<T, K, NORM>(x, gamma, eps, xs, xsum, &rnorm, red);
  const int lane = threadIdx.x & 31;"""

# One to three weights side by side: out = [W0; W1; W2] @ (norm(x) if NORM else x) (+ res).
QMV_SOURCE = r"""
  using P = ollmlx::Q4<T>;
  constexpr int N = N0 + N1 + N2;
""" + STAGED_INPUT + r"""
  const int first = ((blockIdx.x * blockDim.x + threadIdx.x) >> 5) * R;
  const uint32_t* wp[R];
  const T* sp[R];
  const T* bp[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    int row = first + r < N ? first + r : N - 1;
    if (row < N0) {
      wp[r] = w0 + (size_t)row * (K / 8); sp[r] = s0 + (size_t)row * (K / GROUP);
      bp[r] = b0 + (size_t)row * (K / GROUP);
    } else if (row < N0 + N1) {
      row -= N0;
      wp[r] = w1 + (size_t)row * (K / 8); sp[r] = s1 + (size_t)row * (K / GROUP);
      bp[r] = b1 + (size_t)row * (K / GROUP);
    } else {
      row -= N0 + N1;
      wp[r] = w2 + (size_t)row * (K / 8); sp[r] = s2 + (size_t)row * (K / GROUP);
      bp[r] = b2 + (size_t)row * (K / GROUP);
    }
  }
  float acc[R];
  ollmlx::rows_dot<T, K, GROUP, R>(wp, sp, bp, xs, xsum, lane, acc);
#pragma unroll
  for (int r = 0; r < R; ++r) {
    float v = ollmlx::warp_sum(acc[r]);
    const int row = first + r;
    if (lane == 0 && row < N) {
      if constexpr (NORM) v *= rnorm;
      // the product is rounded to the model's dtype before the residual add, as mlx-lm does
      if constexpr (RESID) v = P::f(P::from(v)) + P::f(res[row]);
      out[row] = P::from(v);
    }
  }
"""

# q, k, v = [Wq; Wk; Wv] @ norm(x), with RoPE applied to q and k, written in the (1, heads, 1,
# head_dim) layout attention reads. Each warp computes one pair of rows (i, i + HD/2) of a head,
# the two values RoPE rotates together (the non-interleaved layout of mlx-lm's Llama blocks).
QKV_ROPE_SOURCE = r"""
  using P = ollmlx::Q4<T>;
  constexpr int HALF = HD / 2;
  constexpr int PAIRS = (NQ + 2 * NK) / 2;
""" + STAGED_INPUT + r"""
  int pair = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const bool live = pair < PAIRS;
  pair = live ? pair : PAIRS - 1;
  int seg, local;  // 0: q, 1: k, 2: v; local pair index within the segment
  if (pair < NQ / 2) { seg = 0; local = pair; }
  else if (pair < NQ / 2 + NK / 2) { seg = 1; local = pair - NQ / 2; }
  else { seg = 2; local = pair - NQ / 2 - NK / 2; }
  const int i = local % HALF;
  const int r0 = (local / HALF) * HD + i;
  const uint32_t* w = seg == 0 ? wq : (seg == 1 ? wk : wv);
  const T* s = seg == 0 ? sq : (seg == 1 ? sk : sv);
  const T* b = seg == 0 ? bq : (seg == 1 ? bk : bv);
  const uint32_t* wp[2] = {w + (size_t)r0 * (K / 8), w + (size_t)(r0 + HALF) * (K / 8)};
  const T* sp[2] = {s + (size_t)r0 * (K / GROUP), s + (size_t)(r0 + HALF) * (K / GROUP)};
  const T* bp[2] = {b + (size_t)r0 * (K / GROUP), b + (size_t)(r0 + HALF) * (K / GROUP)};
  float acc[2];
  ollmlx::rows_dot<T, K, GROUP, 2>(wp, sp, bp, xs, xsum, lane, acc);
  float a0 = ollmlx::warp_sum(acc[0]);
  float a1 = ollmlx::warp_sum(acc[1]);
  if (lane == 0 && live) {
    if constexpr (NORM) { a0 *= rnorm; a1 *= rnorm; }
    // the projection is rounded to the model's dtype before RoPE, as mlx-lm does
    a0 = P::f(P::from(a0));
    a1 = P::f(P::from(a1));
    if (seg == 2) {
      v[r0] = P::from(a0);
      v[r0 + HALF] = P::from(a1);
    } else {
      float sn, cs;
      sincosf((float)pos[0] * theta[i], &sn, &cs);
      T* o = seg == 0 ? q : k;
      o[r0] = P::from(a0 * cs - a1 * sn);
      o[r0 + HALF] = P::from(a1 * cs + a0 * sn);
    }
  }
"""

# silu(Wg @ norm(x)) * (Wu @ norm(x)), gate and up of one shape.
SWIGLU_SOURCE = r"""
  using P = ollmlx::Q4<T>;
""" + STAGED_INPUT + r"""
  const int first = ((blockIdx.x * blockDim.x + threadIdx.x) >> 5) * R;
  const uint32_t* wp[2 * R];
  const T* sp[2 * R];
  const T* bp[2 * R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const size_t row = first + r < N ? first + r : N - 1;
    wp[r] = wg + row * (K / 8); sp[r] = sg + row * (K / GROUP); bp[r] = bg + row * (K / GROUP);
    wp[R + r] = wu + row * (K / 8); sp[R + r] = su + row * (K / GROUP);
    bp[R + r] = bu + row * (K / GROUP);
  }
  float acc[2 * R];
  ollmlx::rows_dot<T, K, GROUP, 2 * R>(wp, sp, bp, xs, xsum, lane, acc);
#pragma unroll
  for (int r = 0; r < R; ++r) {
    float g = ollmlx::warp_sum(acc[r]);
    float u = ollmlx::warp_sum(acc[R + r]);
    const int row = first + r;
    if (lane == 0 && row < N) {
      if constexpr (NORM) { g *= rnorm; u *= rnorm; }
      // mlx-lm rounds each product to the model's dtype before swiglu
      g = P::f(P::from(g));
      u = P::f(P::from(u));
      out[row] = P::from(g / (1.f + __expf(-g)) * u);
    }
  }
"""


@cache
def _qmv_kernel() -> Any:
    return mx.fast.cuda_kernel(
        name="ollmlx_qmv",
        input_names=["x", "gamma", "eps", "w0", "s0", "b0", "w1", "s1", "b1", "w2", "s2", "b2", "res"],
        output_names=["out"], source=QMV_SOURCE, header=HEADER)


@cache
def _qkv_rope_kernel() -> Any:
    return mx.fast.cuda_kernel(
        name="ollmlx_qkv_rope",
        input_names=["x", "gamma", "eps", "wq", "sq", "bq", "wk", "sk", "bk", "wv", "sv", "bv", "theta", "pos"],
        output_names=["q", "k", "v"], source=QKV_ROPE_SOURCE, header=HEADER)


@cache
def _swiglu_kernel() -> Any:
    return mx.fast.cuda_kernel(
        name="ollmlx_qmv_swiglu",
        input_names=["x", "gamma", "eps", "wg", "sg", "bg", "wu", "su", "bu"],
        output_names=["out"], source=SWIGLU_SOURCE, header=HEADER)


def reads_weights(layer: Any) -> bool:
    """4-bit affine weights (scales and biases) at a group size the kernels' inner loop reads."""
    return (getattr(layer, "bits", None) == 4 and getattr(layer, "mode", "affine") == "affine"
            and "biases" in layer and layer.group_size in (32, 64, 128))


def supported(layer: Any) -> bool:
    """A quantized linear (or embedding used as the output head) these kernels can read."""
    return reads_weights(layer) and "bias" not in layer and layer["weight"].shape[-1] * 8 % 64 == 0


def _rows_per_warp(n: int) -> int:
    # enough blocks to cover every SM (132 on an H100) about twice; more rows per warp share the
    # staged input and keep more loads in flight
    for r in (4, 2):
        if n // (8 * r) >= 264:
            return r
    return 1


def _grid(rows: int, per_warp: int) -> tuple[int, int, int]:
    warps = -(-rows // per_warp)
    return (-(-warps // (THREADS // 32)) * THREADS, 1, 1)


SETTLE = True  # bench/probe_eval_cost.py --no-settle turns it off to measure what it saves


def _settled(*arrays: mx.array) -> None:
    """Compute a kernel's constant inputs now, and wait for them. Left lazy, they are computed
    inside the first step on the stream they were made on, and every later step then finds an
    input from another stream whose event mlx-cuda keeps waiting on: a CUDA-graph commit per
    kernel per token (py-spy on an H100: Event::wait and Fence::update took ~25% of the step)."""
    if SETTLE:
        mx.eval(*arrays)


def _norm_inputs(norm: Any, dtype: mx.Dtype) -> list[mx.array] | None:
    # gamma and eps of an nn.RMSNorm; eps travels as a float32 array (kernels take no scalars)
    if norm is None:
        return None
    out = [norm.weight.astype(dtype), mx.array([norm.eps], dtype=mx.float32)]
    _settled(*out)
    return out


class Qmv:
    """One call site: [layers' outputs] = W @ (RMSNorm(x) if norm else x) (+ residual), for one
    input row. Arguments that do not change between tokens are built once."""

    def __init__(self, layers: list[Any], dtype: mx.Dtype, norm: Any = None, residual: bool = False) -> None:
        ws = [(lay["weight"], lay["scales"], lay["biases"]) for lay in layers]
        ns = [w.shape[0] for w, _, _ in ws] + [0, 0]
        while len(ws) < 3:
            ws.append(ws[0])
        self.rows = ns[0] + ns[1] + ns[2]
        self._eps = mx.zeros((1,), dtype=mx.float32)  # stands in for an absent norm's inputs
        _settled(self._eps)
        k = ws[0][0].shape[1] * 8
        per_warp = _rows_per_warp(self.rows)
        self._weights = [a for triple in ws for a in triple]
        self._norm = _norm_inputs(norm, dtype)
        self._kw = dict(
            template=[("T", dtype), ("K", k), ("GROUP", layers[0].group_size), ("R", per_warp),
                      ("NORM", norm is not None), ("RESID", residual), ("N0", ns[0]), ("N1", ns[1]),
                      ("N2", ns[2])],
            grid=_grid(self.rows, per_warp), threadgroup=(THREADS, 1, 1),
            output_shapes=[(self.rows,)], output_dtypes=[dtype])

    def __call__(self, x: mx.array, residual: mx.array | None = None) -> mx.array:
        norm = self._norm if self._norm is not None else [x, self._eps]
        res = residual if residual is not None else x
        return _qmv_kernel()(inputs=[x, *norm, *self._weights, res], **self._kw)[0]


class QmvSwiglu:
    """silu(gate(RMSNorm(x))) * up(RMSNorm(x)) for one input row."""

    def __init__(self, gate: Any, up: Any, dtype: mx.Dtype, norm: Any = None) -> None:
        self.rows = gate["weight"].shape[0]
        self._eps = mx.zeros((1,), dtype=mx.float32)
        _settled(self._eps)
        k = gate["weight"].shape[1] * 8
        per_warp = max(1, _rows_per_warp(self.rows) // 2)
        self._weights = [gate["weight"], gate["scales"], gate["biases"], up["weight"], up["scales"], up["biases"]]
        self._norm = _norm_inputs(norm, dtype)
        self._kw = dict(
            template=[("T", dtype), ("K", k), ("GROUP", gate.group_size), ("R", per_warp),
                      ("NORM", norm is not None), ("N", self.rows)],
            grid=_grid(self.rows, per_warp), threadgroup=(THREADS, 1, 1),
            output_shapes=[(self.rows,)], output_dtypes=[dtype])

    def __call__(self, x: mx.array) -> mx.array:
        norm = self._norm if self._norm is not None else [x, self._eps]
        return _swiglu_kernel()(inputs=[x, *norm, *self._weights], **self._kw)[0]


class QkvRope:
    """q, k, v of one token for attention: the three products from RMSNorm(x), RoPE on q and k at
    position `pos` (an int32 array), each shaped (1, heads, 1, head_dim). `theta` holds RoPE's
    angle per position for each of the head_dim / 2 rotated pairs."""

    def __init__(self, q: Any, k: Any, v: Any, heads: int, kv_heads: int, theta: mx.array, dtype: mx.Dtype,
                 norm: Any) -> None:
        nq, nk = q["weight"].shape[0], k["weight"].shape[0]
        hd = nq // heads
        kdim = q["weight"].shape[1] * 8
        self._weights = [a for lay in (q, k, v) for a in (lay["weight"], lay["scales"], lay["biases"])]
        self._norm = _norm_inputs(norm, dtype)
        self._theta = theta.astype(mx.float32)
        _settled(self._theta)
        pairs = (nq + 2 * nk) // 2
        self._kw = dict(
            template=[("T", dtype), ("K", kdim), ("GROUP", q.group_size), ("NORM", True), ("HD", hd),
                      ("NQ", nq), ("NK", nk)],
            grid=_grid(pairs, 1), threadgroup=(THREADS, 1, 1),
            output_shapes=[(1, heads, 1, hd), (1, kv_heads, 1, hd), (1, kv_heads, 1, hd)],
            output_dtypes=[dtype, dtype, dtype])

    def __call__(self, x: mx.array, pos: mx.array) -> list[mx.array]:
        assert self._norm is not None
        return list(_qkv_rope_kernel()(inputs=[x, *self._norm, *self._weights, self._theta, pos], **self._kw))

