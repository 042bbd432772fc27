// AArch64 building blocks of the quantized matmuls (included only by *_neon*.cpp files).
//
// A 32-byte quad unit of a panel is two 16-byte registers: rows 0-3 and rows 4-7, 4 k each. All
// ARM dot products are int8 x int8 (codes are stored unsigned, 0..15 or 0..2, which are valid
// int8), so the same loops serve every format once a chunk is decoded into int8 quads:
//  * Dot<kBase>: baseline NEON, smull/smlal + pairwise adds (exact: pairs stay within int16),
//  * Dot<kDotprod>: sdot by lane, 16 multiply-adds per instruction,
// and the i8mm GEMM (smmla) rearranges two quads into 8-k rows with one zip.
#pragma once
#if !defined(__aarch64__)
#error "mm_neon.h is for AArch64"
#endif
#include <arm_neon.h>

#include <cstring>

#include "kernel_types.h"
#include "mm_layout.h"

namespace lb {
namespace neon {

enum DotIsa { kBase, kDotprod };

/// acc[i] += sum_j w[4i + j] * x[4 * L + j] (i = 4 rows, j = 4 k).
template <DotIsa I, int L>
inline int32x4_t dot(int32x4_t acc, int8x16_t w, int8x16_t x) {
#if defined(__ARM_FEATURE_DOTPROD)
  if constexpr (I == kDotprod) return vdotq_laneq_s32(acc, w, x, L);
#endif
  const int8x16_t xr = vreinterpretq_s8_s32(vdupq_laneq_s32(vreinterpretq_s32_s8(x), L));
  const int16x8_t p = vpaddq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(xr)), vmull_high_s8(w, xr));
  return vpadalq_s16(acc, p);
}

inline float32x4_t load_fp16x4(const uint8_t* p) {
  uint16_t h[4];
  std::memcpy(h, p, 8);
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

/// Stores 4 outputs (+ bias) at rows n .. n+3, only those below n1.
inline void store4(float* y, const float* bias, int64_t n, int64_t n1, float32x4_t v) {
  if (n + 4 <= n1) {
    if (bias) v = vaddq_f32(v, vld1q_f32(bias + n));
    vst1q_f32(y + n, v);
    return;
  }
  float t[4];
  vst1q_f32(t, v);
  for (int64_t j = n; j < n1; ++j) y[j] = t[j - n] + (bias ? bias[j] : 0.f);
}

/// Decoders: 32-byte chunk -> int8 quads (lo = rows 0-3, hi = rows 4-7), kQuads per chunk.
struct Nib {
  static constexpr int kQuads = 2;
  static inline void quads(const uint8_t* c, int8x16_t lo[2], int8x16_t hi[2], const int8_t* /*lut*/) {
    const uint8x16_t a = vld1q_u8(c), b = vld1q_u8(c + 16), m4 = vdupq_n_u8(0x0F);
    lo[0] = vreinterpretq_s8_u8(vandq_u8(a, m4));
    hi[0] = vreinterpretq_s8_u8(vandq_u8(b, m4));
    lo[1] = vreinterpretq_s8_u8(vshrq_n_u8(a, 4));
    hi[1] = vreinterpretq_s8_u8(vshrq_n_u8(b, 4));
  }
};
struct Lut {  // codebook: nibble indices through the int8 table
  static constexpr int kQuads = 2;
  static inline void quads(const uint8_t* c, int8x16_t lo[2], int8x16_t hi[2], const int8_t* lut) {
    const int8x16_t t = vld1q_s8(lut);
    const uint8x16_t a = vld1q_u8(c), b = vld1q_u8(c + 16), m4 = vdupq_n_u8(0x0F);
    lo[0] = vqtbl1q_s8(t, vandq_u8(a, m4));
    hi[0] = vqtbl1q_s8(t, vandq_u8(b, m4));
    lo[1] = vqtbl1q_s8(t, vshrq_n_u8(a, 4));
    hi[1] = vqtbl1q_s8(t, vshrq_n_u8(b, 4));
  }
};
struct Ter {
  static constexpr int kQuads = 4;
  static inline void quads(const uint8_t* c, int8x16_t lo[4], int8x16_t hi[4], const int8_t* /*lut*/) {
    const uint8x16_t a = vld1q_u8(c), b = vld1q_u8(c + 16), m2 = vdupq_n_u8(0x03);
    lo[0] = vreinterpretq_s8_u8(vandq_u8(a, m2));
    hi[0] = vreinterpretq_s8_u8(vandq_u8(b, m2));
    lo[1] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(a, 2), m2));
    hi[1] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(b, 2), m2));
    lo[2] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(a, 4), m2));
    hi[2] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(b, 4), m2));
    lo[3] = vreinterpretq_s8_u8(vshrq_n_u8(a, 6));
    hi[3] = vreinterpretq_s8_u8(vshrq_n_u8(b, 6));
  }
};

