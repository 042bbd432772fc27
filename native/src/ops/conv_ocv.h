// The tap loop of the "output channels in lanes" conv tiles (few output channels, e.g. stems),
// shared by the float convs (ops_conv.cpp) and the stem that writes int8 NHWC codes
// (conv_stem_nhwc_q8, ops_qnhwc.cpp): one definition keeps their float sums bitwise the same.
#pragma once
#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>

namespace lb {

/// acc[ob][j] = bias[ob * 8 ..] (zero without a bias): the first term of every sum.
template <int OB, int J>
__attribute__((target("avx2,fma"), always_inline)) inline void ocv_start(const float* bias, __m256 (&acc)[OB][J]) {
#pragma GCC unroll 4
  for (int ob = 0; ob < OB; ++ob) {
    const __m256 bv = bias ? _mm256_loadu_ps(bias + ob * 8) : _mm256_setzero_ps();
#pragma GCC unroll 12
    for (int j = 0; j < J; ++j) acc[ob][j] = bv;
  }
}

/// acc[ob][j] += wp[k][ob * 8 ..] * base[off[k] + j * ps] for k in order (OB weight vectors per tap,
/// J broadcasts of the input).
template <int OB, int J>
__attribute__((target("avx2,fma"), always_inline)) inline void ocv_accumulate(const float* wp, int64_t K,
                                                                               const float* base, const int64_t* off,
                                                                               int64_t ps, __m256 (&acc)[OB][J]) {
  for (int64_t k = 0; k < K; ++k) {
    const float* xb = base + off[k];
    __m256 wv[OB];
#pragma GCC unroll 4
    for (int ob = 0; ob < OB; ++ob) wv[ob] = _mm256_loadu_ps(wp + k * OB * 8 + ob * 8);
#pragma GCC unroll 12
    for (int j = 0; j < J; ++j) {
      const __m256 xv = _mm256_broadcast_ss(xb + j * ps);
#pragma GCC unroll 4
      for (int ob = 0; ob < OB; ++ob) acc[ob][j] = _mm256_fmadd_ps(wv[ob], xv, acc[ob][j]);
    }
  }
}

}  // namespace lb
#endif
