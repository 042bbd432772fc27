// w8a8 (Q8) for AVX-512 VNNI: two panels per zmm (16 rows), vpdpbusd accumulating in int32.
// GEMV: one panel (8 outputs) per pass in ymm, one weight stream (lb::avx512::gemv::gemv_q8,
// mm_avx512_gemv.h; the registered name keeps its "16x4").
// GEMM (registered as "8x16" since session 4; the tile is 12 rows x 32 columns since session 9):
// a register tile of 12 activation rows x 32 outputs (two zmm of weights, four panels, per quad;
// 24 int32 accumulators) that runs over the whole of K (session 11; before: K blocks of 256 with
// partial sums in memory and the activations copied per N block, 86-87% of the int8 peak at
// 4096 x 11008, now ~94%):
// * the activations are flipped to u8 (x + 128) once per call and laid out per tile of 12 rows in
//   chunks of 32 codes (the 12 rows' 32 bytes side by side: one sequential stream per tile, read
//   from L2), in a thread-local buffer, or read from lb_mm_args::xt where the caller laid them out
//   so once for all its calls (qlinear on several threads, session 12); rows in chunks of at most
//   ~576 KB of codes (one chunk at M = 128, K 4096); an interleave of single quads ([quad][row])
//   cost a 4 x 4 transpose per 16 bytes and lost 4-12% on tall GEMMs with N <= 64 (im2col convs)
//   where this layout does not;
// * per chunk: column tiles outside, row tiles inside, so the tile's weights (32 x kp: four
//   sequential panel streams, 128 KB at K 4096) come from L2 for every row tile but the first,
//   and the first row tile prefetches the next column tile's weights into L2.
// Per quad: 4 weight loads (two 32-byte halves per zmm) + 2 vinserti64x4, 12 broadcast loads,
// 24 vpdpbusd. Integer sums are exact in any order, so the blocking never changes a bit; the
// epilogue is the session-4 one: float(dot - (128 + zero) * row_sum) * (row_scale * d) + bias.
// Tried on Zen 4 (session 11): u8 weights times s8 activations with the broadcast folded into
// vpdpbusd as a {1to16} memory operand: 2-5% slower than the register broadcast.
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__)
#error "mm_q8_avx512vnni.cpp must be compiled with -mavx512vnni -mavx512bw"
#endif
#include "mm_avx512.h"
#include "mm_avx512_gemv.h"
#include "mm_layout.h"

#include <vector>

