// w8a8 (Q8) for AVX2: int8 x int8 through vpmaddubsw with the sign trick (|x| as u8 times
// sign(w, x) as s8; exact because weight codes are within [-127, 127], so even a static
// activation of -128 gives pairs of at most 2 * 128 * 127), vpmaddwd to int32, one float
// epilogue per output.
#if !defined(__AVX2__)
#error "mm_q8_avx2.cpp must be compiled with -mavx2"
#endif
#include "mm_avx2.h"

namespace {
using namespace lb::avx2;

inline __m256i dot4(__m256i acc, __m256i ax, __m256i bx, __m256i w, __m256i ones) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(w, bx)), ones));
}

/// Epilogue of 8 outputs (rows n .. n+7): (dot - zero * row_sum) * dx * row_scale + bias.
inline void finish(const lb_mm_args* a, int64_t m, int64_t n, int64_t n1, __m256i dot) {
  if (a->act_zero)
    dot = _mm256_sub_epi32(dot, _mm256_mullo_epi32(_mm256_set1_epi32(a->act_zero),
                                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->row_sum + n))));
  const __m256 s = _mm256_mul_ps(_mm256_set1_ps(a->xm[m].d), _mm256_loadu_ps(a->row_scale + n));
  store_rows(a->y + m * a->ldy, a->bias, n, n1, _mm256_mul_ps(_mm256_cvtepi32_ps(dot), s));
}

template <int NP>
inline void gemv_panels(const lb_mm_args* a, int64_t m, int64_t n, int64_t n1) {
  const int64_t kp = a->kp;
  const int8_t* x = a->xq + m * kp;
  const uint8_t* w[NP];
  for (int p = 0; p < NP; ++p) w[p] = a->w + (n / 8 + p) * 8 * kp;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[NP];
  for (int p = 0; p < NP; ++p) acc[p] = _mm256_setzero_si256();
  for (int64_t k = 0; k < kp; k += 4) {
    const __m256i bx = bcast4(x + k), ax = _mm256_abs_epi8(bx);
    if ((k & 7) == 0)  // every 64 bytes of each panel
      for (int p = 0; p < NP; ++p) prefetch_ahead(w[p] + 8 * k, 64);
    for (int p = 0; p < NP; ++p) acc[p] = dot4(acc[p], ax, bx, load32(w[p] + 8 * k), ones);
  }
  for (int p = 0; p < NP; ++p) finish(a, m, n + 8 * p, n1, acc[p]);
}

template <int MR, int NP>
inline void gemm_tile(const lb_mm_args* a, int64_t m, int mr, int64_t n, int64_t n1) {
  const int64_t kp = a->kp;
  const int8_t* x[MR];
  for (int r = 0; r < MR; ++r) x[r] = a->xq + (m + (r < mr ? r : 0)) * kp;
  const uint8_t* w[NP];
  for (int p = 0; p < NP; ++p) w[p] = a->w + (n / 8 + p) * 8 * kp;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[MR][NP];
  for (int r = 0; r < MR; ++r)
    for (int p = 0; p < NP; ++p) acc[r][p] = _mm256_setzero_si256();
#pragma GCC unroll 2
  for (int64_t k = 0; k < kp; k += 4) {
    __m256i wv[NP];
    for (int p = 0; p < NP; ++p) wv[p] = load32(w[p] + 8 * k);
    for (int r = 0; r < MR; ++r) {
      const __m256i bx = bcast4(x[r] + k), ax = _mm256_abs_epi8(bx);
      for (int p = 0; p < NP; ++p) acc[r][p] = dot4(acc[r][p], ax, bx, wv[p], ones);
    }
    keep<MR * NP>(&acc[0][0]);
  }
  for (int r = 0; r < mr; ++r)
    for (int p = 0; p < NP; ++p) finish(a, m + r, n + 8 * p, n1, acc[r][p]);
}

}  // namespace

void lb_gemv_f32_q8d_q8c_16x4__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t m = m0; m < m1; ++m) {
    int64_t n = n0;
    for (; n + 8 < n1; n += 16) gemv_panels<2>(a, m, n, n1);
    for (; n < n1; n += 8) gemv_panels<1>(a, m, n, n1);
  }
}

void lb_gemm_f32_q8d_q8c_4x16__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; n += 16)
    for (int64_t m = m0; m < m1; m += 4) {
      const int mr = int(m1 - m < 4 ? m1 - m : 4);
      if (n + 8 < n1) gemm_tile<4, 2>(a, m, mr, n, n1);
      else gemm_tile<4, 1>(a, m, mr, n, n1);
    }
}
