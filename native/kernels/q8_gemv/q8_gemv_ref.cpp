// Scalar reference for q8_gemv: defines the result every SIMD variant must match bit for bit.
#include "kernel_types.h"

void lb_gemv_s32_q8_q8c__ref(const int8_t* w, const int8_t* x, int32_t* y, int64_t n, int64_t k) {
  for (int64_t i = 0; i < n; ++i) {
    int32_t acc = 0;
    const int8_t* row = w + i * k;
    for (int64_t j = 0; j < k; ++j) acc += int32_t(row[j]) * int32_t(x[j]);
    y[i] = acc;
  }
}
