// AVX-512 VNNI building blocks (included only by *_avx512vnni.cpp files).
//
// Two panels side by side fill one zmm of 16 int32 lanes (lane = row): the 32-byte quad units of
// panel p and p+1 go to the low and high halves. vpdpbusd multiplies unsigned bytes by signed
// bytes and accumulates in int32 with no int16 stage, so unsigned 4-bit / 2-bit codes times int8
// activations take one instruction per 64 multiply-adds, and int8 weights take activations
// offset to unsigned (x + 128) with the stored row sums removing the offset exactly.
#pragma once
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__)
#error "mm_avx512.h needs -mavx512vnni -mavx512bw -mavx512dq"
#endif
#include <immintrin.h>

#include <cstring>

#include "kernel_types.h"
#include "mm_layout.h"

namespace lb {
namespace avx512 {

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

/// Quad units of two panels (32 bytes each) as one zmm: panel a in lanes 0-7, b in 8-15.
inline __m512i load_pair(const uint8_t* a, const uint8_t* b) {
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
  const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/// 8 fp16 of panel a and 8 of panel b as 16 floats.
inline __m512 load_fp16_pair(const uint8_t* a, const uint8_t* b) {
  const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
  const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
  return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
}

/// Stores 16 outputs n .. n+15 (+ bias), only those below n1.
inline void store16(float* y, const float* bias, int64_t n, int64_t n1, __m512 v) {
  const int64_t cnt = n1 - n < 16 ? n1 - n : 16;
  const __mmask16 m = __mmask16((1u << cnt) - 1u);
  if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + n));
  _mm512_mask_storeu_ps(y + n, m, v);
}

/// Unsigned-code decoders (see mm_avx2.h): quad i of a chunk pair.
struct Nib {
  static constexpr int kQuads = 2;
  static inline __m512i extract(__m512i v, int i) {
    return _mm512_and_si512(i ? _mm512_srli_epi16(v, 4) : v, _mm512_set1_epi8(0x0F));
  }
};
struct Ter {
  static constexpr int kQuads = 4;
  static inline __m512i extract(__m512i v, int i) {
    return _mm512_and_si512(i ? _mm512_srli_epi16(v, 2 * i) : v, _mm512_set1_epi8(0x03));
  }
};

template <class U, int Off, bool Asym>
struct UFmt {
  using Unpack = U;
  static constexpr int kOff = Off;
  static constexpr bool kAsym = Asym;
};

/// Group formats with unsigned codes: MR rows x 16 outputs (two panels; the second repeats the
/// first when it would lie past n1, and is not stored). The GEMM tile (MR = 8).
template <class F, int MR>
void ugemm(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t G = a->group, ng = a->k / G;
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), a->group);
  const int hb = layout::header_bytes(a->fmt);
  constexpr int kQ = F::Unpack::kQuads;
  for (int64_t n = n0; n < n1; n += 16) {
    const int64_t pa = n / 8, pb = n + 8 < n1 ? pa + 1 : pa;
    for (int64_t m = m0; m < m1; m += MR) {
      const int mr = int(m1 - m < MR ? m1 - m : MR);
      const int8_t* x[MR];
      const lb_q8_meta* xm[MR];
      for (int r = 0; r < MR; ++r) {
        const int64_t row = m + (r < mr ? r : 0);
        x[r] = a->xq + row * a->kp;
        xm[r] = a->xm + row * ng;
      }
      __m512 acc[MR];
      for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_ps();
      const uint8_t* ba = layout::block(a->w, a->fmt, a->k, a->group, pa, 0);
      const uint8_t* bp = layout::block(a->w, a->fmt, a->k, a->group, pb, 0);
      for (int64_t g = 0; g < ng; ++g, ba += bb, bp += bb) {
        __m512i dot[MR];
        for (int r = 0; r < MR; ++r) dot[r] = _mm512_setzero_si512();
        for (int64_t c = 0; c < G / (4 * kQ); ++c) {
          const __m512i v = load_pair(ba + hb + 32 * c, bp + hb + 32 * c);
          for (int i = 0; i < kQ; ++i) {
            const __m512i q = F::Unpack::extract(v, i);
            const int64_t k = g * G + 4 * (c * kQ + i);
            for (int r = 0; r < MR; ++r) dot[r] = _mm512_dpbusd_epi32(dot[r], q, bcast4(x[r] + k));
          }
        }
        const __m512 d = load_fp16_pair(ba, bp);
        const __m512 mn = F::kAsym ? load_fp16_pair(ba + 16, bp + 16) : d;
        for (int r = 0; r < MR; ++r) {
          const lb_q8_meta xv = xm[r][g];
          if (F::kAsym) {
            const __m512 t = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot[r]), _mm512_mul_ps(mn, _mm512_set1_ps(float(xv.s))));
            acc[r] = _mm512_fmadd_ps(t, _mm512_set1_ps(xv.d), acc[r]);
          } else {
            const __m512i adj = _mm512_sub_epi32(dot[r], _mm512_set1_epi32(F::kOff * xv.s));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(adj), _mm512_mul_ps(d, _mm512_set1_ps(xv.d)), acc[r]);
          }
        }
      }
      for (int r = 0; r < mr; ++r) store16(a->y + (m + r) * a->ldy, a->bias, n, n1, acc[r]);
    }
  }
}

}  // namespace avx512
}  // namespace lb
