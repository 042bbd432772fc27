// Codebook (C4) with tbl decoding and sdot by lane.
#if !defined(__ARM_FEATURE_DOTPROD)
#error "mm_c4_neon_dotprod.cpp must be compiled with +dotprod"
#endif
#include "mm_neon.h"

void lb_gemv_f32_q8d_c4g_8x32__neon_dotprod(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  using namespace lb::neon; gemm_group<kDotprod, GFmt<Lut, 0, false>, 1>(a, m0, m1, n0, n1);
}

void lb_gemm_f32_q8d_c4g_4x8__neon_dotprod(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  using namespace lb::neon; gemm_group<kDotprod, GFmt<Lut, 0, false>, 4>(a, m0, m1, n0, n1);
}
