// w8a8 GEMM for 7-bit Q8 weights on AVX2 (family gemm_q7): every weight code lies in [-64, 64]
// (lowbit_blocks.h, LB_Q8_W7_MAX), so the activations can enter vpmaddubsw as unsigned bytes
// u = x + 128 in [0, 255] and no int16 pair sum can saturate: |u0*w0 + u1*w1| <= 2 * 255 * 64 =
// 32640 < 32767. The int32 dot is exact: sum_k u*w = dot + 128 * row_sum, and the stored row
// sums fold the offset (and a static zero point) back out in the epilogue.
//
// Per quad (4 k) and per (row, panel): vpmaddubsw (32 multiply-adds), vpmaddwd by ones (pairs ->
// int32, one lane per output row), vpaddd: the instruction mix of ONNX Runtime's u8s8 kernel and
// of lowbit's int8 peak microbenchmark, without widening either operand (the 8-bit kernel,
// mm_q8_avx2.cpp, spends vpmovsxbw on both). The register tile is 4 rows x 3 panels (24 outputs,
// 12 accumulators); each weight is a memory operand of its 4 vpmaddubsw (written in asm: GCC
// hoists the 3 weight loads into registers and spills accumulators), each broadcast serves 3 panels.
//
// Two ways to the u8 activations:
// * direct (a->xu set: qlinear flips xq once per call, xu = xq ^ 0x80): 4 x 3 tiles read the rows
//   straight from xu over all of K; the sums stay in registers and are finished at once. A block
//   of panels (about kL2Bytes of codes) stays in L2 while every row tile sweeps it. Taken whenever
//   xu is set, whatever the shape. The last 3 rows of a range run the same asm without its 4th row.
// * copy (a->xu null: callers that pass only xq): per row tile, kKC k at a time,
//   the rows are flipped into a small L1 buffer and 4 x 2 tiles (2 panels: 3 measured 7% slower
//   here) run on it; sums are kept in memory between K chunks (one chunk: finished at once). The
//   copy runs once per row tile and L2 block: N / 48 passes over the activations at K = 4096,
//   5-15% of the time at 4096-wide shapes (docs/kernels.md, session 6).
// Integer sums are exact in any order, so neither blocking changes a bit; the quads past
// round_up(k, 4) hold zero codes and are not visited.
#if !defined(__AVX2__)
#error "mm_q7_avx2.cpp must be compiled with -mavx2"
#endif
#include "mm_avx2.h"

