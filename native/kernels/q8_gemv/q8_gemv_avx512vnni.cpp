// q8_gemv for AVX-512 VNNI: vpdpbusd on |x| (u8) and sign-adjusted w (s8); masked loads make
// the K tail exact without a scalar loop. 4 rows per pass share one activation load.
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__)
#error "q8_gemv_avx512vnni.cpp must be compiled with -mavx512vnni -mavx512bw"
#endif
#include <immintrin.h>

#include "kernel_types.h"

namespace {
inline __m512i dot64(__m512i acc, __m512i ax, __mmask64 neg, __m512i w) {
  const __m512i sw = _mm512_mask_sub_epi8(w, neg, _mm512_setzero_si512(), w);
  return _mm512_dpbusd_epi32(acc, ax, sw);
}
}  // namespace

void lb_gemv_s32_q8_q8c_4x64__avx512vnni(const int8_t* w, const int8_t* x, int32_t* y, int64_t n, int64_t k) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const int8_t* r0 = w + (i + 0) * k;
    const int8_t* r1 = w + (i + 1) * k;
    const int8_t* r2 = w + (i + 2) * k;
    const int8_t* r3 = w + (i + 3) * k;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t j = 0; j < k; j += 64) {
      const __mmask64 m = (k - j >= 64) ? ~__mmask64(0) : ((__mmask64(1) << (k - j)) - 1);
      const __m512i xv = _mm512_maskz_loadu_epi8(m, x + j);
      const __m512i ax = _mm512_abs_epi8(xv);
      const __mmask64 neg = _mm512_movepi8_mask(xv);
      a0 = dot64(a0, ax, neg, _mm512_maskz_loadu_epi8(m, r0 + j));
      a1 = dot64(a1, ax, neg, _mm512_maskz_loadu_epi8(m, r1 + j));
      a2 = dot64(a2, ax, neg, _mm512_maskz_loadu_epi8(m, r2 + j));
      a3 = dot64(a3, ax, neg, _mm512_maskz_loadu_epi8(m, r3 + j));
    }
    y[i] = _mm512_reduce_add_epi32(a0);
    y[i + 1] = _mm512_reduce_add_epi32(a1);
    y[i + 2] = _mm512_reduce_add_epi32(a2);
    y[i + 3] = _mm512_reduce_add_epi32(a3);
  }
  for (; i < n; ++i) {
    const int8_t* r = w + i * k;
    __m512i a = _mm512_setzero_si512();
    for (int64_t j = 0; j < k; j += 64) {
      const __mmask64 m = (k - j >= 64) ? ~__mmask64(0) : ((__mmask64(1) << (k - j)) - 1);
      const __m512i xv = _mm512_maskz_loadu_epi8(m, x + j);
      a = dot64(a, _mm512_abs_epi8(xv), _mm512_movepi8_mask(xv), _mm512_maskz_loadu_epi8(m, r + j));
    }
    y[i] = _mm512_reduce_add_epi32(a);
  }
}
