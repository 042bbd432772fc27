// Function types of every kernel family. One `using lb_<family>_t = ...` per family; the
// dispatch table (dispatch.h) holds one pointer of each type. Kernels are stateless.
#pragma once
#include <cstddef>
#include <cstdint>

/// q8_gemv: y[n] = sum_k w[n*k_dim + k] * x[k]  (int8 x int8 -> int32, exact).
/// Weights must lie in [-127, 127] (symmetric quantization); activations may be any int8.
using lb_q8_gemv_t = void(const int8_t* w, const int8_t* x, int32_t* y, int64_t n, int64_t k);

#include "lowbit/lowbit_blocks.h"

/// Arguments of the quantized matmul kernels: y[m, n] = x[m, :] . dequant(W)[n, :] + bias[n].
/// One call computes rows [m0, m1) and output columns [n0, n1): n0 is a multiple of 8 (a panel
/// boundary), n1 is a multiple of 8 or n. Everything a kernel reads is here; kernels keep no state.
struct lb_mm_args {
  const uint8_t* w;        ///< packed weight (lowbit_blocks.h layout of `fmt`)
  int32_t fmt;             ///< lb_wfmt
  int32_t group;           ///< group size along K (Q8: kp, one group per row)
  int64_t n;               ///< output channels (logical, unpadded)
  int64_t k;               ///< reduction length (logical)
  int64_t kp;              ///< K of the packed codes: Q8 rounds K up to 32, group formats use K
  const float* row_scale;  ///< Q8: [n_pad] weight row scales (inside `w`)
  const int32_t* row_sum;  ///< Q8: [n_pad] sums of weight codes (inside `w`)
  const int8_t* lut;       ///< C4: [16] int8 codebook (inside `w`)
  const int8_t* xq;        ///< int8 activations [m][kp] (a8 kernels)
  const lb_q8_meta* xm;    ///< a8: [m][kp / group] activation scale and code sum per group
  int32_t act_zero;        ///< Q8 static activations: zero point (0 when dynamic)
  const float* xf;         ///< a16 kernels: float activations [m][k]
  const float* xs;         ///< a16 kernels: [m][k / group] sums of x over each group
  const float* bias;       ///< [n] or null
  float* y;                ///< output, row m at y + m * ldy
  int64_t ldy;             ///< output row stride (>= n)
  /// gemm_q7 on AVX2, optional: the activations as u8, xu[i] = xq[i] ^ 0x80 = x + 128 ([m][kp]),
  /// flipped once per call by the caller (qlinear) so that the kernel reads them in place; null:
  /// the kernel flips row tiles itself. Every other kernel ignores it.
  const uint8_t* xu;
  int64_t ldu;  ///< bytes from one xu row to the next (0: kp); qlinear pads it for the AVX2 w4a8 / t2a8 GEMMs
  /// gemm_q8 / gemm_q7 on AVX-512 VNNI, optional: the activations as u8 in row tiles of 12 (lb::layout::q8_tile_row,
  /// rows [0, m1)), written once per call by the caller (qlinear) so that every call of every thread reads the same
  /// copy; null (or m0 not a multiple of 12): the kernel tiles its rows itself. Every other kernel ignores it.
  const uint8_t* xt;
  /// The group GEMMs on AVX-512 VNNI (Q4 / Q4A / T2 / C4), optional: rows [0, m1) in tiles of 8 (xg) with
  /// their per-group metadata (xgm, lb::layout::GroupTileMeta), mm_gtile.h's group_tiles, written once per call by
  /// the caller (qlinear) so that its column tasks do not each lay out every row; null (or m0 not a multiple of
  /// 8): the kernel lays out its rows itself. Every other kernel ignores them.
  const int8_t* xg;
  const void* xgm;
};

/// Matmul kernel: rows [m0, m1) x columns [n0, n1) of lb_mm_args.
using lb_mm_t = void(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
using lb_gemv_q8_t = lb_mm_t;   ///< w8a8 GEMV (m1 - m0 == 1): Q8 weights, int8 activations
using lb_gemm_q8_t = lb_mm_t;   ///< w8a8 GEMM (register tiles over m)
using lb_gemm_q7_t = lb_mm_t;   ///< w8a8 GEMM for 7-bit Q8 weights (codes in [-LB_Q8_W7_MAX, LB_Q8_W7_MAX])
using lb_gemv_q4_t = lb_mm_t;   ///< w4a8 GEMV: Q4 / Q4A weights
using lb_gemm_q4_t = lb_mm_t;   ///< w4a8 GEMM
using lb_gemv_c4_t = lb_mm_t;   ///< codebook (NF4 / FP4 / learned) GEMV, int8 activations
using lb_gemm_c4_t = lb_mm_t;   ///< codebook GEMM
using lb_gemv_t2_t = lb_mm_t;   ///< ternary GEMV, int8 activations
using lb_gemm_t2_t = lb_mm_t;   ///< ternary GEMM
using lb_gemv_q4f_t = lb_mm_t;  ///< w4a16 GEMV: Q4 / Q4A weights, float activations
using lb_gemm_q4f_t = lb_mm_t;  ///< w4a16 GEMM

/// Arguments of the activation quantizer (one row per call).
struct lb_quant_args {
  const float* x;          ///< [k] input row
  int64_t k;               ///< logical length
  int64_t kp;              ///< padded length (multiple of 32); codes k..kp-1 are written as 0
  int32_t block;           ///< elements per lb_q8_meta (divides kp; kp for a single block)
  int32_t per_row;         ///< dynamic: 1 = one scale for the whole row (replicated in every meta)
  const float* mul;        ///< optional [k] multipliers applied to x first (smoothing), or null
  int32_t is_static;       ///< 1: static scale/zero point below instead of dynamic scales
  float static_scale;      ///< static: x ~= static_scale * (q - static_zero)
  int32_t static_zero;     ///< static: zero point in [-128, 127]
};

/// Activation quantizer: dynamic symmetric int8 (d = amax / 127, q = rint(x * (127 / amax)) in
/// [-127, 127]) per block or per row, or static (q = clamp(rint(x / scale) + zero, -128, 127)).
/// Writes q[kp] and meta[kp / block] (static: d = scale, s = sum of q).
using lb_quant_q8_t = void(const lb_quant_args* a, int8_t* q, lb_q8_meta* meta);
