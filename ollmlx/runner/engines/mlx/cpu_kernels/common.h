// Shared pieces of ollmlx's CPU kernels (an mlx extension; see __init__.py for why they exist).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <vector>

#include "mlx/backend/cpu/encoder.h"
#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace ollmlx {

inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  return _mm_cvtss_f32(lo);
}

inline float dot(const float* a, const float* b, int n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float tail = 0.f;
  for (; i < n; ++i) tail += a[i] * b[i];
  return hsum(_mm256_add_ps(acc0, acc1)) + tail;
}

// The offset, in elements, of flat element i of an array with this shape and these strides.
inline int64_t strided_offset(size_t i, const mx::Shape& shape, const mx::Strides& strides) {
  int64_t offset = 0;
  for (int d = int(shape.size()) - 1; d >= 0; --d) {
    offset += int64_t(i % shape[d]) * strides[d];
    i /= shape[d];
  }
  return offset;
}

// A float32 array's values in row-major order: views (slices, transposes) are gathered, which
// only happens off the hot path (the layers hand these kernels contiguous activations).
struct RowMajor {
  const float* data;
  std::vector<float> copy;
  RowMajor(const float* base, const mx::Shape& shape, const mx::Strides& strides, bool contiguous, size_t size)
      : data(base) {
    if (contiguous) return;
    copy.resize(size);
    for (size_t i = 0; i < size; ++i) copy[i] = base[strided_offset(i, shape, strides)];
    data = copy.data();
  }
};

// Registers an op's arrays with the CPU encoder and allocates its (row-contiguous) output.
inline mx::cpu::CommandEncoder& prepare(mx::Stream stream, const std::vector<mx::array>& inputs, mx::array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream);
  for (const auto& a : inputs) encoder.set_input_array(a);
  encoder.set_output_array(out);
  return encoder;
}

class CpuOnly : public mx::Primitive {
 public:
  using mx::Primitive::Primitive;
  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error(std::string(name()) + " runs on the CPU only");
  }
};

mx::array quantized_rows(const mx::array& x, const mx::array& w, const mx::array& scales, const mx::array& biases,
                         int group_size, int bits, mx::StreamOrDevice s);

mx::array rope(const mx::array& x, int dims, bool traditional, std::optional<float> base, float scale,
               const mx::array& offset, const std::optional<mx::array>& freqs, mx::StreamOrDevice s);

mx::array attention(const mx::array& q, const mx::array& k, const mx::array& v, float scale, bool causal,
                    const std::optional<mx::array>& mask, mx::StreamOrDevice s);

}  // namespace ollmlx
