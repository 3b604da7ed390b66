// Rows of x times an mlx affine-quantized weight (4 or 8 bits), on a CPU with AVX2.
//
// Why: mlx's CPU quantized_matmul is scalar code, and the alternative (dense float32 weights
// through BLAS) streams 8x the bytes of 4-bit weights per decoded token. Here x is read in int8
// per block of 32, as llama.cpp computes its CPU products, against the packed codes: 32 products
// per instruction (AVX2 maddubs).
//
// Every row takes this path, prompts included, and each row is computed on its own: a token's
// numbers do not depend on how its prompt was cut into chunks, on a prefix cache hit, or on its
// batch. (Float32 sgemm over unpacked tiles reads long prompts ~1.4x faster, but a prompt's last
// token then came out ~0.5% different from the same token read as one row, and greedy answers
// changed with the cache's state.)
//
// Layout (mlx "affine"): w[n, k] = scales[n, k / g] * q[n, k] + biases[n, k / g], with q packed
// little-endian into uint32 words (4 bits: element j of a word in bits 4j..4j+3; 8 bits: byte j).
// So out[m, n] = sum_g scales[n, g] * dot(q[n, g], x[m, g]) + biases[n, g] * sum(x[m, g]).

#include <algorithm>

#include <omp.h>

#include "common.h"

namespace ollmlx {
namespace {

constexpr int kMaxRows = 8;  // rows of x read against each weight row at once (registers)

inline float half_to_float(uint16_t h) {
  return _cvtsh_ss(h);
}

inline float bf16_to_float(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Scales and biases of one weight row, as float32 (they are tiny next to the codes).
void row_params(const void* src, mx::Dtype dtype, int n_groups, float* dst) {
  if (dtype == mx::float32) {
    std::memcpy(dst, src, n_groups * sizeof(float));
    return;
  }
  auto* h = static_cast<const uint16_t*>(src);
  int g = 0;
  if (dtype == mx::float16) {
    for (; g + 8 <= n_groups; g += 8) {
      _mm256_storeu_ps(dst + g, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + g))));
    }
    for (; g < n_groups; ++g) dst[g] = half_to_float(h[g]);
  } else {
    for (; g < n_groups; ++g) dst[g] = bf16_to_float(h[g]);
  }
}

struct Problem {  // out = x @ w.T
  const float* x;  // [M, K]
  const uint8_t* w;  // [N, K * bits / 8]
  const void* scales;  // [N, K / group]
  const void* biases;
  mx::Dtype param_dtype;
  float* out;  // [M, N]
  int M, N, K, group;
};

inline int padded8(int n) { return (n + 7) / 8 * 8; }

// x's rows as the codes are read: per block of 32, int8 codes and one float scale (max |x| / 127),
// and each weight group's exact float sum for the bias term. For 4-bit weights a block's codes
// are stored in the order the weight's nibbles unpack to (even elements, then odd). Per-group and
// per-block arrays are zero-padded to multiples of 8 per row of x, so a weight row's terms over
// them are whole 8-wide vectors (the padding multiplies to nothing).
struct QuantizedX {
  std::vector<int8_t> codes;
  std::vector<float> scales, sums;
  // per weight group, what multiplies the weight's scale besides the codes' dot products: the
  // centre times x's exact sum, less (4-bit) the centre times x's rounded sum (see run_rows_int8)
  std::vector<float> centred;
};

