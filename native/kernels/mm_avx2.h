// AVX2 building blocks of the quantized matmuls (included only by *_avx2.cpp files).
//
// One 32-byte quad unit of a panel is one ymm of 8 int32 lanes, lane = row: vpmaddubsw of
// unsigned codes (u8) with 4 broadcast activation bytes (s8) gives 16 int16 pair sums, vpmaddwd
// with ones turns them into the 8 per-row int32 dot products. Unsigned 4-bit codes (<= 15) or
// 2-bit ternary codes (<= 2) times int8 activations (|x| <= 127) cannot saturate int16, so 8
// (4-bit) or more (2-bit) vpmaddubsw results are summed with vpaddw before one vpmaddwd: fewer
// multiply-port instructions per MAC than a plain int8 kernel.
#pragma once
#if !defined(__AVX2__) || !defined(__F16C__) || !defined(__FMA__)
#error "mm_avx2.h needs -mavx2 -mf16c -mfma"
#endif
#include <immintrin.h>

#include <cstring>

#include "kernel_types.h"
#include "mm_layout.h"

namespace lb {
namespace avx2 {

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}
inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m256 load_fp16x8(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

/// Software prefetch of every cache line of [p, p + bytes), kPrefetchAhead bytes ahead. GEMV
/// streams several panels at once; prefetching only one line per group (or none) left this
/// machine at 9-11 GB/s where every line ahead reaches 14-18 GB/s.
constexpr int kPrefetchAhead = 2048;
inline void prefetch_ahead(const uint8_t* p, size_t bytes) {
  for (size_t l = 0; l < bytes; l += 64) _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchAhead + l, _MM_HINT_T0);
}

/// Software prefetch of one sequential stream: every 64-byte line exactly once, kStreamAhead
/// bytes ahead of the read position (the w4a8 GEMV: its panels follow each other, so one
/// prefetcher runs through a thread's whole range). Against prefetch_ahead (every 64 bytes of
/// each block, 3 prefetches per 144-byte Q4 group: a third of them repeat a line) and 2 KiB:
/// +1.4-4% median paired speed in a same-process A/B on cold 4096x11008 weights (session 5,
/// docs/kernels.md).
constexpr int kStreamAhead = 2560;
struct StreamPrefetch {
  const char* next;
  explicit StreamPrefetch(const uint8_t* p)
      : next(reinterpret_cast<const char*>((reinterpret_cast<uintptr_t>(p) + kStreamAhead) & ~uintptr_t(63))) {}
  /// Prefetches the lines up to kStreamAhead bytes past `end` not yet prefetched.
  inline void upto(const uint8_t* end) {
    const char* lim = reinterpret_cast<const char*>(end) + kStreamAhead;
    for (; next < lim; next += 64) _mm_prefetch(next, _MM_HINT_T0);
  }
};

/// Stores the 8 lanes of `v` (+ bias) as outputs n .. n+7, only those below n1.
inline void store_rows(float* y, const float* bias, int64_t n, int64_t n1, __m256 v) {
  if (bias) {
    if (n + 8 <= n1) {
      v = _mm256_add_ps(v, _mm256_loadu_ps(bias + n));
    } else {
      float b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t j = n; j < n1; ++j) b[j - n] = bias[j];
      v = _mm256_add_ps(v, _mm256_loadu_ps(b));
    }
  }
  if (n + 8 <= n1) {
    _mm256_storeu_ps(y + n, v);
  } else {
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int64_t j = n; j < n1; ++j) y[j] = t[j - n];
  }
}

/// Unsigned-code formats: how one 32-byte chunk becomes quads of u8 codes, and how many
/// activation bytes (k) a chunk covers. Q4 / Q4A: low nibble = quad 2c, high = 2c+1.
/// T2: bits 2p..2p+1 = quad 4c+p.
struct Nib {
  static constexpr int kQuads = 2;  // quads per chunk
  static inline __m256i extract(__m256i v, int i) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    return _mm256_and_si256(i ? _mm256_srli_epi16(v, 4) : v, m4);
  }
};
struct Ter {
  static constexpr int kQuads = 4;
  static inline __m256i extract(__m256i v, int i) {
    const __m256i m2 = _mm256_set1_epi8(0x03);
    return _mm256_and_si256(i ? _mm256_srli_epi16(v, 2 * i) : v, m2);
  }
};

