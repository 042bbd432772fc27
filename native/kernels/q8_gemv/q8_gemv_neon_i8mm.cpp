// q8_gemv with the int8 matrix-multiply extension (smmla). For one activation row the 2x8 by
// 8x2 product of (x_lo, x_hi) and (w_lo, w_hi) holds the dot product on its diagonal; the GEMM
// kernels use smmla fully, this variant keeps every ISA path exercised for GEMV.
#if !defined(__ARM_FEATURE_MATMUL_INT8)
#error "q8_gemv_neon_i8mm.cpp must be compiled with +i8mm"
#endif
#include <arm_neon.h>

#include "kernel_types.h"

void lb_gemv_s32_q8_q8c_2x16__neon_i8mm(const int8_t* w, const int8_t* x, int32_t* y, int64_t n, int64_t k) {
  const int64_t k16 = k & ~int64_t(15);
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    const int8_t* r0 = w + i * k;
    const int8_t* r1 = w + (i + 1) * k;
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0;
    for (int64_t j = 0; j < k16; j += 16) {
      const int8x16_t xv = vld1q_s8(x + j);
      a0 = vmmlaq_s32(a0, xv, vld1q_s8(r0 + j));
      a1 = vmmlaq_s32(a1, xv, vld1q_s8(r1 + j));
    }
    int32_t s0 = vgetq_lane_s32(a0, 0) + vgetq_lane_s32(a0, 3);
    int32_t s1 = vgetq_lane_s32(a1, 0) + vgetq_lane_s32(a1, 3);
    for (int64_t j = k16; j < k; ++j) {
      s0 += int32_t(r0[j]) * x[j];
      s1 += int32_t(r1[j]) * x[j];
    }
    y[i] = s0;
    y[i + 1] = s1;
  }
  for (; i < n; ++i) {
    const int8_t* row = w + i * k;
    int32x4_t a = vdupq_n_s32(0);
    for (int64_t j = 0; j < k16; j += 16) a = vmmlaq_s32(a, vld1q_s8(x + j), vld1q_s8(row + j));
    int32_t s = vgetq_lane_s32(a, 0) + vgetq_lane_s32(a, 3);
    for (int64_t j = k16; j < k; ++j) s += int32_t(row[j]) * x[j];
    y[i] = s;
  }
}
