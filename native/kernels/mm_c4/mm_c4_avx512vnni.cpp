// Codebook (C4: NF4 / FP4 / learned) for AVX-512 VNNI: two panels per zmm (16 rows). One vpshufb
// turns the 4-bit codes into their int8 table values (the 16-byte table repeated in every 128-bit
// lane); vpdpbusd multiplies them, as the signed operand, with the activations flipped to unsigned
// (x + 128), and a second vpdpbusd with ones gives the group's weight sums that remove the
// offset exactly: dot = sum (x + 128) w - 128 sum w. GEMM: 8 x 16. GEMV: one panel per pass in
// ymm, one weight stream (lb::avx512::gemv::cgemv, mm_avx512_gemv.h).
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__)
#error "mm_c4_avx512vnni.cpp must be compiled with -mavx512vnni -mavx512bw"
#endif
#include "mm_avx512.h"
#include "mm_avx512_gemv.h"

namespace {
using namespace lb::avx512;

template <int MR>
void cgemm(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t G = a->group, ng = a->k / G;
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), a->group);
  const int hb = lb::layout::header_bytes(a->fmt);
  int8_t lut4[64];  // the table in every 128-bit lane
  for (int i = 0; i < 64; ++i) lut4[i] = a->lut[i % 16];
  const __m512i lut = _mm512_loadu_si512(lut4);
  const __m512i flip = _mm512_set1_epi8(char(0x80)), ones = _mm512_set1_epi8(1), m4 = _mm512_set1_epi8(0x0F);
  for (int64_t n = n0; n < n1; n += 16) {
    const int64_t pa = n / 8, pb = n + 8 < n1 ? pa + 1 : pa;
    for (int64_t m = m0; m < m1; m += MR) {
      const int mr = int(m1 - m < MR ? m1 - m : MR);
      const int8_t* x[MR];
      const lb_q8_meta* xm[MR];
      for (int r = 0; r < MR; ++r) {
        const int64_t row = m + (r < mr ? r : 0);
        x[r] = a->xq + row * a->kp;
        xm[r] = a->xm + row * ng;
      }
      __m512 acc[MR];
      for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_ps();
      const uint8_t* ba = lb::layout::block(a->w, a->fmt, a->k, a->group, pa, 0);
      const uint8_t* bp = lb::layout::block(a->w, a->fmt, a->k, a->group, pb, 0);
      for (int64_t g = 0; g < ng; ++g, ba += bb, bp += bb) {
        __m512i dot[MR], wsum = _mm512_setzero_si512();
        for (int r = 0; r < MR; ++r) dot[r] = _mm512_setzero_si512();
        for (int64_t c = 0; c < G / 8; ++c) {
          const __m512i v = load_pair(ba + hb + 32 * c, bp + hb + 32 * c);
          for (int i = 0; i < 2; ++i) {
            const __m512i w = _mm512_shuffle_epi8(lut, _mm512_and_si512(i ? _mm512_srli_epi16(v, 4) : v, m4));
            wsum = _mm512_dpbusd_epi32(wsum, ones, w);
            const int64_t k = g * G + 8 * c + 4 * i;
            for (int r = 0; r < MR; ++r)
              dot[r] = _mm512_dpbusd_epi32(dot[r], _mm512_xor_si512(bcast4(x[r] + k), flip), w);
          }
        }
        const __m512 d = load_fp16_pair(ba, bp);
        const __m512i off = _mm512_slli_epi32(wsum, 7);
        for (int r = 0; r < MR; ++r) {
          const __m512 s = _mm512_mul_ps(d, _mm512_set1_ps(xm[r][g].d));
          acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(dot[r], off)), s, acc[r]);
        }
      }
      for (int r = 0; r < mr; ++r) store16(a->y + (m + r) * a->ldy, a->bias, n, n1, acc[r]);
    }
  }
}

}  // namespace

void lb_gemv_f32_q8d_c4g_16x8__avx512vnni(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::avx512::gemv::cgemv(a, m0, m1, n0, n1);
}

void lb_gemm_f32_q8d_c4g_8x16__avx512vnni(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  cgemm<8>(a, m0, m1, n0, n1);
}
