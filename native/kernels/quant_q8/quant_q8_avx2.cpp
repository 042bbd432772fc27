// Activation quantizer for AVX2: 32 floats per step (amax, scale, round-to-nearest-even, clamp,
// pack to int8, code sums); the same float operations per element as the reference.
#if !defined(__AVX2__)
#error "quant_q8_avx2.cpp must be compiled with -mavx2"
#endif
#include <immintrin.h>

#include <cstring>

#include "kernel_types.h"
#include "quant_q8_blocks.h"

namespace {

const __m256 kAbsMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));

/// Loads up to 8 floats of x (times mul) from [i, k); zeros past k.
inline __m256 load_x(const float* x, const float* mul, int64_t i, int64_t k) {
  if (i + 8 <= k) {
    const __m256 v = _mm256_loadu_ps(x + i);
    return mul ? _mm256_mul_ps(v, _mm256_loadu_ps(mul + i)) : v;
  }
  float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t j = i; j < k; ++j) buf[j - i] = mul ? x[j] * mul[j] : x[j];
  return _mm256_loadu_ps(buf);
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

float amax_range(const float* x, const float* mul, int64_t lo, int64_t hi, int64_t k) {
  __m256 m = _mm256_setzero_ps();
  for (int64_t i = lo; i < hi && i < k; i += 8)  // |x| first: vmaxps returns its second operand on NaN (skipped)
    m = _mm256_max_ps(_mm256_and_ps(load_x(x, mul, i, k), kAbsMask), m);
  return hmax(m);
}

/// Quantizes x[lo, lo+32) (zeros past k) with `inv`, adds `zero`, clamps to [qmin, qmax]; returns the code sum.
inline int32_t quant32(const float* x, const float* mul, int64_t lo, int64_t k, __m256 inv, __m256 zero, __m256 qmin,
                       __m256 qmax, int8_t* q) {
  __m256i r[4];
  for (int j = 0; j < 4; ++j) {
    __m256 v = _mm256_round_ps(_mm256_mul_ps(load_x(x, mul, lo + 8 * j, k), inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, zero), qmin), qmax);
    r[j] = _mm256_cvttps_epi32(v);
  }
  const __m256i s = _mm256_add_epi32(_mm256_add_epi32(r[0], r[1]), _mm256_add_epi32(r[2], r[3]));
  const __m256i p16a = _mm256_packs_epi32(r[0], r[1]), p16b = _mm256_packs_epi32(r[2], r[3]);
  const __m256i p8 = _mm256_packs_epi16(p16a, p16b);  // lane-interleaved: fix the order
  const __m256i out = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), out);
  return hsum(s);
}

struct Isa {
  using V = __m256;
  static V splat(float v) { return _mm256_set1_ps(v); }
  static float amax_range(const float* x, const float* mul, int64_t lo, int64_t hi, int64_t k) {
    return ::amax_range(x, mul, lo, hi, k);
  }
  static int32_t quant32(const float* x, const float* mul, int64_t lo, int64_t k, V inv, V zero, V qmin, V qmax,
                         int8_t* q) {
    return ::quant32(x, mul, lo, k, inv, zero, qmin, qmax, q);
  }
};

}  // namespace

void lb_quant_q8d_f32_32__avx2(const lb_quant_args* a, int8_t* q, lb_q8_meta* meta) { lb::quant_q8_blocks<Isa>(a, q, meta); }
