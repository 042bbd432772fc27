// w4a8 (Q4 / Q4A) for baseline NEON: nibbles x int8 activations with smull/smlal and pairwise adds.
#if !defined(__ARM_NEON)
#error "mm_q4_neon.cpp needs NEON"
#endif
#include "mm_neon.h"

void lb_gemv_f32_q8d_q4g_8x32__neon(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  using namespace lb::neon; if (a->fmt == LB_WFMT_Q4A) gemm_group<kBase, GFmt<Nib, 0, true>, 1>(a, m0, m1, n0, n1); else gemm_group<kBase, GFmt<Nib, 8, false>, 1>(a, m0, m1, n0, n1);
}

void lb_gemm_f32_q8d_q4g_4x8__neon(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  using namespace lb::neon; if (a->fmt == LB_WFMT_Q4A) gemm_group<kBase, GFmt<Nib, 0, true>, 4>(a, m0, m1, n0, n1); else gemm_group<kBase, GFmt<Nib, 8, false>, 4>(a, m0, m1, n0, n1);
}
