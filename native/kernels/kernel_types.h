// Function types of every kernel family. One `using lb_<family>_t = ...` per family; the
// dispatch table (dispatch.h) holds one pointer of each type. Kernels are stateless.
#pragma once
#include <cstddef>
#include <cstdint>

/// q8_gemv: y[n] = sum_k w[n*k_dim + k] * x[k]  (int8 x int8 -> int32, exact).
/// Weights must lie in [-127, 127] (symmetric quantization); activations may be any int8.
using lb_q8_gemv_t = void(const int8_t* w, const int8_t* x, int32_t* y, int64_t n, int64_t k);
