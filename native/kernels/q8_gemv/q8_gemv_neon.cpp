// q8_gemv for baseline AArch64 NEON: widening multiplies (smull/smlal) and pairwise adds.
#if !defined(__ARM_NEON)
#error "q8_gemv_neon.cpp needs NEON"
#endif
#include "kernel_types.h"
#include "q8_gemv/q8_gemv_neon_rows.h"

namespace {
inline int32x4_t dot16(int32x4_t acc, int8x16_t w, int8x16_t x) {
  int16x8_t p = vmull_s8(vget_low_s8(w), vget_low_s8(x));
  p = vmlal_s8(p, vget_high_s8(w), vget_high_s8(x));  // |sum| <= 2*127*128: fits int16
  return vpadalq_s16(acc, p);
}
}  // namespace

void lb_gemv_s32_q8_q8c_4x16__neon(const int8_t* w, const int8_t* x, int32_t* y, int64_t n, int64_t k) {
  lb_q8_gemv_neon_rows<dot16>(w, x, y, n, k);
}
