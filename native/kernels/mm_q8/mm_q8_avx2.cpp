// w8a8 (Q8) for AVX2: int8 x int8 through vpmaddubsw with the sign trick (|x| as u8 times
// sign(w, x) as s8; exact because weight codes are within [-127, 127], so even a static
// activation of -128 gives pairs of at most 2 * 128 * 127), vpmaddwd to int32, one float
// epilogue per output.
#if !defined(__AVX2__)
#error "mm_q8_avx2.cpp must be compiled with -mavx2"
#endif
#include "mm_avx2.h"

namespace {
using namespace lb::avx2;

inline __m256i dot4(__m256i acc, __m256i ax, __m256i bx, __m256i w, __m256i ones) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(w, bx)), ones));
}

/// Epilogue of 8 outputs (rows n .. n+7): (dot - zero * row_sum) * dx * row_scale + bias.
inline void finish(const lb_mm_args* a, int64_t m, int64_t n, int64_t n1, __m256i dot) {
  if (a->act_zero)
    dot = _mm256_sub_epi32(dot, _mm256_mullo_epi32(_mm256_set1_epi32(a->act_zero),
                                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->row_sum + n))));
  const __m256 s = _mm256_mul_ps(_mm256_set1_ps(a->xm[m].d), _mm256_loadu_ps(a->row_scale + n));
  store_rows(a->y + m * a->ldy, a->bias, n, n1, _mm256_mul_ps(_mm256_cvtepi32_ps(dot), s));
}

/// GEMV of one panel (rows n .. n+7) for activation row m. The panels of a weight follow each
/// other, so walking one panel at a time reads the weight front to back as one sequential stream,
/// prefetched by `pf` (carried from panel to panel; every 64-byte line once), as the w4a8 GEMV
/// does (mm_avx2.h). kp is a multiple of LB_KBLOCK (32), so a step of 8 k is one 64-byte line.
inline void gemv_panel(const lb_mm_args* a, int64_t m, int64_t n, int64_t n1, StreamPrefetch& pf) {
  const int64_t kp = a->kp;
  const int8_t* x = a->xq + m * kp;
  const uint8_t* w = a->w + (n / 8) * 8 * kp;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0;
  for (int64_t k = 0; k < kp; k += 8, w += 64) {
    pf.upto(w + 64);
    const __m256i b0 = bcast4(x + k), b1 = bcast4(x + k + 4);
    acc0 = dot4(acc0, _mm256_abs_epi8(b0), b0, load32(w), ones);
    acc1 = dot4(acc1, _mm256_abs_epi8(b1), b1, load32(w + 32), ones);
  }
  finish(a, m, n, n1, _mm256_add_epi32(acc0, acc1));
}

/// GEMM, exact int8 x int8 without the sign trick: codes widened to int16 and multiplied with
/// vpmaddwd (int16 pairs -> int32, no saturation for any int8 operands), one multiply-port
/// instruction per 16 multiply-adds, as many as vpmaddubsw + vpmaddwd spend on 32, but with no
/// vpsignb/vpabsb beside them. A quad of 8 rows x 4 k widens to two ymm (rows 0-3, rows 4-7);
/// each 32-bit lane holds one row and one k pair, folded once at the end (vphaddd).
///
/// Blocking: a block of panels (about 192 KiB of codes, kept in L2) is swept by tiles of kMR
/// activation rows; per tile, kKC k at a time, the rows are widened into a small L1 buffer and
/// every panel of the block runs its 6 x 8 register tile (12 int32 accumulators) over them.
/// Integer sums are exact in any order, so blocking changes no bit. When K fits one chunk (the
/// 1x1 convs of CNNs) each panel's tile starts from zero and is finished at once (q8_tile); the
/// quads past round_up(k, 4) hold zero codes and are not visited.
constexpr int kMR = 6;
constexpr int64_t kKC = 512;

inline __m256i bcast_pair2(const int16_t* p) {  // 4 int16 (k .. k+3) in every 64-bit lane
  int64_t v;
  std::memcpy(&v, p, 8);
  return _mm256_set1_epi64x(v);
}

/// acc[r][h] += widened quads of one panel over kc k (k multiple of 4) times rows xa[r][0..kc),
/// for MR = 6 rows (12 accumulators), or 4 / 2 for the last rows of a call.
template <int MR>
inline void q8_quads(const uint8_t* wq, const int16_t* xa, int64_t kc, __m256i* acc) {
  for (int64_t k = 0; k < kc; k += 4, wq += 32) {
    const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wq)));
    const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wq + 16)));
    for (int r = 0; r < MR; ++r) {
      const __m256i bx = bcast_pair2(xa + r * kKC + k);
      acc[2 * r] = _mm256_add_epi32(acc[2 * r], _mm256_madd_epi16(w0, bx));
      acc[2 * r + 1] = _mm256_add_epi32(acc[2 * r + 1], _mm256_madd_epi16(w1, bx));
    }
    keep<MR * 2>(acc);
  }
}

/// The same, accumulating into int32 sums kept in memory between K chunks.
template <int MR>
inline void q8_micro(const uint8_t* wq, const int16_t* xa, int64_t kc, int32_t* acc_mem) {
  __m256i acc[MR * 2];
  for (int i = 0; i < MR * 2; ++i) acc[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(acc_mem) + i);
  q8_quads<MR>(wq, xa, kc, acc);
  for (int i = 0; i < MR * 2; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(acc_mem) + i, acc[i]);
}

