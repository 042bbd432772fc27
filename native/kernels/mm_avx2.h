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
#include <type_traits>

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

/// GEMM (w4a8 Q4 / Q4A, t2a8 T2) through unpacked int8 panels. Per pair of panels and k block
/// (kUnpK), the codes are unpacked once into signed int8 quads (u - S; S = 8 for nibbles, 1 for
/// ternary) that every row tile of the call reuses, and the activations are read as u8 (x + 128:
/// lb_mm_args::xu, flipped once per call by qlinear, or per tile from xq), so a product is one
/// vpmaddubsw (u8 broadcast x s8 weights) and one vpaddw: no unpacking inside the row tiles
/// (the former 4 x 2 tiles spent 3 ops per quad on it). Register tile 6 rows x 2 panels (asm).
/// Exactness: the u8 x s8 pair sums are <= 2 * 255 * 8 = 4080 and an int16 lane holds 16 k per 32
/// (Q4; 64 per 128 for T2), so the wrapping int16 adds end within 16 * 255 * 8 < 2^15. Per group,
/// sum_k (x + 128)(u - S) = sum_k x u - S * xs + 128 * sum_k (u - S): the reference's integer
/// (dot - S * xs for Q4 / T2) is the tile's sum minus 128 * sum_k (u - S), a per-output term
/// computed at unpack time (xs: the activation block's code sum, lb_q8_meta::s, as the quantizer
/// writes it). The float epilogue is the former tiles' (same operations in the same order), so
/// the outputs are bitwise those of the former GEMM.
template <class U>
struct UnpSub;
template <>
struct UnpSub<Nib> {
  static constexpr int kS = 8;      // codes 0..15 -> -8..7
  static constexpr int kSubK = 32;  // k per int16 sum: 16 * 255 * 8 < 2^15
};
template <>
struct UnpSub<Ter> {
  static constexpr int kS = 1;       // codes 0..2 -> -1..1
  static constexpr int kSubK = 128;  // 64 * 255 < 2^15
};

/// k per unpacked block: W holds 2 panels x 8 rows x 2048 codes (32 KiB, in L2 with the activation
/// rows). Longer blocks run faster (each tile row is a longer stream for the prefetchers): 128 x
/// 4096 x 1536 on this VM, k blocks of 1024 / 2048 / 4096: 1.08x / 1.11x / 1.13x the former tiles.
constexpr int kUnpK = 2048;

/// Unpacks panels p0 .. p0+NP-1, groups g0 .. g0+ngb-1 into W (per panel, kWs bytes apart, the
/// quads' 32 signed codes in order),
/// corr (128 * sum of the signed codes per output and group), d (scales) and mn (Q4A minimums).
template <class F, int NP, int G, int kWs>
inline void unp_panels(const lb_mm_args* a, int64_t p0, int64_t g0, int ngb, int8_t* W, __m256i* corr, __m256* d,
                       __m256* mn) {
  constexpr int kQ = F::Unpack::kQuads;
  constexpr int kChunks = G / (4 * kQ);
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), G);
  const int hb = layout::header_bytes(a->fmt);
  const size_t pstride = size_t(a->k / G) * bb;
  const __m256i s8 = _mm256_set1_epi8(UnpSub<typename F::Unpack>::kS);
  const __m256i one8 = _mm256_set1_epi8(1);
  const __m256i c128 = _mm256_set1_epi16(128);
  const uint8_t* blk0 = layout::block(a->w, a->fmt, a->k, G, p0, g0);
  for (int gi = 0; gi < ngb; ++gi) {
    for (int p = 0; p < NP; ++p) {
      const uint8_t* blk = blk0 + p * pstride + size_t(gi) * bb;
      d[gi * NP + p] = load_fp16x8(blk);
      if (F::kAsym) mn[gi * NP + p] = load_fp16x8(blk + 16);
      __m256i s = _mm256_setzero_si256();
      int8_t* wq = W + size_t(p) * kWs + size_t(gi) * (G / 4) * 32;
      for (int ch = 0; ch < kChunks; ++ch) {
        const __m256i v = load32(blk + hb + 32 * ch);
        for (int i = 0; i < kQ; ++i) {
          const __m256i q = _mm256_sub_epi8(F::Unpack::extract(v, i), s8);
          _mm256_store_si256(reinterpret_cast<__m256i*>(wq + (ch * kQ + i) * 32), q);
          s = _mm256_add_epi16(s, _mm256_maddubs_epi16(one8, q));
        }
      }
      corr[gi * NP + p] = _mm256_madd_epi16(s, c128);
    }
  }
}

