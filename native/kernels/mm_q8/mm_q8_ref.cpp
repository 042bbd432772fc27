// Scalar references of the w8a8 (Q8 weights, int8 activations) GEMV and GEMM, and of the GEMM
// for 7-bit Q8 weights (codes in [-64, 64]; the same definition, exact for them as for any Q8):
// the definition every SIMD variant is checked against. The GEMMs also define the int8 output
// mode of lb_mm_args (q8 set): the float row, then clamp, multipliers and requantization.
#include <cmath>
#include <cstring>
#include <vector>

#include "mm_ref.h"

namespace {

// q = clamp(rint(c(v) * mul * inv) + zero, -128, 127), one IEEE operation per step (NaN -> -128).
int8_t requant(const lb_mm_args* a, float v, int64_t n) {
  if (a->q_clamp) {
    v = v > a->q_lo ? v : a->q_lo;
    v = v < a->q_hi ? v : a->q_hi;
  }
  if (a->q_mul) v = v * a->q_mul[n];
  float r = std::nearbyint(v * a->q_inv) + a->q_zero;
  r = r > -128.f ? r : -128.f;
  r = r < 127.f ? r : 127.f;
  return int8_t(int(r));
}

void gemm_q8(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (!a->q8) {
    lb::ref::mm_q8(a, m0, m1, n0, n1);
    return;
  }
  std::vector<float> row(size_t(n1 > 0 ? n1 : 1));
  lb_mm_args f = *a;
  f.q8 = nullptr;
  f.y = row.data();
  f.ldy = 0;  // every row m of the float result lands at row[n]
  for (int64_t m = m0; m < m1; ++m) {
    lb::ref::mm_q8(&f, m, m + 1, n0, n1);
    int8_t* q = a->q8 + m * a->ldq;
    for (int64_t n = n0; n < n1; ++n) q[n] = requant(a, row[size_t(n)], n);
    if (n1 == a->n && a->q_pad > n1) std::memset(q + n1, 0, size_t(a->q_pad - n1));
  }
}

}  // namespace

void lb_gemv_f32_q8d_q8c__ref(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::ref::mm_q8(a, m0, m1, n0, n1);
}
void lb_gemm_f32_q8d_q8c__ref(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  gemm_q8(a, m0, m1, n0, n1);
}
void lb_gemm_f32_q8d_q7c__ref(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  gemm_q8(a, m0, m1, n0, n1);
}
