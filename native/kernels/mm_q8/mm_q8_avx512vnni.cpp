// w8a8 (Q8) for AVX-512 VNNI: two panels per zmm (16 rows), vpdpbusd accumulating in int32.
// GEMV: one panel (8 outputs) per pass in ymm, one weight stream (lb::avx512::gemv::gemv_q8,
// mm_avx512_gemv.h; the registered name keeps its "16x4").
// GEMM (registered as "8x16" since session 4; the tile is 12 rows x 32 columns since session 9):
// a register tile of 12 activation rows x 32 outputs (two zmm of weights, four panels, per quad;
// 24 int32 accumulators), K blocked so that every operand of the inner loop comes from L1:
// * N blocks of kNB columns (weights kNB x kp: 512 KB at K 4096, kept in L2 across the M blocks);
// * M blocks of kMB rows; per K block of kKC the block's activations are flipped to u8 (x + 128)
//   once into a small buffer (kMB x kKC = 12 KB), read by every column tile of the N block;
//   kp <= 512: one K block of kp (rows 512 apart, up to 24 KB), no partial sums (session 10);
// * per (N block, M block, K block): column tiles outside, row tiles inside, so a tile's weights
//   (32 x kKC = 8 KB) stay in L1 for all the row tiles; the first row tile prefetches the same
//   panels' next K block into L2. Partial int32 sums between K blocks wait in a stack buffer.
// Per quad: 4 weight loads (two 32-byte halves per zmm) + 2 vinserti64x4, 12 broadcast loads,
// 24 vpdpbusd; no xor in the loop (the flip is once per K block and N block).
// Integer sums are exact in any order, so the blocking never changes a bit; the epilogue is the
// session-4 one: float(dot - (128 + zero) * row_sum) * (row_scale * d) + bias.
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__)
#error "mm_q8_avx512vnni.cpp must be compiled with -mavx512vnni -mavx512bw"
#endif
#include "mm_avx512.h"
#include "mm_avx512_gemv.h"

namespace {
using namespace lb::avx512;

constexpr int kMR = 12;           // activation rows per register tile
constexpr int kNR = 32;           // output columns per register tile (two zmm, four panels)
constexpr int64_t kKC = 256;      // k per K block (a multiple of 32, as kp: blocks of an even number of quads)
constexpr int64_t kKCOne = 512;   // kp up to this: one K block of kp (no partial sums between K blocks)
constexpr int kMB = 4 * kMR;      // rows per M block
constexpr int64_t kNBMax = 128;   // columns per N block, at most (a multiple of kNR)
constexpr int64_t kNBBytes = 512 * 1024;  // weight bytes per N block (kNB x kp), about

struct Q8Tile {
  const uint8_t* w[4];  // the four panels at the K block's first quad (past n1: the last valid panel again)
  const uint8_t* x;     // u8 activations of the tile's first row (rows XS apart: kKC, or kKCOne)
  int64_t nq;           // quads of the K block
  int32_t* part;        // partial sums between K blocks, row r at part + r * kNBMax
  bool first, last, pf;
};

/// acc += the tile's products over nq quads (nq even: kc is a multiple of 32). PF: one prefetch
/// per panel every 2 quads, of the same panel's next K block (into L2; only with kKC blocks).
/// XS: bytes between two activation rows of the block buffer.
template <int MR, int NP, bool PF, int XS>
__attribute__((always_inline)) inline void q8_loop(__m512i (&acc)[MR * NP], const Q8Tile& t) {
  const uint8_t *w0 = t.w[0], *w1 = t.w[1], *w2 = t.w[2], *w3 = t.w[3];
  const uint8_t* x = t.x;
  for (int64_t q = 0; q < t.nq; ++q) {
    if constexpr (PF) {
      if ((q & 1) == 0) {
        const int64_t ahead = 32 * q + 8 * kKC;
        _mm_prefetch(reinterpret_cast<const char*>(w0 + ahead), _MM_HINT_T1);
        _mm_prefetch(reinterpret_cast<const char*>(w1 + ahead), _MM_HINT_T1);
        if constexpr (NP == 2) {
          _mm_prefetch(reinterpret_cast<const char*>(w2 + ahead), _MM_HINT_T1);
          _mm_prefetch(reinterpret_cast<const char*>(w3 + ahead), _MM_HINT_T1);
        }
      }
    }
    __m512i wv[NP];
    wv[0] = load_pair(w0 + 32 * q, w1 + 32 * q);
    if constexpr (NP == 2) wv[1] = load_pair(w2 + 32 * q, w3 + 32 * q);
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      int32_t v;
      std::memcpy(&v, x + r * XS + 4 * q, 4);
      const __m512i b = _mm512_set1_epi32(v);
#pragma GCC unroll 2
      for (int p = 0; p < NP; ++p) acc[r * NP + p] = _mm512_dpbusd_epi32(acc[r * NP + p], b, wv[p]);
    }
  }
}

