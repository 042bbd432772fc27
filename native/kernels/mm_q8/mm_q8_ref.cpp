// Scalar references of the w8a8 (Q8 weights, int8 activations) GEMV and GEMM, and of the GEMM
// for 7-bit Q8 weights (codes in [-64, 64]; the same definition, exact for them as for any Q8):
// the definition every SIMD variant is checked against.
#include "mm_ref.h"

void lb_gemv_f32_q8d_q8c__ref(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::ref::mm_q8(a, m0, m1, n0, n1);
}
void lb_gemm_f32_q8d_q8c__ref(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::ref::mm_q8(a, m0, m1, n0, n1);
}
void lb_gemm_f32_q8d_q7c__ref(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::ref::mm_q8(a, m0, m1, n0, n1);
}
