// w8a8 (Q8) for baseline NEON: smull/smlal, int32 over K, one epilogue.
#if !defined(__ARM_NEON)
#error "mm_q8_neon.cpp needs NEON"
#endif
#include "mm_neon.h"

void lb_gemv_f32_q8d_q8c_8x16__neon(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::neon::gemm_q8<lb::neon::kBase, 1>(a, m0, m1, n0, n1);
}

void lb_gemm_f32_q8d_q8c_4x8__neon(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::neon::gemm_q8<lb::neon::kBase, 4>(a, m0, m1, n0, n1);
}
