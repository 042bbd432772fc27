// Helpers of the int8 NHWC ops shared by ops_qnhwc.cpp (the chain convs) and ops_qnhwc_graph.cpp
// (resize / concat / transposed conv on int8 NHWC values).
#pragma once
#include <cstdint>

#include "lowbit/lowbit.h"

namespace lb {

struct OpCtx;

/// The attributes and inputs every quantizer into int8 NHWC shares (quantize_nhwc_q8 from NCHW,
/// quantize_f32nhwc_q8 from NHWC): `scale` > 0 and finite, `zero` in [-128, 127], and an optional
/// input 1 of `channels` constant f32 smoothing multipliers. Sets c.err and returns its status on
/// a bad value.
lb_status quantizer_attrs(OpCtx& c, int64_t channels, float* scale, int64_t* zero);

/// Channel stride of an int8 NHWC value with C channels: C for C < 16, else C rounded up to 32.
inline int64_t nhwc_cstride(int64_t C) { return C < 16 ? C : (C + 31) / 32 * 32; }

/// q[i] = clamp(rint(v[i] * inv) + z, -128, 127) for i < n, 0 for n <= i < ns: the float operations
/// of the kernels' static activation quantizer (lb_quant_q8d_f32__ref). Scalar and AVX2, same bits.
void requant_row_scalar(const float* v, int64_t n, int64_t ns, float inv, float zf, int8_t* q);
#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void requant_row_avx2(const float* v, int64_t n, int64_t ns, float inv, float zf,
                                                           int8_t* q);
#endif
using RequantFn = void (*)(const float*, int64_t, int64_t, float, float, int8_t*);

}  // namespace lb
