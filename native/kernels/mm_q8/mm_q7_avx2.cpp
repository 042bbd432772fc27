// w8a8 GEMM for 7-bit Q8 weights on AVX2 (family gemm_q7): every weight code lies in [-64, 64]
// (lowbit_blocks.h, LB_Q8_W7_MAX), so the activations can enter vpmaddubsw as unsigned bytes
// u = x + 128 in [0, 255] and no int16 pair sum can saturate: |u0*w0 + u1*w1| <= 2 * 255 * 64 =
// 32640 < 32767. The int32 dot is exact: sum_k u*w = dot + 128 * row_sum, and the stored row
// sums fold the offset (and a static zero point) back out in the epilogue.
//
// Per quad (4 k) and per (row, panel): vpmaddubsw (32 multiply-adds), vpmaddwd by ones (pairs ->
// int32, one lane per output row), vpaddd: the instruction mix of ONNX Runtime's u8s8 kernel and
// of lowbit's int8 peak microbenchmark, without widening either operand (the 8-bit kernel,
// mm_q8_avx2.cpp, spends vpmovsxbw on both).
//
// Blocking (as in the 8-bit kernel): a block of panels (about kL2Bytes of codes) stays in L2 and
// is swept by tiles of kMR activation rows; per tile, kKC k at a time, the rows are copied as u8
// into a small L1 buffer and every pair of panels of the block runs its kMR x 16 register tile.
// Integer sums are exact in any order, so blocking changes no bit. When K fits one chunk (the 1x1
// convs of CNNs) each pair of panels starts from zero and is finished at once (q7_tile); the quads
// past round_up(k, 4) hold zero codes and are not visited.
#if !defined(__AVX2__)
#error "mm_q7_avx2.cpp must be compiled with -mavx2"
#endif
#include "mm_avx2.h"

namespace {
using namespace lb::avx2;

constexpr int kMR = 4;                    // activation rows per register tile
constexpr int64_t kKC = 1024;             // k per L1 chunk of activations
constexpr int64_t kL2Bytes = 192 * 1024;  // codes per L2 block of panels
constexpr int kMaxBlock = 32;      // panels per L2 block, at most

inline __m256i bcast_u4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

/// acc[r * NP + p] += rows xa[r][0..kc) . panel p (NP adjacent panels from wq, pstride bytes
/// apart), kc a multiple of 4.
template <int MR, int NP>
inline void q7_quads(const uint8_t* wq, int64_t pstride, const uint8_t* xa, int64_t kc, __m256i* acc) {
  const __m256i ones = _mm256_set1_epi16(1);
  const uint8_t* w1 = wq + (NP > 1 ? pstride : 0);
  for (int64_t k = 0; k < kc; k += 4) {
    __m256i w[NP];
    w[0] = load32(wq + 8 * k);
    if constexpr (NP > 1) w[1] = load32(w1 + 8 * k);
    for (int r = 0; r < MR; ++r) {
      const __m256i b = bcast_u4(xa + r * kKC + k);
      for (int p = 0; p < NP; ++p)
        acc[r * NP + p] = _mm256_add_epi32(acc[r * NP + p], _mm256_madd_epi16(_mm256_maddubs_epi16(b, w[p]), ones));
    }
    keep<MR * NP>(acc);
  }
}

/// The same, accumulating into int32 sums kept in memory between K chunks.
template <int MR, int NP>
inline void q7_micro(const uint8_t* wq, int64_t pstride, const uint8_t* xa, int64_t kc, int32_t* acc_mem) {
  __m256i acc[MR * NP];
  for (int i = 0; i < MR * NP; ++i) acc[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(acc_mem) + i);
  q7_quads<MR, NP>(wq, pstride, xa, kc, acc);
  for (int i = 0; i < MR * NP; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(acc_mem) + i, acc[i]);
}

/// Epilogue of 8 outputs (panel at column n) of row m: (dot - (128 + zero) * row_sum) * dx * row_scale + bias.
inline void q7_finish(const lb_mm_args* a, int64_t m, int64_t n, int64_t n1, __m256i dot, __m256i off) {
  const __m256i rs = _mm256_mullo_epi32(off, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->row_sum + n)));
  const __m256 s = _mm256_mul_ps(_mm256_set1_ps(a->xm[m].d), _mm256_loadu_ps(a->row_scale + n));
  store_rows(a->y + m * a->ldy, a->bias, n, n1, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(dot, rs)), s));
}

