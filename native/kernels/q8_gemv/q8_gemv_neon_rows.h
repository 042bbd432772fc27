// The row loop shared by the NEON q8_gemv variants: 4 rows per pass share one activation load,
// a scalar tail for K % 16. `Dot16(acc, w, x)` adds the 16-byte dot product into int32x4 lanes
// (widening multiply-add on plain NEON, sdot with the dot-product extension).
#pragma once
#include <arm_neon.h>

#include <cstdint>

template <int32x4_t (*Dot16)(int32x4_t, int8x16_t, int8x16_t)>
inline void lb_q8_gemv_neon_rows(const int8_t* w, const int8_t* x, int32_t* y, int64_t n, int64_t k) {
  const int64_t k16 = k & ~int64_t(15);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const int8_t* r[4] = {w + i * k, w + (i + 1) * k, w + (i + 2) * k, w + (i + 3) * k};
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t j = 0; j < k16; j += 16) {
      const int8x16_t xv = vld1q_s8(x + j);
      a0 = Dot16(a0, vld1q_s8(r[0] + j), xv);
      a1 = Dot16(a1, vld1q_s8(r[1] + j), xv);
      a2 = Dot16(a2, vld1q_s8(r[2] + j), xv);
      a3 = Dot16(a3, vld1q_s8(r[3] + j), xv);
    }
    int32_t s[4] = {vaddvq_s32(a0), vaddvq_s32(a1), vaddvq_s32(a2), vaddvq_s32(a3)};
    for (int64_t j = k16; j < k; ++j)
      for (int q = 0; q < 4; ++q) s[q] += int32_t(r[q][j]) * x[j];
    for (int q = 0; q < 4; ++q) y[i + q] = s[q];
  }
  for (; i < n; ++i) {
    const int8_t* row = w + i * k;
    int32x4_t a = vdupq_n_s32(0);
    for (int64_t j = 0; j < k16; j += 16) a = Dot16(a, vld1q_s8(row + j), vld1q_s8(x + j));
    int32_t s = vaddvq_s32(a);
    for (int64_t j = k16; j < k; ++j) s += int32_t(row[j]) * x[j];
    y[i] = s;
  }
}
