// w4a8 (Q4 / Q4A) for AVX2: unsigned nibbles x int8 activations with int16 sums per 32 k.
// GEMV: 4 panels (32 rows) per pass sharing the activation broadcasts. GEMM: 4 rows x 16 columns.
#if !defined(__AVX2__)
#error "mm_q4_avx2.cpp must be compiled with -mavx2"
#endif
#include "mm_avx2.h"

using lb::avx2::Nib;
using lb::avx2::UFmt;

void lb_gemv_f32_q8d_q4g_32x32__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (a->fmt == LB_WFMT_Q4A) lb::avx2::ugemv<UFmt<Nib, 0, true>>(a, m0, m1, n0, n1);
  else lb::avx2::ugemv<UFmt<Nib, 8, false>>(a, m0, m1, n0, n1);
}

void lb_gemm_f32_q8d_q4g_4x16__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (a->fmt == LB_WFMT_Q4A) lb::avx2::ugemm<UFmt<Nib, 0, true>, 4, 2>(a, m0, m1, n0, n1);
  else lb::avx2::ugemm<UFmt<Nib, 8, false>, 4, 2>(a, m0, m1, n0, n1);
}