/// Group formats: decoder, offset folded with the activation sums (Q4: 8, T2: 1, C4: 0), and
/// whether the block has minimums (Q4A).
template <class D, int Off, bool Asym>
struct GFmt {
  using Dec = D;
  static constexpr int kOff = Off;
  static constexpr bool kAsym = Asym;
};

/// dot[0..1] (rows 0-3, 4-7) += the 8 quads of one 32-k sub-block against x[0..31].
template <DotIsa I, class D>
inline void sub_dot(const uint8_t* c, const int8_t* lut, const int8_t* x, int32x4_t& d0, int32x4_t& d1) {
  const int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 16);
  constexpr int kQ = D::kQuads;
  for (int ch = 0; ch < 8 / kQ; ++ch) {
    int8x16_t lo[kQ], hi[kQ];
    D::quads(c + 32 * ch, lo, hi, lut);
    // quad index within the sub-block: qi = ch * kQ + i -> activation bytes 4 * qi
#define LB_Q(i)                                                             \
  if constexpr (i < kQ) {                                                   \
    const int qi = ch * kQ + i;                                             \
    switch (qi) {                                                           \
      case 0: d0 = dot<I, 0>(d0, lo[i], x0); d1 = dot<I, 0>(d1, hi[i], x0); break; \
      case 1: d0 = dot<I, 1>(d0, lo[i], x0); d1 = dot<I, 1>(d1, hi[i], x0); break; \
      case 2: d0 = dot<I, 2>(d0, lo[i], x0); d1 = dot<I, 2>(d1, hi[i], x0); break; \
      case 3: d0 = dot<I, 3>(d0, lo[i], x0); d1 = dot<I, 3>(d1, hi[i], x0); break; \
      case 4: d0 = dot<I, 0>(d0, lo[i], x1); d1 = dot<I, 0>(d1, hi[i], x1); break; \
      case 5: d0 = dot<I, 1>(d0, lo[i], x1); d1 = dot<I, 1>(d1, hi[i], x1); break; \
      case 6: d0 = dot<I, 2>(d0, lo[i], x1); d1 = dot<I, 2>(d1, hi[i], x1); break; \
      default: d0 = dot<I, 3>(d0, lo[i], x1); d1 = dot<I, 3>(d1, hi[i], x1); break; \
    }                                                                       \
  }
    LB_Q(0) LB_Q(1) LB_Q(2) LB_Q(3)
#undef LB_Q
  }
}

