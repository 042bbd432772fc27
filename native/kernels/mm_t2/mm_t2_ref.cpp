// Scalar references of the t2a8 (ternary T2 weights, int8 activations) GEMV and GEMM:
// the definition every SIMD variant is checked against.
#include "mm_ref.h"

void lb_gemv_f32_q8d_t2g__ref(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::ref::mm_group_a8(a, m0, m1, n0, n1);
}
void lb_gemm_f32_q8d_t2g__ref(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::ref::mm_group_a8(a, m0, m1, n0, n1);
}
