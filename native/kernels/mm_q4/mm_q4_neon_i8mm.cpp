// w4a8 (Q4 / Q4A) GEMM with the int8 matrix-multiply extension (smmla): 4 activation rows x 8 outputs,
// 2x8 by 8x2 products. GEMV stays on the dotprod kernel (one activation row leaves half of
// every smmla unused).
#if !defined(__ARM_FEATURE_MATMUL_INT8)
#error "mm_q4_neon_i8mm.cpp must be compiled with +i8mm"
#endif
#include "mm_neon.h"

void lb_gemm_f32_q8d_q4g_4x8__neon_i8mm(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  using namespace lb::neon; if (a->fmt == LB_WFMT_Q4A) gemm_group_mmla<GFmt<Nib, 0, true>>(a, m0, m1, n0, n1); else gemm_group_mmla<GFmt<Nib, 8, false>>(a, m0, m1, n0, n1);
}