namespace {
using namespace lb::avx2;

constexpr int kMR = 4;                    // activation rows per register tile
constexpr int kNP = 3;                    // panels per register tile (direct path)
constexpr int kNPC = 2;                   // panels per register tile (copy path: 3 measured 7% slower)
constexpr int64_t kKC = 1024;             // k per L1 chunk of activations (copy path)
constexpr int64_t kL2Bytes = 192 * 1024;  // codes per L2 block of panels
constexpr int kMaxBlock = 30;             // panels per L2 block, at most (a multiple of kNP and kNPC)

inline __m256i bcast_u4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// One activation row of the 4 x 3 tile for one quad: broadcast, 3 products into 3 accumulators.
#define LB_Q7_ROW(XR, A0, A1, A2)                  \
  "vpbroadcastd (%[" XR "],%[k]), %[t0]\n\t"       \
  "vpmaddubsw (%[w0],%[k],8), %[t0], %[t1]\n\t"    \
  "vpmaddwd %[one], %[t1], %[t1]\n\t"              \
  "vpaddd %[t1], %[" A0 "], %[" A0 "]\n\t"         \
  "vpmaddubsw (%[w1],%[k],8), %[t0], %[t1]\n\t"    \
  "vpmaddwd %[one], %[t1], %[t1]\n\t"              \
  "vpaddd %[t1], %[" A1 "], %[" A1 "]\n\t"         \
  "vpmaddubsw (%[w2],%[k],8), %[t0], %[t1]\n\t"    \
  "vpmaddwd %[one], %[t1], %[t1]\n\t"              \
  "vpaddd %[t1], %[" A2 "], %[" A2 "]\n\t"

/// acc[r * NP + p] += u8 rows xr[r][0..kc) . panel p (NP adjacent panels from wq, pstride bytes
/// apart, wq at the chunk's first quad), kc a multiple of 4.
template <int MR, int NP>
__attribute__((always_inline)) inline void q7_dot(const uint8_t* wq, int64_t pstride, const uint8_t* const* xr, int64_t kc, __m256i* acc) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (MR == 4 && NP == 3) {
    const uint8_t *w0 = wq, *w1 = wq + pstride, *w2 = wq + 2 * pstride;
    const uint8_t *x0 = xr[0], *x1 = xr[1], *x2 = xr[2], *x3 = xr[3];
    __m256i a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], a4 = acc[4], a5 = acc[5], a6 = acc[6], a7 = acc[7],
            a8 = acc[8], a9 = acc[9], a10 = acc[10], a11 = acc[11], t0, t1;
    for (int64_t k = 0; k < kc; k += 4) {  // two statements: one would exceed asm's 30 operands
      __asm__(LB_Q7_ROW("x0", "a0", "a1", "a2") LB_Q7_ROW("x1", "a3", "a4", "a5")
              : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4), [a5] "+x"(a5),
                [t0] "=&x"(t0), [t1] "=&x"(t1)
              : [x0] "r"(x0), [x1] "r"(x1), [w0] "r"(w0), [w1] "r"(w1), [w2] "r"(w2), [k] "r"(k), [one] "x"(ones)
              : "memory");
      __asm__(LB_Q7_ROW("x2", "a6", "a7", "a8") LB_Q7_ROW("x3", "a9", "a10", "a11")
              : [a6] "+x"(a6), [a7] "+x"(a7), [a8] "+x"(a8), [a9] "+x"(a9), [a10] "+x"(a10), [a11] "+x"(a11),
                [t0] "=&x"(t0), [t1] "=&x"(t1)
              : [x2] "r"(x2), [x3] "r"(x3), [w0] "r"(w0), [w1] "r"(w1), [w2] "r"(w2), [k] "r"(k), [one] "x"(ones)
              : "memory");
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3, acc[4] = a4, acc[5] = a5;
    acc[6] = a6, acc[7] = a7, acc[8] = a8, acc[9] = a9, acc[10] = a10, acc[11] = a11;
  } else if constexpr (MR == 3 && NP == 3) {  // the 4 x 3 loop without its last row
    const uint8_t *w0 = wq, *w1 = wq + pstride, *w2 = wq + 2 * pstride;
    const uint8_t *x0 = xr[0], *x1 = xr[1], *x2 = xr[2];
    __m256i a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], a4 = acc[4], a5 = acc[5], a6 = acc[6], a7 = acc[7],
            a8 = acc[8], t0, t1;
    for (int64_t k = 0; k < kc; k += 4) {
      __asm__(LB_Q7_ROW("x0", "a0", "a1", "a2") LB_Q7_ROW("x1", "a3", "a4", "a5")
              : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4), [a5] "+x"(a5),
                [t0] "=&x"(t0), [t1] "=&x"(t1)
              : [x0] "r"(x0), [x1] "r"(x1), [w0] "r"(w0), [w1] "r"(w1), [w2] "r"(w2), [k] "r"(k), [one] "x"(ones)
              : "memory");
      __asm__(LB_Q7_ROW("x2", "a6", "a7", "a8")
              : [a6] "+x"(a6), [a7] "+x"(a7), [a8] "+x"(a8), [t0] "=&x"(t0), [t1] "=&x"(t1)
              : [x2] "r"(x2), [w0] "r"(w0), [w1] "r"(w1), [w2] "r"(w2), [k] "r"(k), [one] "x"(ones)
              : "memory");
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3, acc[4] = a4, acc[5] = a5;
    acc[6] = a6, acc[7] = a7, acc[8] = a8;
  } else {  // the last rows (2 or 1) and the last panels (2 or 1) of a range
    for (int64_t k = 0; k < kc; k += 4) {
      __m256i w[NP];
      for (int p = 0; p < NP; ++p) w[p] = load32(wq + p * pstride + 8 * k);
      for (int r = 0; r < MR; ++r) {
        const __m256i b = bcast_u4(xr[r] + k);
        for (int p = 0; p < NP; ++p)
          acc[r * NP + p] = _mm256_add_epi32(acc[r * NP + p], _mm256_madd_epi16(_mm256_maddubs_epi16(b, w[p]), ones));
      }
      keep<MR * NP>(acc);
    }
  }
}
#undef LB_Q7_ROW

