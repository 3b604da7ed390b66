// Rotary position embedding, as mx.fast.rope computes it, in one pass over x.
//
// Why: mlx's CPU rope is its generic fallback, a dozen ops (positions, frequencies, cos, sin,
// splits, products, concatenation) per call: ~130 us for one decode token's queries on a 2-core
// host, twice per layer. This is one op.
//
// Same numbers as mlx: theta = (offset + l) * scale * inv_freq[i] in float32, with
// inv_freq[i] = exp(-i * log(base) / (dims / 2)) or 1 / freqs[i]; pairs (i, i + dims/2), or
// (2i, 2i + 1) when traditional; features past dims are copied.

#include <cmath>

#include "common.h"

namespace ollmlx {
namespace {

struct RopeShape {
  int batch;  // x's first axis (offsets may differ along it)
  int rows_per_batch;  // the axes between it and the positions (heads)
  int L, D, dims;
  bool traditional;
  float scale;
};

void run_rope(const RopeShape& r, const float* x, const int32_t* offsets, int n_offsets, const float* inv_freq,
              float* out) {
  const int half = r.dims / 2;
  std::vector<float> cs(size_t(r.L) * half), sn(size_t(r.L) * half);
  for (int b = 0; b < r.batch; ++b) {
    const int offset = offsets[n_offsets == 1 ? 0 : b];
    if (b == 0 || n_offsets > 1) {
      for (int l = 0; l < r.L; ++l) {
        const float pos = float(offset + l) * r.scale;
        for (int i = 0; i < half; ++i) {
          const float theta = pos * inv_freq[i];
          cs[l * half + i] = std::cos(theta);
          sn[l * half + i] = std::sin(theta);
        }
      }
    }
    for (int h = 0; h < r.rows_per_batch; ++h) {
      for (int l = 0; l < r.L; ++l) {
        const size_t row = ((size_t(b) * r.rows_per_batch + h) * r.L + l) * r.D;
        const float* xr = x + row;
        float* o = out + row;
        const float* c = cs.data() + l * half;
        const float* s = sn.data() + l * half;
        if (r.traditional) {
          for (int i = 0; i < half; ++i) {
            const float a = xr[2 * i], bb = xr[2 * i + 1];
            o[2 * i] = a * c[i] - bb * s[i];
            o[2 * i + 1] = a * s[i] + bb * c[i];
          }
        } else {
          int i = 0;
          for (; i + 8 <= half; i += 8) {
            const __m256 a = _mm256_loadu_ps(xr + i), bb = _mm256_loadu_ps(xr + i + half);
            const __m256 cv = _mm256_loadu_ps(c + i), sv = _mm256_loadu_ps(s + i);
            _mm256_storeu_ps(o + i, _mm256_fmsub_ps(a, cv, _mm256_mul_ps(bb, sv)));
            _mm256_storeu_ps(o + i + half, _mm256_fmadd_ps(a, sv, _mm256_mul_ps(bb, cv)));
          }
          for (; i < half; ++i) {
            const float a = xr[i], bb = xr[i + half];
            o[i] = a * c[i] - bb * s[i];
            o[i + half] = a * s[i] + bb * c[i];
          }
        }
        if (r.dims < r.D) std::memcpy(o + r.dims, xr + r.dims, sizeof(float) * (r.D - r.dims));
      }
    }
  }
}

class Rope : public CpuOnly {
 public:
  Rope(mx::Stream stream, int dims, bool traditional, float base, float scale, bool has_freqs)
      : CpuOnly(stream), dims_(dims), traditional_(traditional), base_(base), scale_(scale), has_freqs_(has_freqs) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    const auto& x = inputs[0];
    const auto& offset = inputs[1];
    auto& out = outputs[0];
    auto& encoder = prepare(stream(), inputs, out);
    RopeShape r{x.shape(0), int(x.size() / (size_t(x.shape(0)) * x.shape(-2) * x.shape(-1))), x.shape(-2),
                x.shape(-1), dims_, traditional_, scale_};
    std::vector<float> inv_freq(dims_ / 2);
    const float* freqs = has_freqs_ ? inputs[2].data<float>() : nullptr;
    encoder.dispatch([r, inv_freq, freqs, base = base_, xb = x.data<float>(), shape = x.shape(), strides = x.strides(),
                      contiguous = bool(x.flags().row_contiguous), size = x.size(),
                      offsets = offset.data<int32_t>(), n_offsets = int(offset.size()),
                      o = out.data<float>()]() mutable {
      const int half = r.dims / 2;
      for (int i = 0; i < half; ++i) {
        inv_freq[i] = freqs ? 1.f / freqs[i] : std::exp(float(-i) * (std::log(base) / float(half)));
      }
      RowMajor xr(xb, shape, strides, contiguous, size);
      run_rope(r, xr.data, offsets, n_offsets, inv_freq.data(), o);
    });
  }

  const char* name() const override { return "OllmlxRope"; }

  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const Rope*>(&other);
    return o && o->dims_ == dims_ && o->traditional_ == traditional_ && o->base_ == base_ && o->scale_ == scale_ &&
           o->has_freqs_ == has_freqs_;
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override { return {inputs[0].shape()}; }

 private:
  int dims_;
  bool traditional_;
  float base_;
  float scale_;
  bool has_freqs_;
};

}  // namespace

mx::array rope(const mx::array& x, int dims, bool traditional, std::optional<float> base, float scale,
               const mx::array& offset, const std::optional<mx::array>& freqs, mx::StreamOrDevice s) {
  if (x.dtype() != mx::float32 || x.ndim() < 3) throw std::invalid_argument("rope: x must be float32 with 3+ axes");
  if (dims <= 0 || dims % 2 != 0 || dims > x.shape(-1)) throw std::invalid_argument("rope: dims must be even, <= D");
  if (offset.ndim() > 1 || (offset.size() != 1 && offset.size() != size_t(x.shape(0))) ||
      !mx::issubdtype(offset.dtype(), mx::integer)) {
    throw std::invalid_argument("rope: offset must be an integer scalar or one per batch row");
  }
  if (base.has_value() == freqs.has_value()) throw std::invalid_argument("rope: give one of base and freqs");
  std::vector<mx::array> inputs = {x, mx::astype(offset, mx::int32, s)};
  if (freqs) {
    if (freqs->ndim() != 1 || freqs->shape(0) != dims / 2) throw std::invalid_argument("rope: freqs must be dims / 2");
    inputs.push_back(mx::contiguous(mx::astype(*freqs, mx::float32, s), false, s));
  }
  return mx::array(x.shape(), mx::float32,
                   std::make_shared<Rope>(mx::to_stream(s), dims, traditional, base.value_or(0.f), scale,
                                          freqs.has_value()),
                   std::move(inputs));
}

}  // namespace ollmlx
