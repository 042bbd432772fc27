// t2a8 (ternary) for AVX2: 2-bit codes (t + 1) x int8 activations with int16 sums per 32 k,
// the -1 offset folded with the activation block sums. Same tiles as the w4a8 kernels.
#if !defined(__AVX2__)
#error "mm_t2_avx2.cpp must be compiled with -mavx2"
#endif
#include "mm_avx2.h"

using lb::avx2::Ter;
using lb::avx2::UFmt;

void lb_gemv_f32_q8d_t2g_32x32__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::avx2::ugemv<UFmt<Ter, 1, false>>(a, m0, m1, n0, n1);
}

void lb_gemm_f32_q8d_t2g_4x16__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::avx2::ugemm<UFmt<Ter, 1, false>, 4, 2>(a, m0, m1, n0, n1);
}
