// Vector primitives of the decoder (see llm_ops.h). The AVX2 variants are compiled with a
// function target attribute so this core file needs no per-file ISA flags; they run only when
// dispatch says the CPU has AVX2, FMA and F16C and LOWBIT_ISA does not force the scalar path.
#include "llm/llm_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dispatch.h"
#include "lowbit/lowbit.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LB_LLM_X86 1
#endif

namespace lb {
namespace llm {

uint16_t f32_to_f16_scalar(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return uint16_t(sign | (absx > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (absx >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to inf
  if (absx < 0x38800000u) {                                  // subnormal half (or zero)
    float af;
    std::memcpy(&af, &absx, 4);
    const float scaled = af * 16777216.0f;  // 2^24: half subnormal step is 2^-24
    return uint16_t(sign | uint32_t(std::nearbyint(scaled)));
  }
  // normal: round mantissa to nearest even at bit 13
  uint32_t mant = absx & 0x7fffffu;
  uint32_t exp = (absx >> 23) - 112;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return uint16_t(sign | h);
}

float f16_to_f32_scalar(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {
      float f = float(mant) * (1.0f / 16777216.0f);
      std::memcpy(&x, &f, 4);
      x |= sign;
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

namespace {

float dot_f32_ref(const float* a, const float* b, int n) {
  float s[4] = {0, 0, 0, 0};
  int i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) s[j] += a[i + j] * b[i + j];
  float r = (s[0] + s[1]) + (s[2] + s[3]);
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}
float dot_f16_ref(const float* a, const uint16_t* b, int n) {
  float r = 0;
  for (int i = 0; i < n; ++i) r += a[i] * f16_to_f32_scalar(b[i]);
  return r;
}
float dot_i8_ref(const float* a, const int8_t* b, int n) {
  float r = 0;
  for (int i = 0; i < n; ++i) r += a[i] * float(b[i]);
  return r;
}
void axpy_f32_ref(float al, const float* x, float* y, int n) {
  for (int i = 0; i < n; ++i) y[i] += al * x[i];
}
void axpy_f16_ref(float al, const uint16_t* x, float* y, int n) {
  for (int i = 0; i < n; ++i) y[i] += al * f16_to_f32_scalar(x[i]);
}
void axpy_i8_ref(float al, const int8_t* x, float* y, int n) {
  for (int i = 0; i < n; ++i) y[i] += al * float(x[i]);
}
void f32_to_f16_ref(const float* x, uint16_t* y, int n) {
  for (int i = 0; i < n; ++i) y[i] = f32_to_f16_scalar(x[i]);
}

void scores_f32_ref(const float* q, int g, const float* k, int cnt, int d, float scale, float* s) {
  for (int j = 0; j < cnt; ++j)
    for (int gi = 0; gi < g; ++gi) s[size_t(j) * g + gi] = scale * dot_f32_ref(q + size_t(gi) * d, k + size_t(j) * d, d);
}
void scores_f16_ref(const float* q, int g, const uint16_t* k, int cnt, int d, float scale, float* s) {
  for (int j = 0; j < cnt; ++j)
    for (int gi = 0; gi < g; ++gi) s[size_t(j) * g + gi] = scale * dot_f16_ref(q + size_t(gi) * d, k + size_t(j) * d, d);
}
void scores_i8_ref(const float* q, int g, const int8_t* k, const float* ksc, int group, int cnt, int d, float scale,
                   float* s) {
  const int ng = d / group;
  for (int j = 0; j < cnt; ++j)
    for (int gi = 0; gi < g; ++gi) {
      float acc = 0;
      for (int gr = 0; gr < ng; ++gr)
        acc += ksc[size_t(j) * ng + gr] * dot_i8_ref(q + size_t(gi) * d + gr * group, k + size_t(j) * d + gr * group, group);
      s[size_t(j) * g + gi] = scale * acc;
    }
}
void softmax_cols_ref(float* s, int cnt, int g, float* sum) {
  for (int gi = 0; gi < g; ++gi) {
    float m = s[gi];
    for (int j = 1; j < cnt; ++j) m = std::fmax(m, s[size_t(j) * g + gi]);
    float t = 0;
    for (int j = 0; j < cnt; ++j) {
      float& x = s[size_t(j) * g + gi];
      x = std::exp(x - m);
      t += x;
    }
    sum[gi] = t;
  }
}
template <class T, class Axpy>
void wsum_ref(const float* p, int g, const T* v, int cnt, int d, const float* inv_sum, float* out, Axpy axpy) {
  std::memset(out, 0, size_t(g) * d * sizeof(float));
  for (int j = 0; j < cnt; ++j)
    for (int gi = 0; gi < g; ++gi) axpy(p[size_t(j) * g + gi], v + size_t(j) * d, out + size_t(gi) * d, d);
  for (int gi = 0; gi < g; ++gi)
    for (int i = 0; i < d; ++i) out[size_t(gi) * d + i] *= inv_sum[gi];
}
void wsum_f32_ref(const float* p, int g, const float* v, int cnt, int d, const float* inv_sum, float* out) {
  wsum_ref(p, g, v, cnt, d, inv_sum, out, axpy_f32_ref);
}
void wsum_f16_ref(const float* p, int g, const uint16_t* v, int cnt, int d, const float* inv_sum, float* out) {
  wsum_ref(p, g, v, cnt, d, inv_sum, out, axpy_f16_ref);
}
void wsum_i8_ref(const float* p, int g, const int8_t* v, const float* vsc, int group, int cnt, int d,
                 const float* inv_sum, float* out) {
  const int ng = d / group;
  std::memset(out, 0, size_t(g) * d * sizeof(float));
  for (int j = 0; j < cnt; ++j)
    for (int gi = 0; gi < g; ++gi)
      for (int gr = 0; gr < ng; ++gr)
        axpy_i8_ref(p[size_t(j) * g + gi] * vsc[size_t(j) * ng + gr], v + size_t(j) * d + gr * group,
                    out + size_t(gi) * d + gr * group, group);
  for (int gi = 0; gi < g; ++gi)
    for (int i = 0; i < d; ++i) out[size_t(gi) * d + i] *= inv_sum[gi];
}
void swiglu_ref(const float* gate, const float* up, int n, float* out) {
  for (int i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

// The sum of squares of add_rms_norm: double partial sums s[i % 8] (the products of floats are
// exact in double, so FMA or not gives the same bits), combined as the AVX2 path's two
// 4-lane accumulators are: ((s0+s4) + (s2+s6)) + ((s1+s5) + (s3+s7)).
inline double sumsq_combine(const double* s) {
  return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}
inline float rms_inv(double ss, int n, float eps) { return float(1.0 / std::sqrt(ss / n + eps)); }

void add_rms_norm_ref(float* x, const float* res, const float* w, float eps, int n, float* y) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < n; ++i) {
    float v = x[i];
    if (res) x[i] = v = v + res[i];
    s[i & 7] += double(v) * double(v);
  }
  const float r = rms_inv(sumsq_combine(s), n, eps);
  for (int i = 0; i < n; ++i) y[i] = x[i] * r * w[i];
}

void rope_ref(float* x, int heads, int d, const float* cs, const float* sn) {
  const int half = d / 2;
  for (int h = 0; h < heads; ++h) {
    float* v = x + size_t(h) * d;
    for (int i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * cs[i] - b * sn[i];
      v[i + half] = b * cs[i] + a * sn[i];
    }
  }
}

const VecOps kScalar = {"scalar",         dot_f32_ref,      dot_f16_ref,    dot_i8_ref,     axpy_f32_ref,
                        axpy_f16_ref,     axpy_i8_ref,      f32_to_f16_ref, scores_f32_ref, scores_f16_ref,
                        scores_i8_ref,    softmax_cols_ref, wsum_f32_ref,   wsum_f16_ref,   wsum_i8_ref,
                        swiglu_ref,       add_rms_norm_ref, rope_ref};

#if defined(LB_LLM_X86)
#define LB_AVX2 __attribute__((target("avx2,fma,f16c")))

LB_AVX2 inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}
LB_AVX2 float dot_f32_avx2(const float* a, const float* b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float r = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}
LB_AVX2 float dot_f16_avx2(const float* a, const uint16_t* b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    __m256 b1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i + 8)));
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), b0, s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), b1, s1);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), b0, s0);
  }
  float r = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) r += a[i] * f16_to_f32_scalar(b[i]);
  return r;
}
LB_AVX2 float dot_i8_avx2(const float* a, const int8_t* b, int n) {
  __m256 s0 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + i));
    __m256 bf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), bf, s0);
  }
  float r = hsum(s0);
  for (; i < n; ++i) r += a[i] * float(b[i]);
  return r;
}
LB_AVX2 void axpy_f32_avx2(float al, const float* x, float* y, int n) {
  const __m256 va = _mm256_set1_ps(al);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += al * x[i];
}
LB_AVX2 void axpy_f16_avx2(float al, const uint16_t* x, float* y, int n) {
  const __m256 va = _mm256_set1_ps(al);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 xf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, xf, _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += al * f16_to_f32_scalar(x[i]);
}
LB_AVX2 void axpy_i8_avx2(float al, const int8_t* x, float* y, int n) {
  const __m256 va = _mm256_set1_ps(al);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + i));
    __m256 xf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, xf, _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += al * float(x[i]);
}
LB_AVX2 void f32_to_f16_avx2(const float* x, uint16_t* y, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) y[i] = f32_to_f16_scalar(x[i]);
}

