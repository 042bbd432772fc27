// GELU (erf form) as the epilogue of a MatMul / quantized linear (attribute "post": "gelu", set by the
// exporter's transformer pass, exporters/lbpk_attn.py):
//   gelu(x) = 0.5 x (1 + erf(x / sqrt 2)),  erf(z) = 1 - (a1 t + ... + a5 t^5) exp(-z^2),  t = 1 / (1 + p z)
// for z >= 0 (odd extension for z < 0): Abramowitz & Stegun 7.1.26, |erf error| <= 1.5e-7, so the
// GELU's absolute error is <= 0.75e-7 |x| (the 1e-4 relative budget against ONNX Runtime is ~1000x
// larger). One exp and one division per 8 values: ~5x cheaper than vmath's GELU, which keeps relative
// accuracy in the far negative tail (where the value is ~0 and only absolute accuracy matters here).
// The AVX2 path and the portable one compute the same formula (results differ only in exp's last bits).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "vmath.h"

namespace lb {
namespace gelu {

constexpr float kP = 0.3275911f, kA1 = 0.254829592f, kA2 = -0.284496736f, kA3 = 1.421413741f,
                kA4 = -1.453152027f, kA5 = 1.061405429f, kInvSqrt2 = 0.70710678118654752f;

/// Portable reference (non-x86 builds and LOWBIT_ISA=scalar).
inline float ref(float x) {
  const float z = std::fabs(x) * kInvSqrt2;
  const float t = 1.f / (1.f + kP * z);
  const float poly = t * (kA1 + t * (kA2 + t * (kA3 + t * (kA4 + t * kA5))));
  const float e = 1.f - poly * std::exp(-z * z);
  return 0.5f * x * (1.f + (x < 0.f ? -e : e));
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"), always_inline)) inline __m256 gelu8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  const __m256 z = _mm256_mul_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(kInvSqrt2));
  const __m256 one = _mm256_set1_ps(1.f);
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(kP), z, one));
  __m256 poly = _mm256_fmadd_ps(t, _mm256_set1_ps(kA5), _mm256_set1_ps(kA4));
  poly = _mm256_fmadd_ps(t, poly, _mm256_set1_ps(kA3));
  poly = _mm256_fmadd_ps(t, poly, _mm256_set1_ps(kA2));
  poly = _mm256_fmadd_ps(t, poly, _mm256_set1_ps(kA1));
  poly = _mm256_mul_ps(t, poly);
  const __m256 e = _mm256_fnmadd_ps(poly, vmath::exp8(_mm256_mul_ps(_mm256_xor_ps(z, sign), z)), one);
  const __m256 erf = _mm256_or_ps(e, _mm256_and_ps(x, sign));  // copysign(e, x)
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(one, erf));
}

__attribute__((target("avx2,fma"))) inline void apply_avx2(float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, gelu8(_mm256_loadu_ps(y + i)));
  if (i < n) {  // the tail through the same vector code
    alignas(32) float t[8] = {0};
    std::memcpy(t, y + i, size_t(n - i) * sizeof(float));
    _mm256_store_ps(t, gelu8(_mm256_load_ps(t)));
    std::memcpy(y + i, t, size_t(n - i) * sizeof(float));
  }
}
#endif

/// y[i] = gelu(y[i]) for i < n; returns the path that ran ("avx2" or "scalar").
inline const char* apply(float* y, int64_t n) {
#if defined(__x86_64__)
  if (vmath::use_avx2()) {
    apply_avx2(y, n);
    return "avx2";
  }
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = ref(y[i]);
  return "scalar";
}

}  // namespace gelu
}  // namespace lb