/// The same, accumulating into int32 sums kept in memory between K chunks (copy path).
template <int MR, int NP>
inline void q7_micro(const uint8_t* wq, int64_t pstride, const uint8_t* const* xr, int64_t kc, int32_t* acc_mem) {
  __m256i acc[MR * NP];
  for (int i = 0; i < MR * NP; ++i) acc[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(acc_mem) + i);
  q7_dot<MR, NP>(wq, pstride, xr, kc, acc);
  for (int i = 0; i < MR * NP; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(acc_mem) + i, acc[i]);
}

/// Epilogue of 8 outputs (panel at column n) of row m: (dot - (128 + zero) * row_sum) * dx * row_scale + bias.
inline void q7_finish(const lb_mm_args* a, int64_t m, int64_t n, int64_t n1, __m256i dot, __m256i off) {
  const __m256i rs = _mm256_mullo_epi32(off, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->row_sum + n)));
  const __m256 s = _mm256_mul_ps(_mm256_set1_ps(a->xm[m].d), _mm256_loadu_ps(a->row_scale + n));
  store_rows(a->y + m * a->ldy, a->bias, n, n1, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(dot, rs)), s));
}

/// One MR x (NP * 8) register tile over k [0, kc) of the rows xr, finished in place: no int32
/// sums in memory (the direct path, and the copy path when K is one chunk). Always inlined (and
/// q7_dot with it): out of line, GCC kept the tile calls of the copy path and small-K shapes ran
/// 5-20% slower. The epilogue loads the offset term, the scales and the bias of each panel once per
/// tile (small K: 1.1-1.2x at K 80-112).
template <int MR, int NP>
__attribute__((always_inline)) inline void q7_tile(const lb_mm_args* a, int64_t p, const uint8_t* const* xr, int64_t kc, int64_t m, int left,
                    int64_t n1, __m256i off) {
  const int64_t pstride = 8 * a->kp;
  alignas(32) int32_t sums[MR * NP * 8];
  {  // the accumulators only ever see constant indices, so they stay in registers
    __m256i acc[MR * NP];
    for (int i = 0; i < MR * NP; ++i) acc[i] = _mm256_setzero_si256();
    q7_dot<MR, NP>(a->w + p * pstride, pstride, xr, kc, acc);
    for (int i = 0; i < MR * NP; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(sums) + i, acc[i]);
  }
  // Keeps the epilogue's loads below the k loop: hoisted above it (GCC does, for the intrinsics
  // tiles) they hold 6 registers through the loop and the 4 x 2 tile spills (0.8x).
  __asm__ volatile("" ::: "memory");
  const __m256i* v = reinterpret_cast<const __m256i*>(sums);
  if ((p + NP) * 8 > n1) {  // the last panel is partial: per-output tails
    for (int r = 0; r < MR && r < left; ++r)
      for (int q = 0; q < NP; ++q) q7_finish(a, m + r, (p + q) * 8, n1, _mm256_load_si256(v + r * NP + q), off);
    return;
  }
  // per panel once: the offset term, the weight scales, the bias
  __m256i rs[NP];
  __m256 sc[NP], bi[NP];
  for (int q = 0; q < NP; ++q) {
    const int64_t n = (p + q) * 8;
    rs[q] = _mm256_mullo_epi32(off, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->row_sum + n)));
    sc[q] = _mm256_loadu_ps(a->row_scale + n);
    bi[q] = a->bias ? _mm256_loadu_ps(a->bias + n) : _mm256_setzero_ps();
  }
  for (int r = 0; r < MR && r < left; ++r) {
    const __m256 dx = _mm256_set1_ps(a->xm[m + r].d);
    float* y = a->y + (m + r) * a->ldy + p * 8;
    for (int q = 0; q < NP; ++q) {
      __m256 o = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_load_si256(v + r * NP + q), rs[q])),
                               _mm256_mul_ps(dx, sc[q]));
      __asm__("" : "+x"(o));  // no FMA contraction: the reference rounds the product, then adds
      if (a->bias) o = _mm256_add_ps(o, bi[q]);
      _mm256_storeu_ps(y + q * 8, o);
    }
  }
}