namespace {
using namespace lb::avx512;

constexpr int kMR = int(lb::layout::kQ8TileRows);  // activation rows per register tile (xt's tiles)
constexpr int kNR = 32;                      // output columns per register tile (two zmm, four panels)
constexpr int64_t kChunkBytes = 576 * 1024;  // interleaved activation codes per row chunk, about
constexpr int64_t kSmallW = 64 * 1024;        // weight bytes (columns x kp) up to which ...
constexpr int64_t kSmallChunkBytes = 6 * 1024;  // ... the row chunks are this small instead

/// acc += the tile's products over nq quads (a multiple of 8); x: the tile's activations as
/// q8_interleave lays them out (quad q of row r at x + 384 (q / 8) + 32 r + 4 (q % 8)). PF: one
/// prefetch per panel every 2 quads of pw (the next column tile) into L2.
template <int MR, int NP, bool PF>
__attribute__((always_inline)) inline void q8_loop(__m512i (&acc)[MR * NP], const uint8_t* const* w, const uint8_t* const* pw,
                                                   const uint8_t* x, int64_t nq) {
  const uint8_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
  for (int64_t c = 0; c < nq / 8; ++c, x += 32 * kMR) {
#pragma GCC unroll 2
    for (int j = 0; j < 8; ++j) {
      const int64_t q = 8 * c + j;
      if constexpr (PF) {
        if ((j & 1) == 0) {
          _mm_prefetch(reinterpret_cast<const char*>(pw[0] + 32 * q), _MM_HINT_T1);
          _mm_prefetch(reinterpret_cast<const char*>(pw[1] + 32 * q), _MM_HINT_T1);
          if constexpr (NP == 2) {
            _mm_prefetch(reinterpret_cast<const char*>(pw[2] + 32 * q), _MM_HINT_T1);
            _mm_prefetch(reinterpret_cast<const char*>(pw[3] + 32 * q), _MM_HINT_T1);
          }
        }
      }
      __m512i wv[NP];
      wv[0] = load_pair(w0 + 32 * q, w1 + 32 * q);
      if constexpr (NP == 2) wv[1] = load_pair(w2 + 32 * q, w3 + 32 * q);
#pragma GCC unroll 12
      for (int r = 0; r < MR; ++r) {
        int32_t v;
        std::memcpy(&v, x + 32 * r + 4 * j, 4);
        const __m512i b = _mm512_set1_epi32(v);
#pragma GCC unroll 2
        for (int p = 0; p < NP; ++p) acc[r * NP + p] = _mm512_dpbusd_epi32(acc[r * NP + p], b, wv[p]);
      }
    }
  }
}

/// MR rows (m..) x 16 * NP columns (n.., below n1; panels pn) over all of K, finished into y.
template <int MR, int NP, bool PF>
__attribute__((noinline)) void q8_tile(const lb_mm_args* a, const uint8_t* const* w, const uint8_t* const* pw, const uint8_t* x,
                                       const int64_t* pn, int64_t m, int64_t n, int64_t n1) {
  __m512i acc[MR * NP];
  // each accumulator its own start value (GCC 12 otherwise copies a shared zero around every
  // vpdpbusd, 2x slower: docs/runtime.md, "GCC 12 and vpdpbusd"); mm_avx512_gemv.h's macro
#pragma GCC unroll 24
  for (int i = 0; i < MR * NP; ++i) {
    acc[i] = _mm512_setzero_si512();
    LB_GEMV_IN_REG(acc[i]);
  }
  q8_loop<MR, NP, PF>(acc, w, pw, x, a->kp / 4);
  // sum (x + 128) w - 128 sum w - zero * sum w, times row_scale * d, plus bias
  const __m512i off = _mm512_set1_epi32(128 + a->act_zero);
#pragma GCC unroll 2
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

template <int NP, bool PF>
void q8_tile_rows(int mr, const lb_mm_args* a, const uint8_t* const* w, const uint8_t* const* pw, const uint8_t* x,
                  const int64_t* pn, int64_t m, int64_t n, int64_t n1) {
  switch (mr) {
#define LB_Q8_CASE(R) \
  case R: q8_tile<R, NP, PF>(a, w, pw, x, pn, m, n, n1); break;
    LB_Q8_CASE(1) LB_Q8_CASE(2) LB_Q8_CASE(3) LB_Q8_CASE(4) LB_Q8_CASE(5) LB_Q8_CASE(6)
    LB_Q8_CASE(7) LB_Q8_CASE(8) LB_Q8_CASE(9) LB_Q8_CASE(10) LB_Q8_CASE(11) LB_Q8_CASE(12)
#undef LB_Q8_CASE
    default: break;
  }
}

/// Rows m0..m1 of xq as u8 (x ^ 0x80), per tile of kMR rows in chunks of 32 codes (8 quads):
/// codes k..k+31 of row r of tile t at xi + t * tb + 12 * k + 32 r (tb = 12 kp bytes; a short last
/// tile leaves its missing rows unset), so a tile reads its activations as one sequential stream
/// (lb::layout::q8_tile_row's layout, from row m0).
void q8_interleave(const lb_mm_args* a, int64_t m0, int64_t m1, uint8_t* xi) {
  const int64_t kp = a->kp, tb = kMR * kp;
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  for (int64_t m = m0; m < m1; m += kMR, xi += tb) {
    const int64_t rn = m1 - m < kMR ? m1 - m : kMR;
    for (int64_t r = 0; r < rn; ++r) {
      const int8_t* src = a->xq + (m + r) * kp;
      uint8_t* dst = xi + 32 * r;
      for (int64_t k = 0; k < kp; k += 32)
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst + kMR * k),
                           _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + k)), flip));
    }
  }
}

