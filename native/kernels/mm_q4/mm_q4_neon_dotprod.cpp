// w4a8 (Q4 / Q4A) with sdot by lane: one instruction per 4 rows x 4 k.
#if !defined(__ARM_FEATURE_DOTPROD)
#error "mm_q4_neon_dotprod.cpp must be compiled with +dotprod"
#endif
#include "mm_neon.h"

void lb_gemv_f32_q8d_q4g_8x32__neon_dotprod(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  using namespace lb::neon; if (a->fmt == LB_WFMT_Q4A) gemm_group<kDotprod, GFmt<Nib, 0, true>, 1>(a, m0, m1, n0, n1); else gemm_group<kDotprod, GFmt<Nib, 8, false>, 1>(a, m0, m1, n0, n1);
}

void lb_gemm_f32_q8d_q4g_4x8__neon_dotprod(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  using namespace lb::neon; if (a->fmt == LB_WFMT_Q4A) gemm_group<kDotprod, GFmt<Nib, 0, true>, 4>(a, m0, m1, n0, n1); else gemm_group<kDotprod, GFmt<Nib, 8, false>, 4>(a, m0, m1, n0, n1);
}