/// Panels [pb, pe) in groups of NP, then pairs, then a lone panel. 3j + 1 panels end with two
/// pairs rather than a lone panel (a 1-panel tile spends a broadcast per product: N = 128 ran 9%
/// slower that way).
template <int MR, int NP>
inline void q7_tiles(const lb_mm_args* a, int64_t pb, int64_t pe, const uint8_t* const* xr, int64_t kc, int64_t m,
                     int left, int64_t n1, __m256i off) {
  int64_t full = (pe - pb) / NP * NP;
  if (NP == 3 && (pe - pb) % 3 == 1 && full >= 3) full -= 3;
  int64_t p = pb;
  for (; p < pb + full; p += NP) q7_tile<MR, NP>(a, p, xr, kc, m, left, n1, off);
  for (; p + 1 < pe; p += 2) q7_tile<MR, 2>(a, p, xr, kc, m, left, n1, off);
  if (p < pe) q7_tile<MR, 1>(a, p, xr, kc, m, left, n1, off);
}

/// Copy path, one K chunk of panels [pb, pe): sums of the pair of panels starting at p (or of
/// the lone last one) at accs + (p - pb) * kMR * 8, laid out [row][panel in pair][8].
template <int MR>
inline void q7_panels(const lb_mm_args* a, int64_t pb, int64_t pe, int64_t k0, int64_t kc, const uint8_t* const* xr,
                      int32_t* accs) {
  const int64_t pstride = 8 * a->kp;
  int64_t p = pb;
  for (; p + 1 < pe; p += 2) q7_micro<MR, 2>(a->w + p * pstride + 8 * k0, pstride, xr, kc, accs + (p - pb) * kMR * 8);
  if (p < pe) q7_micro<MR, 1>(a->w + p * pstride + 8 * k0, pstride, xr, kc, accs + (p - pb) * kMR * 8);
}

}  // namespace

