// Codebook (C4: NF4 / FP4 / learned) for AVX-512 VNNI: two panels per zmm (16 rows).
// GEMM (session 16): the group formats' ugemm (mm_avx512.h) with the Cb decoder: one vpshufb turns
// the 4-bit codes into their int8 table values plus 128 as unsigned bytes, vpdpbusd multiplies them
// with the signed activations, and the dot starts at -128 s (the activation block's code sum):
// sum (w + 128) x - 128 s = sum w x exactly. (Until session 15 the activations were flipped to
// unsigned and a second vpdpbusd with ones summed the weights per group: 1.35x slower.)
// GEMV: one panel per pass in ymm, one weight stream (lb::avx512::gemv::cgemv, mm_avx512_gemv.h).
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__)
#error "mm_c4_avx512vnni.cpp must be compiled with -mavx512vnni -mavx512bw"
#endif
#include "mm_avx512.h"
#include "mm_avx512_gemv.h"

void lb_gemv_f32_q8d_c4g_16x8__avx512vnni(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::avx512::gemv::cgemv(a, m0, m1, n0, n1);
}

void lb_gemm_f32_q8d_c4g_8x16__avx512vnni(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::avx512::ugemm<lb::avx512::UFmt<lb::avx512::Cb, false>>(a, m0, m1, n0, n1);
}
