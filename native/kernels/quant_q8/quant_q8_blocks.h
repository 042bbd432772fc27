// The per-block control flow of the SIMD activation quantizers (AVX2, NEON), shared: static or
// dynamic scale, one amax per block or per row, 32 codes per step, padding codes forced to 0.
// An ISA supplies `Isa` with
//   using V = <float vector>;  static V splat(float);
//   static float amax_range(const float* x, const float* mul, int64_t lo, int64_t hi, int64_t k);
//   static int32_t quant32(const float* x, const float* mul, int64_t lo, int64_t k, V inv, V zero,
//                          V qmin, V qmax, int8_t* q);   // 32 codes from x[lo, lo+32), their sum
// and gets the same codes and metadata as lb_quant_q8d_f32__ref, bit for bit.
#pragma once
#include "kernel_types.h"

namespace lb {

template <class Isa>
inline void quant_q8_blocks(const lb_quant_args* a, int8_t* q, lb_q8_meta* meta) {
  using V = typename Isa::V;
  const int64_t k = a->k, kp = a->kp, blk = a->block;
  const float* x = a->x;
  const float* mul = a->mul;
  if (a->is_static) {
    const V inv = Isa::splat(1.0f / a->static_scale), zero = Isa::splat(float(a->static_zero));
    const V lo = Isa::splat(-128.f), hi = Isa::splat(127.f);
    for (int64_t b = 0; b < kp / blk; ++b) {
      int32_t s = 0;
      for (int64_t i = b * blk; i < (b + 1) * blk; i += 32) {
        s += Isa::quant32(x, mul, i, k, inv, zero, lo, hi, q + i);
        if (i + 32 > k)  // padding codes are 0, not the zero point
          for (int64_t j = (i > k ? i : k); j < i + 32; ++j) s -= q[j], q[j] = 0;
      }
      meta[b] = lb_q8_meta{a->static_scale, s};
    }
    return;
  }
  const V zero = Isa::splat(0.f), lo = Isa::splat(-127.f), hi = Isa::splat(127.f);
  const float row_amax = a->per_row ? Isa::amax_range(x, mul, 0, k, k) : 0.f;
  for (int64_t b = 0; b < kp / blk; ++b) {
    const int64_t b0 = b * blk;
    const float amax = a->per_row ? row_amax : Isa::amax_range(x, mul, b0, b0 + blk, k);
    const V inv = Isa::splat(amax > 0.f ? 127.0f / amax : 0.f);
    int32_t s = 0;
    for (int64_t i = b0; i < b0 + blk; i += 32) {
      s += Isa::quant32(x, mul, i, k, inv, zero, lo, hi, q + i);
      if (i + 32 > k)  // padding codes are 0 (0 * inv is NaN, code -127, when 127 / amax overflows to inf)
        for (int64_t j = (i > k ? i : k); j < i + 32; ++j) s -= q[j], q[j] = 0;
    }
    meta[b] = lb_q8_meta{amax / 127.0f, s};
  }
}

}  // namespace lb