void gemm_q8_tiled(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t kp = a->kp, tb = kMR * kp, rows = m1 - m0;
  if (rows <= 0 || n1 <= n0) return;
  // rows per chunk: a multiple of kMR, chunks of about equal size, each <= kChunkBytes of codes
  // where kMR rows allow; with a small weight (<= 64 KB: the im2col convs' few output channels,
  // re-read from L2 per chunk at no cost) chunks of ~6 KB, which stay in L1 between the
  // interleave and the tiles (K 160 x N 16, M 12544 +2-4%)
  const int64_t cbytes = (n1 - n0) * kp <= kSmallW ? kSmallChunkBytes : kChunkBytes;
  const int64_t chunks = (rows * kp + cbytes - 1) / cbytes;
  int64_t mc = (rows + chunks - 1) / chunks;
  mc = (mc + kMR - 1) / kMR * kMR;
  // the caller's tiles (lb_mm_args::xt: one copy per call, shared by the calls of every thread; at 2 threads and
  // 16 column tasks each thread tiled all 128 x 4096 activations 8 times, half of them written by the other core),
  // or the rows tiled here per chunk into a thread-local buffer
  const bool shared = a->xt && m0 % kMR == 0;
  uint8_t* own = nullptr;
  if (!shared) {
    thread_local std::vector<uint8_t> buf;  // grows to the largest chunk seen on this thread
    const size_t need = size_t((mc + kMR - 1) / kMR * tb) + 64;
    if (buf.size() < need) buf.resize(need);
    own = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
  }
  const int64_t last_panel = (n1 - 1) / 8;
  for (int64_t ms = m0; ms < m1; ms += mc) {
    const int64_t me = m1 - ms < mc ? m1 : ms + mc;
    if (!shared) q8_interleave(a, ms, me, own);
    const uint8_t* xi = shared ? a->xt + ms / kMR * tb : own;
    for (int64_t n = n0; n < n1; n += kNR) {
      int64_t pn[4];
      const uint8_t* w[4];
      const uint8_t* pw[4];  // the next column tile's panels (clamped: prefetching them again is harmless)
      for (int i = 0; i < 4; ++i) {
        const int64_t p = n / 8 + i, p2 = p + kNR / 8;
        pn[i] = p <= last_panel ? p : last_panel;
        w[i] = a->w + pn[i] * 8 * kp;
        pw[i] = a->w + (p2 <= last_panel ? p2 : last_panel) * 8 * kp;
      }
      const bool two = n + 16 < n1;
      for (int64_t m = ms; m < me; m += kMR) {
        const int mr = int(me - m < kMR ? me - m : kMR);
        const uint8_t* x = xi + (m - ms) / kMR * tb;
        if (kp >= 1024) {  // the next row tile's output lines (its stores waited for them from memory
          // when y is large: 1536 x 11008 +2%, 4096 x 11008 +0.6%; with short tiles the prefetches
          // cost more than they save: K 32 x N 32, M 12544 -9%, K 288 -1%)
          const int64_t r1 = me - (m + kMR) < kMR ? me : m + 2 * kMR;
          const int64_t last = (n1 - n < kNR ? n1 - n : kNR) - 1;
          for (int64_t r = m + kMR; r < r1; ++r) {
            const float* yr = a->y + r * a->ldy + n;
            __builtin_prefetch(yr, 1, 3);
            __builtin_prefetch(yr + 16, 1, 3);
            __builtin_prefetch(yr + last, 1, 3);
          }
        }
        if (m == ms) {
          if (two) q8_tile_rows<2, true>(mr, a, w, pw, x, pn, m, n, n1);
          else q8_tile_rows<1, true>(mr, a, w, pw, x, pn, m, n, n1);
        } else {
          if (two) q8_tile_rows<2, false>(mr, a, w, pw, x, pn, m, n, n1);
          else q8_tile_rows<1, false>(mr, a, w, pw, x, pn, m, n, n1);
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
