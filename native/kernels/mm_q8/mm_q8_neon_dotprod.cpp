// w8a8 (Q8) with sdot by lane, int32 over K, one epilogue.
#if !defined(__ARM_FEATURE_DOTPROD)
#error "mm_q8_neon_dotprod.cpp must be compiled with +dotprod"
#endif
#include "mm_neon.h"

void lb_gemv_f32_q8d_q8c_8x16__neon_dotprod(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::neon::gemm_q8<lb::neon::kDotprod, 1>(a, m0, m1, n0, n1);
}

void lb_gemm_f32_q8d_q8c_4x8__neon_dotprod(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::neon::gemm_q8<lb::neon::kDotprod, 4>(a, m0, m1, n0, n1);
}
