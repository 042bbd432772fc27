// w4a8 (Q4 / Q4A) for AVX2: unsigned nibbles x int8 activations with int16 sums per 32 k.
// GEMV: one panel (8 rows) at a time. GEMM: codes unpacked once per call into int8 panels, 6 rows x
// 16 columns per register tile (lb::avx2::ugemm, mm_avx2.h).
//
// Why one panel: a panel's groups are contiguous and panels follow each other, so walking the
// panels in order reads the weight as one sequential stream, which the hardware prefetcher
// (plus the software prefetch in ugemv_panels) follows without restarts (lb::avx2::ugemv). The former GEMV walked
// 4 panels at once (sharing the activation broadcasts): 4 streams that restart every 32 rows,
// which at K = 2048 (9 KB per panel) never reach full speed. Measured on the 22-layer decode
// set (docs/llm.md): 1.15-1.9x the 4-panel kernel's GB/s in the same run. The arithmetic per
// output (groups in order, one FMA each) is unchanged, so results are bitwise the same.
#if !defined(__AVX2__)
#error "mm_q4_avx2.cpp must be compiled with -mavx2"
#endif
#include "mm_avx2.h"

using lb::avx2::Nib;
using lb::avx2::UFmt;

// (The name keeps its registered "32x32"; the kernel now runs 8 rows x 32 k per step.)
void lb_gemv_f32_q8d_q4g_32x32__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (a->fmt == LB_WFMT_Q4A) lb::avx2::ugemv<UFmt<Nib, 0, true>>(a, m0, m1, n0, n1);
  else lb::avx2::ugemv<UFmt<Nib, 8, false>>(a, m0, m1, n0, n1);
}

// (The name keeps its registered "4x16"; the register tile is now 6 rows x 16 columns.)
void lb_gemm_f32_q8d_q4g_4x16__avx2(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (a->fmt == LB_WFMT_Q4A) lb::avx2::ugemm<UFmt<Nib, 0, true>>(a, m0, m1, n0, n1);
  else lb::avx2::ugemm<UFmt<Nib, 8, false>>(a, m0, m1, n0, n1);
}
