// Codebook (C4: NF4, FP4, learned) for AVX2: nibble indices -> int8 values by vpshufb on the
// 16-entry table (and on its absolute values), then the int8 sign trick of the w8a8 kernels.
#if !defined(__AVX2__)
#error "mm_c4_avx2.cpp must be compiled with -mavx2"
#endif
#include "mm_avx2.h"

namespace {
using namespace lb::avx2;
using lb::layout::block;

struct Luts {
  __m256i v, av;  // table and |table| in both 128-bit lanes
  explicit Luts(const int8_t* lut) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(lut));
    v = _mm256_broadcastsi128_si256(t);
    av = _mm256_broadcastsi128_si256(_mm_abs_epi8(t));
  }
};

inline __m256i dot4(__m256i acc, __m256i aw, __m256i w, __m256i bx, __m256i ones) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(bx, w)), ones));
}

/// GEMV of one panel (rows n .. n+7). Panels follow each other and a panel's groups are
/// contiguous, so walking one panel per pass reads the weight as one sequential stream, prefetched
/// by `pf` (carried from panel to panel; every 64-byte line once), as the w4a8 GEMV (mm_avx2.h).
template <int G>
inline void gemv_panel(const lb_mm_args* a, const Luts& L, int64_t m, int64_t n, int64_t n1, StreamPrefetch& pf) {
  const int64_t ng = a->k / G;
  constexpr size_t kBB = 16 + 4 * G;
  const int8_t* x = a->xq + m * a->kp;
  const lb_q8_meta* xm = a->xm + m * ng;
  const uint8_t* blk = block(a->w, a->fmt, a->k, G, n / 8, 0);
  __m256 acc = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0F);
  for (int64_t g = 0; g < ng; ++g, x += G, blk += kBB) {
    pf.upto(blk + kBB);
    __m256i dot = _mm256_setzero_si256();
    for (int c = 0; c < G / 8; ++c) {
      const __m256i b0 = bcast4(x + 8 * c), b1 = bcast4(x + 8 * c + 4);
      const __m256i v = load32(blk + 16 + 32 * c);
      const __m256i i0 = _mm256_and_si256(v, m4), i1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      dot = dot4(dot, _mm256_shuffle_epi8(L.av, i0), _mm256_shuffle_epi8(L.v, i0), b0, ones);
      dot = dot4(dot, _mm256_shuffle_epi8(L.av, i1), _mm256_shuffle_epi8(L.v, i1), b1, ones);
    }
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(load_fp16x8(blk), _mm256_set1_ps(xm[g].d)), acc);
  }
  store_rows(a->y + m * a->ldy, a->bias, n, n1, acc);
}

template <int MR, int NP, int G>
inline void gemm_tile(const lb_mm_args* a, const Luts& L, int64_t m, int mr, int64_t n, int64_t n1) {
  const int64_t ng = a->k / G;
  constexpr size_t kBB = 16 + 4 * G;
  const int8_t* x[MR];
  const lb_q8_meta* xm[MR];
  for (int r = 0; r < MR; ++r) {
    const int64_t row = m + (r < mr ? r : 0);
    x[r] = a->xq + row * a->kp;
    xm[r] = a->xm + row * ng;
  }
  const uint8_t* blk[NP];
  for (int p = 0; p < NP; ++p) blk[p] = block(a->w, a->fmt, a->k, G, n / 8 + p, 0);
  const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[MR][NP];
  for (int r = 0; r < MR; ++r)
    for (int p = 0; p < NP; ++p) acc[r][p] = _mm256_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    __m256i dot[MR][NP];
    for (int r = 0; r < MR; ++r)
      for (int p = 0; p < NP; ++p) dot[r][p] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int q = 0; q < G / 4; ++q) {
      __m256i wv[NP], aw[NP];
      for (int p = 0; p < NP; ++p) {
        const __m256i v = load32(blk[p] + 16 + 32 * (q / 2));
        const __m256i idx = _mm256_and_si256((q & 1) ? _mm256_srli_epi16(v, 4) : v, m4);
        wv[p] = _mm256_shuffle_epi8(L.v, idx);
        aw[p] = _mm256_shuffle_epi8(L.av, idx);
      }
      const int koff = 8 * (q / 2) + 4 * (q & 1);
      for (int r = 0; r < MR; ++r) {
        const __m256i bx = bcast4(x[r] + g * G + koff);
        for (int p = 0; p < NP; ++p) dot[r][p] = dot4(dot[r][p], aw[p], wv[p], bx, ones);
      }
      keep<MR * NP>(&dot[0][0]);
    }
    for (int p = 0; p < NP; ++p) {
      const __m256 d = load_fp16x8(blk[p]);
      for (int r = 0; r < MR; ++r)
        acc[r][p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[r][p]), _mm256_mul_ps(d, _mm256_set1_ps(xm[r][g].d)), acc[r][p]);
      blk[p] += kBB;
    }
  }
  for (int r = 0; r < mr; ++r)
    for (int p = 0; p < NP; ++p) store_rows(a->y + (m + r) * a->ldy, a->bias, n + 8 * p, n1, acc[r][p]);
}

template <int G>
void gemv(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const Luts L(a->lut);
  for (int64_t m = m0; m < m1; ++m) {
    StreamPrefetch pf(block(a->w, a->fmt, a->k, G, n0 / 8, 0));
    for (int64_t n = n0; n < n1; n += 8) gemv_panel<G>(a, L, m, n, n1, pf);
  }
}

template <int G>
void gemm(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const Luts L(a->lut);
  for (int64_t n = n0; n < n1; n += 16)
    for (int64_t m = m0; m < m1; m += 3) {
      const int mr = int(m1 - m < 3 ? m1 - m : 3);
      if (n + 8 < n1) gemm_tile<3, 2, G>(a, L, m, mr, n, n1);
      else gemm_tile<3, 1, G>(a, L, m, mr, n, n1);
    }
}

}  // namespace

void lb_gemv_f32_q8d_c4g_16x8__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  switch (a->group) {
    case 32: gemv<32>(a, m0, m1, n0, n1); break;
    case 64: gemv<64>(a, m0, m1, n0, n1); break;
    default: gemv<128>(a, m0, m1, n0, n1); break;
  }
}

void lb_gemm_f32_q8d_c4g_3x16__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  switch (a->group) {
    case 32: gemm<32>(a, m0, m1, n0, n1); break;
    case 64: gemm<64>(a, m0, m1, n0, n1); break;
    default: gemm<128>(a, m0, m1, n0, n1); break;
  }
}
