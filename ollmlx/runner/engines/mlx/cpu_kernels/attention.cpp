// Attention of query rows over a KV cache, on a CPU, each row on its own.
//
// Why: mlx's CPU scaled_dot_product_attention composes copies of the cache views, two matmuls and
// a softmax: ~330 us per layer for one decode token over ~150 positions on a 2-core host, a
// quarter of the step. Here each (sequence, head, row) reads its keys and values once, in place
// (the cache's views have strided heads and positions), with the softmax in float32 as mlx's.
// A row's result is the same however many rows come with it (a prompt's chunking, a batch).
//
// q [B, Hq, L, D], k and v [B, Hkv, T, D] with Hq a multiple of Hkv (grouped queries); causal:
// row l sees positions up to T - L + l (the rows are the last L positions); a boolean mask
// (broadcast to [B, Hq, L, T]; a batch's left padding) hides positions where it is false. A row
// that sees nothing (a padding row) averages every position, as mlx's finite masking does.

#include <algorithm>
#include <cmath>
#include <limits>

#include "common.h"

namespace ollmlx {
namespace {

struct View {  // a 4-D float32 array read through its strides; its last axis must be unit-stride
  const float* data;
  int64_t s0, s1, s2;
  const float* row(int a, int b, int c) const { return data + a * s0 + b * s1 + c * s2; }
};

struct MaskView {  // a boolean array broadcast to [B, Hq, L, T] (zero strides), or none
  const bool* data = nullptr;
  int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  bool sees(int b, int h, int l, int t) const { return !data || data[b * s0 + h * s1 + l * s2 + t * s3]; }
};

void run_attention(const View& q, const View& k, const View& v, const MaskView& mask, float* out, int B, int Hq,
                   int Hkv, int L, int T, int D, float scale, bool causal) {
  const int group = Hq / Hkv;
  const int items = B * Hq * L;
  // threads only for long reads: a decode step's attention over a short cache is a few
  // microseconds a head, and the decode loop's graph building wants the other core
  const bool parallel = size_t(items) * T * D >= (size_t(1) << 20);
  constexpr float hidden = std::numeric_limits<float>::lowest();
#pragma omp parallel if (parallel)
  {
    std::vector<float> scores(T), acc(D);
#pragma omp for schedule(static)
    for (int item = 0; item < items; ++item) {
      const int l = item % L, h = (item / L) % Hq, b = item / (L * Hq);
      const int kh = h / group;
      const int seen = causal ? T - L + l + 1 : T;
      const float* qr = q.row(b, h, l);
      float top = -INFINITY;
      for (int t = 0; t < seen; ++t) {
        scores[t] = mask.sees(b, h, l, t) ? dot(qr, k.row(b, kh, t), D) * scale : hidden;
        top = std::max(top, scores[t]);
      }
      float total = 0.f;
      for (int t = 0; t < seen; ++t) {
        scores[t] = std::exp(scores[t] - top);
        total += scores[t];
      }
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int t = 0; t < seen; ++t) {
        const float* vr = v.row(b, kh, t);
        const __m256 p = _mm256_set1_ps(scores[t]);
        int d = 0;
        for (; d + 8 <= D; d += 8) {
          _mm256_storeu_ps(acc.data() + d, _mm256_fmadd_ps(p, _mm256_loadu_ps(vr + d), _mm256_loadu_ps(acc.data() + d)));
        }
        for (; d < D; ++d) acc[d] += scores[t] * vr[d];
      }
      float* o = out + size_t(item) * D;
      const float inv = 1.f / total;
      for (int d = 0; d < D; ++d) o[d] = acc[d] * inv;
    }
  }
}

class Attention : public CpuOnly {
 public:
  Attention(mx::Stream stream, float scale, bool causal, bool masked)
      : CpuOnly(stream), scale_(scale), causal_(causal), masked_(masked) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    auto& out = outputs[0];
    auto& encoder = prepare(stream(), inputs, out);
    struct Input {
      const float* base;
      mx::Shape shape;
      mx::Strides strides;
      size_t size;
    };
    auto input = [](const mx::array& a) { return Input{a.data<float>(), a.shape(), a.strides(), a.size()}; };
    const auto& q = inputs[0];
    const auto& k = inputs[1];
    MaskView mask;
    if (masked_) {
      const auto& m = inputs[3];
      mask = MaskView{m.data<bool>(), m.strides(0), m.strides(1), m.strides(2), m.strides(3)};
    }
    encoder.dispatch([qi = input(q), ki = input(k), vi = input(inputs[2]), mask, o = out.data<float>(),
                      B = q.shape(0), Hq = q.shape(1), Hkv = k.shape(1), L = q.shape(2), T = k.shape(2),
                      D = q.shape(3), scale = scale_, causal = causal_]() {
      // a view whose last axis is not unit-stride (never one from the layers) is gathered first
      std::vector<RowMajor> copies;
      copies.reserve(3);
      auto view = [&](const Input& a) {
        if (a.strides[3] == 1) return View{a.base, a.strides[0], a.strides[1], a.strides[2]};
        const auto& c = copies.emplace_back(a.base, a.shape, a.strides, false, a.size);
        return View{c.data, int64_t(a.shape[1]) * a.shape[2] * a.shape[3], int64_t(a.shape[2]) * a.shape[3],
                    int64_t(a.shape[3])};
      };
      run_attention(view(qi), view(ki), view(vi), mask, o, B, Hq, Hkv, L, T, D, scale, causal);
    });
  }

  const char* name() const override { return "OllmlxAttention"; }

  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const Attention*>(&other);
    return o && o->scale_ == scale_ && o->causal_ == causal_ && o->masked_ == masked_;
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override { return {inputs[0].shape()}; }

 private:
  float scale_;
  bool causal_;
  bool masked_;
};

}  // namespace

mx::array attention(const mx::array& q, const mx::array& k, const mx::array& v, float scale, bool causal,
                    const std::optional<mx::array>& mask, mx::StreamOrDevice s) {
  if (q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4) throw std::invalid_argument("attention: 4-D inputs");
  if (q.dtype() != mx::float32 || k.dtype() != mx::float32 || v.dtype() != mx::float32) {
    throw std::invalid_argument("attention: float32 inputs");
  }
  if (k.shape() != v.shape() || q.shape(0) != k.shape(0) || q.shape(3) != k.shape(3) || q.shape(1) % k.shape(1) != 0) {
    throw std::invalid_argument("attention: q, k and v do not match");
  }
  if (causal && q.shape(2) > k.shape(2)) throw std::invalid_argument("attention: more query rows than positions");
  std::vector<mx::array> inputs = {q, k, v};
  if (mask) {
    if (mask->dtype() != mx::bool_ || mask->ndim() > 4) throw std::invalid_argument("attention: a boolean mask");
    // a view with zero strides where it broadcasts: nothing is copied
    inputs.push_back(mx::broadcast_to(*mask, {q.shape(0), q.shape(1), q.shape(2), k.shape(2)}, s));
  }
  return mx::array(q.shape(), mx::float32,
                   std::make_shared<Attention>(mx::to_stream(s), scale, causal, mask.has_value()), std::move(inputs));
}

}  // namespace ollmlx