QuantizedX quantize_x(const Problem& p, int bits) {
  const int blocks = p.K / 32, n_groups = p.K / p.group;
  QuantizedX q;
  q.codes.resize(size_t(p.M) * p.K);
  const int bstride = padded8(blocks), gstride = padded8(n_groups);
  q.scales.assign(size_t(p.M) * bstride, 0.f);
  q.sums.assign(size_t(p.M) * gstride, 0.f);
  q.centred.assign(size_t(p.M) * gstride, 0.f);
  const float centre = bits == 4 ? 8.f : 128.f;
  const __m256 sign = _mm256_set1_ps(-0.f);
  // packs_epi32/epi16 interleave 128-bit lanes; this puts the 32 bytes back in element order
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  // within each lane: even bytes, then odd bytes
  const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12,
                                         14, 1, 3, 5, 7, 9, 11, 13, 15);
  for (int m = 0; m < p.M; ++m) {
    for (int b = 0; b < blocks; ++b) {
      const float* x = p.x + size_t(m) * p.K + b * 32;
      __m256 v[4];
      __m256 top = _mm256_setzero_ps(), sum = _mm256_setzero_ps();
      for (int i = 0; i < 4; ++i) {
        v[i] = _mm256_loadu_ps(x + 8 * i);
        top = _mm256_max_ps(top, _mm256_andnot_ps(sign, v[i]));
        sum = _mm256_add_ps(sum, v[i]);
      }
      __m128 t = _mm_max_ps(_mm256_castps256_ps128(top), _mm256_extractf128_ps(top, 1));
      t = _mm_max_ps(t, _mm_movehl_ps(t, t));
      t = _mm_max_ss(t, _mm_movehdup_ps(t));
      const float amax = _mm_cvtss_f32(t);
      const float exact = hsum(sum);
      q.sums[size_t(m) * gstride + b * 32 / p.group] += exact;
      q.scales[size_t(m) * bstride + b] = amax / 127.f;
      float& centred = q.centred[size_t(m) * gstride + b * 32 / p.group];
      centred += centre * exact;
      const __m256 inv = _mm256_set1_ps(amax > 0.f ? 127.f / amax : 0.f);
      __m256i i32[4];
      for (int i = 0; i < 4; ++i) i32[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], inv));  // nearest, ties even
      const __m256i i16a = _mm256_packs_epi32(i32[0], i32[1]), i16b = _mm256_packs_epi32(i32[2], i32[3]);
      __m256i codes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(i16a, i16b), order);
      if (bits == 4) {
        // the 4-bit product reads uncentred codes: take the centre times x's rounded sum back
        const __m256i ones = _mm256_set1_epi16(1);
        const __m256i sums = _mm256_add_epi32(_mm256_madd_epi16(i16a, ones), _mm256_madd_epi16(i16b, ones));
        centred -= centre * (amax / 127.f) * hsum(_mm256_cvtepi32_ps(sums));
        codes = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(codes, split), 0xd8);  // qwords 0 2 1 3
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q.codes.data() + size_t(m) * p.K + b * 32), codes);
    }
  }
  return q;
}

// One block of 32 codes as bytes in the order quantize_x stored x's codes: 4-bit as they are
// (0..15; the low nibbles, then the high ones: one 128-bit load in both lanes, the upper lane
// shifted by 4), 8-bit centred (q - 128) as signed bytes.
template <int Bits>
inline __m256i block_codes(const uint8_t* row, int blk) {
  if constexpr (Bits == 4) {
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + blk * 16)));
    return _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0f));
  } else {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + blk * 32)),
                            _mm256_set1_epi8(char(0x80)));
  }
}

