"""Run an ollmlx CUDA kernel's source on this CPU: each thread of a block is an OS thread,
`__shared__` arrays are shared by the block, `__syncthreads` is a barrier, and the 16-bit pair
intrinsics round every result as the GPU does. It checks a kernel's indexing and arithmetic
before lent GPU time is spent on it. Warp shuffles swap values through a per-warp slot array
between two 32-thread barriers, so every lane of a warp must reach each shuffle (as
`__shfl_xor_sync(0xffffffff, ...)` requires anyway). Timing means nothing here.

    python bench/cuda_emulate.py     # the few-row, fused q/k/v and attention kernels vs float32
    (tests/engine/test_cuda_kernels_on_cpu.py runs the same cases in the suite; needs g++)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PRELUDE = r"""
#include <array>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>
#include <algorithm>
#include <type_traits>
using std::min; using std::max;
#define __device__
#define __global__
#define __forceinline__ inline
#define __grid_constant__
#define __shared__ static
#define sincosf emu_sincosf
struct uint4 { uint32_t x, y, z, w; };
struct uint2 { uint32_t x, y; };
inline uint4 make_uint4(uint32_t x, uint32_t y, uint32_t z, uint32_t w) { return {x, y, z, w}; }
struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
std::barrier<>* block_barrier;
inline void __syncthreads() { block_barrier->arrive_and_wait(); }
template <typename T> inline T __ldg(const T* p) { return *p; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __expf(float x) { return std::exp(x); }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline void sincosf(float x, float* s, float* c) { *s = std::sin(x); *c = std::cos(x); }
// a warp's lanes swap values through a per-warp slot array between two warp-wide barriers
struct Warp { std::barrier<>* bar; float vals[32]; uint32_t a[32][4], b[32][2]; };
Warp* block_warps;
inline float __shfl_xor_sync(unsigned, float v, int o) {
  const int lane = threadIdx.x & 31;
  Warp& w = block_warps[threadIdx.x >> 5];
  w.vals[lane] = v;
  w.bar->arrive_and_wait();
  const float r = w.vals[lane ^ o];
  w.bar->arrive_and_wait();
  return r;
}
inline uint32_t __byte_perm(uint32_t a, uint32_t b, uint32_t s) {
  uint8_t bytes[8];
  std::memcpy(bytes, &a, 4); std::memcpy(bytes + 4, &b, 4);
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= uint32_t(bytes[(s >> (4 * i)) & 7]) << (8 * i);
  return r;
}
// bfloat16 and half as bit patterns, every operation rounded to 16 bits (round to nearest even)
inline float bits_to_f(uint16_t v, bool bf) {
  if (bf) { uint32_t u = uint32_t(v) << 16; float f; std::memcpy(&f, &u, 4); return f; }
  uint32_t sign = (v >> 15) & 1, exp = (v >> 10) & 31, man = v & 1023; float f;
  if (exp == 0) f = std::ldexp(float(man), -24);
  else if (exp == 31) f = man ? NAN : INFINITY;
  else f = std::ldexp(float(man | 1024), int(exp) - 25);
  return sign ? -f : f;
}
inline uint16_t f_to_bits(float f, bool bf) {
  if (bf) { uint32_t u; std::memcpy(&u, &f, 4); u += 0x7fff + ((u >> 16) & 1); return uint16_t(u >> 16); }
  // float -> half, round to nearest even, via the nearest representable value
  float a = std::fabs(f); uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  if (a >= 65520.f) return sign | 0x7c00;
  if (a < std::ldexp(1.f, -24) / 2) return sign;
  int e; std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  int exp = std::max(e - 1, -14);
  float q = std::nearbyint(std::ldexp(a, 10 - exp));  // 11 significant bits (fewer if subnormal)
  uint32_t v = uint32_t(q);
  if (v >= 2048) { v >>= 1; exp += 1; }
  if (v < 1024) return sign | uint16_t(v);  // subnormal
  return sign | uint16_t(((exp + 15) << 10) | (v & 1023));
}
struct __nv_bfloat16 { uint16_t v; };
struct __half { uint16_t v; };
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
struct __half2 { __half x, y; };
struct float2 { float x, y; };
inline float __bfloat162float(__nv_bfloat16 a) { return bits_to_f(a.v, true); }
inline __nv_bfloat16 __float2bfloat16(float f) { return {f_to_bits(f, true)}; }
inline float __half2float(__half a) { return bits_to_f(a.v, false); }
inline __half __float2half(float f) { return {f_to_bits(f, false)}; }
inline float2 __bfloat1622float2(__nv_bfloat162 a) { return {__bfloat162float(a.x), __bfloat162float(a.y)}; }
inline float2 __half22float2(__half2 a) { return {__half2float(a.x), __half2float(a.y)}; }
#define PAIR_OPS(T2, T, TOF, FROMF) \
  inline T2 __hsub2(T2 a, T2 b) { return {FROMF(TOF(a.x) - TOF(b.x)), FROMF(TOF(a.y) - TOF(b.y))}; } \
  inline T2 __hmul2(T2 a, T2 b) { return {FROMF(TOF(a.x) * TOF(b.x)), FROMF(TOF(a.y) * TOF(b.y))}; } \
  inline T2 __hfma2(T2 a, T2 b, T2 c) { \
    return {FROMF(std::fma(TOF(a.x), TOF(b.x), TOF(c.x))), FROMF(std::fma(TOF(a.y), TOF(b.y), TOF(c.y)))}; }
PAIR_OPS(__nv_bfloat162, __nv_bfloat16, __bfloat162float, __float2bfloat16)
PAIR_OPS(__half2, __half, __half2float, __float2half)
using Shape = std::array<int32_t, 8>;
// mma.sync.m16n8k16 (row.col, float32 accumulators) over a warp's fragments, as the PTX ISA lays
// them out (lane = 4g + t): each lane posts its a and b registers, then computes its own c.
#define OLLMLX_MMA_DEFINED
namespace ollmlx {
template <typename T>
inline void mma16816(float* c, const uint32_t* a, const uint32_t* b) {
  constexpr bool bf = std::is_same_v<T, __nv_bfloat16>;
  const int lane = threadIdx.x & 31;
  Warp& w = block_warps[threadIdx.x >> 5];
  for (int i = 0; i < 4; ++i) w.a[lane][i] = a[i];
  w.b[lane][0] = b[0]; w.b[lane][1] = b[1];
  w.bar->arrive_and_wait();
  auto half = [](uint32_t reg, int e) { return uint16_t(e ? reg >> 16 : reg & 0xffff); };
  const int g = lane >> 2, t = lane & 3;
  for (int i = 0; i < 4; ++i) {
    const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
    float sum = 0.f;
    for (int k = 0; k < 16; ++k) {
      const float av = bits_to_f(half(w.a[4 * (row & 7) + (k & 7) / 2][(row >> 3) + 2 * (k >> 3)], k & 1), bf);
      const float bv = bits_to_f(half(w.b[4 * col + (k & 7) / 2][k >> 3], k & 1), bf);
      sum += av * bv;
    }
    c[i] += sum;
  }
  w.bar->arrive_and_wait();
}
}  // namespace ollmlx
"""


CTYPES = {"bfloat16": "__nv_bfloat16", "float16": "__half", "float32": "float", "int32": "int32_t",
          "uint32": "uint32_t"}


def template_constants(template: list[tuple[str, object]]) -> list[str]:
    """mlx-cuda's lines for a kernel's template arguments: ints and bools as constants, dtypes
    (mx.Dtype or its name) as type aliases."""
    out = []
    for n, v in template:
        if isinstance(v, bool):
            out.append(f"  constexpr bool {n} = {'true' if v else 'false'};")
        elif isinstance(v, int):
            out.append(f"  constexpr int {n} = {v};")
        else:
            out.append(f"  using {n} = {CTYPES[str(v).split('.')[-1]]};")
    return out


def emulate(header: str, body: str, inputs: list[tuple[str, object, bool]], outputs: list[tuple[str, int, str]],
            template: list[tuple[str, object]], threads: int, blocks: int, workdir: Path,
            written: tuple[str, ...] = ()) -> list[object]:
    """Run `body` (an mx.fast.cuda_kernel source) over `blocks` blocks of `threads` threads.
    inputs: (name, mx.array, whether the source reads name_shape); outputs: (name, size, dtype);
    `written`: inputs the kernel writes in place, returned after the outputs as they are after it.
    Returns the outputs as mx arrays (flat)."""
    import mlx.core as mx

    params, args, setup = [], [], []
    for name, arr, shaped in inputs:
        a: mx.array = arr  # type: ignore[assignment]
        dt = str(a.dtype).split(".")[-1]
        raw = a.view(mx.uint16) if dt in ("bfloat16", "float16") else a
        np.array(raw).tofile(workdir / f"{name}.bin")
        setup.append(f'  const {CTYPES[dt]}* {name} = (const {CTYPES[dt]}*)load("{name}.bin", {a.size}, {a.itemsize});')
        params.append(f"const {CTYPES[dt]}* {name}")
        args.append(name)
        if shaped:
            dims = ", ".join(str(d) for d in a.shape)
            setup.append(f"  Shape {name}_shape{{}}; {{ int d[] = {{{dims}}}; for (int i = 0; i < {a.ndim}; ++i) "
                         f"{name}_shape[i] = d[i]; }}")
            params.append(f"Shape {name}_shape")
            args.append(f"{name}_shape")
    finish = []
    for name, arr, _ in inputs:
        if name in written:
            a2: mx.array = arr  # type: ignore[assignment]
            finish.append(f'  {{ FILE* fh = std::fopen("{name}.out", "wb"); std::fwrite({name}, {a2.itemsize}, {a2.size}, fh); '
                          "std::fclose(fh); }")
    for name, size, dt in outputs:
        setup.append(f"  {CTYPES[dt]}* {name} = ({CTYPES[dt]}*)std::calloc({size}, {mx.zeros(1, getattr(mx, dt)).itemsize});")
        params.append(f"{CTYPES[dt]}* {name}")
        args.append(name)
        finish.append(f'  {{ FILE* fh = std::fopen("{name}.out", "wb"); std::fwrite({name}, sizeof(*{name}), {size}, fh); '
                      "std::fclose(fh); }")
    consts = template_constants(template)
    src = (PRELUDE + header + "namespace mlx::core::cu {\nvoid kernel(" + ", ".join(params) + ") {\n"
           + "\n".join(consts) + "\n" + body + "\n}\n}\nint main() {\n"
           + """  auto load = [](const char* f, size_t n, size_t sz) { void* p = std::calloc(n, sz);
    FILE* fh = std::fopen(f, "rb"); if (std::fread(p, sz, n, fh) != n) std::abort(); std::fclose(fh); return p; };
""" + "\n".join(setup) + f"""
  blockDim.x = {threads}; gridDim.x = {blocks};
  std::vector<std::barrier<>*> warp_bars;
  std::vector<Warp> warps({max(1, threads // 32)});
  for (auto& w : warps) w.bar = new std::barrier<>(32);
  block_warps = warps.data();
  for (unsigned blk_ = 0; blk_ < {blocks}; ++blk_) {{
    std::barrier<> bar({threads}); block_barrier = &bar;
    std::vector<std::thread> ts;
    for (unsigned thr_ = 0; thr_ < {threads}; ++thr_)
      ts.emplace_back([=] {{ threadIdx.x = thr_; blockIdx.x = blk_; mlx::core::cu::kernel({", ".join(args)}); }});
    for (auto& th : ts) th.join();
  }}
""" + "\n".join(finish) + "\n  return 0;\n}\n")
    (workdir / "k.cpp").write_text(src)
    subprocess.run(["g++", "-O1", "-std=c++20", "-pthread", "-w", "k.cpp", "-o", "k"], cwd=workdir, check=True)
    subprocess.run(["./k"], cwd=workdir, check=True)
    out = []
    dtypes = {name: str(a.dtype).split(".")[-1] for name, a, _ in inputs}  # type: ignore[attr-defined]
    for name, _size, dt in [*outputs, *[(n, 0, dtypes[n]) for n in written]]:
        raw = np.fromfile(workdir / f"{name}.out", dtype=np.uint16 if dt in ("bfloat16", "float16") else np.float32)
        arr = mx.array(raw)
        out.append(arr.view(getattr(mx, dt)) if dt in ("bfloat16", "float16") else arr)
    return out


def _err(got: object, want: object) -> float:
    import mlx.core as mx

    g = np.array(got.astype(mx.float32)).reshape(-1)  # type: ignore[attr-defined]
    w = np.array(want.astype(mx.float32)).reshape(-1)  # type: ignore[attr-defined]
    return float(np.abs(g - w).max() / np.abs(w).max())


def _quantized(n: int, k: int, group: int, dt: object) -> tuple[object, object, object, object]:
    """Random 4-bit weights (q, scales, biases) and the float32 matrix they stand for."""
    import mlx.core as mx

    q, s, b = mx.quantize((mx.random.normal((n, k)) * 0.05).astype(dt), group_size=group, bits=4)
    dense = mx.dequantize(q, s.astype(mx.float32), b.astype(mx.float32), group_size=group, bits=4)
    return q, s, b, dense


# (weight rows, K, input rows, group, dtype, 16-row tiles per block, words a lane reads): partial
# blocks and tiles, fewer chunks than warps, 1 to 32 input rows, every group size, both 16-bit
# dtypes, K a multiple of 64 only (576: two words)
ROWS_CASES = [(96, 256, 5, 64, "bfloat16", 4, None), (40, 1536, 2, 32, "bfloat16", None, 2),
              (40, 1536, 3, 32, "bfloat16", None, 4), (64, 17408, 28, 128, "bfloat16", 2, None),
              (48, 576, 16, 64, "float16", None, None), (32, 1024, 32, 64, "bfloat16", None, None),
              (128, 512, 1, 64, "float16", 4, None)]


def rows_case(n: int, k: int, rows: int, group: int, dtype: str, workdir: Path,
              tiles: int | None = None, words: int | None = None) -> tuple[float, float]:
    """The few-row kernel on random 4-bit weights: its largest difference from the product in
    float32, relative to the largest output, and mx.quantized_matmul's on this CPU (which
    rounds as it goes in 16 bits)."""
    import mlx.core as mx

    from ollmlx.runner.engines.mlx import cuda_rows

    mx.random.seed(n + k + rows + group)
    dt = getattr(mx, dtype)
    q, s, b, dense = _quantized(n, k, group, dt)
    x = mx.random.normal((rows, k)).astype(dt)
    want = x.astype(mx.float32) @ dense.T  # type: ignore[attr-defined]
    mlx_err = _err(mx.quantized_matmul(x, q, s, b, transpose=True, group_size=group, bits=4), want)
    how = cuda_rows.launch(rows, n, dt, group, tiles, k, words)  # the template and grid rows_product launches with
    (got,) = emulate(cuda_rows.ROWS_HEADER, cuda_rows.ROWS_SOURCE, [("x", x, True), ("w", q, True), ("s", s, False), ("b", b, False)],
                     [("out", rows * n, dtype)], how["template"], how["threadgroup"][0],
                     how["grid"][0] // how["threadgroup"][0], workdir)
    return _err(got, want), mlx_err


def qmv_case(k: int, ns: tuple[int, int, int], group: int, dtype: str, workdir: Path,
             per_warp: int | None = None) -> float:
    """cuda_kernels.Qmv's kernel with RMSNorm in front and a residual: q, k and v of one row
    (`per_warp`: rows each warp computes; by default what Qmv picks for this many rows)."""
    import mlx.core as mx

    from ollmlx.runner.engines.mlx import cuda_kernels as ck

    mx.random.seed(k + sum(ns) + group)
    dt = getattr(mx, dtype)
    mats = [_quantized(n, k, group, dt) for n in ns]
    x = mx.random.normal((k,)).astype(dt)
    gamma = (1 + 0.1 * mx.random.normal((k,))).astype(dt)
    res = mx.random.normal((sum(ns),)).astype(dt)
    eps = mx.array([1e-5], dtype=mx.float32)
    xf = x.astype(mx.float32)
    xn = xf * mx.rsqrt(mx.mean(xf * xf) + 1e-5) * gamma.astype(mx.float32)
    want = mx.concatenate([m[3] @ xn for m in mats]) + res.astype(mx.float32)  # type: ignore[operator]
    per_warp = per_warp or ck._rows_per_warp(sum(ns))
    grid = ck._grid(sum(ns), per_warp)
    weights = [(f"{p}{i}", m[j], False) for i, m in enumerate(mats) for j, p in enumerate("wsb")]
    (got,) = emulate(ck.HEADER, ck.QMV_SOURCE, [("x", x, False), ("gamma", gamma, False), ("eps", eps, False),
                                                *weights, ("res", res, False)],
                     [("out", sum(ns), dtype)],
                     [("T", dt), ("K", k), ("GROUP", group), ("R", per_warp), ("NORM", True), ("RESID", True),
                      ("N0", ns[0]), ("N1", ns[1]), ("N2", ns[2])], ck.THREADS, grid[0] // ck.THREADS, workdir)
    return _err(got, want)


def _rmsnorm(x: object, gamma: object) -> object:
    import mlx.core as mx

    xf = x.astype(mx.float32)  # type: ignore[attr-defined]
    return xf * mx.rsqrt(mx.mean(xf * xf) + 1e-5) * gamma.astype(mx.float32)  # type: ignore[attr-defined]


def swiglu_case(k: int, n: int, group: int, dtype: str, workdir: Path, per_warp: int | None = None) -> float:
    """cuda_kernels.QmvSwiglu's kernel: silu(gate(norm(x))) * up(norm(x))."""
    import mlx.core as mx

    from ollmlx.runner.engines.mlx import cuda_kernels as ck

    mx.random.seed(k + n + group + 1)
    dt = getattr(mx, dtype)
    gate, up = _quantized(n, k, group, dt), _quantized(n, k, group, dt)
    x = mx.random.normal((k,)).astype(dt)
    gamma = (1 + 0.1 * mx.random.normal((k,))).astype(dt)
    xn = _rmsnorm(x, gamma)
    g, u = gate[3] @ xn, up[3] @ xn  # type: ignore[operator]
    want = g * mx.sigmoid(g) * u
    per_warp = per_warp or max(1, ck._rows_per_warp(n) // 2)
    grid = ck._grid(n, per_warp)
    weights = [(f"{p}{name}", m[j], False) for name, m in (("g", gate), ("u", up)) for j, p in enumerate("wsb")]
    (got,) = emulate(ck.HEADER, ck.SWIGLU_SOURCE, [("x", x, False), ("gamma", gamma, False),
                                                   ("eps", mx.array([1e-5], dtype=mx.float32), False), *weights],
                     [("out", n, dtype)], [("T", dt), ("K", k), ("GROUP", group), ("R", per_warp), ("NORM", True),
                                           ("N", n)], ck.THREADS, grid[0] // ck.THREADS, workdir)
    return _err(got, want)


def qkv_rope_case(k: int, heads: int, kv_heads: int, hd: int, pos: int, dtype: str, workdir: Path) -> float:
    """cuda_kernels.QkvRope's kernel: q, k, v from norm(x), RoPE (pairs i, i + hd/2) on q and k."""
    import mlx.core as mx

    from ollmlx.runner.engines.mlx import cuda_kernels as ck

    mx.random.seed(k + heads + hd + pos)
    dt = getattr(mx, dtype)
    mats = [_quantized(heads * hd, k, 64, dt), _quantized(kv_heads * hd, k, 64, dt), _quantized(kv_heads * hd, k, 64, dt)]
    x = mx.random.normal((k,)).astype(dt)
    gamma = (1 + 0.1 * mx.random.normal((k,))).astype(dt)
    theta = 10000.0 ** (-mx.arange(0, hd, 2, dtype=mx.float32) / hd)
    xn = _rmsnorm(x, gamma)

    def rope(v: object, n: int) -> object:
        v = v.reshape(n, hd)  # type: ignore[attr-defined]
        a, b = v[:, : hd // 2], v[:, hd // 2:]
        c, s = mx.cos(pos * theta), mx.sin(pos * theta)
        return mx.concatenate([a * c - b * s, b * c + a * s], axis=-1).reshape(-1)

    want = mx.concatenate([rope(mats[0][3] @ xn, heads), rope(mats[1][3] @ xn, kv_heads),  # type: ignore[operator]
                           (mats[2][3] @ xn).reshape(-1)])  # type: ignore[operator]
    weights = [(f"{p}{name}", m[j], False) for name, m in zip("qkv", mats) for j, p in enumerate("wsb")]
    pairs = (heads * hd + 2 * kv_heads * hd) // 2
    q, kk, v = emulate(ck.HEADER, ck.QKV_ROPE_SOURCE,
                       [("x", x, False), ("gamma", gamma, False), ("eps", mx.array([1e-5], dtype=mx.float32), False),
                        *weights, ("theta", theta, False), ("pos", mx.array([pos], dtype=mx.int32), False)],
                       [("q", heads * hd, dtype), ("k", kv_heads * hd, dtype), ("v", kv_heads * hd, dtype)],
                       [("T", dt), ("K", k), ("GROUP", 64), ("NORM", True), ("HD", hd), ("NQ", heads * hd),
                        ("NK", kv_heads * hd)], ck.THREADS, ck._grid(pairs, 1)[0] // ck.THREADS, workdir)
    return _err(mx.concatenate([q, kk, v]), want)


def attend_case(heads: int, kv_heads: int, d: int, pos: int, cap: int, dtype: str, workdir: Path,
                firsts: tuple[int, ...] = (0,)) -> float:
    """cuda_attention's kernels (one block per sequence and head, or split with the merge kernel)
    against softmax attention in float32 over positions firsts[b]..pos of each sequence b, the
    token's own k and v at pos."""
    import mlx.core as mx

    from ollmlx.runner.engines.mlx import cuda_attention as ca

    mx.random.seed(heads + d + pos + cap + len(firsts))
    dt = getattr(mx, dtype)
    batch = len(firsts)
    q = mx.random.normal((batch, heads, 1, d)).astype(dt)
    kn, vn = (mx.random.normal((batch, kv_heads, 1, d)).astype(dt) for _ in range(2))
    kc, vc = (mx.random.normal((batch, kv_heads, cap, d)).astype(dt) for _ in range(2))
    scale = d ** -0.5
    rep = heads // kv_heads
    wants = []
    for b, first in enumerate(firsts):
        keys = mx.concatenate([kc[b:b + 1, :, first:pos], kn[b:b + 1]], axis=2).astype(mx.float32)
        values = mx.concatenate([vc[b:b + 1, :, first:pos], vn[b:b + 1]], axis=2).astype(mx.float32)
        keys, values = mx.repeat(keys, rep, axis=1), mx.repeat(values, rep, axis=1)
        w = mx.softmax((q[b:b + 1].astype(mx.float32) * scale) @ keys.transpose(0, 1, 3, 2), axis=-1)
        wants.append(w @ values)
    want = mx.concatenate(wants)
    splits = ca.splits(cap)
    inputs = [("qr", q, False), ("kn", kn, False), ("vn", vn, False), ("kc", kc, True), ("vc", vc, False),
              ("pos", mx.array([pos], dtype=mx.int32), False), ("lp", mx.array(list(firsts), dtype=mx.int32), False),
              ("scale", mx.array([scale], dtype=mx.float32), False)]
    tmpl = [("T", dt), ("D", d), ("H", heads), ("KVH", kv_heads), ("S", splits)]
    rows = batch * heads
    if splits == 1:
        got, kc2, vc2 = emulate(ca.ATTEND_HEADER, ca.ATTEND_SOURCE, inputs, [("out", rows * d, dtype)], tmpl, 256,
                                rows, workdir, written=("kc", "vc"))
    else:
        part, kc2, vc2 = emulate(ca.ATTEND_HEADER, ca.ATTEND_SPLIT_SOURCE, inputs,
                                 [("out", rows * splits * (d + 2), "float32")], tmpl, 256, rows * splits, workdir,
                                 written=("kc", "vc"))
        (got,) = emulate(ca.ATTEND_HEADER, ca.MERGE_SOURCE, [("part", part, False)], [("out", rows * d, dtype)],
                         [("T", dt), ("D", d), ("S", splits)], 256, rows, workdir)
    # every sequence's key and value land in its buffers at the position, and nothing else changes
    for before, new, after in ((kc, kn, kc2), (vc, vn, vc2)):
        expect = mx.concatenate([before[:, :, :pos], new, before[:, :, pos + 1:]], axis=2)  # type: ignore[index]
        if not mx.array_equal(after.reshape(expect.shape), expect):  # type: ignore[attr-defined]
            return float("inf")
    return _err(got, want)


def main() -> None:
    failed = 0

    def report(ok: bool, text: str) -> None:
        nonlocal failed
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {text}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n, k, rows, group, dtype, tiles, words in ROWS_CASES:
            err, mlx_err = rows_case(n, k, rows, group, dtype, work, tiles, words)
            report(err <= max(0.01, 1.5 * mlx_err), f"rows kernel N={n} K={k} rows={rows} group={group} {dtype}: "
                   f"max |diff| {err:.4f} of max |out| (mx.quantized_matmul here {mlx_err:.4f})")
        for k, ns, group, dtype, per_warp in ((512, (256, 64, 64), 64, "bfloat16", None),
                                              (576, (96, 32, 32), 32, "float16", None),
                                              (256, (100, 20, 20), 64, "bfloat16", 4)):
            err = qmv_case(k, ns, group, dtype, work, per_warp)
            report(err <= 0.01, f"qmv (norm, 3 weights, residual) K={k} N={ns} group={group} {dtype}: "
                   f"max |diff| {err:.4f} of max |out|")
        for k, n, group, dtype, per_warp in ((512, 384, 64, "bfloat16", None), (576, 1536, 32, "float16", None),
                                             (256, 90, 64, "bfloat16", 2)):
            err = swiglu_case(k, n, group, dtype, work, per_warp)
            report(err <= 0.01, f"gate/up swiglu K={k} N={n} group={group} {dtype}: max |diff| {err:.4f} of max |out|")
        for k, heads, kv, hd, pos, dtype in ((512, 8, 2, 64, 37, "bfloat16"), (256, 4, 4, 128, 1234, "float16")):
            err = qkv_rope_case(k, heads, kv, hd, pos, dtype, work)
            report(err <= 0.01, f"q/k/v with RoPE K={k} heads={heads}/{kv} head_dim={hd} position={pos} {dtype}: "
                   f"max |diff| {err:.4f} of max |out|")
        for heads, kv, d, pos, cap, dtype in ((8, 2, 64, 37, 256, "bfloat16"), (4, 4, 128, 0, 256, "float16"),
                                              (8, 2, 128, 1500, 2048, "bfloat16"), (4, 1, 64, 3, 1024, "bfloat16")):
            err = attend_case(heads, kv, d, pos, cap, dtype, work)
            report(err <= 0.01, f"attention heads={heads}/{kv} head_dim={d} position={pos} capacity={cap} "
                   f"{dtype}: max |diff| {err:.4f} of max |out|")
        for heads, kv, d, pos, cap, firsts in ((4, 2, 64, 40, 256, (0, 7, 39)), (4, 1, 64, 900, 1024, (3, 0, 850))):
            err = attend_case(heads, kv, d, pos, cap, "bfloat16", work, firsts)
            report(err <= 0.01, f"batched attention heads={heads}/{kv} head_dim={d} position={pos} "
                   f"capacity={cap} first positions {firsts}: max |diff| {err:.4f} of max |out|")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
