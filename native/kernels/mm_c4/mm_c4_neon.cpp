// Codebook (C4) for baseline NEON: nibble indices -> int8 values with tbl, then smull/smlal.
#if !defined(__ARM_NEON)
#error "mm_c4_neon.cpp needs NEON"
#endif
#include "mm_neon.h"

void lb_gemv_f32_q8d_c4g_8x32__neon(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  using namespace lb::neon; gemm_group<kBase, GFmt<Lut, 0, false>, 1>(a, m0, m1, n0, n1);
}

void lb_gemm_f32_q8d_c4g_4x8__neon(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  using namespace lb::neon; gemm_group<kBase, GFmt<Lut, 0, false>, 4>(a, m0, m1, n0, n1);
}