// Cache rows [cnt][d] as seen by the attention kernels: load(j, c) = channels c..c+7 of row j as floats.
struct RowsF32 {
  const float* p;
  int d;
  LB_AVX2 __m256 load(int j, int c) const { return _mm256_loadu_ps(p + size_t(j) * d + c); }
};
struct RowsF16 {
  const uint16_t* p;
  int d;
  LB_AVX2 __m256 load(int j, int c) const {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + size_t(j) * d + c)));
  }
};
struct RowsI8 {  // codes times the row's group scale
  const int8_t* p;
  const float* sc;
  int d, group, ng;
  LB_AVX2 __m256 load(int j, int c) const {
    const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + size_t(j) * d + c));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_set1_ps(sc[size_t(j) * ng + c / group]));
  }
};

// exp(x) for x in [-87.3, 88.3] (clamped outside): Cephes' expf polynomial, ~2 ulp.
LB_AVX2 inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3365f)), _mm256_set1_ps(88.3762f));
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

// Sums each of a[0..7] across its lanes: lane i of the result = hsum(a[i]).
LB_AVX2 inline __m256 hsum8x8(const __m256* a) {
  const __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
  return _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20), _mm256_permute2f128_ps(h0123, h4567, 0x31));
}

// Scores for up to 8 heads at a time: each cache row is converted once and dotted with every
// head of the block; the 8 sums are reduced together (d % 8 == 0).
template <class Rows>
LB_AVX2 void scores_avx2(const float* q, int g, const Rows& k, int cnt, int d, float scale, float* s) {
  const __m256 vs = _mm256_set1_ps(scale);
  for (int g0 = 0; g0 < g; g0 += 8) {
    const int gb = std::min(8, g - g0);
    const float* qh[8];
    for (int i = 0; i < 8; ++i) qh[i] = q + size_t(g0 + (i < gb ? i : 0)) * d;
    for (int j = 0; j < cnt; ++j) {
      __m256 acc[8];
      for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
      for (int c = 0; c < d; c += 8) {
        const __m256 kc = k.load(j, c);
        for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(qh[i] + c), kc, acc[i]);
      }
      const __m256 r = _mm256_mul_ps(hsum8x8(acc), vs);
      float* out = s + size_t(j) * g + g0;
      if (gb == 8) {
        _mm256_storeu_ps(out, r);
      } else {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, r);
        for (int i = 0; i < gb; ++i) out[i] = tmp[i];
      }
    }
  }
}
LB_AVX2 void scores_f32_avx2(const float* q, int g, const float* k, int cnt, int d, float scale, float* s) {
  if (d % 8) return scores_f32_ref(q, g, k, cnt, d, scale, s);
  scores_avx2(q, g, RowsF32{k, d}, cnt, d, scale, s);
}
LB_AVX2 void scores_f16_avx2(const float* q, int g, const uint16_t* k, int cnt, int d, float scale, float* s) {
  if (d % 8) return scores_f16_ref(q, g, k, cnt, d, scale, s);
  scores_avx2(q, g, RowsF16{k, d}, cnt, d, scale, s);
}
LB_AVX2 void scores_i8_avx2(const float* q, int g, const int8_t* k, const float* ksc, int group, int cnt, int d,
                            float scale, float* s) {
  if (d % 8 || group % 8) return scores_i8_ref(q, g, k, ksc, group, cnt, d, scale, s);
  scores_avx2(q, g, RowsI8{k, ksc, d, group, d / group}, cnt, d, scale, s);
}