// Rows [n0, n1) of the output for M rows of quantized x: per block of 32, one maddubs (32
// products, summed in pairs), one madd to int32, one convert, one fma. 4-bit codes (0..15) are
// multiplied as they are, unsigned, by x's signed codes. 8-bit codes would overflow a pair's 16-bit
// sum that way, so they are centred (q' = q - 128) and multiplied as |q'| by x with q''s sign.
// Either way the result is what centred codes give (w = s (q - c) + b + c s), so x's rounding
// errors do not add up along a row of all-positive codes: QuantizedX::centred carries the c s
// part against x's exact sums. Each block's two scales are multiplied once per row, ahead. M is
// a template argument so the accumulators live in registers; even and odd blocks sum apart, so
// the loop is not one chain of dependent fmas.
template <int Bits, int M>
void run_rows_int8(const Problem& p, int n0, int n1, const QuantizedX& qx, int m0, float* s, float* b, float* f) {
  const int n_groups = p.K / p.group, blocks = p.K / 32, per_group = p.group / 32;
  const int gstride = padded8(n_groups), bstride = padded8(blocks);
  const size_t row_bytes = size_t(p.K) * Bits / 8;
  const size_t param_bytes = p.param_dtype.size();
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* xc[M];
  const float *xd[M], *xs[M], *xz[M];
  for (int m = 0; m < M; ++m) {
    xc[m] = qx.codes.data() + size_t(m0 + m) * p.K;
    xd[m] = qx.scales.data() + size_t(m0 + m) * bstride;
    xs[m] = qx.sums.data() + size_t(m0 + m) * gstride;
    xz[m] = qx.centred.data() + size_t(m0 + m) * gstride;
  }
  for (int n = n0; n < n1; ++n) {
    row_params(static_cast<const uint8_t*>(p.scales) + n * n_groups * param_bytes, p.param_dtype, n_groups, s);
    row_params(static_cast<const uint8_t*>(p.biases) + n * n_groups * param_bytes, p.param_dtype, n_groups, b);
    // each block's factor: the weight group's scale times x's block scale; and the row's terms
    // outside the codes (biases against x's sums, scales against the centred sums), as vectors
    // (s and b are zero past n_groups: their buffers are padded and never written there)
    __m256 terms[M];
    for (int m = 0; m < M; ++m) {
      terms[m] = _mm256_setzero_ps();
      for (int g = 0; g < gstride; g += 8) {
        const __m256 sg = _mm256_loadu_ps(s + g);
        terms[m] = _mm256_fmadd_ps(_mm256_loadu_ps(b + g), _mm256_loadu_ps(xs[m] + g), terms[m]);
        terms[m] = _mm256_fmadd_ps(sg, _mm256_loadu_ps(xz[m] + g), terms[m]);
      }
    }
    for (int m = 0; m < M; ++m) {
      float* fm = f + size_t(m) * bstride;
      if (per_group == 1) {
        for (int i = 0; i < bstride; i += 8) {
          _mm256_storeu_ps(fm + i, _mm256_mul_ps(_mm256_loadu_ps(s + i), _mm256_loadu_ps(xd[m] + i)));
        }
      } else {
        for (int g = 0; g < n_groups; ++g) {
          for (int r = 0; r < per_group; ++r) fm[g * per_group + r] = s[g] * xd[m][g * per_group + r];
        }
      }
    }
    const uint8_t* wr = p.w + n * row_bytes;
    __m256 even[M], odd[M];
    for (int m = 0; m < M; ++m) even[m] = odd[m] = _mm256_setzero_ps();
    auto block = [&](int blk, __m256 (&acc)[M]) __attribute__((always_inline)) {
      const __m256i q = block_codes<Bits>(wr, blk);
      const __m256i magnitude = Bits == 4 ? q : _mm256_abs_epi8(q);
      for (int m = 0; m < M; ++m) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc[m] + blk * 32));
        const __m256i pairs = _mm256_maddubs_epi16(magnitude, Bits == 4 ? x : _mm256_sign_epi8(x, q));
        acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones)),
                                 _mm256_broadcast_ss(f + size_t(m) * bstride + blk), acc[m]);
      }
    };
    int blk = 0;
    for (; blk + 2 <= blocks; blk += 2) {
      block(blk, even);
      block(blk + 1, odd);
    }
    if (blk < blocks) block(blk, even);
    for (int m = 0; m < M; ++m) p.out[size_t(m) * p.N + n] = hsum(_mm256_add_ps(_mm256_add_ps(even[m], odd[m]), terms[m]));
  }
}

template <int Bits>
void run_block_int8(const Problem& p, int n0, int n1, const QuantizedX& qx, int m0, float* s, float* b,
                    float* f) {
  switch (p.M) {
    case 1: return run_rows_int8<Bits, 1>(p, n0, n1, qx, m0, s, b, f);
    case 2: return run_rows_int8<Bits, 2>(p, n0, n1, qx, m0, s, b, f);
    case 3: return run_rows_int8<Bits, 3>(p, n0, n1, qx, m0, s, b, f);
    case 4: return run_rows_int8<Bits, 4>(p, n0, n1, qx, m0, s, b, f);
    case 5: return run_rows_int8<Bits, 5>(p, n0, n1, qx, m0, s, b, f);
    case 6: return run_rows_int8<Bits, 6>(p, n0, n1, qx, m0, s, b, f);
    case 7: return run_rows_int8<Bits, 7>(p, n0, n1, qx, m0, s, b, f);
    default: return run_rows_int8<Bits, 8>(p, n0, n1, qx, m0, s, b, f);
  }
}

