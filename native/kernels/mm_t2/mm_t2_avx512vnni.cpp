// t2a8 (ternary) for AVX-512 VNNI: vpdpbusd accumulating in int32.
// GEMV: one panel (8 rows) per pass in ymm, one weight stream (lb::avx512::gemv::ugemv,
// mm_avx512_gemv.h; dispatched on the avx512vnni path since session 10);
// GEMM: 8 activation rows x 16 outputs (two panels per zmm; lb::avx512::ugemm, mm_avx512.h).
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__)
#error "mm_t2_avx512vnni.cpp must be compiled with -mavx512vnni -mavx512bw"
#endif
#include "mm_avx512.h"
#include "mm_avx512_gemv.h"

using namespace lb::avx512;

void lb_gemv_f32_q8d_t2g_16x64__avx512vnni(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  namespace v = lb::avx512::gemv;
  v::ugemv<v::UFmt<v::Ter, 1, false>>(a, m0, m1, n0, n1);
}

void lb_gemm_f32_q8d_t2g_8x16__avx512vnni(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  ugemm<UFmt<Ter, false>>(a, m0, m1, n0, n1);
}
