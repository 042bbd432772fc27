// The scalar definition of every quantized matmul (one function per weight format), shared by
// the GEMV and GEMM references of a format. Integer dot products per group are exact; the float
// combination below is the reference that SIMD variants match within a named tolerance.
#pragma once
#include "mm_layout.h"

namespace lb {
namespace ref {

/// Q8 (w8a8, dynamic or static activations): one int32 dot over kp per output.
inline void mm_q8(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t m = m0; m < m1; ++m) {
    const int8_t* x = a->xq + m * a->kp;
    const lb_q8_meta xm = a->xm[m];
    for (int64_t n = n0; n < n1; ++n) {
      int32_t dot = 0;
      for (int64_t k = 0; k < a->kp; ++k)
        dot += int32_t(int8_t(a->w[layout::q8_offset(n, k, a->kp)])) * x[k];
      dot -= a->act_zero * a->row_sum[n];
      a->y[m * a->ldy + n] = float(dot) * (xm.d * a->row_scale[n]) + (a->bias ? a->bias[n] : 0.f);
    }
  }
}

/// The loop shared by the group-format references: y[m, n] = sum over the groups g (in order) of
/// term(m, r, g, blk) + bias[n], where r = n % 8 is the row inside its panel and blk the (panel, g)
/// block.
template <class Term>
inline void group_loop(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1, Term term) {
  const int64_t ng = a->k / a->group;
  for (int64_t m = m0; m < m1; ++m) {
    for (int64_t n = n0; n < n1; ++n) {
      const int r = int(n % layout::kRows);
      float acc = 0.f;
      for (int64_t g = 0; g < ng; ++g)
        acc += term(m, r, g, layout::block(a->w, a->fmt, a->k, a->group, n / layout::kRows, g));
      a->y[m * a->ldy + n] = acc + (a->bias ? a->bias[n] : 0.f);
    }
  }
}

/// Group formats with int8 activations: Q4 / Q4A / C4 / T2.
inline void mm_group_a8(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t G = a->group, ng = a->k / G;
  const int hb = layout::header_bytes(a->fmt);
  group_loop(a, m0, m1, n0, n1, [&](int64_t m, int r, int64_t g, const uint8_t* blk) {
    const int8_t* x = a->xq + m * a->kp + g * G;
    const lb_q8_meta xm = a->xm[m * ng + g];
    const float d = layout::hdr(blk, r);
    int32_t dot = 0;
    for (int64_t j = 0; j < G; ++j) {
      int c;
      if (a->fmt == LB_WFMT_T2) c = layout::t2_code(blk + hb, r, j);
      else c = layout::nib_code(blk + hb, r, j);
      if (a->fmt == LB_WFMT_C4) c = a->lut[c];
      dot += c * int32_t(x[j]);
    }
    switch (a->fmt) {
      case LB_WFMT_Q4: return float(dot - 8 * xm.s) * (d * xm.d);
      case LB_WFMT_Q4A: return xm.d * (d * float(dot) + layout::hdr(blk, 8 + r) * float(xm.s));
      case LB_WFMT_C4: return float(dot) * (d * xm.d);
      case LB_WFMT_T2: return float(dot - xm.s) * (d * xm.d);
      default: return 0.f;
    }
  });
}

/// Q4 / Q4A with float activations (w4a16): sum_g d * (sum_j u*x - 8*xs) or d*sum u*x + min*xs.
inline void mm_q4_f32(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t G = a->group, ng = a->k / G;
  const int hb = layout::header_bytes(a->fmt);
  group_loop(a, m0, m1, n0, n1, [&](int64_t m, int r, int64_t g, const uint8_t* blk) {
    const float* x = a->xf + m * a->k + g * G;
    const float xs = a->xs[m * ng + g];
    float dot = 0.f;
    for (int64_t j = 0; j < G; ++j) dot += float(layout::nib_code(blk + hb, r, j)) * x[j];
    const float d = layout::hdr(blk, r);
    if (a->fmt == LB_WFMT_Q4A) return d * dot + layout::hdr(blk, 8 + r) * xs;
    return d * (dot - 8.f * xs);
  });
}

}  // namespace ref
}  // namespace lb
