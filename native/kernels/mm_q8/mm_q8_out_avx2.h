// Output of the w8a8 GEMMs on AVX2 (mm_q8_avx2.cpp, mm_q7_avx2.cpp): float rows (store_rows), or
// the int8 output mode of lb_mm_args (q8 set): bias, clamp, multipliers and requantization of the
// register tile, packed to int8 and stored, with no float tile in memory. The float operations
// are those of the chain epilogue (ops_qnhwc.cpp: act_requant_avx2 / requant_mul_avx2 /
// q8_lanes), so the same bits.
#pragma once
#include "mm_avx2.h"

namespace lb {
namespace avx2 {

/// Finishes 8 columns n .. n+7 (only those below n1) of row m; v = the tile value before the bias.
inline void out_rows(const lb_mm_args* a, int64_t m, int64_t n, int64_t n1, __m256 v) {
  if (!a->q8) {
    store_rows(a->y + m * a->ldy, a->bias, n, n1, v);
    return;
  }
  const bool full = n + 8 <= n1;
  alignas(32) float t[8];
  if (a->bias) {
    if (full) {
      v = _mm256_add_ps(v, _mm256_loadu_ps(a->bias + n));
    } else {
      for (int j = 0; j < 8; ++j) t[j] = n + j < n1 ? a->bias[n + j] : 0.f;
      v = _mm256_add_ps(v, _mm256_load_ps(t));
    }
  }
  if (a->q_clamp) v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(a->q_lo)), _mm256_set1_ps(a->q_hi));
  if (a->q_mul) {
    if (full) {
      v = _mm256_mul_ps(v, _mm256_loadu_ps(a->q_mul + n));
    } else {
      for (int j = 0; j < 8; ++j) t[j] = n + j < n1 ? a->q_mul[n + j] : 0.f;
      v = _mm256_mul_ps(v, _mm256_load_ps(t));
    }
  }
  __m256 r = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(a->q_inv)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  r = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, _mm256_set1_ps(a->q_zero)), _mm256_set1_ps(-128.f)),
                    _mm256_set1_ps(127.f));
  const __m256i i = _mm256_cvtps_epi32(r);
  __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
  w = _mm_packs_epi16(w, w);
  int8_t* q = a->q8 + m * a->ldq;
  if (full) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + n), w);
  } else {
    alignas(16) int8_t b[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(b), w);
    for (int64_t j = n; j < n1; ++j) q[j] = b[j - n];
  }
  if (n1 == a->n && n + 8 >= n1 && a->q_pad > n1) std::memset(q + n1, 0, size_t(a->q_pad - n1));
}

}  // namespace avx2
}  // namespace lb
