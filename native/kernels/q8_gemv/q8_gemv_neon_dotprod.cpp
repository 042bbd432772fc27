// q8_gemv for AArch64 with the dot-product extension (sdot): 16 MACs per instruction per row.
#if !defined(__ARM_FEATURE_DOTPROD)
#error "q8_gemv_neon_dotprod.cpp must be compiled with +dotprod"
#endif
#include "kernel_types.h"
#include "q8_gemv/q8_gemv_neon_rows.h"

namespace {
inline int32x4_t dot16(int32x4_t acc, int8x16_t w, int8x16_t x) { return vdotq_s32(acc, w, x); }
}  // namespace

void lb_gemv_s32_q8_q8c_4x16__neon_dotprod(const int8_t* w, const int8_t* x, int32_t* y, int64_t n, int64_t k) {
  lb_q8_gemv_neon_rows<dot16>(w, x, y, n, k);
}