/// Offset folded per group: dot - off * s (Q4: 8, T2: 1); Q4A uses its minimums instead.
template <class U, int Off, bool Asym>
struct UFmt {
  using Unpack = U;
  static constexpr int kOff = Off;
  static constexpr bool kAsym = Asym;
};

/// Pins N accumulators to registers at this point: without it GCC reorders the int16 sums of a
/// tile into trees and spills them (a 4x16 tile then runs at less than half speed).
template <int N>
inline void keep(__m256i* v) {
  static_assert(N == 1 || N == 2 || N == 3 || N == 4 || N == 6 || N == 8 || N == 12, "keep<N>: add the case");
  if constexpr (N == 1) __asm__("" : "+x"(v[0]));
  if constexpr (N == 2) __asm__("" : "+x"(v[0]), "+x"(v[1]));
  if constexpr (N == 4) __asm__("" : "+x"(v[0]), "+x"(v[1]), "+x"(v[2]), "+x"(v[3]));
  if constexpr (N == 3) __asm__("" : "+x"(v[0]), "+x"(v[1]), "+x"(v[2]));
  if constexpr (N == 6) __asm__("" : "+x"(v[0]), "+x"(v[1]), "+x"(v[2]), "+x"(v[3]), "+x"(v[4]), "+x"(v[5]));
  if constexpr (N == 8)
    __asm__("" : "+x"(v[0]), "+x"(v[1]), "+x"(v[2]), "+x"(v[3]), "+x"(v[4]), "+x"(v[5]), "+x"(v[6]), "+x"(v[7]));
  if constexpr (N == 12)
    __asm__("" : "+x"(v[0]), "+x"(v[1]), "+x"(v[2]), "+x"(v[3]), "+x"(v[4]), "+x"(v[5]), "+x"(v[6]), "+x"(v[7]),
            "+x"(v[8]), "+x"(v[9]), "+x"(v[10]), "+x"(v[11]));
}

/// GEMV over NP panels starting at panel p0 for activation row m: acc[p] = 8 outputs each.
/// Per 32-k sub-block: 8 vpmaddubsw per panel summed in int16 (8 * 2 * 15 * 127 < 2^15), one
/// vpmaddwd; the activation broadcasts are shared by the NP panels. G (group size) is a template
/// parameter so everything inside a group unrolls. NP == 1 reads one stream, prefetched by `pf`
/// (carried from panel to panel); NP > 1 prefetches each panel's blocks.
template <class F, int NP, int G>
inline void ugemv_panels(const lb_mm_args* a, int64_t m, int64_t p0, __m256 acc[NP], StreamPrefetch& pf) {
  constexpr int kSubs = G / 32;
  constexpr int kQ = F::Unpack::kQuads;
  constexpr int kChunks = 8 / kQ;  // chunks per sub-block
  const int64_t ng = a->k / G;
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), G);
  const size_t pstride = size_t(ng) * bb;
  const int hb = layout::header_bytes(a->fmt);
  const int8_t* x = a->xq + m * a->kp;
  const lb_q8_meta* xm = a->xm + m * ng;
  const uint8_t* blk = layout::block(a->w, a->fmt, a->k, G, p0, 0);
  for (int p = 0; p < NP; ++p) acc[p] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t g = 0; g < ng; ++g, x += G, blk += bb) {
    if constexpr (NP == 1) pf.upto(blk + bb);
    else for (int p = 0; p < NP; ++p) prefetch_ahead(blk + p * pstride, bb);
    __m256i dot[NP];
    for (int sb = 0; sb < kSubs; ++sb) {
      __m256i s16[NP];
      for (int p = 0; p < NP; ++p) s16[p] = _mm256_setzero_si256();
      for (int ch = 0; ch < kChunks; ++ch) {
        const int8_t* xs = x + 32 * sb + 4 * kQ * ch;
        const uint8_t* c = blk + hb + 32 * (kChunks * sb + ch);
        __m256i v[NP];
        for (int p = 0; p < NP; ++p) v[p] = load32(c + p * pstride);
        for (int i = 0; i < kQ; ++i) {
          const __m256i bx = bcast4(xs + 4 * i);
          for (int p = 0; p < NP; ++p)
            s16[p] = _mm256_add_epi16(s16[p], _mm256_maddubs_epi16(F::Unpack::extract(v[p], i), bx));
        }
        keep<NP>(s16);
      }
      for (int p = 0; p < NP; ++p) {
        const __m256i d32 = _mm256_madd_epi16(s16[p], ones);
        dot[p] = sb ? _mm256_add_epi32(dot[p], d32) : d32;
      }
    }
    const __m256 dx = _mm256_set1_ps(xm[g].d);
    if (F::kAsym) {
      const __m256 sx = _mm256_set1_ps(float(xm[g].s));
      for (int p = 0; p < NP; ++p) {
        const uint8_t* h = blk + p * pstride;
        const __m256 t = _mm256_fmadd_ps(load_fp16x8(h), _mm256_cvtepi32_ps(dot[p]), _mm256_mul_ps(load_fp16x8(h + 16), sx));
        acc[p] = _mm256_fmadd_ps(t, dx, acc[p]);
      }
    } else {
      const __m256i off = _mm256_set1_epi32(F::kOff * xm[g].s);
      for (int p = 0; p < NP; ++p)
        acc[p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(dot[p], off)),
                                 _mm256_mul_ps(load_fp16x8(blk + p * pstride), dx), acc[p]);
    }
  }
}