// One activation row (XOFF bytes past x0) of the 6 x 2 tile for one quad: a broadcast, 2
// products summed in int16. ymm12/13: the quad's weights of the 2 panels, ymm14/15 scratch.
#define LB_UNP_ROW(XR, A0, A1)                                 \
  "vpbroadcastd (%[" XR "],%[k]), %%ymm14\n\t"                 \
  "vpmaddubsw %%ymm12, %%ymm14, %%ymm15\n\t"                   \
  "vpaddw %%ymm15, %[" A0 "], %[" A0 "]\n\t"                   \
  "vpmaddubsw %%ymm13, %%ymm14, %%ymm14\n\t"                   \
  "vpaddw %%ymm14, %[" A1 "], %[" A1 "]\n\t"

/// s16[r * NP + p] = int16 sums of u8 rows xr[r][k0 .. k1) x panel p of W (panels kWs bytes
/// apart). The 6 x 2 tile is asm: its 12 sums, 2 weights, a broadcast and
/// a product take all 16 ymm registers, which GCC does not manage without spills.
template <int MR, int NP, int kWs>
__attribute__((always_inline)) inline void unp_sums(const int8_t* W, const uint8_t* const* xr, int64_t k0, int64_t k1,
                                                    __m256i* s16) {
  if constexpr (MR == 6 && NP == 2) {
    __m256i a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
    int64_t k = k0;
    // The whole k loop in one statement: 12 "+x" sums would exceed asm's 30 operands.
    __asm__("vpxor %[a0], %[a0], %[a0]\n\t vpxor %[a1], %[a1], %[a1]\n\t vpxor %[a2], %[a2], %[a2]\n\t"
            "vpxor %[a3], %[a3], %[a3]\n\t vpxor %[a4], %[a4], %[a4]\n\t vpxor %[a5], %[a5], %[a5]\n\t"
            "vpxor %[a6], %[a6], %[a6]\n\t vpxor %[a7], %[a7], %[a7]\n\t vpxor %[a8], %[a8], %[a8]\n\t"
            "vpxor %[a9], %[a9], %[a9]\n\t vpxor %[a10], %[a10], %[a10]\n\t vpxor %[a11], %[a11], %[a11]\n\t"
            "1:\n\t"
            "vmovdqa (%[w0],%[k],8), %%ymm12\n\t"
            "vmovdqa %c[ws](%[w0],%[k],8), %%ymm13\n\t"
            LB_UNP_ROW("x0", "a0", "a1") LB_UNP_ROW("x1", "a2", "a3") LB_UNP_ROW("x2", "a4", "a5")
            LB_UNP_ROW("x3", "a6", "a7") LB_UNP_ROW("x4", "a8", "a9") LB_UNP_ROW("x5", "a10", "a11")
            "add $4, %[k]\n\t"
            "cmp %[k1], %[k]\n\t"
            "jl 1b\n\t"
            : [a0] "=&x"(a0), [a1] "=&x"(a1), [a2] "=&x"(a2), [a3] "=&x"(a3), [a4] "=&x"(a4), [a5] "=&x"(a5),
              [a6] "=&x"(a6), [a7] "=&x"(a7), [a8] "=&x"(a8), [a9] "=&x"(a9), [a10] "=&x"(a10), [a11] "=&x"(a11),
              [k] "+r"(k)
            : [x0] "r"(xr[0]), [x1] "r"(xr[1]), [x2] "r"(xr[2]), [x3] "r"(xr[3]), [x4] "r"(xr[4]), [x5] "r"(xr[5]),
              [w0] "r"(W), [k1] "r"(k1), [ws] "i"(kWs)
            : "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory");
    s16[0] = a0, s16[1] = a1, s16[2] = a2, s16[3] = a3, s16[4] = a4, s16[5] = a5;
    s16[6] = a6, s16[7] = a7, s16[8] = a8, s16[9] = a9, s16[10] = a10, s16[11] = a11;
  } else {
    constexpr int kAcc = MR * NP;
    for (int i = 0; i < kAcc; ++i) s16[i] = _mm256_setzero_si256();
    for (int64_t k = k0; k < k1; k += 4) {
      __m256i v[NP];
      for (int p = 0; p < NP; ++p) v[p] = _mm256_load_si256(reinterpret_cast<const __m256i*>(W + p * kWs + 8 * k));
      for (int r = 0; r < MR; ++r) {
        const __m256i bx = bcast4(reinterpret_cast<const int8_t*>(xr[r]) + k);
        for (int p = 0; p < NP; ++p) s16[r * NP + p] = _mm256_add_epi16(s16[r * NP + p], _mm256_maddubs_epi16(bx, v[p]));
      }
      keep<kAcc>(s16);
    }
  }
}
#undef LB_UNP_ROW

