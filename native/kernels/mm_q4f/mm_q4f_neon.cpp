// w4a16 (Q4 / Q4A, float activations) for baseline NEON: each 32-bit lane of a chunk half holds
// 8 nibbles of one row; shift + mask + convert gives one k for 4 rows, then FMA with x[k].
#if !defined(__ARM_NEON)
#error "mm_q4f_neon.cpp needs NEON"
#endif
#include "mm_neon.h"

namespace {
using namespace lb::neon;
using lb::layout::block;

constexpr int kNibK[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // k offset in the chunk of nibble j of a lane

template <int MR>
void run(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t G = a->group, ng = a->k / G;
  const bool asym = a->fmt == LB_WFMT_Q4A;
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), a->group);
  const int hb = asym ? 32 : 16;
  const uint32x4_t m4 = vdupq_n_u32(0x0F);
  for (int64_t n = n0; n < n1; n += 8)
    for (int64_t m = m0; m < m1; m += MR) {
      const int mr = int(m1 - m < MR ? m1 - m : MR);
      float32x4_t acc[MR][2];
      for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = vdupq_n_f32(0.f);
      const uint8_t* blk = block(a->w, a->fmt, a->k, a->group, n / 8, 0);
      for (int64_t g = 0; g < ng; ++g, blk += bb) {
        float32x4_t dot[MR][2];
        for (int r = 0; r < MR; ++r) dot[r][0] = dot[r][1] = vdupq_n_f32(0.f);
        for (int64_t c = 0; c < G / 8; ++c) {
          const uint32x4_t v0 = vld1q_u32(reinterpret_cast<const uint32_t*>(blk + hb + 32 * c));
          const uint32x4_t v1 = vld1q_u32(reinterpret_cast<const uint32_t*>(blk + hb + 32 * c + 16));
          for (int j = 0; j < 8; ++j) {
            const int32x4_t sh = vdupq_n_s32(-4 * j);  // shift right by 4j
            const float32x4_t w0 = vcvtq_f32_u32(vandq_u32(vshlq_u32(v0, sh), m4));
            const float32x4_t w1 = vcvtq_f32_u32(vandq_u32(vshlq_u32(v1, sh), m4));
            const int64_t k = g * G + 8 * c + kNibK[j];
            for (int r = 0; r < mr; ++r) {
              const float xv = a->xf[(m + r) * a->k + k];
              dot[r][0] = vfmaq_n_f32(dot[r][0], w0, xv);
              dot[r][1] = vfmaq_n_f32(dot[r][1], w1, xv);
            }
          }
        }
        const float32x4_t d0 = load_fp16x4(blk), d1 = load_fp16x4(blk + 8);
        for (int r = 0; r < mr; ++r) {
          const float xs = a->xs[(m + r) * ng + g];
          if (asym) {
            acc[r][0] = vfmaq_f32(vfmaq_n_f32(acc[r][0], load_fp16x4(blk + 16), xs), d0, dot[r][0]);
            acc[r][1] = vfmaq_f32(vfmaq_n_f32(acc[r][1], load_fp16x4(blk + 24), xs), d1, dot[r][1]);
          } else {
            acc[r][0] = vfmaq_f32(acc[r][0], d0, vsubq_f32(dot[r][0], vdupq_n_f32(8.f * xs)));
            acc[r][1] = vfmaq_f32(acc[r][1], d1, vsubq_f32(dot[r][1], vdupq_n_f32(8.f * xs)));
          }
        }
      }
      for (int r = 0; r < mr; ++r) {
        float* y = a->y + (m + r) * a->ldy;
        store4(y, a->bias, n, n1, acc[r][0]);
        if (n + 4 < n1) store4(y, a->bias, n + 4, n1, acc[r][1]);
      }
    }
}

}  // namespace

void lb_gemv_f32_f32_q4g_8x8__neon(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  run<1>(a, m0, m1, n0, n1);
}

void lb_gemm_f32_f32_q4g_6x8__neon(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  run<6>(a, m0, m1, n0, n1);
}
