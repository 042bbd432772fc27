// t2a8 (ternary) for AVX2: 2-bit codes (t + 1) x int8 activations with int16 sums, the -1
// offset folded with the activation block sums.
//
// GEMV (its own loop, not the shared ugemv of mm_avx2.h): a 32-byte chunk holds 16 k of 8 rows,
// bits 2p..2p+1 of each byte = quad p. With t = v >> 4 (16-bit lanes) the four quads are
// (v & 3), (v & 12) = 4 * quad 1, (t & 3), (t & 12) = 4 * quad 3: one shift per chunk instead of
// three. The quad-0/2 products and the 4x-scaled quad-1/3 products go to two int16 sums that hold
// a whole group (G <= 128: 8 chunks x 2 x 2 x 8 x 128 <= 32768, and the products of the 4x codes
// are multiples of 4, so the second sum is exactly divided by 4 after vpmaddwd). One panel per
// pass: the panels lie one after another, so the weight is read front to back as one stream
// (measured on cold 4096x11008 weights, same run: 4 panels per pass 6-8 GB/s, 2 panels 7-9,
// 1 panel 9-10.6). Bitwise identical to the shared kernel and to the reference (integer dot
// products, then the same float epilogue per group).
// GEMM: the shared ugemm of mm_avx2.h (codes unpacked to int8 panels, 6 x 2 register tiles).
#if !defined(__AVX2__)
#error "mm_t2_avx2.cpp must be compiled with -mavx2"
#endif
#include "mm_avx2.h"

namespace {

using namespace lb::avx2;

constexpr int kT2Prefetch = 4096;  // bytes ahead per stream

template <int NP, int G>
inline void t2_panels(const lb_mm_args* a, int64_t m, int64_t p0, __m256 acc[NP]) {
  constexpr int kChunks = G / 16;
  const int64_t ng = a->k / G;
  const size_t bb = lb_wfmt_block_bytes(LB_WFMT_T2, G);
  const size_t pstride = size_t(ng) * bb;
  const int8_t* x = a->xq + m * a->kp;
  const lb_q8_meta* xm = a->xm + m * ng;
  const uint8_t* blk = lb::layout::block(a->w, LB_WFMT_T2, a->k, G, p0, 0);
  for (int p = 0; p < NP; ++p) acc[p] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i m3 = _mm256_set1_epi8(0x03), m12 = _mm256_set1_epi8(0x0C);
  for (int64_t g = 0; g < ng; ++g, x += G, blk += bb) {
    for (int p = 0; p < NP; ++p)
      for (size_t l = 0; l < bb; l += 64)
        _mm_prefetch(reinterpret_cast<const char*>(blk + p * pstride) + kT2Prefetch + l, _MM_HINT_T0);
    __m256i s0[NP], s1[NP];
    for (int p = 0; p < NP; ++p) s0[p] = s1[p] = _mm256_setzero_si256();
    for (int ch = 0; ch < kChunks; ++ch) {
      const int8_t* xs = x + 16 * ch;
      const uint8_t* c = blk + 16 + 32 * ch;
      const __m256i b0 = bcast4(xs), b1 = bcast4(xs + 4), b2 = bcast4(xs + 8), b3 = bcast4(xs + 12);
      for (int p = 0; p < NP; ++p) {
        const __m256i v = load32(c + p * pstride);
        const __m256i t = _mm256_srli_epi16(v, 4);
        const __m256i e0 = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v, m3), b0),
                                            _mm256_maddubs_epi16(_mm256_and_si256(t, m3), b2));
        const __m256i e1 = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v, m12), b1),
                                            _mm256_maddubs_epi16(_mm256_and_si256(t, m12), b3));
        s0[p] = _mm256_add_epi16(s0[p], e0);
        s1[p] = _mm256_add_epi16(s1[p], e1);
      }
    }
    const __m256 dx = _mm256_set1_ps(xm[g].d);
    const __m256i off = _mm256_set1_epi32(xm[g].s);  // code offset 1: sum (u - 1) x = dot - s
    for (int p = 0; p < NP; ++p) {
      const __m256i dot = _mm256_add_epi32(_mm256_madd_epi16(s0[p], ones),
                                           _mm256_srai_epi32(_mm256_madd_epi16(s1[p], ones), 2));
      acc[p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(dot, off)),
                               _mm256_mul_ps(load_fp16x8(blk + p * pstride), dx), acc[p]);
    }
  }
}

template <int G>
void t2_gemv_g(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t m = m0; m < m1; ++m) {
    float* y = a->y + m * a->ldy;
    int64_t n = n0;
    for (; n < n1; n += 8) {
      __m256 acc[1];
      t2_panels<1, G>(a, m, n / 8, acc);
      store_rows(y, a->bias, n, n1, acc[0]);
    }
  }
}

}  // namespace

void lb_gemv_f32_q8d_t2g_8x16__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  switch (a->group) {
    case 32: t2_gemv_g<32>(a, m0, m1, n0, n1); break;
    case 64: t2_gemv_g<64>(a, m0, m1, n0, n1); break;
    default: t2_gemv_g<128>(a, m0, m1, n0, n1); break;
  }
}

void lb_gemm_f32_q8d_t2g_4x16__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::avx2::ugemm<UFmt<Ter, 1, false>>(a, m0, m1, n0, n1);
}