/// Row tile: MR rows (xr: u8 activations at the block's first k) x NP panels over ngb groups of
/// the unpacked block. Float sums of row r, panel p at f[r] + 8p (kept in an L1 array during the
/// block), one FMA per group; `first`: the block starts the sums at 0.
template <class F, int MR, int NP, int G, int kWs>
inline void unp_tile(const uint8_t* const* xr, const lb_q8_meta* const* xm, const int8_t* W, const __m256i* corr,
                     const __m256* d, const __m256* mn, int ngb, float* const* f, bool first) {
  constexpr int kAcc = MR * NP;
  constexpr int kSubK = G < UnpSub<typename F::Unpack>::kSubK ? G : UnpSub<typename F::Unpack>::kSubK;
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(32) float fl[kAcc * 8];  // the tile's sums over the block, in L1
  for (int r = 0; r < MR; ++r)
    for (int p = 0; p < NP; ++p)
      _mm256_store_ps(fl + 8 * (r * NP + p), first ? _mm256_setzero_ps() : _mm256_loadu_ps(f[r] + 8 * p));
  for (int gi = 0; gi < ngb; ++gi) {
    __m256i dot[kAcc];
    for (int sb = 0; sb < G / kSubK; ++sb) {
      __m256i s16[kAcc];
      const int64_t k0 = int64_t(gi) * G + sb * kSubK;
      unp_sums<MR, NP, kWs>(W, xr, k0, k0 + kSubK, s16);
      for (int i = 0; i < kAcc; ++i) {
        const __m256i d32 = _mm256_madd_epi16(s16[i], ones);
        dot[i] = sb ? _mm256_add_epi32(dot[i], d32) : d32;
      }
    }
    for (int p = 0; p < NP; ++p) {
      const __m256 dp = d[gi * NP + p];
      const __m256i cp = corr[gi * NP + p];
      for (int r = 0; r < MR; ++r) {
        float* fr = fl + 8 * (r * NP + p);
        const lb_q8_meta& xmv = xm[r][gi];
        __m256 acc = _mm256_load_ps(fr);
        const __m256i adj = _mm256_sub_epi32(dot[r * NP + p], cp);  // dot - S * xs
        if (F::kAsym) {
          const __m256i dt = _mm256_add_epi32(adj, _mm256_set1_epi32(UnpSub<typename F::Unpack>::kS * xmv.s));
          const __m256 t = _mm256_fmadd_ps(dp, _mm256_cvtepi32_ps(dt), _mm256_mul_ps(mn[gi * NP + p], _mm256_set1_ps(float(xmv.s))));
          acc = _mm256_fmadd_ps(t, _mm256_broadcast_ss(&xmv.d), acc);
        } else {
          acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(adj), _mm256_mul_ps(dp, _mm256_broadcast_ss(&xmv.d)), acc);
        }
        _mm256_store_ps(fr, acc);
      }
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int p = 0; p < NP; ++p) _mm256_storeu_ps(f[r] + 8 * p, _mm256_load_ps(fl + 8 * (r * NP + p)));
}

