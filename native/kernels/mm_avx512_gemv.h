// The AVX-512 VNNI GEMVs (M = 1, decode) of the w4a8 (Q4 / Q4A), t2a8 (T2), codebook (C4) and
// w8a8 (Q8) formats; included only by *_avx512vnni.cpp files (compiled with -mavx512vl too).
//
// 256-bit EVEX code (AVX-512VL + VNNI on ymm): one panel (8 rows) is one ymm of 8 int32 lanes,
// and one panel per pass, so a thread reads its range of the packed weight as ONE sequential
// stream. On Zen 4 a zmm op costs two ymm ops and two streams read slower than one (session 10,
// docs/kernels.md: the former two-panel zmm GEMVs of Q8 / C4 ran 1.15-1.5x slower than these on
// cold weights, a two-panel variant of this one 1.3-2x), so ymm with one stream it is.
// Group formats with unsigned codes (Q4 / Q4A / T2): per quad one vpand and one vpdpbusd with the
// 4 activation bytes broadcast; the codes are masked in place instead of shifted down: byte & mask
// = code << s (s = 4 for the high nibble, 2 i for ternary quad i), and the int32 sum of those times
// x is exactly 2^s times the dot, recovered by one arithmetic shift per group. The integer dots are
// the reference's and the float epilogues those of the AVX2 GEMVs (same operations in the same
// order), so the outputs are bitwise those of the AVX2 GEMVs (tested).
#pragma once
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__)
#error "mm_avx512_gemv.h needs -mavx512vnni -mavx512bw (and -mavx512vl)"
#endif
#include <immintrin.h>

#include <cstring>

#include "kernel_types.h"
#include "mm_layout.h"

