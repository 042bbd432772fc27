// Test-only stand-in for <immintrin.h>: AVX-512 intrinsics emulated by SIMDe (libsimde-dev), so
// the *_avx512vnni.cpp kernels can be checked on a CPU without AVX-512 (see emu_main.cpp).
#pragma once
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>

#include <cstdint>
#include <cstring>

#include "lowbit/lowbit_blocks.h"

typedef simde__mmask8 __mmask8;
typedef simde__mmask16 __mmask16;
typedef simde__mmask32 __mmask32;
typedef simde__mmask64 __mmask64;

// Missing from SIMDe 0.7: 16 fp16 -> 16 floats.
static inline simde__m512 _mm512_cvtph_ps(simde__m256i h) {
  uint16_t v[16];
  float f[16];
  std::memcpy(v, &h, sizeof v);
  for (int i = 0; i < 16; ++i) f[i] = lb_fp16_to_f32(v[i]);
  return simde_mm512_loadu_ps(f);
}

// More intrinsics SIMDe 0.7 lacks (scalar shims; only correctness matters here).
static inline simde__m512 _mm512_cvtepi32_ps(simde__m512i v) {
  int32_t i[16];
  float f[16];
  std::memcpy(i, &v, sizeof i);
  for (int j = 0; j < 16; ++j) f[j] = float(i[j]);
  return simde_mm512_loadu_ps(f);
}
static inline simde__m512 _mm512_maskz_loadu_ps(simde__mmask16 m, const void* p) {
  float f[16] = {};
  for (int j = 0; j < 16; ++j)
    if (m >> j & 1) std::memcpy(&f[j], static_cast<const float*>(p) + j, 4);
  return simde_mm512_loadu_ps(f);
}
static inline void _mm512_mask_storeu_ps(void* p, simde__mmask16 m, simde__m512 v) {
  float f[16];
  std::memcpy(f, &v, sizeof f);
  for (int j = 0; j < 16; ++j)
    if (m >> j & 1) std::memcpy(static_cast<float*>(p) + j, &f[j], 4);
}
static inline simde__m512i _mm512_maskz_loadu_epi8(simde__mmask64 m, const void* p) {
  int8_t b[64] = {};
  for (int j = 0; j < 64; ++j)
    if (m >> j & 1) b[j] = static_cast<const int8_t*>(p)[j];
  simde__m512i v;
  std::memcpy(&v, b, 64);
  return v;
}
static inline int32_t _mm512_reduce_add_epi32(simde__m512i v) {
  int32_t i[16];
  std::memcpy(i, &v, sizeof i);
  int32_t s = 0;
  for (int j = 0; j < 16; ++j) s += i[j];
  return s;
}
// Round to nearest even (the only mode the kernels use); NaN and out-of-range -> INT32_MIN, as vcvtps2dq.
static inline simde__m512i lb_emu_cvtps_epi32_rne(simde__m512 v) {
  float f[16];
  int32_t i[16];
  std::memcpy(f, &v, sizeof f);
  for (int j = 0; j < 16; ++j) {
    const float r = __builtin_nearbyintf(f[j]);
    i[j] = r >= -2147483648.f && r < 2147483648.f ? int32_t(r) : INT32_MIN;
  }
  return simde_mm512_loadu_si512(i);
}
#define _mm512_cvt_roundps_epi32(v, rounding) lb_emu_cvtps_epi32_rne(v)
static inline void _mm512_mask_storeu_epi64(void* p, simde__mmask8 m, simde__m512i v) {
  int64_t q[8];
  std::memcpy(q, &v, sizeof q);
  for (int j = 0; j < 8; ++j)
    if (m >> j & 1) std::memcpy(static_cast<int64_t*>(p) + j, &q[j], 8);
}
