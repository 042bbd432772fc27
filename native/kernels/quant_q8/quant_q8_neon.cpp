// Activation quantizer for baseline AArch64 NEON: 16 floats per step, the same float operations
// per element as the reference (round to nearest even, clamp, narrow), code sums per block.
#if !defined(__ARM_NEON)
#error "quant_q8_neon.cpp needs NEON"
#endif
#include <arm_neon.h>

#include "kernel_types.h"
#include "quant_q8_blocks.h"

namespace {

inline float32x4_t load_x(const float* x, const float* mul, int64_t i, int64_t k) {
  if (i + 4 <= k) {
    const float32x4_t v = vld1q_f32(x + i);
    return mul ? vmulq_f32(v, vld1q_f32(mul + i)) : v;
  }
  float buf[4] = {0, 0, 0, 0};
  for (int64_t j = i; j < k; ++j) buf[j - i] = mul ? x[j] * mul[j] : x[j];
  return vld1q_f32(buf);
}

float amax_range(const float* x, const float* mul, int64_t lo, int64_t hi, int64_t k) {
  float32x4_t m = vdupq_n_f32(0.f);
  // vmaxnm returns the number when one operand is NaN: a NaN input is skipped, as in the reference
  for (int64_t i = lo; i < hi && i < k; i += 4) m = vmaxnmq_f32(m, vabsq_f32(load_x(x, mul, i, k)));
  return vmaxnmvq_f32(m);
}

/// 32 codes from x[lo, lo+32): rint(x * inv) + zero clamped to [qmin, qmax]; returns their sum.
inline int32_t quant32(const float* x, const float* mul, int64_t lo, int64_t k, float32x4_t inv, float32x4_t zero,
                       float32x4_t qmin, float32x4_t qmax, int8_t* q) {
  int32x4_t r[8];
  int32x4_t s = vdupq_n_s32(0);
  for (int j = 0; j < 8; ++j) {
    float32x4_t v = vaddq_f32(vrndnq_f32(vmulq_f32(load_x(x, mul, lo + 4 * j, k), inv)), zero);
    // the reference's clamp, r > lo ? r : lo then r < hi ? r : hi: NaN becomes qmin (vmaxq would keep the
    // NaN and vcvtq turn it into 0)
    v = vbslq_f32(vcgtq_f32(v, qmin), v, qmin);
    v = vbslq_f32(vcltq_f32(v, qmax), v, qmax);
    r[j] = vcvtq_s32_f32(v);
    s = vaddq_s32(s, r[j]);
  }
  for (int h = 0; h < 2; ++h) {
    const int16x8_t a = vcombine_s16(vmovn_s32(r[4 * h]), vmovn_s32(r[4 * h + 1]));
    const int16x8_t b = vcombine_s16(vmovn_s32(r[4 * h + 2]), vmovn_s32(r[4 * h + 3]));
    vst1q_s8(q + 16 * h, vcombine_s8(vmovn_s16(a), vmovn_s16(b)));
  }
  return vaddvq_s32(s);
}

struct Isa {
  using V = float32x4_t;
  static V splat(float v) { return vdupq_n_f32(v); }
  static float amax_range(const float* x, const float* mul, int64_t lo, int64_t hi, int64_t k) {
    return ::amax_range(x, mul, lo, hi, k);
  }
  static int32_t quant32(const float* x, const float* mul, int64_t lo, int64_t k, V inv, V zero, V qmin, V qmax,
                         int8_t* q) {
    return ::quant32(x, mul, lo, k, inv, zero, qmin, qmax, q);
  }
};

}  // namespace

void lb_quant_q8d_f32_32__neon(const lb_quant_args* a, int8_t* q, lb_q8_meta* meta) { lb::quant_q8_blocks<Isa>(a, q, meta); }