void lb_gemm_f32_q8d_q7c_4x16__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t kp = a->kp;
  // Codes past k are 0 (both packers pad with zeros): the quads past round_up(k, 4) are skipped.
  const int64_t kq = a->k > 0 && a->k <= kp ? (a->k + 3) & ~int64_t(3) : kp;
  const int64_t p0 = n0 / 8, p1 = (n1 + 7) / 8;
  // The direct path whenever the caller flipped the activations: on every measured shape, small K
  // and few panels included, it beat the copy (session 7: 1.06-1.33x on EfficientNet's 1x1 convs;
  // session 6's opposite finding came from a build where q7_tile was not inlined).
  const int64_t span = kL2Bytes / (8 * kp);  // panels of about kL2Bytes of codes
  const bool direct = a->xu != nullptr;
  const int64_t g = direct ? kNP : kNPC;    // panels per register tile of the path
  int64_t block = span / g * g;             // panels per L2 block: whole tiles
  block = block < g ? g : block > kMaxBlock ? kMaxBlock : block;
  const __m256i off = _mm256_set1_epi32(128 + a->act_zero);
  if (direct) {
    for (int64_t pb = p0; pb < p1; pb += block) {
      const int64_t pe = pb + block < p1 ? pb + block : p1;
      for (int64_t m = m0; m < m1;) {
        // tiles of 4 rows; the last 1-3 rows in a tile of their height (3 rows: 1.13-1.34x the 4-row
        // tile with a repeated row; 4 + 3 + 3 + 3 for 13 rows measured slower than 4 + 4 + 4 + 1)
        const int h = int(m1 - m < kMR ? m1 - m : kMR);
        const uint8_t* xr[kMR];
        for (int r = 0; r < h; ++r) xr[r] = a->xu + (m + r) * kp;
        if (h == kMR) q7_tiles<kMR, kNP>(a, pb, pe, xr, kq, m, h, n1, off);
        else if (h == 3) q7_tiles<3, kNP>(a, pb, pe, xr, kq, m, h, n1, off);
        else if (h == 2) q7_tiles<2, kNP>(a, pb, pe, xr, kq, m, h, n1, off);
        else q7_tiles<1, kNP>(a, pb, pe, xr, kq, m, h, n1, off);
        m += h;
      }
    }
    return;
  }
  const bool one_chunk = kq <= kKC;  // sums stay in registers, finished per group of panels
  alignas(32) uint8_t xa[kMR * kKC];
  const uint8_t* const xr[kMR] = {xa, xa + kKC, xa + 2 * kKC, xa + 3 * kKC};
  alignas(32) int32_t accs[kMaxBlock * kMR * 8];
  const __m256i flip = _mm256_set1_epi8(int8_t(0x80));
  for (int64_t pb = p0; pb < p1; pb += block) {
    const int64_t pe = pb + block < p1 ? pb + block : p1;
    for (int64_t m = m0; m < m1;) {
      const int left = int(m1 - m < kMR ? m1 - m : kMR);
      const int mr = left > 2 ? kMR : left;  // tile height: 4, or 2 / 1 for the last rows
      if (!one_chunk) std::memset(accs, 0, sizeof(accs[0]) * size_t(pe - pb) * kMR * 8);
      for (int64_t k0 = 0; k0 < kq; k0 += kKC) {
        const int64_t kc = kq - k0 < kKC ? kq - k0 : kKC;
        for (int r = 0; r < mr; ++r) {  // rows past m1 repeat row m (computed, never stored)
          const int8_t* xs = a->xq + (m + (r < left ? r : 0)) * kp + k0;
          for (int64_t k = 0; k < kc; k += 32)  // up to round_up(kc, 32) <= kp - k0: inside the row
            _mm256_store_si256(reinterpret_cast<__m256i*>(xa + r * kKC + k),
                               _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + k)), flip));
        }
        if (one_chunk) {
          if (mr == kMR) q7_tiles<kMR, kNPC>(a, pb, pe, xr, kc, m, left, n1, off);
          else if (mr == 2) q7_tiles<2, kNPC>(a, pb, pe, xr, kc, m, left, n1, off);
          else q7_tiles<1, kNPC>(a, pb, pe, xr, kc, m, left, n1, off);
        } else if (mr == kMR) {
          q7_panels<kMR>(a, pb, pe, k0, kc, xr, accs);
        } else if (mr == 2) {
          q7_panels<2>(a, pb, pe, k0, kc, xr, accs);
        } else {
          q7_panels<1>(a, pb, pe, k0, kc, xr, accs);
        }
      }
      if (!one_chunk)
        for (int64_t p = pb; p < pe; ++p) {
          const bool pair = ((p - pb) & 1) == 0 ? p + 1 < pe : true;
          const int64_t base = (p - pb) & ~int64_t(1);  // first panel of its pair (or the lone one)
          const int np = pair ? 2 : 1, pi = int((p - pb) & 1);
          for (int r = 0; r < left; ++r)
            q7_finish(a, m + r, p * 8, n1,
                      _mm256_load_si256(reinterpret_cast<const __m256i*>(accs + base * kMR * 8) + r * np + pi), off);
        }
      m += left;
    }
  }
}