LB_AVX2 void softmax_cols_avx2(float* s, int cnt, int g, float* sum) {
  if (g % 8) return softmax_cols_ref(s, cnt, g, sum);
  for (int g0 = 0; g0 < g; g0 += 8) {
    __m256 m = _mm256_loadu_ps(s + g0);
    for (int j = 1; j < cnt; ++j) m = _mm256_max_ps(m, _mm256_loadu_ps(s + size_t(j) * g + g0));
    __m256 t = _mm256_setzero_ps();
    for (int j = 0; j < cnt; ++j) {
      float* p = s + size_t(j) * g + g0;
      const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), m));
      _mm256_storeu_ps(p, e);
      t = _mm256_add_ps(t, e);
    }
    _mm256_storeu_ps(sum + g0, t);
  }
}

// out[gi] = inv_sum[gi] * sum_j p[j][gi] v_j: 8 output channels of up to 8 heads per pass, each
// cache row converted once per pass.
template <class Rows>
LB_AVX2 void wsum_avx2(const float* p, int g, const Rows& v, int cnt, int d, const float* inv_sum, float* out) {
  int g0 = 0;
  for (; g0 + 8 <= g; g0 += 8) {  // full blocks: 8 accumulators stay in registers
    for (int c = 0; c < d; c += 8) {
      __m256 acc[8];
      for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
      for (int j = 0; j < cnt; ++j) {
        const __m256 vc = v.load(j, c);
        const float* pj = p + size_t(j) * g + g0;
        for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(pj + i), vc, acc[i]);
      }
      for (int i = 0; i < 8; ++i)
        _mm256_storeu_ps(out + size_t(g0 + i) * d + c, _mm256_mul_ps(acc[i], _mm256_set1_ps(inv_sum[g0 + i])));
    }
  }
  for (; g0 < g; ++g0)  // the remaining heads one at a time
    for (int c = 0; c < d; c += 8) {
      __m256 acc = _mm256_setzero_ps();
      for (int j = 0; j < cnt; ++j) acc = _mm256_fmadd_ps(_mm256_broadcast_ss(p + size_t(j) * g + g0), v.load(j, c), acc);
      _mm256_storeu_ps(out + size_t(g0) * d + c, _mm256_mul_ps(acc, _mm256_set1_ps(inv_sum[g0])));
    }
}
LB_AVX2 void wsum_f32_avx2(const float* p, int g, const float* v, int cnt, int d, const float* inv_sum, float* out) {
  if (d % 8) return wsum_f32_ref(p, g, v, cnt, d, inv_sum, out);
  wsum_avx2(p, g, RowsF32{v, d}, cnt, d, inv_sum, out);
}
LB_AVX2 void wsum_f16_avx2(const float* p, int g, const uint16_t* v, int cnt, int d, const float* inv_sum, float* out) {
  if (d % 8) return wsum_f16_ref(p, g, v, cnt, d, inv_sum, out);
  wsum_avx2(p, g, RowsF16{v, d}, cnt, d, inv_sum, out);
}
LB_AVX2 void wsum_i8_avx2(const float* p, int g, const int8_t* v, const float* vsc, int group, int cnt, int d,
                          const float* inv_sum, float* out) {
  if (d % 8 || group % 8) return wsum_i8_ref(p, g, v, vsc, group, cnt, d, inv_sum, out);
  wsum_avx2(p, g, RowsI8{v, vsc, d, group, d / group}, cnt, d, inv_sum, out);
}

