// GELU (erf form) as the epilogue of a MatMul / quantized linear (attribute "post": "gelu", set by the
// exporter's transformer pass, exporters/lbpk_attn.py):
//   gelu(x) = 0.5 x (1 + erf(u)),  u = x / sqrt 2,  erf(u) ~= u P(u^2) / Q(u^2) on |u| <= 3.92
// with P and Q of degree 5 (a rational fit made for lowbit: weighted least squares on [0, 3.92], iterated on
// the error; double-precision error 5e-8) and u clamped to +-3.92 (1 - erf(3.92) = 3e-8, half a float ulp
// of 1). Evaluated in float32 the erf error is <= 4e-7 (rounding of the ~12 operations), so the GELU's
// absolute error is <= 2e-7 |x| + 1e-7: the 1e-4 relative budget against ONNX Runtime is ~500x larger.
// One division and 12 FMAs per 8 values, no exp: 2x cheaper than the Abramowitz-Stegun erf with an exp
// used before (session 5), and ~10x cheaper than vmath's GELU, which keeps relative accuracy in the far
// negative tail (where the value is ~0 and only absolute accuracy matters here).
// The AVX2 path and the portable one compute the same formula (results may differ in the last bits: FMA).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "vmath.h"

namespace lb {
namespace gelu {

constexpr float kClamp = 3.92f, kInvSqrt2 = 0.70710678118654752f;
constexpr float kP0 = 1.12837875f, kP1 = 0.198899746f, kP2 = 0.0538471192f, kP3 = 0.00412715646f,
                kP4 = 0.000292593584f, kP5 = 1.97682834e-06f;
constexpr float kQ1 = 0.509599686f, kQ2 = 0.117600195f, kQ3 = 0.0156873632f, kQ4 = 0.0012497796f,
                kQ5 = 3.77413671e-05f;

/// Portable reference (non-x86 builds and LOWBIT_ISA=scalar): the same operations in the same order
/// as gelu8, fused multiply-adds included (std::fma rounds once, like vfmadd), so every path gives the
/// same bits. That matters beyond the GELU: its output is requantized to int8 by the next linear, and
/// a value one ulp apart on one path can land on the other side of a rounding boundary there; a few
/// such flipped codes grow through later layers (MiniLM w8a8: 2e-2 of max at the output).
inline float ref(float x) {
  const float u = std::fmin(std::fmax(x * kInvSqrt2, -kClamp), kClamp);
  const float s = u * u;
  float p = std::fma(s, kP5, kP4);
  p = std::fma(s, p, kP3);
  p = std::fma(s, p, kP2);
  p = std::fma(s, p, kP1);
  p = std::fma(s, p, kP0);
  float q = std::fma(s, kQ5, kQ4);
  q = std::fma(s, q, kQ3);
  q = std::fma(s, q, kQ2);
  q = std::fma(s, q, kQ1);
  q = std::fma(s, q, 1.f);
  const float h = 0.5f * x;
  return std::fma(h, u * p / q, h);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"), always_inline)) inline __m256 gelu8(__m256 x) {
  __m256 u = _mm256_mul_ps(x, _mm256_set1_ps(kInvSqrt2));
  u = _mm256_min_ps(_mm256_max_ps(u, _mm256_set1_ps(-kClamp)), _mm256_set1_ps(kClamp));
  const __m256 s = _mm256_mul_ps(u, u);
  __m256 p = _mm256_fmadd_ps(s, _mm256_set1_ps(kP5), _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(s, p, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(s, p, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(s, p, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(s, p, _mm256_set1_ps(kP0));
  __m256 q = _mm256_fmadd_ps(s, _mm256_set1_ps(kQ5), _mm256_set1_ps(kQ4));
  q = _mm256_fmadd_ps(s, q, _mm256_set1_ps(kQ3));
  q = _mm256_fmadd_ps(s, q, _mm256_set1_ps(kQ2));
  q = _mm256_fmadd_ps(s, q, _mm256_set1_ps(kQ1));
  q = _mm256_fmadd_ps(s, q, _mm256_set1_ps(1.f));
  const __m256 erf = _mm256_div_ps(_mm256_mul_ps(u, p), q);
  const __m256 h = _mm256_mul_ps(_mm256_set1_ps(0.5f), x);
  return _mm256_fmadd_ps(h, erf, h);
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
