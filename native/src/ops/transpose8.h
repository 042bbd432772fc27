// 8 x 8 float transpose in AVX2 registers, shared by the ops that turn rows into columns
// (the int8 chain entry / exit in ops_qnhwc.cpp, K^T in ops_attn.cpp, NCHW <-> rows in ops_qconv.cpp).
#pragma once
#if defined(__x86_64__)
#include <immintrin.h>

namespace lb {

/// r[k] = row k of an 8 x 8 float block -> r[k] = column k (unpack, shuffle, 128-bit lane permute).
__attribute__((target("avx2"), always_inline)) inline void transpose8x8_ps(__m256* r) {
  __m256 t[8];
  for (int k = 0; k < 8; k += 2) {
    t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
    t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
  }
  for (int k = 0; k < 8; k += 4) {
    r[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
    r[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
    r[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
    r[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
  }
  for (int k = 0; k < 4; ++k) {
    t[k] = _mm256_permute2f128_ps(r[k], r[k + 4], 0x20);
    t[k + 4] = _mm256_permute2f128_ps(r[k], r[k + 4], 0x31);
  }
  for (int k = 0; k < 8; ++k) r[k] = t[k];
}

}  // namespace lb
#endif