/// MR rows x 16 * NP columns over one K block; first: start from zero, else from part; last:
/// finish into y (rows m.., columns n.. below n1, panels pn), else store to part.
template <int MR, int NP, int XS>
__attribute__((noinline)) void q8_tile(const lb_mm_args* a, const Q8Tile& t, const int64_t* pn, int64_t m, int64_t n, int64_t n1) {
  __m512i acc[MR * NP];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 12
    for (int p = 0; p < NP; ++p)
      acc[r * NP + p] = t.first ? _mm512_setzero_si512() : _mm512_loadu_si512(t.part + r * kNBMax + 16 * p);
  if (t.pf) q8_loop<MR, NP, true, XS>(acc, t);
  else q8_loop<MR, NP, false, XS>(acc, t);
  if (!t.last) {
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 12
      for (int p = 0; p < NP; ++p) _mm512_storeu_si512(t.part + r * kNBMax + 16 * p, acc[r * NP + p]);
    return;
  }
  // sum (x + 128) w - 128 sum w - zero * sum w, times row_scale * d, plus bias
  const __m512i off = _mm512_set1_epi32(128 + a->act_zero);
#pragma GCC unroll 12
  for (int p = 0; p < NP; ++p) {
    const int64_t pa = pn[2 * p], pb = pn[2 * p + 1];
    const __m512i rs = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->row_sum + pa * 8))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->row_sum + pb * 8)), 1);
    const __m512 rsc = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(a->row_scale + pa * 8)),
                                          _mm256_loadu_ps(a->row_scale + pb * 8), 1);
    const __m512i corr = _mm512_mullo_epi32(rs, off);
    // the bias and the store mask once per 16 columns (stores to y may alias the bias for the
    // compiler, so through store16 it reloaded them per row); store16's operations
    const int64_t c0 = n + 16 * p, cnt = n1 - c0 < 16 ? n1 - c0 : 16;
    const __mmask16 mk = __mmask16((1u << cnt) - 1u);
    const __m512 bv = a->bias ? _mm512_maskz_loadu_ps(mk, a->bias + c0) : _mm512_setzero_ps();
    const bool has_bias = a->bias != nullptr;
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      const __m512 s = _mm512_mul_ps(rsc, _mm512_set1_ps(a->xm[m + r].d));
      __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r * NP + p], corr)), s);
      if (has_bias) v = _mm512_add_ps(v, bv);
      _mm512_mask_storeu_ps(a->y + (m + r) * a->ldy + c0, mk, v);
    }
  }
}

template <int NP, int XS>
void q8_tile_rows(int mr, const lb_mm_args* a, const Q8Tile& t, const int64_t* pn, int64_t m, int64_t n, int64_t n1) {
  switch (mr) {
#define LB_Q8_CASE(R) \
  case R: q8_tile<R, NP, XS>(a, t, pn, m, n, n1); break;
    LB_Q8_CASE(1) LB_Q8_CASE(2) LB_Q8_CASE(3) LB_Q8_CASE(4) LB_Q8_CASE(5) LB_Q8_CASE(6)
    LB_Q8_CASE(7) LB_Q8_CASE(8) LB_Q8_CASE(9) LB_Q8_CASE(10) LB_Q8_CASE(11) LB_Q8_CASE(12)
#undef LB_Q8_CASE
    default: break;
  }
}

void gemm_q8_tiled(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t kp = a->kp;
  int64_t nb = kNBBytes / kp / kNR * kNR;
  nb = nb < kNR ? kNR : nb > kNBMax ? kNBMax : nb;
  alignas(64) uint8_t xb[kMB * kKCOne];
  alignas(64) int32_t part[kMB * kNBMax];
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  const int64_t last_panel = (n1 - 1) / 8;
  for (int64_t ns = n0; ns < n1; ns += nb) {
    const int64_t ne = n1 - ns < nb ? n1 : ns + nb;
    for (int64_t ms = m0; ms < m1; ms += kMB) {
      const int64_t me = m1 - ms < kMB ? m1 : ms + kMB;
      // kp <= kKCOne (MiniLM's K = 384): one K block, rows kKCOne apart (3% faster at K 384-512:
      // no partial sums; with kKC blocks the kKC stride is 0.5-2% faster at K >= 1024)
      const bool one = kp <= kKCOne;
      const int64_t kblk = one ? kp : kKC, xs = one ? kKCOne : kKC;
      for (int64_t kb = 0; kb < kp; kb += kblk) {
        const int64_t kc = kp - kb < kblk ? kp - kb : kblk;
        for (int64_t r = ms; r < me; ++r) {  // the block's activations as u8, rows xs apart
          const int8_t* src = a->xq + r * kp + kb;
          uint8_t* dst = xb + (r - ms) * xs;
          for (int64_t k = 0; k < kc; k += 32)
            _mm256_store_si256(reinterpret_cast<__m256i*>(dst + k),
                               _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + k)), flip));
        }
        Q8Tile t;
        t.nq = kc / 4;
        t.first = kb == 0;
        t.last = kb + kc >= kp;
        for (int64_t n = ns; n < ne; n += kNR) {
          int64_t pn[4];
          for (int i = 0; i < 4; ++i) {
            const int64_t p = n / 8 + i;
            pn[i] = p <= last_panel ? p : last_panel;
            t.w[i] = a->w + pn[i] * 8 * kp + 8 * kb;
          }
          const bool two = n + 16 < ne;
          for (int64_t m = ms; m < me; m += kMR) {
            const int mr = int(me - m < kMR ? me - m : kMR);
            t.x = xb + (m - ms) * xs;
            t.part = part + (m - ms) * kNBMax + (n - ns);
            t.pf = m == ms && !t.last;
            if (one) {
              if (two) q8_tile_rows<2, kKCOne>(mr, a, t, pn, m, n, ne);
              else q8_tile_rows<1, kKCOne>(mr, a, t, pn, m, n, ne);
            } else {
              if (two) q8_tile_rows<2, kKC>(mr, a, t, pn, m, n, ne);
              else q8_tile_rows<1, kKC>(mr, a, t, pn, m, n, ne);
            }
          }
        }
      }
    }
  }
}

}  // namespace

void lb_gemv_f32_q8d_q8c_16x4__avx512vnni(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  lb::avx512::gemv::gemv_q8(a, m0, m1, n0, n1);
}

void lb_gemm_f32_q8d_q8c_8x16__avx512vnni(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  gemm_q8_tiled(a, m0, m1, n0, n1);
}
