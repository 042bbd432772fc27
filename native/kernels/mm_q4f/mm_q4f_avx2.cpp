// w4a16 (Q4 / Q4A weights, float activations) for AVX2: each 32-bit lane of a chunk holds 8
// nibbles of one row; a shift and mask give one k for 8 rows, converted to float and multiplied
// with the broadcast activation (FMA). Offsets/minimums are folded with the group sums of x.
#if !defined(__AVX2__)
#error "mm_q4f_avx2.cpp must be compiled with -mavx2"
#endif
#include "mm_avx2.h"

namespace {
using namespace lb::avx2;
using lb::layout::block;

/// k offset (within a chunk) of nibble position j of a 32-bit lane: low nibbles 0..3, high 4..7.
constexpr int kNibK[8] = {0, 4, 1, 5, 2, 6, 3, 7};

template <int MR, int G>
inline void tile(const lb_mm_args* a, int64_t m, int mr, int64_t n, int64_t n1) {
  const int64_t ng = a->k / G;
  const bool asym = a->fmt == LB_WFMT_Q4A;
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), G);
  const int hb = asym ? 32 : 16;
  const float* x[MR];
  const float* xs[MR];
  for (int r = 0; r < MR; ++r) {
    const int64_t row = m + (r < mr ? r : 0);
    x[r] = a->xf + row * a->k;
    xs[r] = a->xs + row * ng;
  }
  const uint8_t* blk = block(a->w, a->fmt, a->k, G, n / 8, 0);
  const __m256i m4 = _mm256_set1_epi32(0x0F);
  __m256 acc[MR];
  for (int r = 0; r < MR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < ng; ++g, blk += bb) {
    prefetch_ahead(blk, bb);
    __m256 dot[MR];
    for (int r = 0; r < MR; ++r) dot[r] = _mm256_setzero_ps();
    for (int c = 0; c < G / 8; ++c) {
      const __m256i v = load32(blk + hb + 32 * c);
      for (int j = 0; j < 8; ++j) {  // nibble j of each lane: bits 4j .. 4j+3
        const __m256 w = _mm256_cvtepi32_ps(_mm256_and_si256(j ? _mm256_srli_epi32(v, 4 * j) : v, m4));
        const int64_t k = g * G + 8 * c + kNibK[j];
        for (int r = 0; r < MR; ++r) dot[r] = _mm256_fmadd_ps(w, _mm256_broadcast_ss(x[r] + k), dot[r]);
      }
    }
    const __m256 d = load_fp16x8(blk);
    if (asym) {
      const __m256 mn = load_fp16x8(blk + 16);
      for (int r = 0; r < MR; ++r)
        acc[r] = _mm256_fmadd_ps(d, dot[r], _mm256_fmadd_ps(mn, _mm256_broadcast_ss(xs[r] + g), acc[r]));
    } else {
      for (int r = 0; r < MR; ++r)
        acc[r] = _mm256_fmadd_ps(d, _mm256_fnmadd_ps(_mm256_set1_ps(8.f), _mm256_broadcast_ss(xs[r] + g), dot[r]), acc[r]);
    }
  }
  for (int r = 0; r < mr; ++r) store_rows(a->y + (m + r) * a->ldy, a->bias, n, n1, acc[r]);
}

template <int MR>
void run(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; n += 8)
    for (int64_t m = m0; m < m1; m += MR) {
      const int mr = int(m1 - m < MR ? m1 - m : MR);
      switch (a->group) {
        case 32: tile<MR, 32>(a, m, mr, n, n1); break;
        case 64: tile<MR, 64>(a, m, mr, n, n1); break;
        default: tile<MR, 128>(a, m, mr, n, n1); break;
      }
    }
}

/// GEMV: NP panels per pass, each with two independent FMA chains (even / odd nibbles), so the
/// FMA latency is hidden (one chain per panel ran at about 5 GB/s); the activation broadcasts are
/// shared by the panels. Every panel sums in the same order whatever NP is.
template <int NP, int G>
inline void gemv_panels(const lb_mm_args* a, int64_t m, int64_t n, int64_t n1) {
  const int64_t ng = a->k / G;
  const bool asym = a->fmt == LB_WFMT_Q4A;
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), G);
  const size_t pstride = size_t(ng) * bb;
  const int hb = asym ? 32 : 16;
  const float* x = a->xf + m * a->k;
  const float* xs = a->xs + m * ng;
  const uint8_t* blk = block(a->w, a->fmt, a->k, G, n / 8, 0);
  const __m256i m4 = _mm256_set1_epi32(0x0F);
  __m256 acc[NP];
  for (int p = 0; p < NP; ++p) acc[p] = _mm256_setzero_ps();
  for (int64_t g = 0; g < ng; ++g, blk += bb, x += G) {
    for (int p = 0; p < NP; ++p) prefetch_ahead(blk + p * pstride, bb);
    __m256 dot[NP][2];
    for (int p = 0; p < NP; ++p) dot[p][0] = dot[p][1] = _mm256_setzero_ps();
    for (int c = 0; c < G / 8; ++c) {
      __m256i v[NP];
      for (int p = 0; p < NP; ++p) v[p] = load32(blk + p * pstride + hb + 32 * c);
      for (int j = 0; j < 8; ++j) {
        const __m256 xb = _mm256_broadcast_ss(x + 8 * c + kNibK[j]);
        for (int p = 0; p < NP; ++p) {
          const __m256 w = _mm256_cvtepi32_ps(_mm256_and_si256(j ? _mm256_srli_epi32(v[p], 4 * j) : v[p], m4));
          dot[p][j & 1] = _mm256_fmadd_ps(w, xb, dot[p][j & 1]);
        }
      }
    }
    const __m256 xsg = _mm256_broadcast_ss(xs + g);
    for (int p = 0; p < NP; ++p) {
      const uint8_t* h = blk + p * pstride;
      const __m256 dt = _mm256_add_ps(dot[p][0], dot[p][1]);
      if (asym) acc[p] = _mm256_fmadd_ps(load_fp16x8(h), dt, _mm256_fmadd_ps(load_fp16x8(h + 16), xsg, acc[p]));
      else acc[p] = _mm256_fmadd_ps(load_fp16x8(h), _mm256_fnmadd_ps(_mm256_set1_ps(8.f), xsg, dt), acc[p]);
    }
  }
  for (int p = 0; p < NP; ++p) store_rows(a->y + m * a->ldy, a->bias, n + 8 * p, n1, acc[p]);
}

template <int G>
void gemv_g(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t m = m0; m < m1; ++m) {
    int64_t n = n0;
    for (; n + 24 < n1; n += 32) gemv_panels<4, G>(a, m, n, n1);
    for (; n < n1; n += 8) gemv_panels<1, G>(a, m, n, n1);
  }
}

}  // namespace

void lb_gemv_f32_f32_q4g_32x8__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  switch (a->group) {
    case 32: gemv_g<32>(a, m0, m1, n0, n1); break;
    case 64: gemv_g<64>(a, m0, m1, n0, n1); break;
    default: gemv_g<128>(a, m0, m1, n0, n1); break;
  }
}

void lb_gemm_f32_f32_q4g_6x8__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  run<6>(a, m0, m1, n0, n1);
}
