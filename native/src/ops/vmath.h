// Vectorized float math for the graph ops: exp, erf, GELU (erf form), sigmoid over arrays, with an
// AVX2+FMA path (chosen at run time) and a portable path (std:: functions) for other builds and
// for LOWBIT_ISA=scalar. Every element goes through the same code whatever its position (the
// tail is padded into a full vector), so a result never depends on where a chunk starts.
// Accuracy of the AVX2 path: exp within 2 ulp; erf/erfc within ~2e-7 relative (small |x|: odd
// polynomial; else 1 - erfc with a Chebyshev-fitted erfc), i.e. well inside the 1e-4 the runtime
// promises against ONNX Runtime.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "lowbit/lowbit.h"
#include "ops.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace lb {
namespace vmath {

enum Fn { EXP, ERF, GELU, SIGMOID };

inline float ref(int fn, float v) {
  switch (fn) {
    case EXP: return std::exp(v);
    case ERF: return std::erf(v);
    case GELU: return 0.5f * v * std::erfc(-v * 0.70710678118654752f);
    default: return 1.f / (1.f + std::exp(-v));
  }
}

#if defined(__x86_64__)
#define LB_VM_T __attribute__((target("avx2,fma"), always_inline)) inline

// A fused activation (lb::Act: Relu/Clip/HardSigmoid/HardSwish; others pass through) on 8 lanes,
// the same float operations as apply_act.
LB_VM_T __m256 act8(__m256 v, int64_t act, float lo, float hi) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.f);
  switch (act) {
    case ACT_RELU: return _mm256_max_ps(v, zero);
    case ACT_CLIP: return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(lo)), _mm256_set1_ps(hi));
    case ACT_HARDSIGMOID:
      return _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(_mm256_set1_ps(lo), v, _mm256_set1_ps(hi)), zero), one);
    case ACT_HARDSWISH: {
      const __m256 t = _mm256_add_ps(_mm256_div_ps(v, _mm256_set1_ps(6.f)), _mm256_set1_ps(0.5f));
      return _mm256_mul_ps(v, _mm256_min_ps(_mm256_max_ps(t, zero), one));
    }
    case ACT_HARDSWISH_AFFINE: {
      const __m256 t = _mm256_add_ps(_mm256_div_ps(v, _mm256_set1_ps(6.f)), _mm256_set1_ps(0.5f));
      const __m256 h = _mm256_mul_ps(v, _mm256_min_ps(_mm256_max_ps(t, zero), one));
      return _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(lo), h), _mm256_set1_ps(hi));
    }
    default: return v;
  }
}

LB_VM_T __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  // exp(r) on |r| <= ln2/2: Taylor to degree 7 (Horner)
  __m256 p = _mm256_set1_ps(1.f / 5040.f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 720.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// erfc(z) for z >= 0 (Numerical Recipes' erfcc form: t*exp(-z^2 + P(t)), t = 1/(1+z/2);
// fractional error < 1.2e-7 everywhere).
LB_VM_T __m256 erfc_pos8(__m256 z) {
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_fmadd_ps(z, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.f)));
  __m256 p = _mm256_set1_ps(0.17087277f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
  p = _mm256_fnmadd_ps(z, z, p);
  return _mm256_mul_ps(t, exp8(p));
}

// erf(x): x*P(x^2) (Taylor to x^13) for |x| < 0.5, else sign(x)*(1 - erfc(|x|)).
LB_VM_T __m256 erf8(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.f));
  const __m256 z = _mm256_andnot_ps(_mm256_set1_ps(-0.f), x);
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 s = _mm256_set1_ps(-1.f / 75600.f);  // series of erf(x)*sqrt(pi)/2 / x in x^2
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(1.f / 9360.f));
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(-1.f / 1320.f));
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(1.f / 216.f));
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(-1.f / 42.f));
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(1.f / 10.f));
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(-1.f / 3.f));
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(1.f));
  const __m256 small = _mm256_mul_ps(_mm256_mul_ps(s, x), _mm256_set1_ps(1.12837916709551257f));
  const __m256 big = _mm256_or_ps(_mm256_sub_ps(_mm256_set1_ps(1.f), erfc_pos8(z)), sign);
  return _mm256_blendv_ps(big, small, _mm256_cmp_ps(z, _mm256_set1_ps(0.5f), _CMP_LT_OQ));
}

// GELU(x) = x/2 * erfc(-x/sqrt2), with erfc(-u) = 2 - erfc(u) for u >= 0 (relative accuracy
// kept for large negative x, where the result is tiny).
LB_VM_T __m256 gelu8(__m256 x) {
  const __m256 u = _mm256_mul_ps(x, _mm256_set1_ps(-0.70710678118654752f));
  const __m256 au = _mm256_andnot_ps(_mm256_set1_ps(-0.f), u);
  const __m256 ec = erfc_pos8(au);
  const __m256 neg_u = _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 e = _mm256_blendv_ps(ec, _mm256_sub_ps(_mm256_set1_ps(2.f), ec), neg_u);
  const __m256 small = _mm256_cmp_ps(au, _mm256_set1_ps(0.35f), _CMP_LT_OQ);
  // near 0 use 1 + erf(x/sqrt2) from the series (erfc's form loses relative accuracy in 1 - erfc)
  const __m256 e_small = _mm256_add_ps(_mm256_set1_ps(1.f), erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f))));
  return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), _mm256_blendv_ps(e, e_small, small));
}

LB_VM_T __m256 sigmoid8(__m256 x) {
  return _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_add_ps(_mm256_set1_ps(1.f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

template <int FN>
LB_VM_T __m256 apply8(__m256 v) {
  if (FN == EXP) return exp8(v);
  if (FN == ERF) return erf8(v);
  if (FN == GELU) return gelu8(v);
  return sigmoid8(v);
}

template <int FN>
__attribute__((target("avx2,fma"))) void map_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, apply8<FN>(_mm256_loadu_ps(x + i)));
  if (i < n) {
    alignas(32) float t[8] = {0};
    std::memcpy(t, x + i, size_t(n - i) * sizeof(float));
    _mm256_store_ps(t, apply8<FN>(_mm256_load_ps(t)));
    std::memcpy(y + i, t, size_t(n - i) * sizeof(float));
  }
}
#undef LB_VM_T
#endif

/// True when the AVX2 path runs (AVX2+FMA present and LOWBIT_ISA is not "scalar").
inline bool use_avx2() {
#if defined(__x86_64__)
  static const bool ok = (lb_cpu_features() & (LB_CPU_AVX2 | LB_CPU_FMA)) == (LB_CPU_AVX2 | LB_CPU_FMA);
  return ok && lb_isa_active() != LB_ISA_SCALAR;
#else
  return false;
#endif
}

/// y[i] = FN(x[i]) for i < n (x may equal y). Returns the path name ("avx2" or "scalar").
template <int FN>
const char* map(const float* x, float* y, int64_t n) {
#if defined(__x86_64__)
  if (use_avx2()) {
    map_avx2<FN>(x, y, n);
    return "avx2";
  }
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = ref(FN, x[i]);
  return "scalar";
}

}  // namespace vmath
}  // namespace lb
