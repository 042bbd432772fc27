// w8a8 (Q8) for AVX-512 VNNI: two panels per zmm (16 rows), vpdpbusd accumulating in int32.
// GEMV: 16 outputs per pass; GEMM: 8 activation rows x 16 outputs.
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__)
#error "mm_q8_avx512vnni.cpp must be compiled with -mavx512vnni -mavx512bw"
#endif
#include "mm_avx512.h"

using namespace lb::avx512;

void lb_gemv_f32_q8d_q8c_16x4__avx512vnni(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  gemm_q8<1>(a, m0, m1, n0, n1);
}

void lb_gemm_f32_q8d_q8c_8x16__avx512vnni(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  gemm_q8<8>(a, m0, m1, n0, n1);
}