/// Row tile of up to MR rows from m (rows past me repeat row m; their sums go to `dummy`): u8
/// rows from xu (row stride xs), or flipped from xq into xflip, then unp_tile. Sums of row i at
/// fb + (i - mc) * 16.
template <class F, int MR, int NP, int G, int kWs, int kXs>
inline void unp_rows(const lb_mm_args* a, const uint8_t* xu, int64_t xs, int64_t mc, int64_t m, int64_t me, int64_t g0,
                     int ngb, const int8_t* W, const __m256i* corr, const __m256* d, const __m256* mn, uint8_t* xflip,
                     float* fb, float* dummy, bool first) {
  const int64_t ng = a->k / G;
  const uint8_t* xr[MR];
  const lb_q8_meta* xmr[MR];
  float* f[MR];
  for (int r = 0; r < MR; ++r) {
    const bool real = m + r < me;
    const int64_t row = real ? m + r : m;
    xmr[r] = a->xm + row * ng + g0;
    f[r] = real ? fb + (row - mc) * 16 : dummy;
    if (xu) {
      xr[r] = xu + row * xs + g0 * G;
    } else {
      const int8_t* xq = a->xq + row * a->kp + g0 * G;
      uint8_t* u = xflip + r * kXs;
      const __m256i f80 = _mm256_set1_epi8(char(0x80));
      for (int j = 0; j < ngb * G; j += 32)
        _mm256_store_si256(reinterpret_cast<__m256i*>(u + j), _mm256_xor_si256(load32(reinterpret_cast<const uint8_t*>(xq + j)), f80));
      xr[r] = u;
    }
  }
  unp_tile<F, MR, NP, G, kWs>(xr, xmr, W, corr, d, mn, ngb, f, first);
}

