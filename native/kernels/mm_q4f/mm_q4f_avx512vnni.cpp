// w4a16 (Q4 / Q4A weights, float activations) for AVX-512: two panels per zmm (16 rows); each
// 32-bit lane holds 8 nibbles of one row, a shift and mask give one k for 16 rows, converted to
// float and multiplied with the broadcast activation (FMA, two chains per row: even / odd
// nibbles). Offsets / minimums are folded with the group sums of x, as in the AVX2 kernel.
// GEMV: 16 outputs per pass; GEMM: 6 rows x 16 outputs.
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__)
#error "mm_q4f_avx512vnni.cpp must be compiled with -mavx512vnni -mavx512bw"
#endif
#include "mm_avx512.h"

namespace {
using namespace lb::avx512;

constexpr int kNibK[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // k offset in a chunk of nibble j of a lane

template <int MR, int G>
void tile(const lb_mm_args* a, int64_t m, int mr, int64_t n, int64_t n1) {
  const int64_t ng = a->k / G;
  const bool asym = a->fmt == LB_WFMT_Q4A;
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), G);
  const int hb = asym ? 32 : 16;
  const int64_t pa = n / 8, pb = n + 8 < n1 ? pa + 1 : pa;
  const float* x[MR];
  const float* xs[MR];
  for (int r = 0; r < MR; ++r) {
    const int64_t row = m + (r < mr ? r : 0);
    x[r] = a->xf + row * a->k;
    xs[r] = a->xs + row * ng;
  }
  const uint8_t* ba = lb::layout::block(a->w, a->fmt, a->k, G, pa, 0);
  const uint8_t* bp = lb::layout::block(a->w, a->fmt, a->k, G, pb, 0);
  const __m512i m4 = _mm512_set1_epi32(0x0F);
  __m512 acc[MR];
  for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < ng; ++g, ba += bb, bp += bb) {
    __m512 dot[MR][2];
    for (int r = 0; r < MR; ++r) dot[r][0] = dot[r][1] = _mm512_setzero_ps();
    for (int c = 0; c < G / 8; ++c) {
      const __m512i v = load_pair(ba + hb + 32 * c, bp + hb + 32 * c);
      for (int j = 0; j < 8; ++j) {
        const __m512 w = _mm512_cvtepi32_ps(_mm512_and_si512(j ? _mm512_srli_epi32(v, 4 * j) : v, m4));
        const int64_t k = g * G + 8 * c + kNibK[j];
        for (int r = 0; r < MR; ++r) dot[r][j & 1] = _mm512_fmadd_ps(w, _mm512_set1_ps(x[r][k]), dot[r][j & 1]);
      }
    }
    const __m512 d = load_fp16_pair(ba, bp);
    if (asym) {
      const __m512 mn = load_fp16_pair(ba + 16, bp + 16);
      for (int r = 0; r < MR; ++r)
        acc[r] = _mm512_fmadd_ps(d, _mm512_add_ps(dot[r][0], dot[r][1]),
                                 _mm512_fmadd_ps(mn, _mm512_set1_ps(xs[r][g]), acc[r]));
    } else {
      for (int r = 0; r < MR; ++r)
        acc[r] = _mm512_fmadd_ps(
            d, _mm512_fnmadd_ps(_mm512_set1_ps(8.f), _mm512_set1_ps(xs[r][g]), _mm512_add_ps(dot[r][0], dot[r][1])),
            acc[r]);
    }
  }
  for (int r = 0; r < mr; ++r) store16(a->y + (m + r) * a->ldy, a->bias, n, n1, acc[r]);
}

template <int MR>
void run(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; n += 16)
    for (int64_t m = m0; m < m1; m += MR) {
      const int mr = int(m1 - m < MR ? m1 - m : MR);
      switch (a->group) {
        case 32: tile<MR, 32>(a, m, mr, n, n1); break;
        case 64: tile<MR, 64>(a, m, mr, n, n1); break;
        default: tile<MR, 128>(a, m, mr, n, n1); break;
      }
    }
}

}  // namespace

void lb_gemv_f32_f32_q4g_16x8__avx512vnni(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  run<1>(a, m0, m1, n0, n1);
}

void lb_gemm_f32_f32_q4g_6x16__avx512vnni(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  run<6>(a, m0, m1, n0, n1);
}