/// GEMV / GEMM with sdot or smull over group formats: MR rows x one panel (8 outputs) per tile.
template <DotIsa I, class F, int MR>
void gemm_group(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t G = a->group, ng = a->k / G;
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), a->group);
  const int hb = layout::header_bytes(a->fmt);
  for (int64_t n = n0; n < n1; n += 8) {
    for (int64_t m = m0; m < m1; m += MR) {
      const int mr = int(m1 - m < MR ? m1 - m : MR);
      float32x4_t acc[MR][2];
      for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = vdupq_n_f32(0.f);
      const uint8_t* blk = layout::block(a->w, a->fmt, a->k, a->group, n / 8, 0);
      for (int64_t g = 0; g < ng; ++g, blk += bb) {
        int32x4_t di[MR][2];
        for (int r = 0; r < MR; ++r) di[r][0] = di[r][1] = vdupq_n_s32(0);
        for (int64_t sb = 0; sb < G / 32; ++sb) {
          const uint8_t* c = blk + hb + sb * 32 * (8 / F::Dec::kQuads);
          for (int r = 0; r < mr; ++r)
            sub_dot<I, typename F::Dec>(c, a->lut, a->xq + (m + r) * a->kp + g * G + sb * 32, di[r][0], di[r][1]);
        }
        const float32x4_t d0 = load_fp16x4(blk), d1 = load_fp16x4(blk + 8);
        for (int r = 0; r < mr; ++r) {
          const lb_q8_meta xm = a->xm[(m + r) * ng + g];
          if (F::kAsym) {
            const float32x4_t s = vdupq_n_f32(float(xm.s)), dx = vdupq_n_f32(xm.d);
            const float32x4_t t0 = vfmaq_f32(vmulq_f32(load_fp16x4(blk + 16), s), d0, vcvtq_f32_s32(di[r][0]));
            const float32x4_t t1 = vfmaq_f32(vmulq_f32(load_fp16x4(blk + 24), s), d1, vcvtq_f32_s32(di[r][1]));
            acc[r][0] = vfmaq_f32(acc[r][0], t0, dx);
            acc[r][1] = vfmaq_f32(acc[r][1], t1, dx);
          } else {
            const int32x4_t off = vdupq_n_s32(F::kOff * xm.s);
            acc[r][0] = vfmaq_f32(acc[r][0], vcvtq_f32_s32(vsubq_s32(di[r][0], off)), vmulq_n_f32(d0, xm.d));
            acc[r][1] = vfmaq_f32(acc[r][1], vcvtq_f32_s32(vsubq_s32(di[r][1], off)), vmulq_n_f32(d1, xm.d));
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
}

/// Q8 (w8a8) with sdot or smull: MR rows x one panel, int32 over all of K, one epilogue.
template <DotIsa I, int MR>
void gemm_q8(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t kp = a->kp;
  for (int64_t n = n0; n < n1; n += 8) {
    const uint8_t* wp = a->w + (n / 8) * 8 * kp;
    for (int64_t m = m0; m < m1; m += MR) {
      const int mr = int(m1 - m < MR ? m1 - m : MR);
      int32x4_t di[MR][2];
      for (int r = 0; r < MR; ++r) di[r][0] = di[r][1] = vdupq_n_s32(0);
      for (int64_t k = 0; k < kp; k += 16) {
        int8x16_t w[4][2];
        for (int q = 0; q < 4; ++q) {
          w[q][0] = vld1q_s8(reinterpret_cast<const int8_t*>(wp + 8 * k + 32 * q));
          w[q][1] = vld1q_s8(reinterpret_cast<const int8_t*>(wp + 8 * k + 32 * q + 16));
        }
        for (int r = 0; r < mr; ++r) {
          const int8x16_t x = vld1q_s8(a->xq + (m + r) * kp + k);
          di[r][0] = dot<I, 0>(di[r][0], w[0][0], x);
          di[r][1] = dot<I, 0>(di[r][1], w[0][1], x);
          di[r][0] = dot<I, 1>(di[r][0], w[1][0], x);
          di[r][1] = dot<I, 1>(di[r][1], w[1][1], x);
          di[r][0] = dot<I, 2>(di[r][0], w[2][0], x);
          di[r][1] = dot<I, 2>(di[r][1], w[2][1], x);
          di[r][0] = dot<I, 3>(di[r][0], w[3][0], x);
          di[r][1] = dot<I, 3>(di[r][1], w[3][1], x);
        }
      }
      for (int r = 0; r < mr; ++r) {
        float* y = a->y + (m + r) * a->ldy;
        for (int h = 0; h < 2; ++h) {
          int32x4_t d = di[r][h];
          if (a->act_zero) d = vmlsq_n_s32(d, vld1q_s32(a->row_sum + n + 4 * h), a->act_zero);
          const float32x4_t s = vmulq_n_f32(vld1q_f32(a->row_scale + n + 4 * h), a->xm[m + r].d);
          if (n + 4 * h < n1) store4(y, a->bias, n + 4 * h, n1, vmulq_f32(vcvtq_f32_s32(d), s));
        }
      }
    }
  }
}

#if defined(__ARM_FEATURE_MATMUL_INT8)
/// smmla tiles: 4 activation rows (2 row pairs) x 8 outputs (4 row pairs of the panel) per 8 k.
/// Two quads (4 k each) of rows r, r+1 zip into the 2 x 8 operand smmla wants.
struct Mmla {
  int32x4_t acc[2][4];  // [m pair][n pair]: (m0 n0, m0 n1, m1 n0, m1 n1)
  void zero() {
    for (auto& a : acc)
      for (auto& v : a) v = vdupq_n_s32(0);
  }
  /// lo_a/lo_b: rows 0-3, k 0-3 / 4-7; hi_a/hi_b: rows 4-7. x: 4 row pointers at this k.
  inline void step(int8x16_t lo_a, int8x16_t lo_b, int8x16_t hi_a, int8x16_t hi_b, const int8_t* const x[4]) {
    const int32x4_t la = vreinterpretq_s32_s8(lo_a), lb = vreinterpretq_s32_s8(lo_b);
    const int32x4_t ha = vreinterpretq_s32_s8(hi_a), hb = vreinterpretq_s32_s8(hi_b);
    const int8x16_t b[4] = {vreinterpretq_s8_s32(vzip1q_s32(la, lb)), vreinterpretq_s8_s32(vzip2q_s32(la, lb)),
                            vreinterpretq_s8_s32(vzip1q_s32(ha, hb)), vreinterpretq_s8_s32(vzip2q_s32(ha, hb))};
    const int8x16_t a0 = vcombine_s8(vld1_s8(x[0]), vld1_s8(x[1]));
    const int8x16_t a1 = vcombine_s8(vld1_s8(x[2]), vld1_s8(x[3]));
    for (int j = 0; j < 4; ++j) {
      acc[0][j] = vmmlaq_s32(acc[0][j], a0, b[j]);
      acc[1][j] = vmmlaq_s32(acc[1][j], a1, b[j]);
    }
  }
};

/// Row-pair operand vectors: (v[m0], v[m0], v[m1], v[m1]) and (w[n0], w[n1], w[n0], w[n1]).
inline float32x4_t pair_m(float a, float b) { return vcombine_f32(vdup_n_f32(a), vdup_n_f32(b)); }
inline float32x4_t pair_n(const float* w2) {
  const float32x2_t v = vld1_f32(w2);
  return vcombine_f32(v, v);
}

/// Stores a [2 m pairs][4 n pairs] float tile as rows m .. m+mr-1, outputs n .. n+7.
inline void store_mmla(const lb_mm_args* a, int64_t m, int mr, int64_t n, int64_t n1, const float32x4_t f[2][4]) {
  for (int mp = 0; mp < 2; ++mp)
    for (int h = 0; h < 2; ++h) {
      const int r = 2 * mp + h;
      if (r >= mr) return;
      float* y = a->y + (m + r) * a->ldy;
      const float64x2_t p0 = vreinterpretq_f64_f32(f[mp][0]), p1 = vreinterpretq_f64_f32(f[mp][1]);
      const float64x2_t p2 = vreinterpretq_f64_f32(f[mp][2]), p3 = vreinterpretq_f64_f32(f[mp][3]);
      const float32x4_t lo = vreinterpretq_f32_f64(h ? vzip2q_f64(p0, p1) : vzip1q_f64(p0, p1));
      const float32x4_t hi = vreinterpretq_f32_f64(h ? vzip2q_f64(p2, p3) : vzip1q_f64(p2, p3));
      store4(y, a->bias, n, n1, lo);
      if (n + 4 < n1) store4(y, a->bias, n + 4, n1, hi);
    }
}

/// i8mm GEMM over group formats: 4 rows x 8 outputs, int32 per group, float epilogue per group.
template <class F>
void gemm_group_mmla(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t G = a->group, ng = a->k / G;
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), a->group);
  const int hb = layout::header_bytes(a->fmt);
  constexpr int kQ = F::Dec::kQuads;
  for (int64_t n = n0; n < n1; n += 8)
    for (int64_t m = m0; m < m1; m += 4) {
      const int mr = int(m1 - m < 4 ? m1 - m : 4);
      int64_t rows[4];
      for (int r = 0; r < 4; ++r) rows[r] = m + (r < mr ? r : 0);
      float32x4_t facc[2][4];
      for (auto& fa : facc)
        for (auto& v : fa) v = vdupq_n_f32(0.f);
      const uint8_t* blk = layout::block(a->w, a->fmt, a->k, a->group, n / 8, 0);
      for (int64_t g = 0; g < ng; ++g, blk += bb) {
        Mmla t;
        t.zero();
        const uint8_t* c = blk + hb;
        for (int64_t q0 = 0; q0 < G / 4; q0 += kQ, c += 32) {  // one chunk: kQ quads
          int8x16_t lo[kQ], hi[kQ];
          F::Dec::quads(c, lo, hi, a->lut);
          for (int j = 0; j < kQ; j += 2) {
            const int64_t k = g * G + 4 * (q0 + j);
            const int8_t* x[4] = {a->xq + rows[0] * a->kp + k, a->xq + rows[1] * a->kp + k, a->xq + rows[2] * a->kp + k,
                                  a->xq + rows[3] * a->kp + k};
            t.step(lo[j], lo[j + 1], hi[j], hi[j + 1], x);
          }
        }
        alignas(16) float d[8], mn[8];
        vst1q_f32(d, load_fp16x4(blk));
        vst1q_f32(d + 4, load_fp16x4(blk + 8));
        if (F::kAsym) {
          vst1q_f32(mn, load_fp16x4(blk + 16));
          vst1q_f32(mn + 4, load_fp16x4(blk + 24));
        }
        for (int mp = 0; mp < 2; ++mp) {
          const lb_q8_meta xa = a->xm[rows[2 * mp] * ng + g], xb = a->xm[rows[2 * mp + 1] * ng + g];
          const float32x4_t dx = pair_m(xa.d, xb.d);
          for (int np = 0; np < 4; ++np) {
            const float32x4_t dw = pair_n(d + 2 * np);
            if (F::kAsym) {
              const float32x4_t sx = pair_m(float(xa.s), float(xb.s));
              const float32x4_t tt = vfmaq_f32(vmulq_f32(pair_n(mn + 2 * np), sx), dw, vcvtq_f32_s32(t.acc[mp][np]));
              facc[mp][np] = vfmaq_f32(facc[mp][np], tt, dx);
            } else {
              const int32x4_t off = vcombine_s32(vdup_n_s32(F::kOff * xa.s), vdup_n_s32(F::kOff * xb.s));
              facc[mp][np] = vfmaq_f32(facc[mp][np], vcvtq_f32_s32(vsubq_s32(t.acc[mp][np], off)), vmulq_f32(dw, dx));
            }
          }
        }
      }
      store_mmla(a, m, mr, n, n1, facc);
    }
}

/// i8mm GEMM for Q8: 4 rows x 8 outputs, int32 over all of K, one epilogue.
inline void gemm_q8_mmla(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t kp = a->kp;
  for (int64_t n = n0; n < n1; n += 8) {
    const int8_t* wp = reinterpret_cast<const int8_t*>(a->w + (n / 8) * 8 * kp);
    for (int64_t m = m0; m < m1; m += 4) {
      const int mr = int(m1 - m < 4 ? m1 - m : 4);
      int64_t rows[4];
      for (int r = 0; r < 4; ++r) rows[r] = m + (r < mr ? r : 0);
      Mmla t;
      t.zero();
      for (int64_t k = 0; k < kp; k += 8) {
        const int8_t* wq = wp + 8 * k;  // quads k/4 and k/4 + 1
        const int8_t* x[4] = {a->xq + rows[0] * kp + k, a->xq + rows[1] * kp + k, a->xq + rows[2] * kp + k,
                              a->xq + rows[3] * kp + k};
        t.step(vld1q_s8(wq), vld1q_s8(wq + 32), vld1q_s8(wq + 16), vld1q_s8(wq + 48), x);
      }
      float32x4_t f[2][4];
      for (int mp = 0; mp < 2; ++mp) {
        const float32x4_t dx = pair_m(a->xm[rows[2 * mp]].d, a->xm[rows[2 * mp + 1]].d);
        for (int np = 0; np < 4; ++np) {
          int32x4_t d = t.acc[mp][np];
          if (a->act_zero) {
            const int32x2_t rs = vld1_s32(a->row_sum + n + 2 * np);
            d = vmlsq_n_s32(d, vcombine_s32(rs, rs), a->act_zero);
          }
          f[mp][np] = vmulq_f32(vcvtq_f32_s32(d), vmulq_f32(pair_n(a->row_scale + n + 2 * np), dx));
        }
      }
      store_mmla(a, m, mr, n, n1, f);
    }
  }
}
#endif  // __ARM_FEATURE_MATMUL_INT8

}  // namespace neon
}  // namespace lb
