// The op-level entry point of the quantized kernels: y[m, n] = x[m, :] . dequant(W)[n, :] + bias[n]
// for every weight format of lowbit_blocks.h. It quantizes the activations once (shared by all
// threads), picks the GEMV (m == 1) or GEMM (m >= 2) kernel of the active dispatch table, splits
// the output over the pool's threads, and reports which kernel ran. No allocation: the caller
// plans `qlinear_scratch_bytes` of scratch. Results are bitwise identical for any thread count.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernel_types.h"
#include "lowbit/lowbit.h"
#include "lowbit/lowbit_blocks.h"
#include "threadpool.h"

namespace lb {

/// A packed weight, pointing into memory the runtime owns (e.g. an mmapped package section).
struct PackedWeight {
  lb_wfmt fmt = LB_WFMT_Q8;        ///< format of the bytes
  int64_t n = 0;                   ///< output channels
  int64_t k = 0;                   ///< reduction length
  int32_t group = 0;               ///< group size along K (Q8: k; packed_weight_init sets kp)
  int32_t code_bits = 8;           ///< derived: 7 for a 7-bit Q8 weight (every code within
                                   ///< +-LB_Q8_W7_MAX: gemm_q7 kernels), else 8
  const uint8_t* data = nullptr;   ///< lb_wfmt_packed_bytes(fmt, n, k, group) bytes
  // Derived by packed_weight_init (do not set by hand):
  int64_t kp = 0;                  ///< K of the packed codes (Q8: k rounded up to 32)
  const float* row_scale = nullptr;  ///< Q8 row scales inside `data`
  const int32_t* row_sum = nullptr;  ///< Q8 row code sums inside `data`
  const int8_t* lut = nullptr;       ///< C4 int8 codebook inside `data`
};

/// Kernel arguments with the weight's fields filled in (activations, outputs and bias left empty).
inline lb_mm_args mm_args(const PackedWeight& w) {
  lb_mm_args a{};
  a.w = w.data;
  a.fmt = w.fmt;
  a.group = w.group;
  a.n = w.n;
  a.k = w.k;
  a.kp = w.kp;
  a.row_scale = w.row_scale;
  a.row_sum = w.row_sum;
  a.lut = w.lut;
  return a;
}

/// Fills `out` for packed bytes `data` of `bytes` bytes; fails with LB_ERR_FORMAT when the size
/// does not match the format and shape, LB_ERR_INVALID_ARG for a bad format, shape or group.
/// `data` should be 4-byte aligned (Q8 scales are read as float); 64 is best. For Q8 it scans the
/// codes (stopping at the first one outside +-LB_Q8_W7_MAX, i.e. within the first rows of an
/// 8-bit weight) and sets code_bits = 7 when they all fit.
lb_status packed_weight_init(lb_wfmt fmt, int64_t n, int64_t k, int32_t group, const void* data, size_t bytes,
                             PackedWeight* out);

/// How activations enter the kernels.
enum lb_act_mode : int32_t {
  LB_ACT_DYNAMIC = 0,  ///< int8, scale per group of the weight (per row for Q8) computed at run time
  LB_ACT_DYNAMIC_ROW = 1,  ///< int8, one dynamic scale per row (code sums still per group)
  LB_ACT_STATIC = 2,   ///< int8 with a calibrated scale and zero point (Q8 weights only: w8a8 static)
  LB_ACT_FLOAT = 3,    ///< float activations (Q4 / Q4A weights only: w4a16)
};

/// Options of one qlinear call.
struct QLinearOpts {
  lb_act_mode act = LB_ACT_DYNAMIC;  ///< activation mode
  float act_scale = 0.f;             ///< LB_ACT_STATIC: x ~= act_scale * (q - act_zero)
  int32_t act_zero = 0;              ///< LB_ACT_STATIC: zero point in [-128, 127]
  const float* act_mul = nullptr;    ///< optional [k] multipliers applied to x before quantizing
                                     ///< (smoothing: 1 / smooth[k]); int8 modes only
  int64_t ldx = 0;                   ///< input row stride in floats (0: k)
  int64_t ldy = 0;                   ///< output row stride in floats (0: n)
  /// optional epilogue on finished output rows [r0, r1) (row r at y + r * ldy), called once per
  /// disjoint row range, possibly from several threads: it must depend only on the rows' values
  void (*post)(void* ctx, float* y, int64_t ldy, int64_t n, int64_t r0, int64_t r1) = nullptr;
  void* post_ctx = nullptr;
};

/// What ran, for the profiler.
struct QLinearInfo {
  const char* kernel = "";      ///< kernel name, e.g. "lb_gemv_f32_q8d_q4g_8x32__avx2"
  lb_isa isa = LB_ISA_SCALAR;   ///< ISA of that kernel
  const char* quant = "";       ///< activation quantizer that ran ("" for float activations)
  int threads = 1;              ///< threads that took part
  int64_t tasks = 0;            ///< tasks the output was split into
};

/// Scratch bytes one qlinear call needs (64-byte aligned pieces; pass at least this much).
size_t qlinear_scratch_bytes(const PackedWeight& w, int64_t m, const QLinearOpts& opts = QLinearOpts());

/// y[m, n] = x[m, :k] . dequant(w)[n, :] + bias[n] (bias may be null). `pool` may be null (one
/// thread). `scratch` must hold qlinear_scratch_bytes(w, m, opts) bytes. `info` may be null.
/// Uses the active dispatch table (lb_isa_select / LOWBIT_ISA): LB_ERR_ISA when LOWBIT_ISA names
/// a path this CPU cannot run; LB_ERR_UNSUPPORTED for a format/mode pair with no kernel.
lb_status qlinear(const PackedWeight& w, const float* x, int64_t m, const float* bias, float* y,
                  const QLinearOpts& opts, ThreadPool* pool, void* scratch, size_t scratch_bytes,
                  QLinearInfo* info = nullptr);

/// The same on an explicit kernel table (tests and benchmarks force an ISA path this way).
struct KernelTable;
lb_status qlinear_with(const KernelTable& table, const PackedWeight& w, const float* x, int64_t m,
                       const float* bias, float* y, const QLinearOpts& opts, ThreadPool* pool, void* scratch,
                       size_t scratch_bytes, QLinearInfo* info = nullptr);

}  // namespace lb