/// GEMV: one panel (8 rows) per pass. A panel's groups are contiguous and panels follow each
/// other, so walking them in order reads the weight as one sequential stream (the former 4-panel
/// pass restarted 4 streams every 32 rows; docs/llm.md, docs/kernels.md). n0 is a panel boundary.
template <class F, int G>
void ugemv_g(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t m = m0; m < m1; ++m) {
    float* y = a->y + m * a->ldy;
    StreamPrefetch pf(layout::block(a->w, a->fmt, a->k, G, n0 / 8, 0));
    for (int64_t n = n0; n < n1; n += 8) {
      __m256 acc[1];
      ugemv_panels<F, 1, G>(a, m, n / 8, acc, pf);
      store_rows(y, a->bias, n, n1, acc[0]);
    }
  }
}

template <class F>
void ugemv(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  switch (a->group) {
    case 32: ugemv_g<F, 32>(a, m0, m1, n0, n1); break;
    case 64: ugemv_g<F, 64>(a, m0, m1, n0, n1); break;
    default: ugemv_g<F, 128>(a, m0, m1, n0, n1); break;
  }
}

/// GEMM register tile: MR activation rows x NP panels. The MR*NP int16 sums of a 32-k
/// sub-block live in registers (pinned by keep<>); per sub-block they become int32 (vpmaddwd),
/// kept in a small L1 array when a group has several sub-blocks; per group the code offset is
/// folded in int32 and one FMA per accumulator adds them, scaled by d_w * d_x, to float
/// accumulators in L1. (The float accumulators do not fit in registers next to the int16 sums.)
template <class F, int MR, int NP, int G>
inline void ugemm_tile(const lb_mm_args* a, int64_t m, int64_t p0, int mr, float* out /* [MR][NP*8] */) {
  constexpr int kSubs = G / 32;
  constexpr int kQ = F::Unpack::kQuads;
  constexpr int kChunks = 8 / kQ;
  constexpr int kAcc = MR * NP;
  const int64_t ng = a->k / G, kp = a->kp;
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), G);
  const int hb = layout::header_bytes(a->fmt);
  const uint8_t* blk = layout::block(a->w, a->fmt, a->k, G, p0, 0);
  const size_t pstride = size_t(ng) * bb;  // bytes from one panel to the next
  alignas(32) float facc[kAcc * 8];
  alignas(32) int32_t dacc[kAcc * 8] = {};  // int32 sums of the sub-blocks of a group (G > 32)
  for (int i = 0; i < kAcc * 8; ++i) facc[i] = 0.f;
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* x0 = a->xq + m * kp;  // rows m .. m+MR-1 (rows past m1 repeat row m, never stored)
  int64_t xoff[MR];
  for (int r = 0; r < MR; ++r) xoff[r] = (r < mr ? r : 0) * kp;
  for (int64_t g = 0; g < ng; ++g, blk += bb, x0 += G) {
    __m256i dot[kAcc];  // the group's int32 dot products
    for (int sb = 0; sb < kSubs; ++sb) {
      __m256i s16[kAcc];
      for (int i = 0; i < kAcc; ++i) s16[i] = _mm256_setzero_si256();
      const uint8_t* c = blk + hb + sb * 32 * kChunks;
      const int8_t* xs = x0 + 32 * sb;
#pragma GCC unroll 1
      for (int ch = 0; ch < kChunks; ++ch, c += 32, xs += 4 * kQ) {
        __m256i v[NP];
        for (int p = 0; p < NP; ++p) v[p] = load32(c + p * pstride);
        for (int i = 0; i < kQ; ++i) {
          __m256i q[NP];
          for (int p = 0; p < NP; ++p) q[p] = F::Unpack::extract(v[p], i);
          for (int r = 0; r < MR; ++r) {
            const __m256i bx = bcast4(xs + xoff[r] + 4 * i);
            for (int p = 0; p < NP; ++p) s16[r * NP + p] = _mm256_add_epi16(s16[r * NP + p], _mm256_maddubs_epi16(q[p], bx));
          }
          keep<kAcc>(s16);
        }
      }
      for (int i = 0; i < kAcc; ++i) {
        __m256i d32 = _mm256_madd_epi16(s16[i], ones);
        if (sb) d32 = _mm256_add_epi32(d32, _mm256_load_si256(reinterpret_cast<const __m256i*>(dacc + 8 * i)));
        if (sb + 1 < kSubs) _mm256_store_si256(reinterpret_cast<__m256i*>(dacc + 8 * i), d32);
        else dot[i] = d32;
      }
    }
    const lb_q8_meta* xm = a->xm + m * ng + g;
    for (int p = 0; p < NP; ++p) {
      const __m256 d = load_fp16x8(blk + p * pstride);
      for (int r = 0; r < MR; ++r) {
        const lb_q8_meta xmv = xm[xoff[r] / kp * ng];
        float* f = facc + 8 * (r * NP + p);
        __m256 acc = _mm256_load_ps(f);
        if (F::kAsym) {
          const __m256 mn = load_fp16x8(blk + p * pstride + 16);
          const __m256 t = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot[r * NP + p]), _mm256_mul_ps(mn, _mm256_set1_ps(float(xmv.s))));
          acc = _mm256_fmadd_ps(t, _mm256_set1_ps(xmv.d), acc);
        } else {
          const __m256i adj = _mm256_sub_epi32(dot[r * NP + p], _mm256_set1_epi32(F::kOff * xmv.s));
          acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(adj), _mm256_mul_ps(d, _mm256_set1_ps(xmv.d)), acc);
        }
        _mm256_store_ps(f, acc);
      }
    }
  }
  for (int i = 0; i < kAcc * 8; ++i) out[i] = facc[i];
}

