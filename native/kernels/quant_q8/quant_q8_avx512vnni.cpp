// Activation quantizer for AVX-512: 32 floats per step as two zmm (amax, scale, round-to-nearest-
// even, clamp, narrow to int8 with vpmovsdb, code sums); tails through masked loads. The same float
// operations per element as the reference (and the AVX2 quantizer), so the same codes and metadata.
// On Zen 4 a zmm op is two 256-bit halves: the gain is fewer instructions (vpmovsdb instead of two
// packs and a permute, masked tails instead of a stack buffer), not wider ALUs.
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__)
#error "quant_q8_avx512vnni.cpp must be compiled with -mavx512vnni -mavx512bw (the avx512vnni path)"
#endif
#include <immintrin.h>

#include "kernel_types.h"
#include "quant_q8_blocks.h"

namespace {

/// 16 floats of x (times mul) from [i, k); zeros past k.
inline __m512 load_x(const float* x, const float* mul, int64_t i, int64_t k) {
  if (i + 16 <= k) {
    const __m512 v = _mm512_loadu_ps(x + i);
    return mul ? _mm512_mul_ps(v, _mm512_loadu_ps(mul + i)) : v;
  }
  const int64_t n = k - i;
  const __mmask16 m = n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
  const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
  return mul ? _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, mul + i)) : v;
}

float amax_range(const float* x, const float* mul, int64_t lo, int64_t hi, int64_t k) {
  __m512 m = _mm512_setzero_ps();
  for (int64_t i = lo; i < hi && i < k; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(load_x(x, mul, i, k)));
  const __m256 top = _mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(m), 1));
  __m256 h = _mm256_max_ps(_mm512_castps512_ps256(m), top);
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/// 16 codes of x[lo, lo+16) (zeros past k) with `inv`, plus `zero`, clamped to [qmin, qmax].
inline __m512i codes16(const float* x, const float* mul, int64_t lo, int64_t k, __m512 inv, __m512 zero, __m512 qmin,
                       __m512 qmax) {
  // roundscale 0x08: round to nearest even, no scaling, no precision exception (nearbyint)
  __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(load_x(x, mul, lo, k), inv), 0x08);
  v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, zero), qmin), qmax);
  // v is an integer in [-128, 127]: + 1.5 * 2^23 puts it in the low mantissa bits exactly, so the
  // bits minus those of 1.5 * 2^23 are the int32 (what cvttps gives; SIMDe 0.7 has no 512-bit cvt)
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  return _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(v, magic)), _mm512_castps_si512(magic));
}

struct Isa {
  using V = __m512;
  static V splat(float v) { return _mm512_set1_ps(v); }
  static float amax_range(const float* x, const float* mul, int64_t lo, int64_t hi, int64_t k) {
    return ::amax_range(x, mul, lo, hi, k);
  }
  static int32_t quant32(const float* x, const float* mul, int64_t lo, int64_t k, V inv, V zero, V qmin, V qmax,
                         int8_t* q) {
    const __m512i a = codes16(x, mul, lo, k, inv, zero, qmin, qmax);
    const __m512i b = codes16(x, mul, lo + 16, k, inv, zero, qmin, qmax);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtsepi32_epi8(a));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtsepi32_epi8(b));
    return _mm512_reduce_add_epi32(_mm512_add_epi32(a, b));
  }
};

}  // namespace

void lb_quant_q8d_f32_32__avx512vnni(const lb_quant_args* a, int8_t* q, lb_q8_meta* meta) { lb::quant_q8_blocks<Isa>(a, q, meta); }
