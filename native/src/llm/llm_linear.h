// Linear layers of the decoder: y[m, n] = x[m, k] · W[n, k]^T (+ bias). Float weights run a
// plain fp32 dot product (the reference scheme); quantized weights go to the kernels' qlinear
// (GEMV for one row, GEMM for a prefill chunk).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "llm/llm_parallel.h"
#include "lowbit/lowbit.h"
#include "qlinear.h"

namespace lb {
namespace llm {

struct Linear {
  enum Kind : uint8_t { None = 0, F32, Quant };
  Kind kind = None;              ///< how the weight is stored
  int n = 0;                     ///< output features
  int k = 0;                     ///< input features
  const float* w = nullptr;      ///< F32: [n, k]
  const float* bias = nullptr;   ///< [n] or nullptr
  PackedWeight pw;               ///< Quant: the packed weight (lowbit_blocks.h layout) for qlinear
  size_t packed_bytes = 0;       ///< Quant: bytes of the packed weight
  std::string format_name;       ///< for messages and the profiler ("f32", "q4_g32", ...)

  /// Bytes streamed from memory by one pass over the weight.
  int64_t bytes() const { return kind == F32 ? int64_t(n) * k * 4 : int64_t(packed_bytes); }
};

/// Per-session scratch the quantized path needs (activation codes and scales), sized at open.
struct LinearScratch {
  std::vector<uint8_t> buf;
  QLinearInfo last;  ///< what the last quantized call ran (kernel name, ISA)
};

/// y[m, n] = x[m, k] W^T + bias, rows of y stride n. Threads split n; each output is reduced by
/// one thread in a fixed order, so results do not depend on the thread count.
lb_status linear_forward(const Linear& L, const float* x, int m, float* y, LinearScratch& scratch, Parallel& par);

/// Scratch bytes linear_forward needs for m rows of L.
size_t linear_scratch_bytes(const Linear& L, int m);

}  // namespace llm
}  // namespace lb