LB_AVX2 void swiglu_avx2(const float* gate, const float* up, int n, float* out) {
  const __m256 one = _mm256_set1_ps(1.f);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(gate + i);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  if (i < n) swiglu_ref(gate + i, up + i, n - i, out + i);
}

LB_AVX2 void add_rms_norm_avx2(float* x, const float* res, const float* w, float eps, int n, float* y) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    if (res) {
      v = _mm256_add_ps(v, _mm256_loadu_ps(res + i));
      _mm256_storeu_ps(x + i, v);
    }
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    a0 = _mm256_fmadd_pd(lo, lo, a0);
    a1 = _mm256_fmadd_pd(hi, hi, a1);
  }
  alignas(32) double s[8];
  _mm256_store_pd(s, a0);
  _mm256_store_pd(s + 4, a1);
  for (int j = i; j < n; ++j) {
    float v = x[j];
    if (res) x[j] = v = v + res[j];
    s[j & 7] += double(v) * double(v);
  }
  const float r = rms_inv(sumsq_combine(s), n, eps);
  const __m256 vr = _mm256_set1_ps(r);
  i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vr), _mm256_loadu_ps(w + i)));
  for (; i < n; ++i) y[i] = x[i] * r * w[i];
}

LB_AVX2 void rope_avx2(float* x, int heads, int d, const float* cs, const float* sn) {
  const int half = d / 2;
  if (half % 8) return rope_ref(x, heads, d, cs, sn);
  for (int h = 0; h < heads; ++h) {
    float* v = x + size_t(h) * d;
    for (int i = 0; i < half; i += 8) {
      const __m256 a = _mm256_loadu_ps(v + i), b = _mm256_loadu_ps(v + i + half);
      const __m256 c = _mm256_loadu_ps(cs + i), s = _mm256_loadu_ps(sn + i);
      _mm256_storeu_ps(v + i, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
      _mm256_storeu_ps(v + i + half, _mm256_fmadd_ps(b, c, _mm256_mul_ps(a, s)));
    }
  }
}

const VecOps kAvx2 = {"avx2",          dot_f32_avx2,      dot_f16_avx2,    dot_i8_avx2,     axpy_f32_avx2,
                      axpy_f16_avx2,   axpy_i8_avx2,      f32_to_f16_avx2, scores_f32_avx2, scores_f16_avx2,
                      scores_i8_avx2,  softmax_cols_avx2, wsum_f32_avx2,   wsum_f16_avx2,   wsum_i8_avx2,
                      swiglu_avx2,     add_rms_norm_avx2, rope_avx2};
#endif

}  // namespace