namespace lb {
namespace avx512 {
namespace gemv {

/// Keeps `v` in a register here (GCC would otherwise fold its load into every user).
#if defined(SIMDE_VERSION_MAJOR)
#define LB_GEMV_IN_REG(v) (void)(v)
#else
#define LB_GEMV_IN_REG(v) __asm__("" : "+v"(v))
#endif

// No prefetch stream: on Zen 4 the hardware prefetchers read these single streams best.
// 4096 x 11008 cold, paired ratio to a plain read of the same bytes under SCHED_FIFO, 1 / 2 threads:
// w4a8-g32 on 2 MiB pages 0.94-0.96 / 0.98-0.99 without, 0.87 / 0.91-0.94 with lines prefetched
// into L2 8 KiB and L1 1 KiB ahead (4 KiB pages: 0.97 / 0.98 both ways); the AVX2 GEMVs' T0 stream
// 2.5 KiB ahead 0.83 / 0.88; ternary, codebook and int8 likewise (docs/kernels.md, session 10).
// The prefetch loops also cost ~3 of the ~13 cycles per w4a8-g32 group, which the 2-thread split
// (a core's share of ~60 GB/s) cannot spare.
// What the hardware stream does not do is cross a 4 KiB boundary: each page starts with demand
// misses, which a plain read overlaps (its reorder window spans ~8 KiB) and these kernels (the
// w4a8 one at ~37 uops per 144 bytes: ~1.2 KiB of window) wait for. So the Q4 / Q4A / T2 and Q8
// GEMVs touch the first two lines of the page kPagePrefetchAhead bytes ahead, once per page (one
// test per group), into L2. Session 11, 1 / 2 threads: w4a8-g32 on 4 KiB pages 0.955-0.994 vs
// 0.915-0.920 at 1 thread, on 2 MiB pages 0.946-0.959 vs 0.938-0.948; ternary on 4 KiB pages
// 0.94-0.96 vs 0.78-0.81, equal on 2 MiB; w8a8 on 4 KiB pages 1.01 / 1.01-1.03 vs 0.96-0.98 /
// 0.94-0.96, on 2 MiB 0.97-0.99 vs 0.96-0.97; a T0 hint instead read at 0.72. The prefetch may
// run past the weight's end: prefetches do not fault.
constexpr size_t kPagePrefetchAhead = 16384;
inline void prefetch_page_ahead(const uint8_t* blk, size_t group_bytes) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(blk) + kPagePrefetchAhead;
  if ((p & 4095) < group_bytes) {  // this group's step crossed into the page at p
    const char* pg = reinterpret_cast<const char*>(p & ~uintptr_t(4095));
    _mm_prefetch(pg, _MM_HINT_T1);
    _mm_prefetch(pg + 64, _MM_HINT_T1);
  }
}

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}
/// acc += a (u8) . the 4 int8 at p broadcast to every lane, the broadcast folded into the vpdpbusd
/// as an EVEX embedded broadcast (m32{1to8}): one uop per quad instead of a broadcast load and the
/// dot (GCC 12 does not fold _mm256_set1_epi32 of a load into it). Same result as
/// _mm256_dpbusd_epi32(acc, a, bcast4(p)). w4a8-g32 hot: 9.2-10.4 instead of 11.1-13.2 cycles per
/// group, t2a8-g128 26-27 instead of 29-30 (session 11, docs/kernels.md).
inline __m256i dpbusd_bcast4(__m256i acc, __m256i a, const int8_t* p) {
#if defined(SIMDE_VERSION_MAJOR)
  return _mm256_dpbusd_epi32(acc, a, bcast4(p));
#else
  typedef int32_t i32_alias __attribute__((may_alias));
  __asm__("vpdpbusd %2%{1to8%}, %1, %0" : "+v"(acc) : "v"(a), "m"(*reinterpret_cast<const i32_alias*>(p)));
  return acc;
#endif
}
inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m256 load_fp16x8(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

/// Stores the 8 lanes of `v` (+ bias) as outputs n .. n+7, only those below n1.
inline void store8(float* y, const float* bias, int64_t n, int64_t n1, __m256 v) {
  if (n + 8 <= n1) {
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + n));
    _mm256_storeu_ps(y + n, v);
    return;
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  for (int64_t j = n; j < n1; ++j) y[j] = bias ? t[j - n] + bias[j] : t[j - n];
}

/// Unsigned-code formats: quad i of a 32-byte chunk is `byte & (kBits << shift(i))`.
/// Q4 / Q4A: low nibble = quad 2c, high nibble = quad 2c+1. T2: bits 2i..2i+1 = quad 4c+i.
struct Nib {
  static constexpr int kQuads = 2;
  static constexpr int kBits = 0x0F;
  static constexpr int shift(int i) { return 4 * i; }
};
struct Ter {
  static constexpr int kQuads = 4;
  static constexpr int kBits = 0x03;
  static constexpr int shift(int i) { return 2 * i; }
};

/// Offset folded per group: dot - kOff * s (Q4: 8, T2: 1); kAsym (Q4A) uses the minimums instead.
template <class U, int Off, bool Asym>
struct UFmt {
  using Unpack = U;
  static constexpr int kOff = Off;
  static constexpr bool kAsym = Asym;
};

/// Long rows: where one panel's weight bytes plus the activation row (codes + metadata) pass this
/// many bytes, the activations are prefetched into L1 kXPrefetchAhead bytes ahead of their use.
/// The row is read again by every panel while the panel's weight streams through the 32 KiB L1
/// (K = 4096: 18 + 5 KiB per panel, K = 5632: 25 + 7 KiB): without the prefetch, the row's
/// lines evicted by the stream come back by demand, in the weight stream's way. Session 14, cold
/// weights, with / without alternating per call in one process (200-300 paired rounds, load 6-9),
/// time with / without: w4a8-g32 K = 4096 0.95-1.00, K = 5632 0.95-0.98, K = 11008 0.90 at 1
/// thread / 0.96 at 2, t2a8-g128 K = 11008 0.89 / 0.96; K = 2048 / 3072 (12 / 17 KiB) no change;
/// 8 groups ahead slower, 2 no gain. Decode's down_proj (K = 5632): 0.83-0.91 -> 0.92-0.94 of the
/// per-token probe at 1 thread (docs/llm.md).
constexpr size_t kXPrefetchFootprint = 20 * 1024;
constexpr int kXPrefetchAhead = 128;

/// One panel (8 outputs) over all groups. G is a template parameter so the chunks of a group
/// unroll; one int32 accumulator per quad position, reset per group (independent chains across
/// groups for the out-of-order core). PfX: prefetch the activations (long rows, above).
template <class F, int G, bool PfX>
inline __m256 ugemv_panel(const lb_mm_args* a, const int8_t* x, const lb_q8_meta* xm, const uint8_t* blk) {
  using U = typename F::Unpack;
  constexpr int kQ = U::kQuads;
  constexpr int kChunks = G / (4 * kQ);
  constexpr int kHb = F::kAsym ? 32 : 16;
  constexpr size_t kBB = kHb + G * (kQ == 2 ? 4 : 2);  // header + 8 rows x G codes
  const int64_t ng = a->k / G;
  __m256i mask[kQ];
  for (int i = 0; i < kQ; ++i) mask[i] = _mm256_set1_epi8(char(U::kBits << U::shift(i)));
  __m256 acc = _mm256_setzero_ps();
  for (int64_t g = 0; g < ng; ++g, x += G, blk += kBB) {
    prefetch_page_ahead(blk, kBB);
    if (PfX)
      for (int l = 0; l < G; l += 64) _mm_prefetch(reinterpret_cast<const char*>(x + kXPrefetchAhead + l), _MM_HINT_T0);
    __m256i dq[kQ];
    for (int i = 0; i < kQ; ++i) dq[i] = _mm256_setzero_si256();
    // The offset term starts the unshifted accumulator (instead of a vpsubd after the sums): one
    // vector op fewer per group, the same int32 (w4a8-g32 hot 2.85 -> 2.82 ns per group, llm12).
    if (!F::kAsym) dq[0] = _mm256_set1_epi32(-F::kOff * xm[g].s);
    for (int c = 0; c < kChunks; ++c) {
      __m256i v = load32(blk + kHb + 32 * c);
      LB_GEMV_IN_REG(v);  // one load per chunk, not one folded into each vpand
      for (int i = 0; i < kQ; ++i)
        dq[i] = dpbusd_bcast4(dq[i], _mm256_and_si256(v, mask[i]), x + 4 * (kQ * c + i));
    }
    __m256i d32 = dq[0];  // sum of code * x - kOff * s (exact: |dq[i]| <= 240 * 127 * G + 8 * 127 * G)
    for (int i = 1; i < kQ; ++i) d32 = _mm256_add_epi32(d32, _mm256_srai_epi32(dq[i], U::shift(i)));
    const __m256 dx = _mm256_set1_ps(xm[g].d);
    const __m256 d = load_fp16x8(blk);
    if (F::kAsym) {
      const __m256 t = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(d32), _mm256_mul_ps(load_fp16x8(blk + 16), _mm256_set1_ps(float(xm[g].s))));
      acc = _mm256_fmadd_ps(t, dx, acc);
    } else {
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d32), _mm256_mul_ps(d, dx), acc);
    }
  }
  return acc;
}

