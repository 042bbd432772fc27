// q8_gemv for AVX2: |x| (u8) times sign-adjusted w (s8) through vpmaddubsw, 4 rows per pass.
// Exact because weights are in [-127, 127]: each 16-bit pair sum is at most 2*128*127.
#if !defined(__AVX2__)
#error "q8_gemv_avx2.cpp must be compiled with -mavx2"
#endif
#include <immintrin.h>

#include "kernel_types.h"

namespace {
inline int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}
inline __m256i dot32(__m256i acc, __m256i ax, __m256i x, __m256i w, __m256i ones) {
  const __m256i p16 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w, x));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, ones));
}
}  // namespace

void lb_gemv_s32_q8_q8c_4x32__avx2(const int8_t* w, const int8_t* x, int32_t* y, int64_t n, int64_t k) {
  const __m256i ones = _mm256_set1_epi16(1);
  const int64_t k32 = k & ~int64_t(31);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const int8_t* r0 = w + (i + 0) * k;
    const int8_t* r1 = w + (i + 1) * k;
    const int8_t* r2 = w + (i + 2) * k;
    const int8_t* r3 = w + (i + 3) * k;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t j = 0; j < k32; j += 32) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + j));
      const __m256i ax = _mm256_sign_epi8(xv, xv);
      a0 = dot32(a0, ax, xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0 + j)), ones);
      a1 = dot32(a1, ax, xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r1 + j)), ones);
      a2 = dot32(a2, ax, xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r2 + j)), ones);
      a3 = dot32(a3, ax, xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r3 + j)), ones);
    }
    int32_t s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (int64_t j = k32; j < k; ++j) {
      const int32_t xj = x[j];
      s0 += r0[j] * xj; s1 += r1[j] * xj; s2 += r2[j] * xj; s3 += r3[j] * xj;
    }
    y[i] = s0; y[i + 1] = s1; y[i + 2] = s2; y[i + 3] = s3;
  }
  for (; i < n; ++i) {
    const int8_t* r = w + i * k;
    __m256i a = _mm256_setzero_si256();
    for (int64_t j = 0; j < k32; j += 32) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + j));
      a = dot32(a, _mm256_sign_epi8(xv, xv), xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + j)), ones);
    }
    int32_t s = hsum(a);
    for (int64_t j = k32; j < k; ++j) s += r[j] * int32_t(x[j]);
    y[i] = s;
  }
}
