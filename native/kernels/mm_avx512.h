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

/// Software prefetch distance of the GEMVs' weight stream, as the AVX2 GEMVs (mm_avx2.h): a core
/// computing between loads falls behind the hardware prefetcher without it (on the AVX-512 Xeon
/// the zmm GEMVs without it read at 62% of a plain stream where the AVX2 ones reached 80-86%).
constexpr int kPrefetchAhead = 2048;
inline void prefetch_ahead(const uint8_t* p, size_t bytes) {
  for (size_t l = 0; l < bytes; l += 64) _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchAhead + l, _MM_HINT_T0);
}

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

/// GEMV for group formats with unsigned codes: one panel (8 rows) per pass, so the packed weight
/// is read front to back as one stream (as the AVX2 GEMV; the two-panel pass of ugemm read two
/// streams one panel apart). A zmm holds two consecutive 32-byte chunks of the panel (lanes 0-7:
/// chunk 2j, lanes 8-15: chunk 2j+1, same 8 rows); the activation operand puts the quad of each
/// half in its lanes with one vpermd of the chunk pair's activation window. Per group the two
/// halves' int32 dots are added (exact) and then folded exactly as the AVX2 GEMV does, so the
/// float result per output is the same sequence of operations.
template <class F>
void ugemv(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t G = a->group, ng = a->k / G;
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), a->group);
  const int hb = layout::header_bytes(a->fmt);
  constexpr int kQ = F::Unpack::kQuads;
  constexpr int kWin = 8 * kQ;  // activation bytes of one chunk pair: 16 (Q4) or 32 (T2)
  const int64_t pairs = G / (2 * 4 * kQ);
  // idx[i]: lanes 0-7 take dword i of the window (chunk 2j), lanes 8-15 dword kQ + i (chunk 2j+1).
  __m512i idx[kQ];
  for (int i = 0; i < kQ; ++i)
    idx[i] = _mm512_inserti64x4(_mm512_set1_epi32(i), _mm256_set1_epi32(kQ + i), 1);
  for (int64_t m = m0; m < m1; ++m) {
    const int8_t* x0 = a->xq + m * a->kp;
    const lb_q8_meta* xm = a->xm + m * ng;
    float* y = a->y + m * a->ldy;
    for (int64_t n = n0; n < n1; n += 8) {
      const uint8_t* blk = layout::block(a->w, a->fmt, a->k, a->group, n / 8, 0);
      const int8_t* x = x0;
      __m256 acc = _mm256_setzero_ps();
      for (int64_t g = 0; g < ng; ++g, blk += bb) {
        prefetch_ahead(blk, bb);
        __m512i dot = _mm512_setzero_si512();
        for (int64_t j = 0; j < pairs; ++j, x += kWin) {
          const __m512i v = _mm512_loadu_si512(blk + hb + 64 * j);
          __m512i xw;
          if constexpr (kWin == 16) xw = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x)));
          else xw = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
          for (int i = 0; i < kQ; ++i)
            dot = _mm512_dpbusd_epi32(dot, F::Unpack::extract(v, i), _mm512_permutexvar_epi32(idx[i], xw));
        }
        const __m256i d32 = _mm256_add_epi32(_mm512_castsi512_si256(dot), _mm512_extracti64x4_epi64(dot, 1));
        const __m256 dx = _mm256_set1_ps(xm[g].d);
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
        if (F::kAsym) {
          const __m256 mn = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16)));
          const __m256 t = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(d32), _mm256_mul_ps(mn, _mm256_set1_ps(float(xm[g].s))));
          acc = _mm256_fmadd_ps(t, dx, acc);
        } else {
          const __m256i adj = _mm256_sub_epi32(d32, _mm256_set1_epi32(F::kOff * xm[g].s));
          acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(adj), _mm256_mul_ps(d, dx), acc);
        }
      }
      alignas(32) float t[8];
      _mm256_store_ps(t, acc);
      const int64_t cnt = n1 - n < 8 ? n1 - n : 8;
      for (int64_t r = 0; r < cnt; ++r) y[n + r] = a->bias ? t[r] + a->bias[n + r] : t[r];
    }
  }
}

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

/// Q8 (w8a8) GEMV: 16 outputs (two panels, two weight streams) per pass; dpbusd of (x + 128) with
/// the weights, minus 128 * row_sum. (The GEMM is mm_q8_avx512vnni.cpp's register-tiled kernel.)
inline void gemv_q8(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t kp = a->kp;
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  for (int64_t n = n0; n < n1; n += 16) {
    const int64_t pa = n / 8, pb = n + 8 < n1 ? pa + 1 : pa;
    const uint8_t* wa = a->w + pa * 8 * kp;
    const uint8_t* wb = a->w + pb * 8 * kp;
    // row sums of the 16 lanes (the second panel repeats the first past n1)
    const __m512i rs = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->row_sum + pa * 8))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->row_sum + pb * 8)), 1);
    const __m512 rsc = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(a->row_scale + pa * 8)),
                                          _mm256_loadu_ps(a->row_scale + pb * 8), 1);
    // sum (x + 128) w - 128 sum w - zero * sum w
    const __m512i corr = _mm512_mullo_epi32(rs, _mm512_set1_epi32(128 + a->act_zero));
    for (int64_t m = m0; m < m1; ++m) {
      const int8_t* x = a->xq + m * kp;
      __m512i dot = _mm512_setzero_si512();
      for (int64_t k = 0; k < kp; k += 4) {  // two weight streams (panels pa, pb), each line prefetched once
        if ((k & 7) == 0) {
          _mm_prefetch(reinterpret_cast<const char*>(wa + 8 * k) + kPrefetchAhead, _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(wb + 8 * k) + kPrefetchAhead, _MM_HINT_T0);
        }
        const __m512i w = load_pair(wa + 8 * k, wb + 8 * k);
        dot = _mm512_dpbusd_epi32(dot, _mm512_xor_si512(bcast4(x + k), flip), w);
      }
      const __m512 s = _mm512_mul_ps(rsc, _mm512_set1_ps(a->xm[m].d));
      store16(a->y + m * a->ldy, a->bias, n, n1, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(dot, corr)), s));
    }
  }
}

}  // namespace avx512
}  // namespace lb