void run_int8(const Problem& p, int bits) {
  const QuantizedX qx = quantize_x(p, bits);
  // Threads only for several rows: a lone row's product is a stream over the codes that one core
  // keeps up with, and the decode loop's other thread (the next step's graph) needs the other core.
  const bool parallel = p.M >= 4 && size_t(p.N) * p.K >= (size_t(1) << 18);
#pragma omp parallel if (parallel)
  {
    const int thread = omp_get_thread_num(), threads = omp_get_num_threads();
    const int n0 = int(int64_t(p.N) * thread / threads), n1 = int(int64_t(p.N) * (thread + 1) / threads);
    // zero past n_groups for good: row_params writes only the first n_groups
    std::vector<float> s(padded8(p.K / p.group)), b(padded8(p.K / p.group)), f(size_t(kMaxRows) * padded8(p.K / 32));
    for (int m0 = 0; m0 < p.M; m0 += kMaxRows) {
      Problem part = p;
      part.M = std::min(kMaxRows, p.M - m0);
      part.out = p.out + size_t(m0) * p.N;
      if (bits == 4) {
        run_block_int8<4>(part, n0, n1, qx, m0, s.data(), b.data(), f.data());
      } else {
        run_block_int8<8>(part, n0, n1, qx, m0, s.data(), b.data(), f.data());
      }
    }
  }
}

class QuantizedRows : public CpuOnly {
 public:
  QuantizedRows(mx::Stream stream, int group, int bits) : CpuOnly(stream), group_(group), bits_(bits) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    const auto& x = inputs[0];
    auto& out = outputs[0];
    auto& encoder = prepare(stream(), inputs, out);
    const int K = x.shape(-1);
    Problem p{nullptr, inputs[1].data<uint8_t>(), inputs[2].data<void>(), inputs[3].data<void>(), inputs[2].dtype(),
              out.data<float>(), int(x.size() / K), int(inputs[1].shape(0)), K, group_};
    encoder.dispatch([p, bits = bits_, base = x.data<float>(), shape = x.shape(), strides = x.strides(),
                      contiguous = bool(x.flags().row_contiguous), size = x.size()]() mutable {
      RowMajor rows(base, shape, strides, contiguous, size);
      p.x = rows.data;
      run_int8(p, bits);
    });
  }

  const char* name() const override { return "OllmlxQuantizedRows"; }

  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const QuantizedRows*>(&other);
    return o && o->group_ == group_ && o->bits_ == bits_;
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape.back() = inputs[1].shape(0);
    return {shape};
  }

 private:
  int group_;
  int bits_;
};

}  // namespace

// x [..., K] float32 times the weight [N, K] given as mlx affine codes: [..., N] float32.
mx::array quantized_rows(const mx::array& x, const mx::array& w, const mx::array& scales, const mx::array& biases,
                         int group_size, int bits, mx::StreamOrDevice s) {
  if (bits != 4 && bits != 8) throw std::invalid_argument("quantized_rows: bits must be 4 or 8");
  if (group_size % 32 != 0) throw std::invalid_argument("quantized_rows: group_size must be a multiple of 32");
  if (x.dtype() != mx::float32) throw std::invalid_argument("quantized_rows: x must be float32");
  if (w.dtype() != mx::uint32 || w.ndim() != 2) throw std::invalid_argument("quantized_rows: w must be 2-D uint32");
  const int K = x.shape(-1);
  if (w.shape(1) * 32 / bits != K || K % group_size != 0) {
    throw std::invalid_argument("quantized_rows: x's last axis does not match the weight");
  }
  auto pd = scales.dtype();
  if (pd != mx::float32 && pd != mx::float16 && pd != mx::bfloat16) {
    throw std::invalid_argument("quantized_rows: scales must be float32, float16 or bfloat16");
  }
  if (biases.dtype() != pd || scales.shape() != biases.shape() || scales.ndim() != 2 ||
      scales.shape(0) != w.shape(0) || scales.shape(1) != K / group_size) {
    throw std::invalid_argument("quantized_rows: scales and biases do not match the weight");
  }
  auto shape = x.shape();
  shape.back() = w.shape(0);
  // The weights are read as packed rows; x may be any view (eval_cpu gathers it).
  auto packed = [&](const mx::array& a) {
    return a.is_available() && a.flags().row_contiguous ? a : mx::contiguous(a, false, s);
  };
  return mx::array(shape, mx::float32, std::make_shared<QuantizedRows>(mx::to_stream(s), group_size, bits),
                   {x, packed(w), packed(scales), packed(biases)});
}

}  // namespace ollmlx