template <class F, int G, bool PfX>
void ugemv_rows(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t ng = a->k / G;
  for (int64_t m = m0; m < m1; ++m) {
    const int8_t* x = a->xq + m * a->kp;
    const lb_q8_meta* xm = a->xm + m * ng;
    float* y = a->y + m * a->ldy;
    for (int64_t n = n0; n < n1; n += 8)
      store8(y, a->bias, n, n1, ugemv_panel<F, G, PfX>(a, x, xm, layout::block(a->w, a->fmt, a->k, G, n / 8, 0)));
  }
}

template <class F, int G>
void ugemv_g(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  constexpr size_t kBB = (F::kAsym ? 32 : 16) + G * (F::Unpack::kQuads == 2 ? 4 : 2);
  const size_t footprint = size_t(a->k / G) * (kBB + G + sizeof(lb_q8_meta));  // one panel's weight + the row
  if (footprint > kXPrefetchFootprint) ugemv_rows<F, G, true>(a, m0, m1, n0, n1);
  else ugemv_rows<F, G, false>(a, m0, m1, n0, n1);
}

/// GEMV of the group formats with unsigned codes (Q4, Q4A, T2). n0 is a panel boundary.
template <class F>
void ugemv(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  switch (a->group) {
    case 32: ugemv_g<F, 32>(a, m0, m1, n0, n1); break;
    case 64: ugemv_g<F, 64>(a, m0, m1, n0, n1); break;
    default: ugemv_g<F, 128>(a, m0, m1, n0, n1); break;
  }
}