/// One MR x (NP * 8) register tile over all of K (a single chunk), finished in place: no int32
/// sums in memory (the small-K convs of CNNs).
template <int MR, int NP>
inline void q7_tile(const lb_mm_args* a, int64_t p, const uint8_t* xa, int64_t kc, int64_t m, int left, int64_t n1,
                    __m256i off) {
  const int64_t pstride = 8 * a->kp;
  alignas(32) int32_t sums[MR * NP * 8];
  {  // the accumulators only ever see constant indices, so they stay in registers
    __m256i acc[MR * NP];
    for (int i = 0; i < MR * NP; ++i) acc[i] = _mm256_setzero_si256();
    q7_quads<MR, NP>(a->w + p * pstride, pstride, xa, kc, acc);
    for (int i = 0; i < MR * NP; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(sums) + i, acc[i]);
  }
  const __m256i* v = reinterpret_cast<const __m256i*>(sums);
  for (int r = 0; r < MR && r < left; ++r)
    for (int q = 0; q < NP; ++q) q7_finish(a, m + r, (p + q) * 8, n1, _mm256_load_si256(v + r * NP + q), off);
}

template <int MR>
inline void q7_panels(const lb_mm_args* a, int64_t pb, int64_t pe, int64_t k0, int64_t kc, const uint8_t* xa,
                      int32_t* accs) {
  const int64_t kp = a->kp, pstride = 8 * kp;
  int64_t p = pb;
  for (; p + 1 < pe; p += 2) q7_micro<MR, 2>(a->w + p * pstride + 8 * k0, pstride, xa, kc, accs + (p - pb) * kMR * 8);
  if (p < pe) q7_micro<MR, 1>(a->w + p * pstride + 8 * k0, pstride, xa, kc, accs + (p - pb) * kMR * 8);
}

template <int MR>
inline void q7_tiles(const lb_mm_args* a, int64_t pb, int64_t pe, int64_t kc, const uint8_t* xa, int64_t m, int left,
                     int64_t n1, __m256i off) {
  int64_t p = pb;
  for (; p + 1 < pe; p += 2) q7_tile<MR, 2>(a, p, xa, kc, m, left, n1, off);
  if (p < pe) q7_tile<MR, 1>(a, p, xa, kc, m, left, n1, off);
}

}  // namespace

void lb_gemm_f32_q8d_q7c_4x16__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t kp = a->kp;
  // Codes past k are 0 (both packers pad with zeros): the quads past round_up(k, 4) are skipped.
  const int64_t kq = a->k > 0 && a->k <= kp ? (a->k + 3) & ~int64_t(3) : kp;
  const bool one_chunk = kq <= kKC;  // sums stay in registers, finished per pair of panels
  const int64_t p0 = n0 / 8, p1 = (n1 + 7) / 8;
  int64_t block = kL2Bytes / (8 * kp);  // panels per L2 block
  block = block < 2 ? 2 : block > kMaxBlock ? kMaxBlock : block & ~int64_t(1);  // even: whole 16-column tiles
  alignas(32) uint8_t xa[kMR * kKC];
  // [panel of the block][row][8]; a pair of panels reads rows r*2+p, so the pair's 2 x kMR
  // accumulators are laid out [row][panel] inside the pair: index (pair base) + r * NP + p.
  alignas(32) int32_t accs[kMaxBlock * kMR * 8];
  const __m256i flip = _mm256_set1_epi8(int8_t(0x80));
  const __m256i off = _mm256_set1_epi32(128 + a->act_zero);
  for (int64_t pb = p0; pb < p1; pb += block) {
    const int64_t pe = pb + block < p1 ? pb + block : p1;
    for (int64_t m = m0; m < m1;) {
      const int left = int(m1 - m < kMR ? m1 - m : kMR);
      const int mr = left > 2 ? kMR : left;  // tile height: 4, or 2 / 1 for the last rows
      if (!one_chunk) std::memset(accs, 0, sizeof(accs[0]) * size_t(pe - pb) * kMR * 8);
      for (int64_t k0 = 0; k0 < kq; k0 += kKC) {
        const int64_t kc = kq - k0 < kKC ? kq - k0 : kKC;
        for (int r = 0; r < mr; ++r) {  // rows past m1 repeat row m (computed, never stored)
          const int8_t* xr = a->xq + (m + (r < left ? r : 0)) * kp + k0;
          for (int64_t k = 0; k < kc; k += 32)  // up to round_up(kc, 32) <= kp - k0: inside the row
            _mm256_store_si256(reinterpret_cast<__m256i*>(xa + r * kKC + k),
                               _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + k)), flip));
        }
        if (one_chunk) {
          if (mr == kMR) q7_tiles<kMR>(a, pb, pe, kc, xa, m, left, n1, off);
          else if (mr == 2) q7_tiles<2>(a, pb, pe, kc, xa, m, left, n1, off);
          else q7_tiles<1>(a, pb, pe, kc, xa, m, left, n1, off);
        } else if (mr == kMR) {
          q7_panels<kMR>(a, pb, pe, k0, kc, xa, accs);
        } else if (mr == 2) {
          q7_panels<2>(a, pb, pe, k0, kc, xa, accs);
        } else {
          q7_panels<1>(a, pb, pe, k0, kc, xa, accs);
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