const VecOps& vec_ops_scalar() { return kScalar; }

const VecOps& vec_ops() {
#if defined(LB_LLM_X86)
  const lb_isa isa = lb_isa_active();
  const uint64_t f = lb_cpu_features();
  const uint64_t need = LB_CPU_AVX2 | LB_CPU_FMA | LB_CPU_F16C;
  if ((isa == LB_ISA_AVX2 || isa == LB_ISA_AVX512VNNI) && (f & need) == need) return kAvx2;
#endif
  return kScalar;
}

void rms_norm(const float* x, const float* w, float eps, int n, float* y) {
  add_rms_norm_ref(const_cast<float*>(x), nullptr, w, eps, n, y);  // x is only read without a residual
}

void rope_table(int pos, int d, const float* inv_freq, float scale, float* cs, float* sn) {
  for (int i = 0; i < d / 2; ++i) {
    const float f = float(pos) * inv_freq[i];  // fp32 product, as transformers computes it
    cs[i] = std::cos(f) * scale;
    sn[i] = std::sin(f) * scale;
  }
}

void rope_apply(float* x, int heads, int d, int pos, const float* inv_freq, float scale) {
  float cs[512], sn[512];  // head_dim <= 1024 is checked at load
  rope_table(pos, d, inv_freq, scale, cs, sn);
  rope_ref(x, heads, d, cs, sn);
}

void swiglu(const float* gate, const float* up, int n, float* out) { vec_ops().swiglu(gate, up, n, out); }

}  // namespace llm
}  // namespace lb