template <class F, int MR, int NPMAX, int G>
void ugemm_g(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  alignas(32) float out[MR * 16];
  for (int64_t n = n0; n < n1; n += 8 * NPMAX) {
    const bool two = NPMAX == 2 && n + 8 < n1;
    const int np = two ? 2 : 1;
    for (int64_t m = m0; m < m1; m += MR) {
      const int mr = int(m1 - m < MR ? m1 - m : MR);
      if (two) ugemm_tile<F, MR, 2, G>(a, m, n / 8, mr, out);
      else ugemm_tile<F, MR, 1, G>(a, m, n / 8, mr, out);
      for (int r = 0; r < mr; ++r)
        for (int p = 0; p < np; ++p)
          store_rows(a->y + (m + r) * a->ldy, a->bias, n + 8 * p, n1, _mm256_loadu_ps(out + r * np * 8 + p * 8));
    }
  }
}

template <class F, int MR, int NPMAX>
void ugemm(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  switch (a->group) {
    case 32: ugemm_g<F, MR, NPMAX, 32>(a, m0, m1, n0, n1); break;
    case 64: ugemm_g<F, MR, NPMAX, 64>(a, m0, m1, n0, n1); break;
    default: ugemm_g<F, MR, NPMAX, 128>(a, m0, m1, n0, n1); break;
  }
}

}  // namespace avx2
}  // namespace lb