/// GEMM driver: per pair of panels, per chunk of up to kMC rows, per k block of kUnpK: the codes
/// are unpacked into W, then 6 x 2 row tiles (the last rows: 4- or 2-row tiles) sweep the chunk;
/// float sums in facc until the chunk is stored (with the bias, through store_rows). xu rows are
/// ldu bytes apart (qlinear pads kp by 64: at kp = 4096 the 6 broadcast streams of a tile fell
/// into one L1 set, 1.04x -> 1.13x the former tiles on 128 x 4096 x 1536).
template <class F, int G>
void ugemm_g(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  static_assert(F::kAsym || F::kOff == UnpSub<typename F::Unpack>::kS, "the unpack offset is the format's offset");
  constexpr int kMC = 132;
  constexpr int kGB = kUnpK >= G ? kUnpK / G : 1;  // groups per k block
  constexpr int kQB = kGB * G / 4;                 // quads per panel in W
  constexpr int kWs = kQB * 32 + 64;               // bytes from one panel to the next in W
  constexpr int kXs = kQB * 4 + 64;                // bytes from one row to the next in xflip
  const int64_t ng = a->k / G;
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), G);
  const uint8_t* xu = a->xu;
  const int64_t xs = a->ldu ? a->ldu : a->kp;
  alignas(32) int8_t W[2 * kWs];
  __m256i corr[kGB * 2];
  __m256 d[kGB * 2], mn[kGB * 2];
  alignas(32) uint8_t xflip[6 * kXs];
  alignas(32) float facc[kMC * 16];
  alignas(32) float dummy[16] = {};
  for (int64_t n = n0; n < n1; n += 16) {
    auto pair = [&](auto np_c) {
      constexpr int NP = decltype(np_c)::value;
      for (int64_t mc = m0; mc < m1; mc += kMC) {
        const int64_t me = m1 - mc < kMC ? m1 : mc + kMC;
        for (int64_t g0 = 0; g0 < ng; g0 += kGB) {
          const int ngb = int(ng - g0 < kGB ? ng - g0 : kGB);
          const bool first = g0 == 0;
          unp_panels<F, NP, G, kWs>(a, n / 8, g0, ngb, W, corr, d, mn);
          // The codes of the next block (this pair's next k block, else the next pair's first) go
          // to L2 while the row tiles run, a slice per tile: the unpack would otherwise wait on
          // memory with nothing to overlap (few row tiles per block at small M).
          const uint8_t* pfp[2] = {nullptr, nullptr};
          size_t pfb = 0;
          if (g0 + kGB < ng) {
            for (int p = 0; p < NP; ++p) pfp[p] = layout::block(a->w, a->fmt, a->k, G, n / 8 + p, g0 + kGB);
            pfb = size_t(ng - g0 - kGB < kGB ? ng - g0 - kGB : kGB) * bb;
          } else if (mc + kMC >= m1 && n + 16 < n1) {
            pfp[0] = layout::block(a->w, a->fmt, a->k, G, n / 8 + 2, 0);
            if (n + 24 < n1) pfp[1] = layout::block(a->w, a->fmt, a->k, G, n / 8 + 3, 0);
            pfb = size_t(ng < kGB ? ng : kGB) * bb;
          }
          const int64_t tiles = (me - mc + 5) / 6;
          int64_t t = 0;
          size_t done = 0;
          auto prefetch = [&](bool all) {
            const size_t upto = all ? pfb : pfb * size_t(++t) / size_t(tiles);
            for (; done < upto; done += 64)
              for (int p = 0; p < 2; ++p)
                if (pfp[p]) _mm_prefetch(reinterpret_cast<const char*>(pfp[p] + done), _MM_HINT_T1);
          };
          int64_t m = mc;
          for (; m + 6 <= me; m += 6) {
            unp_rows<F, 6, NP, G, kWs, kXs>(a, xu, xs, mc, m, me, g0, ngb, W, corr, d, mn, xflip, facc, dummy, first);
            prefetch(false);
          }
          for (; m < me; m += 4) {
            if (me - m > 2) unp_rows<F, 4, NP, G, kWs, kXs>(a, xu, xs, mc, m, me, g0, ngb, W, corr, d, mn, xflip, facc, dummy, first);
            else unp_rows<F, 2, NP, G, kWs, kXs>(a, xu, xs, mc, m, me, g0, ngb, W, corr, d, mn, xflip, facc, dummy, first);
          }
          prefetch(true);
        }
        for (int64_t m = mc; m < me; ++m)
          for (int p = 0; p < NP; ++p)
            store_rows(a->y + m * a->ldy, a->bias, n + 8 * p, n1, _mm256_load_ps(facc + (m - mc) * 16 + 8 * p));
      }
    };
    if (n + 8 < n1) pair(std::integral_constant<int, 2>());
    else pair(std::integral_constant<int, 1>());
  }
}

template <class F>
void ugemm(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  switch (a->group) {
    case 32: ugemm_g<F, 32>(a, m0, m1, n0, n1); break;
    case 64: ugemm_g<F, 64>(a, m0, m1, n0, n1); break;
    default: ugemm_g<F, 128>(a, m0, m1, n0, n1); break;
  }
}

}  // namespace avx2
}  // namespace lb
