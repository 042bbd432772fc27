// Scalar reference of the activation quantizer: defines the int8 codes and metadata that every
// SIMD variant must reproduce bit for bit (same float operations in the same order per element).
#include <cmath>

#include "kernel_types.h"

namespace {
inline float clampf(float r, float lo, float hi) {
  r = r > lo ? r : lo;  // NaN -> lo, like vmaxps(r, lo)
  return r < hi ? r : hi;
}
}  // namespace

void lb_quant_q8d_f32__ref(const lb_quant_args* a, int8_t* q, lb_q8_meta* meta) {
  const int64_t k = a->k, kp = a->kp, blk = a->block;
  auto xv = [&](int64_t i) { return a->mul ? a->x[i] * a->mul[i] : a->x[i]; };
  if (a->is_static) {
    const float inv = 1.0f / a->static_scale, zero = float(a->static_zero);
    for (int64_t i = 0; i < kp; ++i)
      q[i] = i < k ? int8_t(int(clampf(std::nearbyint(xv(i) * inv) + zero, -128.f, 127.f))) : 0;
    for (int64_t b = 0; b < kp / blk; ++b) {
      int32_t s = 0;
      for (int64_t i = b * blk; i < (b + 1) * blk; ++i) s += q[i];
      meta[b] = lb_q8_meta{a->static_scale, s};
    }
    return;
  }
  float row_amax = 0.f;
  if (a->per_row)
    for (int64_t i = 0; i < k; ++i) {
      const float v = std::fabs(xv(i));
      row_amax = v > row_amax ? v : row_amax;
    }
  for (int64_t b = 0; b < kp / blk; ++b) {
    const int64_t lo = b * blk, hi = lo + blk;
    float amax = row_amax;
    if (!a->per_row) {
      amax = 0.f;
      for (int64_t i = lo; i < hi && i < k; ++i) {
        const float v = std::fabs(xv(i));
        amax = v > amax ? v : amax;
      }
    }
    const float inv = amax > 0.f ? 127.0f / amax : 0.f;
    int32_t s = 0;
    for (int64_t i = lo; i < hi; ++i) {
      q[i] = i < k ? int8_t(int(clampf(std::nearbyint(xv(i) * inv), -127.f, 127.f))) : 0;
      s += q[i];
    }
    meta[b] = lb_q8_meta{amax / 127.0f, s};
  }
}