/// Codebook (C4) GEMV, one panel per pass: vpshufb turns the nibbles into table values + 128 (u8,
/// the 16-byte table in both 128-bit lanes), vpdpbusd multiplies them with the int8 activations;
/// sum (w + 128) x = dot + 128 * s (s: the activation block's code sum), removed per group. The
/// epilogue is the AVX2 C4 GEMV's: acc += float(dot) * (d * dx).
template <int G>
void cgemv_g(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  constexpr size_t kBB = 16 + 4 * G;
  const int64_t ng = a->k / G;
  int8_t lut2[32];  // table + 128, in both 128-bit lanes
  for (int i = 0; i < 32; ++i) lut2[i] = int8_t(uint8_t(a->lut[i % 16]) ^ 0x80);
  const __m256i lut = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut2));
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t m = m0; m < m1; ++m) {
    const int8_t* x0 = a->xq + m * a->kp;
    const lb_q8_meta* xm = a->xm + m * ng;
    float* y = a->y + m * a->ldy;
    for (int64_t n = n0; n < n1; n += 8) {
      const uint8_t* blk = layout::block(a->w, a->fmt, a->k, G, n / 8, 0);
      const int8_t* x = x0;
      __m256 acc = _mm256_setzero_ps();
      for (int64_t g = 0; g < ng; ++g, x += G, blk += kBB) {
        __m256i d0 = _mm256_setzero_si256(), d1 = d0;
        for (int c = 0; c < G / 8; ++c) {
          const __m256i v = load32(blk + 16 + 32 * c);
          const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m4));
          const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
          d0 = dpbusd_bcast4(d0, lo, x + 8 * c);
          d1 = dpbusd_bcast4(d1, hi, x + 8 * c + 4);
        }
        const __m256i dot = _mm256_sub_epi32(_mm256_add_epi32(d0, d1), _mm256_set1_epi32(128 * xm[g].s));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(load_fp16x8(blk), _mm256_set1_ps(xm[g].d)), acc);
      }
      store8(y, a->bias, n, n1, acc);
    }
  }
}

inline void cgemv(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  switch (a->group) {
    case 32: cgemv_g<32>(a, m0, m1, n0, n1); break;
    case 64: cgemv_g<64>(a, m0, m1, n0, n1); break;
    default: cgemv_g<128>(a, m0, m1, n0, n1); break;
  }
}

/// Q8 (w8a8) GEMV, one panel per pass: dpbusd of the activations flipped to u8 (x + 128) with the
/// int8 weights, four accumulators (4 quads = 128 bytes per step; kp is a multiple of 32), minus
/// (128 + zero) * row_sum. Epilogue as before: float(dot - corr) * (row_scale * d) + bias.
inline void gemv_q8(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t kp = a->kp;
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  for (int64_t m = m0; m < m1; ++m) {
    const int8_t* x = a->xq + m * kp;
    const __m256i zc = _mm256_set1_epi32(128 + a->act_zero);
    const __m256 dx = _mm256_set1_ps(a->xm[m].d);
    for (int64_t n = n0; n < n1; n += 8) {
      const uint8_t* w = a->w + (n / 8) * 8 * kp;
      __m256i d0 = _mm256_setzero_si256(), d1 = d0, d2 = d0, d3 = d0;
      for (int64_t k = 0; k < kp; k += 16, w += 128) {
        prefetch_page_ahead(w, 128);
        d0 = _mm256_dpbusd_epi32(d0, _mm256_xor_si256(bcast4(x + k), flip), load32(w));
        d1 = _mm256_dpbusd_epi32(d1, _mm256_xor_si256(bcast4(x + k + 4), flip), load32(w + 32));
        d2 = _mm256_dpbusd_epi32(d2, _mm256_xor_si256(bcast4(x + k + 8), flip), load32(w + 64));
        d3 = _mm256_dpbusd_epi32(d3, _mm256_xor_si256(bcast4(x + k + 12), flip), load32(w + 96));
      }
      if (kp % 16) {  // kp is a multiple of 32 by the Q8 layout; kept exact for any multiple of 4
        for (int64_t k = kp / 16 * 16; k < kp; k += 4, w += 32)
          d0 = _mm256_dpbusd_epi32(d0, _mm256_xor_si256(bcast4(x + k), flip), load32(w));
      }
      const __m256i dot = _mm256_add_epi32(_mm256_add_epi32(d0, d1), _mm256_add_epi32(d2, d3));
      const __m256i rs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->row_sum + n));
      const __m256i corr = _mm256_mullo_epi32(rs, zc);
      const __m256 s = _mm256_mul_ps(_mm256_loadu_ps(a->row_scale + n), dx);
      store8(a->y + m * a->ldy, a->bias, n, n1, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(dot, corr)), s));
    }
  }
}

}  // namespace gemv
}  // namespace avx512
}  // namespace lb