/// Rows 0-3 / 4-7 lanes (row, k pair) -> 8 per-row int32 sums in row order.
inline __m256i fold_rows(__m256i lo, __m256i hi) {
  return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xD8);  // [r0 r1 r4 r5 | r2 r3 r6 r7] -> r0..r7
}

/// One register tile computed over all of K (a single chunk) and finished in place: no int32
/// sums in memory (the small-K convs of CNNs: K = 16..512).
template <int MR>
inline void q8_tile(const lb_mm_args* a, const uint8_t* wq, const int16_t* xa, int64_t kc, int64_t m, int left,
                    int64_t n, int64_t n1) {
  alignas(32) int32_t sums[MR * 16];
  {  // the accumulators only ever see constant indices, so they stay in registers
    __m256i acc[MR * 2];
    for (int i = 0; i < MR * 2; ++i) acc[i] = _mm256_setzero_si256();
    q8_quads<MR>(wq, xa, kc, acc);
    for (int i = 0; i < MR * 2; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(sums) + i, acc[i]);
  }
  const __m256i* v = reinterpret_cast<const __m256i*>(sums);
  const __m256i zs = _mm256_mullo_epi32(_mm256_set1_epi32(a->act_zero),
                                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->row_sum + n)));
  const __m256 sw = _mm256_loadu_ps(a->row_scale + n);
  for (int r = 0; r < MR && r < left; ++r) {
    const __m256i dot = _mm256_sub_epi32(fold_rows(_mm256_load_si256(v + 2 * r), _mm256_load_si256(v + 2 * r + 1)), zs);
    const __m256 s = _mm256_mul_ps(_mm256_set1_ps(a->xm[m + r].d), sw);
    store_rows(a->y + (m + r) * a->ldy, a->bias, n, n1, _mm256_mul_ps(_mm256_cvtepi32_ps(dot), s));
  }
}

}  // namespace

void lb_gemv_f32_q8d_q8c_16x4__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t m = m0; m < m1; ++m) {
    StreamPrefetch pf(a->w + (n0 / 8) * 8 * a->kp);
    for (int64_t n = n0; n < n1; n += 8) gemv_panel(a, m, n, n1, pf);
  }
}

void lb_gemm_f32_q8d_q8c_6x8__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t kp = a->kp;
  // Codes past k are 0 (both packers pad with zeros), so the quads past round_up(k, 4) are skipped:
  // a K = 16 conv padded to kp = 32 does half the work.
  const int64_t kq = a->k > 0 && a->k <= kp ? (a->k + 3) & ~int64_t(3) : kp;
  const bool one_chunk = kq <= kKC;  // sums stay in registers, finished per panel
  const int64_t p0 = n0 / 8, p1 = (n1 + 7) / 8;
  int64_t block = (192 * 1024) / (8 * kp);  // panels per L2 block
  block = block < 1 ? 1 : block > 32 ? 32 : block;
  alignas(32) int16_t xa[kMR * kKC];
  alignas(32) int32_t accs[32 * kMR * 2 * 8];  // [panel of the block][row][half][8]
  for (int64_t pb = p0; pb < p1; pb += block) {
    const int64_t pe = pb + block < p1 ? pb + block : p1;
    for (int64_t m = m0; m < m1;) {
      const int left = int(m1 - m < kMR ? m1 - m : kMR);
      const int mr = left > 4 ? kMR : left > 2 ? 4 : 2;  // tile height: 6, or 4 / 2 for the last rows
      if (!one_chunk) std::memset(accs, 0, sizeof(accs[0]) * size_t(pe - pb) * kMR * 16);
      for (int64_t k0 = 0; k0 < kq; k0 += kKC) {
        const int64_t kc = kq - k0 < kKC ? kq - k0 : kKC;
        for (int r = 0; r < mr; ++r) {  // rows past m1 repeat row m (computed, never stored)
          const int8_t* xr = a->xq + (m + (r < left ? r : 0)) * kp + k0;
          for (int64_t k = 0; k < kc; k += 16)  // up to round_up(kc, 16) <= kp - k0: inside the row
            _mm256_store_si256(reinterpret_cast<__m256i*>(xa + r * kKC + k),
                               _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xr + k))));
        }
        for (int64_t p = pb; p < pe; ++p) {
          const uint8_t* wq = a->w + p * 8 * kp + 8 * k0;
          if (one_chunk) {
            if (mr == kMR) q8_tile<kMR>(a, wq, xa, kc, m, left, p * 8, n1);
            else if (mr == 4) q8_tile<4>(a, wq, xa, kc, m, left, p * 8, n1);
            else q8_tile<2>(a, wq, xa, kc, m, left, p * 8, n1);
            continue;
          }
          int32_t* acc = accs + (p - pb) * kMR * 16;
          if (mr == kMR) q8_micro<kMR>(wq, xa, kc, acc);
          else if (mr == 4) q8_micro<4>(wq, xa, kc, acc);
          else q8_micro<2>(wq, xa, kc, acc);
        }
      }
      if (!one_chunk)
        for (int64_t p = pb; p < pe; ++p)
          for (int r = 0; r < left; ++r) {
            const __m256i* v = reinterpret_cast<const __m256i*>(accs + ((p - pb) * kMR + r) * 16);
            finish(a, m + r, p * 8, n1, fold_rows(_mm256_load_si256(v), _mm256_load_si256(v + 1)));
          }
      m += left;
    }
  }
}
