// int8 NHWC pipeline of quantized CNNs (docs/runtime.md, "Quantized Conv: int8 NHWC chains";
// manifest side: docs/package-format.md, section 6).
//
// Between two quantized convs the activation stays int8 and channels-last: the producer's
// epilogue requantizes its float result straight to the consumer's static scale / zero point, so
// there is no transposition and no float tensor in between. An int8 NHWC tensor is i8
// [N, H, W, Cs] with Cs = nhwc_cstride(C) (C rounded up to 32 for C >= 16, so a row of a 1x1
// conv's input is exactly the K-padded row the w8a8 GEMM kernel reads; padding channels are 0).
//
// ops:
//   quantize_nhwc_q8: f32 NCHW -> i8 NHWC (chain entry), q = clamp(rint(x * (1/s)) + z, -128, 127).
//   conv_stem_nhwc_q8: a float KxK conv on the f32 NCHW model input + quantize_nhwc_q8 in one op (the stem).
//   qconv2d_nhwc_q8:  i8 NHWC in; mode "gemm" (group 1: 1x1 stride-1 convs read the input rows in
//     place, others gather an int8 im2col tile in (ky, kx, c) order) through the gemm_q8 kernel of
//     the dispatch table, or mode "depthwise" (int16 vpmaddwd over channels). Each tile of output
//     pixels ends in one epilogue: fused activation, optional residual add (f32 NHWC input 4,
//     the folded ONNX Add), then any of three outputs (attr "outs"): "q8" i8 NHWC requantized to
//     (oq_scale, oq_zero), "f32_nhwc" (a later residual), "f32" NCHW (chain exit).
// The float value of every output element is computed with the same float operations as
// qconv2d_f32 + the following op's quantizer, so a chain gives the same bits as the unchained ops.
#pragma GCC optimize("O3")
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <new>
#include <utility>

#include "../dispatch.h"
#include "../qlinear.h"
#include "mm_layout.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include "conv_ocv.h"
#include "ops.h"
#include "ops_qnhwc.h"
#include "transpose8.h"
#include "vmath.h"

#if defined(__x86_64__)
// the AVX-512 VNNI paths of these ops (ymm with AVX-512VL: 32 registers, vpdpbusd), chosen when LOWBIT_ISA / the CPU
// give LB_ISA_AVX512VNNI
#define LB_TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#endif

namespace lb {
namespace {

enum PostKind : int64_t { POST_ADD_S = 0, POST_MUL_S, POST_ADD_C, POST_MUL_C, POST_HSWISH, POST_HSIG, POST_RELU };

inline size_t al64(size_t v) { return (v + 63) / 64 * 64; }

bool use_avx2() {
#if defined(__x86_64__)
  return (lb_cpu_features() & LB_CPU_AVX2) && lb_isa_active() != LB_ISA_SCALAR;
#else
  return false;
#endif
}

}  // namespace

// ---- requantization of one float row (declared in ops_qnhwc.h) --------
// q[i] = clamp(rint(v[i] * inv) + z, -128, 127) for i < n, 0 for n <= i < ns: the float
// operations of the kernels' static activation quantizer (lb_quant_q8d_f32__ref).
namespace {
inline int8_t q8_scalar(float x, float inv, float zf) {
  float r = std::nearbyint(x * inv) + zf;
  r = r > -128.f ? r : -128.f;  // NaN -> -128, like vmaxps
  r = r < 127.f ? r : 127.f;
  return int8_t(int(r));
}
}  // namespace

void requant_row_scalar(const float* v, int64_t n, int64_t ns, float inv, float zf, int8_t* q) {
  for (int64_t i = 0; i < n; ++i) q[i] = q8_scalar(v[i], inv, zf);
  for (int64_t i = n; i < ns; ++i) q[i] = 0;
}

#if defined(__x86_64__)
namespace {
// Requantization in integers after the one rounding: q8_lanes gives rint(x * inv) as int32 lanes (the
// multiply and the round-to-nearest-even of the float quantizer; values past 2^30 are capped, NaN and
// large negatives become INT_MIN), the stores pack them with signed saturation to int16, add the zero point
// with saturation and pack to int8 with saturation: clamp(rint(x * inv) + z, -128, 127), the bits of
// q8_scalar (NaN -> -128, +-inf -> 127 / -128) with 3 vector operations per 8 values instead of 7.
// 8 int32 lanes -> 8 int8 (the low 8 bytes), zero point z16 (int16 lanes).
__attribute__((target("avx2"))) inline __m128i pack8_q8(__m256i r, __m256i z16) {
  const __m128i w = _mm_adds_epi16(_mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)),
                                   _mm256_castsi256_si128(z16));
  return _mm_packs_epi16(w, w);
}
__attribute__((target("avx2"))) inline void store8_q8(int8_t* q, __m256i r, __m256i z16) {
  _mm_storel_epi64(reinterpret_cast<__m128i*>(q), pack8_q8(r, z16));
}
// 4 x 8 int32 lanes -> 32 int8, in order.
__attribute__((target("avx2"))) inline __m256i pack32_q8(const __m256i r[4], __m256i z16) {
  const __m256i b = _mm256_packs_epi16(_mm256_adds_epi16(_mm256_packs_epi32(r[0], r[1]), z16),
                                       _mm256_adds_epi16(_mm256_packs_epi32(r[2], r[3]), z16));
  // b's lanes: [0-3 8-11 16-19 24-27 | 4-7 12-15 20-23 28-31]
  return _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}
// 4 x 8 int32 lanes that already hold rint(x * inv) + z with |rint(x * inv)| < 2^21 (q8_round) -> 32 int8, in order:
// clamp(rint + z, -128, 127), the codes of pack32_q8 (whose int16 saturation before the add cannot change them).
__attribute__((target("avx2"))) inline __m256i pack32_q8z(const __m256i r[4]) {
  const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
  return _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}
__attribute__((target("avx2"))) inline void store32_q8(int8_t* q, const __m256i r[4], __m256i z16) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), pack32_q8(r, z16));
}
// rint(x * inv) as int32 lanes (min(2^30, .) keeps +inf and huge values positive; NaN stays NaN -> INT_MIN).
__attribute__((target("avx2"))) inline __m256i q8_lanes(__m256 x, __m256 vinv) {
  return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_set1_ps(1073741824.f), _mm256_mul_ps(x, vinv)));
}
// rint(x * inv) + z as int32 lanes where |x * inv| < 2^22 (qrange_ok proved it at plan time): t + 1.5 * 2^23 lies in
// [2^23, 2^24), where the float spacing is 1, so the add rounds t to the nearest integer, ties to even (1.5 * 2^23
// is even), as vcvtps2dq does, and the sum's bits minus those of 1.5 * 2^23 are that integer; the zero point goes
// into the subtract (vbz = 0x4B400000 - z: pack32_q8z, no saturating add). A float add and an integer subtract: on
// Zen 4 vcvtps2dq has a third of vmulps' throughput and was the requantization's bottleneck.
__attribute__((target("avx2"))) inline __m256i q8_round(__m256 x, __m256 vinv, __m256i vbz) {
  __m256 t = _mm256_mul_ps(x, vinv);
  __asm__("" : "+v"(t));  // no FMA contraction: the reference rounds x * inv first
  t = _mm256_add_ps(t, _mm256_set1_ps(12582912.f));
  return _mm256_sub_epi32(_mm256_castps_si256(t), vbz);
}
}  // namespace
__attribute__((target("avx2,fma"))) void requant_row_avx2(const float* v, int64_t n, int64_t ns, float inv, float zf,
                                                           int8_t* q) {
  const __m256 vinv = _mm256_set1_ps(inv);
  const __m256i vz = _mm256_set1_epi16(int16_t(zf));
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i r[4];
    for (int j = 0; j < 4; ++j) r[j] = q8_lanes(_mm256_loadu_ps(v + i + 8 * j), vinv);
    store32_q8(q + i, r, vz);
  }
  for (; i + 8 <= n; i += 8)  // rows of 8-24 channels would otherwise run scalar
    store8_q8(q + i, q8_lanes(_mm256_loadu_ps(v + i), vinv), vz);
  requant_row_scalar(v + i, n - i, ns - i, inv, zf, q + i);
}
#endif
namespace {

// The same with smoothing multipliers (the consumer's act_mul = 1 / smooth): q of v[i] * mv[i]
// (mv per element) or of v[i] * ms (one multiplier), multiplied first, then by 1/s, as the
// activation quantizer does with its `mul`.
void requant_mul_scalar(const float* v, const float* mv, float ms, int64_t n, int64_t ns, float inv, float zf,
                        int8_t* q) {
  for (int64_t i = 0; i < n; ++i) q[i] = q8_scalar(mv ? v[i] * mv[i] : v[i] * ms, inv, zf);
  for (int64_t i = n; i < ns; ++i) q[i] = 0;
}
#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void requant_mul_avx2(const float* v, const float* mv, float ms, int64_t n,
                                                           int64_t ns, float inv, float zf, int8_t* q) {
  const __m256 vinv = _mm256_set1_ps(inv), vms = _mm256_set1_ps(ms);
  const __m256i vz = _mm256_set1_epi16(int16_t(zf));
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i r[4];
    for (int j = 0; j < 4; ++j)
      r[j] = q8_lanes(_mm256_mul_ps(_mm256_loadu_ps(v + i + 8 * j), mv ? _mm256_loadu_ps(mv + i + 8 * j) : vms), vinv);
    store32_q8(q + i, r, vz);
  }
  for (; i + 8 <= n; i += 8)  // rows of 8-24 channels would otherwise run scalar
    store8_q8(q + i, q8_lanes(_mm256_mul_ps(_mm256_loadu_ps(v + i), mv ? _mm256_loadu_ps(mv + i) : vms), vinv), vz);
  requant_mul_scalar(v + i, mv ? mv + i : nullptr, ms, n - i, ns - i, inv, zf, q + i);
}
#endif
using RequantMulFn = void (*)(const float*, const float*, float, int64_t, int64_t, float, float, int8_t*);

#if defined(__x86_64__)
// The common tail of a chain conv in one pass (AVX2): the fused Relu / Clip (flat_avx2's F_CLAMP
// operations), the next convs' smoothing multipliers (optional, per element), then the
// requantization of requant_mul_avx2 / requant_row_avx2: the same bits as those separate passes (the same
// operations in the same order, or the clamp applied to the int8 codes where that is exact), with the float
// tile read once.
// 8 elements through the fused clamp (optional) and the smoothing multipliers (optional).
__attribute__((target("avx2"))) inline __m256 clamp_mul8(const float* v, const float* mv, bool clamp, __m256 va,
                                                         __m256 vb) {
  __m256 x = _mm256_loadu_ps(v);
  if (clamp) x = _mm256_min_ps(_mm256_max_ps(x, va), vb);
  return mv ? _mm256_mul_ps(x, _mm256_loadu_ps(mv)) : x;
}
// `rows` rows of n floats (v, row stride n) into rows of ns bytes (q, row stride ns; bytes n..ns zero).
__attribute__((target("avx2,fma"))) void act_requant_avx2(const float* v, const float* mv, int64_t rows, int64_t n,
                                                           int64_t ns, bool clamp, float alo, float ahi, float inv,
                                                           float zf, int8_t* q) {
  const __m256 vinv = _mm256_set1_ps(inv), va = _mm256_set1_ps(alo), vb = _mm256_set1_ps(ahi);
  const __m256i vz = _mm256_set1_epi16(int16_t(zf));
  // Without multipliers the clamp moves after the quantizer, onto the int8 codes: q is non-decreasing, so
  // q(min(max(x, lo), hi)) = min(max(q(x), q(lo)), q(hi)) (NaN: max(NaN, lo) = lo, and q(NaN) = -128 <= q(lo)).
  const bool iclamp = clamp && !mv, fclamp = clamp && mv;
  const __m256i qlo = _mm256_set1_epi8(iclamp ? q8_scalar(alo, inv, zf) : int8_t(-128));
  const __m256i qhi = _mm256_set1_epi8(iclamp ? q8_scalar(ahi, inv, zf) : int8_t(127));
  if (ns == 32 && n < 32 && n % 8 == 0) {
    // rows of 8 / 16 / 24 values padded to 32 bytes: each row is packed whole (the missing vectors as zeros)
    // and stored with one 32-byte store, its padding bytes masked to 0 (the same operations per value)
    const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n / 4)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int64_t row = 0; row < rows; ++row, v += n, q += ns) {
      __m256i r[4];
      for (int j = 0; j < 4; ++j)
        r[j] = 8 * j < n ? q8_lanes(clamp_mul8(v + 8 * j, mv ? mv + 8 * j : nullptr, fclamp, va, vb), vinv)
                         : _mm256_setzero_si256();
      __m256i b = pack32_q8(r, vz);
      if (iclamp) b = _mm256_min_epi8(_mm256_max_epi8(b, qlo), qhi);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm256_and_si256(b, keep));
    }
    return;
  }
  for (int64_t row = 0; row < rows; ++row, v += n, q += ns) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
      __m256i r[4];
      for (int j = 0; j < 4; ++j) r[j] = q8_lanes(clamp_mul8(v + i + 8 * j, mv ? mv + i + 8 * j : nullptr, fclamp, va, vb), vinv);
      __m256i b = pack32_q8(r, vz);
      if (iclamp) b = _mm256_min_epi8(_mm256_max_epi8(b, qlo), qhi);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), b);
    }
    for (; i + 8 <= n; i += 8) {  // rows of 8-24 channels (O < 32) would otherwise run scalar
      __m128i b = pack8_q8(q8_lanes(clamp_mul8(v + i, mv ? mv + i : nullptr, fclamp, va, vb), vinv), vz);
      if (iclamp) b = _mm_min_epi8(_mm_max_epi8(b, _mm256_castsi256_si128(qlo)), _mm256_castsi256_si128(qhi));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), b);
    }
    for (; i < n; ++i) {  // the scalar passes' operations (flat_scalar F_CLAMP, requant_*_scalar)
      float x = v[i];
      if (clamp) {
        x = x > alo ? x : alo;
        x = x < ahi ? x : ahi;
      }
      if (mv) x = x * mv[i];
      q[i] = q8_scalar(x, inv, zf);
    }
    for (; i + 8 <= ns; i += 8) _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), _mm_setzero_si128());  // padding
    for (; i < ns; ++i) q[i] = 0;
  }
}
#endif

#if defined(__x86_64__)
// Chain entry for C % 8 == 0 (AVX2): pixels [i0, i1) of image n, 8 channels x 8 pixels at a time: the
// channel rows (times the smoothing multiplier, when there is one) are transposed in registers to pixel
// rows of 8 channels, requantized with q8_lanes and stored as 8 bytes; the pixel tail goes through
// q8_scalar. The float operations of requant_row / requant_mul, so the same bits; no [C][64] byte tile
// gathered back one byte at a time.
__attribute__((target("avx2,fma"))) void quant_block_avx2(const float* xn, int64_t C, int64_t HW, int64_t Cs,
                                                           const float* mul, float inv, float zf, int64_t i0, int64_t i1,
                                                           int8_t* yn) {
  const __m256 vinv = _mm256_set1_ps(inv);
  const __m256i vz = _mm256_set1_epi16(int16_t(zf));
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8) {
    for (int64_t c0 = 0; c0 < C; c0 += 8) {
      __m256 r[8];
      for (int k = 0; k < 8; ++k) {
        r[k] = _mm256_loadu_ps(xn + (c0 + k) * HW + i);
        if (mul) r[k] = _mm256_mul_ps(r[k], _mm256_set1_ps(mul[c0 + k]));
      }
      transpose8x8_ps(r);
      for (int k = 0; k < 8; ++k) store8_q8(yn + (i + k) * Cs + c0, q8_lanes(r[k], vinv), vz);  // pixel i + k
    }
    if (Cs > C)
      for (int k = 0; k < 8; ++k) std::memset(yn + (i + k) * Cs + C, 0, size_t(Cs - C));
  }
  for (; i < i1; ++i) {
    int8_t* d = yn + i * Cs;
    for (int64_t ch = 0; ch < C; ++ch) d[ch] = q8_scalar(mul ? xn[ch * HW + i] * mul[ch] : xn[ch * HW + i], inv, zf);
    if (Cs > C) std::memset(d + C, 0, size_t(Cs - C));
  }
}
#endif

// ---- quantize_nhwc_q8: f32 NCHW -> i8 NHWC ---------------------------------------------------
// params: i[0..3] N C H W, i[4] Cs, i[5] zero; f[0] scale
constexpr int64_t kQBlock = 64;  // pixels per block

lb_status quant_infer(OpCtx& c) {
  const Tensor* x = c.in[0];
  OpParams& p = *c.p;
  if (x->dtype != DType::F32 || x->shape.size() != 4) {
    c.err = "expects a 4-D f32 NCHW input, got " + shape_str(x->shape);
    return LB_ERR_SHAPE;
  }
  for (int d = 0; d < 4; ++d) p.i[d] = x->shape[size_t(d)];
  p.i[4] = nhwc_cstride(p.i[1]);
  if (lb_status st = quantizer_attrs(c, p.i[1], &p.f[0], &p.i[5])) return st;
  c.out[0]->dtype = DType::I8;
  c.out[0]->shape = {p.i[0], p.i[2], p.i[3], p.i[4]};
  c.scratch_bytes = al64(size_t(p.i[1] * kQBlock + kQBlock)) * size_t(op_threads(c));
  c.flops = uint64_t(x->numel()) * 3;
  return LB_OK;
}

void quant_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const int64_t N = p.i[0], C = p.i[1], HW = p.i[2] * p.i[3], Cs = p.i[4];
  const float inv = 1.0f / p.f[0], zf = float(p.i[5]);
  const float* x = c.in[0]->f32();
  int8_t* y = static_cast<int8_t*>(c.out[0]->data);
  RequantFn rq = requant_row_scalar;
  RequantMulFn rqm = requant_mul_scalar;
#if defined(__x86_64__)
  if (use_avx2()) rq = requant_row_avx2, rqm = requant_mul_avx2;
#endif
  c.isa = rq == requant_row_scalar ? "scalar" : "avx2";
  const float* mul = c.in.size() > 1 && c.in[1] ? c.in[1]->f32() : nullptr;
  const int64_t blocks = (HW + kQBlock - 1) / kQBlock;
#if defined(__x86_64__)
  if (rq == requant_row_avx2 && C % 8 == 0) {
    for_ranges(c, N * blocks, C * kQBlock * 2, [&](int, int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t n = b / blocks, p0 = (b % blocks) * kQBlock, np = std::min(kQBlock, HW - p0);
        quant_block_avx2(x + n * C * HW, C, HW, Cs, mul, inv, zf, p0, p0 + np, y + n * HW * Cs);
      }
    });
    return;
  }
#endif
  const size_t per = al64(size_t(C * kQBlock + kQBlock));
  char* base = static_cast<char*>(c.scratch);
  for_ranges(c, N * blocks, C * kQBlock * 2, [&](int tid, int64_t b0, int64_t b1) {
    int8_t* tmp = reinterpret_cast<int8_t*>(base + size_t(tid) * per);  // [C][kQBlock]
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = b / blocks, p0 = (b % blocks) * kQBlock, np = std::min(kQBlock, HW - p0);
      for (int64_t ch = 0; ch < C; ++ch) {
        if (mul) rqm(x + (n * C + ch) * HW + p0, nullptr, mul[ch], np, np, inv, zf, tmp + ch * kQBlock);
        else rq(x + (n * C + ch) * HW + p0, np, np, inv, zf, tmp + ch * kQBlock);
      }
      for (int64_t i = 0; i < np; ++i) {
        int8_t* d = y + (n * HW + p0 + i) * Cs;
        int64_t ch = 0;
        for (; ch + 4 <= C; ch += 4) {  // 4 channels per store
          const uint32_t v = uint32_t(uint8_t(tmp[ch * kQBlock + i])) | uint32_t(uint8_t(tmp[(ch + 1) * kQBlock + i])) << 8 |
                             uint32_t(uint8_t(tmp[(ch + 2) * kQBlock + i])) << 16 |
                             uint32_t(uint8_t(tmp[(ch + 3) * kQBlock + i])) << 24;
          std::memcpy(d + ch, &v, 4);
        }
        for (; ch < C; ++ch) d[ch] = tmp[ch * kQBlock + i];
        for (ch = C; ch < Cs; ++ch) d[ch] = 0;
      }
    }
  });
}

// ---- qconv2d_nhwc_q8 -------------------------------------------------------------------------
enum { kN, kC, kH, kW, kCs, kO, kOs, kKh, kKw, kSh, kSw, kDh, kDw, kPt, kPl, kPb, kPr, kOH, kOW, kMode, kAct,
       kZin, kZout, kK, kKp, kT, kDirect, kOutQ, kOutF, kOutN, kRes, kPer, kTaps, kPairs, kNPost, kPostOff, kPw = 36 };
static_assert(sizeof(PackedWeight) <= sizeof(int64_t) * (48 - kPw), "PackedWeight must fit in OpParams");
PackedWeight& packed(OpParams& p) { return *reinterpret_cast<PackedWeight*>(&p.i[kPw]); }
const PackedWeight& packed(const OpParams& p) { return *reinterpret_cast<const PackedWeight*>(&p.i[kPw]); }

// ---- small-K 1x1 convs with 7-bit weights (AVX2) -------------------------------------------------
// A 1x1 stride-1 conv with K <= 64 reading its int8 NHWC input rows in place (row stride Cs >=
// round_up(K, 4)) and 7-bit weight codes (|w| <= LB_Q8_W7_MAX, so vpmaddubsw's int16 pair sums of
// u8 x s8 cannot saturate: 2 * 255 * 64 < 32767). Output channels in the lanes: per pair of weight
// panels (16 channels) the quads of every k stay in registers while the tile's pixels stream by;
// per pixel and quad one broadcast of 4 activation bytes (flipped to u = x + 128 once per tile),
// vpmaddubsw + vpmaddwd(1) + vpaddd per panel. The accumulators start at -(128 + z) * row_sum,
// so they end at the exact int32 dot of gemm_q7 / the scalar reference (sum (x - z) * w); the
// float finish is theirs too (float(dot) * (s_x * row_scale) then + bias, no FMA): the same bits
// as the GEMM it replaces (gemm_q7, whose 4-row x 16-column tiles, activation copies per tile and
// sums round trip made it 1.3-2.5x slower on these shapes: docs/runtime.md, "Session 6").

constexpr int64_t kSmallKMax = 64;  // K of the small-K path (16 quads)
constexpr int64_t kPwVnniMaxK = 4096;  // K of the VNNI 1x1 path

/// The conv qualifies for the small-K path (the run also needs AVX2): 1x1, stride 1, no padding,
/// K <= kSmallKMax (above it gemm_q7's direct path of 478ee70 is faster: 0.74-0.88x at K 80-128), input rows
/// long enough for round_up(K, 4) bytes, 7-bit weight codes.
bool smallk_ok(const OpParams& p) {
  const int64_t K = p.i[kK];
  return p.i[kMode] == 0 && p.i[kKh] == 1 && p.i[kKw] == 1 && p.i[kSh] == 1 && p.i[kSw] == 1 && !p.i[kPt] &&
         !p.i[kPl] && !p.i[kPb] && !p.i[kPr] && K >= 1 && K <= kSmallKMax && p.i[kCs] >= (K + 3) / 4 * 4 &&
         packed(p).code_bits == 7;
}


#if defined(__x86_64__)
struct SmallK {
  const uint8_t* w;  // Q8 panels: [O/8][kp/4][8 rows][4 k]
  int64_t kp, O;
  const int32_t* row_sum;
  const float* row_scale;
  const float* bias;  // [O] or null
  int32_t zin;
  float sx;
};

// R = 1: one pixel at a time, the NQ x NP weight vectors in registers; R = 4: four pixels at a time (m % 4 == 0),
// the weight vectors loaded per quad (when NQ x NP vectors would not fit the 16 registers and spill).
template <int NQ, int NP, int R>
__attribute__((target("avx2,fma"), always_inline)) inline void smallk_panels(const SmallK& s, int64_t p,
                                                                              const uint8_t* xa, int64_t m, float* y) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i w[R == 1 ? NQ : 1][NP];
  if constexpr (R == 1)
    for (int q = 0; q < NQ; ++q)
      for (int j = 0; j < NP; ++j)
        w[q][j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.w + (p + j) * 8 * s.kp + 32 * q));
  __m256i init[NP];
  __m256 sc[NP], bs[NP];
  const __m256i off = _mm256_set1_epi32(-(128 + s.zin));
  for (int j = 0; j < NP; ++j) {
    const int64_t n = (p + j) * 8;  // row_sum / row_scale are padded to whole panels
    init[j] = _mm256_mullo_epi32(off, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.row_sum + n)));
    sc[j] = _mm256_mul_ps(_mm256_set1_ps(s.sx), _mm256_loadu_ps(s.row_scale + n));
    alignas(32) float b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = n; s.bias && i < n + 8 && i < s.O; ++i) b[i - n] = s.bias[i];
    bs[j] = _mm256_load_ps(b);
  }
  const int64_t nv = std::min<int64_t>(NP * 8, s.O - p * 8);  // outputs of these panels (tail: < 8 * NP)
  for (int64_t i = 0; i < m; i += R) {
    __m256i acc[R][NP];
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < NP; ++j) acc[r][j] = init[j];
    for (int q = 0; q < NQ; ++q) {
      __m256i wq[NP];
      for (int j = 0; j < NP; ++j)
        wq[j] = R == 1 ? w[R == 1 ? q : 0][j]
                       : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.w + (p + j) * 8 * s.kp + 32 * q));
      for (int r = 0; r < R; ++r) {
        int32_t v;
        std::memcpy(&v, xa + (i + r) * 4 * NQ + 4 * q, 4);
        const __m256i b = _mm256_set1_epi32(v);
        for (int j = 0; j < NP; ++j)
          acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(_mm256_maddubs_epi16(b, wq[j]), ones));
      }
    }
    for (int r = 0; r < R; ++r) {
      float* yr = y + (i + r) * s.O + p * 8;
      alignas(32) float t[8 * NP];
      for (int j = 0; j < NP; ++j) {
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][j]), sc[j]);
        __asm__("" : "+x"(v));  // no FMA contraction: the reference multiplies, then adds
        v = _mm256_add_ps(v, bs[j]);
        if (nv == NP * 8) _mm256_storeu_ps(yr + 8 * j, v);
        else _mm256_store_ps(t + 8 * j, v);
      }
      if (nv < NP * 8) std::memcpy(yr, t, size_t(nv) * 4);
    }
  }
}
// The panels p..p+NP-1 for m pixels: four pixels at a time with the weights from memory when NQ x NP weight
// vectors would not fit in registers beside the accumulators (the integer sums are exact, so the same bits).
template <int NQ, int NP>
__attribute__((target("avx2,fma"), always_inline)) inline void smallk_run(const SmallK& s, int64_t p, const uint8_t* xa,
                                                                           int64_t m, float* y) {
  if constexpr (NQ * NP > 12) {  // K > 24 with two panels (K <= 24, or K <= 48 with one panel: registers)
    const int64_t m4 = m / 4 * 4;
    smallk_panels<NQ, NP, 4>(s, p, xa, m4, y);
    if (m4 < m) smallk_panels<NQ, NP, 1>(s, p, xa + m4 * 4 * NQ, m - m4, y + m4 * s.O);
  } else {
    smallk_panels<NQ, NP, 1>(s, p, xa, m, y);
  }
}

/// y[i][0..O) for the m pixel rows at x (stride ldx): x is flipped to u8 rows of 4 * NQ bytes in xa.
template <int NQ>
__attribute__((target("avx2,fma"))) void smallk_tile(const SmallK& s, const int8_t* x, int64_t ldx, int64_t m,
                                                     uint8_t* xa, float* y) {
  constexpr int kb = 4 * NQ;  // bytes per pixel: round_up(K, 4) <= ldx
  for (int64_t i = 0; i < m; ++i) {
    int c = 0;
    for (; c + 16 <= kb; c += 16)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(xa + i * kb + c),
                       _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i * ldx + c)),
                                     _mm_set1_epi8(int8_t(0x80))));
    for (; c < kb; c += 4) {
      uint32_t v;
      std::memcpy(&v, x + i * ldx + c, 4);
      v ^= 0x80808080u;
      std::memcpy(xa + i * kb + c, &v, 4);
    }
  }
  const int64_t np = (s.O + 7) / 8;
  int64_t p = 0;
  for (; p + 2 <= np; p += 2) smallk_run<NQ, 2>(s, p, xa, m, y);
  if (p < np) smallk_run<NQ, 1>(s, p, xa, m, y);
}

using SmallKFn = void (*)(const SmallK&, const int8_t*, int64_t, int64_t, uint8_t*, float*);
template <int... Q>
constexpr std::array<SmallKFn, sizeof...(Q)> smallk_table(std::integer_sequence<int, Q...>) {
  return {smallk_tile<Q + 1>...};
}
SmallKFn smallk_fn(int64_t K) {
  static constexpr auto table = smallk_table(std::make_integer_sequence<int, kSmallKMax / 4>{});
  return K >= 1 && K <= kSmallKMax ? table[size_t((K + 3) / 4 - 1)] : nullptr;
}
#endif


// ---- 1x1 convs on AVX-512 VNNI ---------------------------------------------------------------------
// A 1x1 stride-1 conv reading its int8 NHWC input rows in place (row stride Cs = kp), any weight codes (8-bit or
// 7-bit: vpdpbusd's u8 x s8 products are summed in int32 without saturation). Output channels in the lanes: per group
// of up to 4 weight panels (32 channels) and 6 pixels, 24 accumulators; per quad of k 4 weight loads (the group's
// panels stay in L1), 6 broadcasts of 4 activation bytes (flipped to u = x + 128 as they are broadcast) and 24
// vpdpbusd. The accumulators start at -(128 + z) * row_sum, so they end at the GEMM's exact int32 dot; the float
// finish is the GEMM's (float(dot) * (s_x * row_scale), then + bias, no FMA). With an int8 output that needs only
// the act (none, Relu, Clip), the smoothing multipliers and the requantization (the epilogue's act_requant_avx2
// case), the tile is finished in registers: the same operations as act_requant_avx2 and stores of 32 codes per pixel (no float tile
// stored and read back). Otherwise it writes the float tile for the epilogue. Same bits as gemm_q8 / gemm_q7 and
// the scalar reference either way.

/// The conv qualifies for the VNNI 1x1 path (the run also needs LB_ISA_AVX512VNNI): 1x1, stride 1, no padding,
/// input rows read in place (kDirect: Cs == kp).
bool pw_vnni_ok(const OpParams& p) {
  return p.i[kMode] == 0 && p.i[kKh] == 1 && p.i[kKw] == 1 && p.i[kDirect] && p.i[kK] <= kPwVnniMaxK;
}

/// The VNNI 1x1 path's per-channel tables, at the end of OpParams::v (after the post steps), for the round_up(O, 8)
/// rows of the panels: init[n] = -(128 + z) * row_sum[n] (int32, wrapping: vpmulld's), the accumulators' start;
/// scf[n] = s_x * row_scale[n] (row_scale is padded) and bsf[n] = bias[n] or 0 (0 past O), the finish's factors.
/// Built once at plan time (they were computed per thread and run into cold scratch: ~0.7 % of a run's samples).
struct PwTables {
  const int32_t* init;
  const float* scf;
  const float* bsf;
};
PwTables pw_vnni_view(const OpParams& p) {
  const int64_t Op = (p.i[kO] + 7) / 8 * 8;
  const int32_t* init = reinterpret_cast<const int32_t*>(p.v.data() + p.i[kPostOff] + 4 * p.i[kNPost]);
  const float* scf = reinterpret_cast<const float*>(init + Op);
  return {init, scf, scf + Op};
}
void pw_vnni_tables(OpParams& p, const float* bias) {
  const int64_t O = p.i[kO], Op = (O + 7) / 8 * 8;
  const PackedWeight& pw = packed(p);
  p.v.resize(p.v.size() + size_t(Op * 12 / 8), 0);
  const PwTables t = pw_vnni_view(p);
  int32_t* init = const_cast<int32_t*>(t.init);
  float* scf = const_cast<float*>(t.scf);
  float* bsf = const_cast<float*>(t.bsf);
  const uint32_t zm = uint32_t(-(128 + int32_t(p.i[kZin])));
  for (int64_t n = 0; n < Op; ++n) {
    init[n] = int32_t(zm * uint32_t(pw.row_sum[n]));
    scf[n] = p.f[2] * pw.row_scale[n];
    bsf[n] = n < O && bias ? bias[n] : 0.f;
  }
}

#if defined(__x86_64__)
struct PwVnni {
  const uint8_t* w;  // Q8 panels: [O/8][kp/4][8 rows][4 k]
  int64_t kp, O, nq;  // nq: quads of k with codes (round_up(K, 4) / 4)
  const int32_t* init;  // [round_up(O, 8)] the accumulators' start, -(128 + z) * row_sum (pw_vnni_tables)
  const float* scf;     // [round_up(O, 8)] s_x * row_scale, and bias (0 past O, 0 without one): the finish's
  const float* bsf;     // factors (pw_vnni_tables; OpParams::v: 8-byte aligned, read with unaligned loads)
  // int8 output in registers (pw_vnni_tile<true>): rows of Os codes
  int64_t Os;
  const float* mv;  // smoothing multipliers [O] or null
  bool clamp;       // Relu / Clip
  bool guard;       // q8_lanes' min(2^30, .) (false: every |x * inv| < 2^21, see qrange_ok: q8_round)
  bool cmin, cmax;  // the code clamp's min / max (false where it cannot change a code: qhi 127, qlo -128)
  float lo, hi, inv;
  int16_t z;
  int8_t qlo, qhi;  // the clamp on the codes (no multipliers)
  // the int8 finish for groups of 1-4 panels (pw_finish_q<NP, FL>)
  void (*fin[4])(const PwVnni&, const int32_t*, int, int64_t, int64_t, const float*, const float*, int8_t*, float*,
                 const float*);
  // float rows (pw_vnni_tile<false>): Relu / Clip to [lo, hi] before the store, where the epilogue would be only
  // that clamp (flat_avx2's F_CLAMP: vmaxps then vminps)
  bool fclamp = false;
};
using PwFinishFn = void (*)(const PwVnni&, const int32_t*, int, int64_t, int64_t, const float*, const float*, int8_t*,
                            float*, const float*);

/// The int32 sums of R pixels (int8 rows x, stride kp) x NP panels (wp, panel stride 8 * kp) over nq quads, started
/// at init[j], into sums[r][j][8]. A function of its own, shaped so that GCC 12 keeps the accumulators in place
/// (inside pw_block it copied every accumulator around each vpdpbusd). vpdpbusd's u8 operand is each pixel's 4 codes
/// flipped to x + 128 as they are broadcast: one vpxord with an embedded broadcast of the 4 input bytes (inline asm:
/// GCC 12 emits vpbroadcastd + vpxor), instead of a flipped copy of the tile's rows (~2 % of a run's samples).
template <int R, int NP>
LB_TARGET_VNNI __attribute__((noinline)) void pw_dot(const uint8_t* wp, const int8_t* x, int64_t kp, int64_t nq,
                                                    const __m256i* init, int32_t* sums) {
  const __m256i flip = _mm256_set1_epi8(int8_t(0x80));
  __m256i acc[R * NP];
#pragma GCC unroll 24
  for (int i = 0; i < R * NP; ++i) {  // each accumulator its own value (not one shared start value)
    __m256i t = _mm256_loadu_si256(init + i % NP);
    __asm__("" : "+v"(t));
    acc[i] = t;
  }
  for (int64_t q = 0; q < nq; ++q) {
    __m256i w[NP];
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) w[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + j * 8 * kp + 32 * q));
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      __m256i b;
      __asm__("vpxord %1%{1to8%}, %2, %0"
              : "=v"(b)
              : "m"(*reinterpret_cast<const int32_t*>(x + r * kp + 4 * q)), "v"(flip));
#pragma GCC unroll 4
      for (int j = 0; j < NP; ++j) acc[r * NP + j] = _mm256_dpbusd_epi32(acc[r * NP + j], b, w[j]);
    }
  }
#pragma GCC unroll 24
  for (int i = 0; i < R * NP; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 8 * i), acc[i]);
}

// The int8 finish of pw_block: act_requant_avx2's operations for each case, chosen once per op (FL: kPwMv multipliers,
// kPwFClamp Relu / Clip before them, kPwCMax / kPwCMin the code clamp's max / min (no multipliers), kPwGuard the
// range guard): runtime tests inside the unrolled loop made GCC compute both sides of each.
// kPwRes / kPwF: the finish of a 1x1 conv whose epilogue was post_fused_avx2's residual add (res: R rows of O floats)
// and / or the f32 NHWC copy (y, the same layout) before the requantization (no act, no post steps, the range guard):
// v = float(sum) * scf + bsf (pw_block<.., false>'s operations), v + res, the copy, v * mv, then q8_lanes and the
// saturating packs (act_requant_avx2 / requant_row_avx2 / requant_mul_avx2): the same operations in the same order.
enum : int { kPwMv = 1, kPwFClamp = 2, kPwCMax = 4, kPwCMin = 8, kPwGuard = 16, kPwRes = 32, kPwF = 64 };
template <int NP, int FL>
LB_TARGET_VNNI void pw_finish_q(const PwVnni& s, const int32_t* sums, int R, int64_t c0, int64_t nv, const float* scf,
                                const float* bsf, int8_t* qd, float* y, const float* res) {
  const __m256 vinv = _mm256_set1_ps(s.inv), va = _mm256_set1_ps(s.lo), vb = _mm256_set1_ps(s.hi);
  const __m256i vz = _mm256_set1_epi16(s.z), qlo = _mm256_set1_epi8(s.qlo), qhi = _mm256_set1_epi8(s.qhi);
  const __m256i vbz = _mm256_set1_epi32(0x4B400000 - s.z);
  __m256 mvv[NP], sc[NP], bs[NP];
  __mmask8 mk[NP];
#pragma GCC unroll 4
  for (int j = 0; j < NP; ++j) {
    sc[j] = _mm256_loadu_ps(scf + 8 * j), bs[j] = _mm256_loadu_ps(bsf + 8 * j);
    mk[j] = __mmask8((1u << std::max<int64_t>(0, std::min<int64_t>(8, nv - 8 * j))) - 1u);
    mvv[j] = (FL & kPwMv) ? _mm256_maskz_loadu_ps(mk[j], s.mv + c0 + 8 * j) : _mm256_setzero_ps();
  }
  const __mmask32 keep = nv >= 32 ? ~__mmask32(0) : __mmask32((1u << nv) - 1u);
  for (int r = 0; r < R; ++r) {
    __m256i rr[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      if (j >= NP) {
        rr[j] = _mm256_setzero_si256();
        continue;
      }
      __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(sums + 8 * (r * NP + j)))), sc[j]);
      __asm__("" : "+v"(v));  // no FMA contraction: the reference multiplies, then adds
      v = _mm256_add_ps(v, bs[j]);
      if (FL & kPwRes) v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(mk[j], res + r * s.O + c0 + 8 * j));
      if (FL & kPwF) _mm256_mask_storeu_ps(y + r * s.O + c0 + 8 * j, mk[j], v);
      if (FL & kPwFClamp) v = _mm256_min_ps(_mm256_max_ps(v, va), vb);  // act_requant_avx2's clamp_mul8
      if (FL & kPwMv) v = _mm256_mul_ps(v, mvv[j]);
      rr[j] = (FL & kPwGuard) ? q8_lanes(v, vinv) : q8_round(v, vinv, vbz);
    }
    __m256i b = (FL & kPwGuard) ? pack32_q8(rr, vz) : pack32_q8z(rr);
    if (FL & kPwCMax) b = _mm256_max_epi8(b, qlo);
    if (FL & kPwCMin) b = _mm256_min_epi8(b, qhi);
    if (NP * 8 > nv) b = _mm256_maskz_mov_epi8(keep, b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qd + r * s.Os + c0), b);
  }
}
template <int NP, int... F>
PwFinishFn pw_finish_pick(int fl, std::integer_sequence<int, F...>) {
  static const PwFinishFn table[] = {pw_finish_q<NP, F>...};
  return table[fl];
}
/// The requantizing finishes (FL below kPwRes: every combination).
PwFinishFn pw_finish_fn(int np, int fl) {
  const auto seq = std::make_integer_sequence<int, 32>{};
  fl &= 31;
  return np == 1 ? pw_finish_pick<1>(fl, seq) : np == 2 ? pw_finish_pick<2>(fl, seq) : np == 3 ? pw_finish_pick<3>(fl, seq)
                                                                                                : pw_finish_pick<4>(fl, seq);
}
template <int FL>
PwFinishFn pw_finish_res_np(int np) {
  return np == 1 ? pw_finish_q<1, FL> : np == 2 ? pw_finish_q<2, FL> : np == 3 ? pw_finish_q<3, FL> : pw_finish_q<4, FL>;
}
/// The residual / f32-copy finishes (kPwRes and / or kPwF, the range guard, optional multipliers).
PwFinishFn pw_finish_res_fn(int np, bool f, bool res, bool mv) {
  constexpr int G = kPwGuard, R = kPwRes, F = kPwF, M = kPwMv;
  if (mv) return f && res ? pw_finish_res_np<G | R | F | M>(np) : res ? pw_finish_res_np<G | R | M>(np)
                                                                      : pw_finish_res_np<G | F | M>(np);
  return f && res ? pw_finish_res_np<G | R | F>(np) : res ? pw_finish_res_np<G | R>(np) : pw_finish_res_np<G | F>(np);
}

/// R pixels (int8 rows x, stride kp) x NP panels from panel p: their float rows (y, stride O) or (Q) int8 rows (qd,
/// stride Os, 32 bytes from channel 8p: the group's channels past O are stored as 0).
template <int R, int NP, bool Q>
LB_TARGET_VNNI __attribute__((noinline)) void pw_block(const PwVnni& s, int64_t p, const int8_t* x, float* y,
                                                      int8_t* qd, const float* res) {
  alignas(32) int32_t sums[R * NP * 8];
  pw_dot<R, NP>(s.w + p * 8 * s.kp, x, s.kp, s.nq, reinterpret_cast<const __m256i*>(s.init + p * 8), sums);
  // channels of this group: nv (a tail group: < 8 * NP; the panels' row_sum / row_scale are padded, bias is not)
  const int64_t c0 = p * 8, nv = std::min<int64_t>(NP * 8, s.O - c0);
  if constexpr (!Q) {
    __m256 sc[NP], bs[NP];
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) sc[j] = _mm256_loadu_ps(s.scf + c0 + 8 * j), bs[j] = _mm256_loadu_ps(s.bsf + c0 + 8 * j);
    const __m256 va = _mm256_set1_ps(s.lo), vb = _mm256_set1_ps(s.hi);
    auto rows = [&](auto clamp) LB_TARGET_VNNI {
#pragma GCC unroll 6
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < NP; ++j) {
          __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(sums + 8 * (r * NP + j)))), sc[j]);
          __asm__("" : "+v"(v));  // no FMA contraction: the reference multiplies, then adds
          v = _mm256_add_ps(v, bs[j]);
          if (clamp) v = _mm256_min_ps(_mm256_max_ps(v, va), vb);
          const int64_t nj = std::min<int64_t>(8, nv - 8 * j);
          float* d = y + r * s.O + c0 + 8 * j;
          if (nj == 8) _mm256_storeu_ps(d, v);
          else _mm256_mask_storeu_ps(d, __mmask8((1u << nj) - 1u), v);
        }
    };
    if (s.fclamp) rows(std::true_type{});
    else rows(std::false_type{});
  } else {
    s.fin[NP - 1](s, sums, R, c0, nv, s.scf + c0, s.bsf + c0, qd, y, res);
  }
}

constexpr int kPwRows = 6;  // pixels per register tile (6 x 4 panels: 24 accumulators)
template <int NP, bool Q>
LB_TARGET_VNNI __attribute__((always_inline)) inline void pw_rows(const PwVnni& s, int64_t p, const int8_t* x,
                                                                 int64_t m, float* y, int8_t* qd, const float* res) {
  // a 1-pixel tail runs as the last 7 pixels in blocks of 4 + 3: a 1-pixel block's 4 accumulators wait on the
  // vpdpbusd latency (7x7 maps: tiles of 13 pixels at 1 thread, 25 at 2)
  const int64_t m6 = m > kPwRows && m % kPwRows == 1 ? m - 7 : m;
  int64_t i = 0;
  if constexpr (Q) {
    // int8 out: block i's finish runs after block i + 1's sums (two sums buffers), so the out-of-order core overlaps
    // a finish with the next block's vpdpbusd chains (dot + finish of one block were ~300 instructions, the whole
    // window: block 1's K 16 expand ran ~130 cycles per block against 48 for its vpdpbusd)
    if (m6 >= 2 * kPwRows) {
      alignas(64) int32_t sums[2][kPwRows * NP * 8];
      const int64_t c0 = p * 8, nv = std::min<int64_t>(NP * 8, s.O - c0);
      const uint8_t* wp = s.w + p * 8 * s.kp;
      const __m256i* init = reinterpret_cast<const __m256i*>(s.init + p * 8);
      auto finish = [&](const int32_t* sm, int64_t i0) {
        s.fin[NP - 1](s, sm, kPwRows, c0, nv, s.scf + c0, s.bsf + c0, qd + i0 * s.Os, y + i0 * s.O,
                      res ? res + i0 * s.O : nullptr);
      };
      int b = 0;
      pw_dot<kPwRows, NP>(wp, x, s.kp, s.nq, init, sums[0]);
      for (i = kPwRows; i + kPwRows <= m6; i += kPwRows, b ^= 1) {
        pw_dot<kPwRows, NP>(wp, x + i * s.kp, s.kp, s.nq, init, sums[b ^ 1]);
        finish(sums[b], i - kPwRows);
      }
      finish(sums[b], i - kPwRows);
    }
  }
  for (; i + kPwRows <= m6; i += kPwRows)
    pw_block<kPwRows, NP, Q>(s, p, x + i * s.kp, y + i * s.O, qd + i * s.Os, res ? res + i * s.O : nullptr);
  const int8_t* xr = x + i * s.kp;
  float* yr = y + i * s.O;
  int8_t* qr = qd + i * s.Os;
  const float* rr = res ? res + i * s.O : nullptr;
  if (m - i == 7) {
    pw_block<4, NP, Q>(s, p, xr, yr, qr, rr);
    pw_block<3, NP, Q>(s, p, xr + 4 * s.kp, yr + 4 * s.O, qr + 4 * s.Os, rr ? rr + 4 * s.O : nullptr);
    return;
  }
  switch (m - i) {
    case 5: pw_block<5, NP, Q>(s, p, xr, yr, qr, rr); break;
    case 4: pw_block<4, NP, Q>(s, p, xr, yr, qr, rr); break;
    case 3: pw_block<3, NP, Q>(s, p, xr, yr, qr, rr); break;
    case 2: pw_block<2, NP, Q>(s, p, xr, yr, qr, rr); break;
    case 1: pw_block<1, NP, Q>(s, p, xr, yr, qr, rr); break;
    default: break;
  }
}

/// m pixel rows at x (int8, stride kp, read in place) -> float rows y (stride O) or (Q) int8 rows qd (stride Os,
/// Os % 32 == 0).
template <bool Q>
LB_TARGET_VNNI void pw_vnni_tile(const PwVnni& s, const int8_t* x, int64_t m, float* y, int8_t* qd,
                                  const float* res = nullptr) {
  const int64_t np = (s.O + 7) / 8;
  for (int64_t p = 0; p < np; p += 4) {
    switch (std::min<int64_t>(4, np - p)) {
      case 4: pw_rows<4, Q>(s, p, x, m, y, qd, res); break;
      case 3: pw_rows<3, Q>(s, p, x, m, y, qd, res); break;
      case 2: pw_rows<2, Q>(s, p, x, m, y, qd, res); break;
      default: pw_rows<1, Q>(s, p, x, m, y, qd, res); break;
    }
  }
}
#endif

// Depthwise weights, interleaved at plan time for the AVX2 kernel (kept in OpParams::v):
// per block of 16 channels and pair of taps j, 32 int16: the `lo` vector holds (w[c][2j],
// w[c][2j+1]) for channels 0-3 and 8-11 of the block, `hi` for 4-7 and 12-15 (the order of
// vpunpck{l,h}wd on the inputs), then the per-channel float factors comb[c] = s_x * s_w[c].
inline int dw_lane_channel(int i, bool hi) { return (i < 4 ? i : i + 4) + (hi ? 4 : 0); }

struct DwView {
  const int16_t* wi;  // [blocks][pairs][2][16]
  const float* comb;  // [Cb]
  const int32_t* zc;  // [Cb] zero point * sum of the channel's codes
};
DwView dw_view(const OpParams& p) {
  const int64_t Cb = (p.i[kC] + 15) / 16 * 16;
  const int16_t* wi = reinterpret_cast<const int16_t*>(p.v.data());
  const float* comb = reinterpret_cast<const float*>(wi + (Cb / 16) * p.i[kPairs] * 32);
  return DwView{wi, comb, reinterpret_cast<const int32_t*>(comb + Cb)};
}

// Depthwise weights for the AVX-512 VNNI kernel (depthwise mode only; its OpParams::v offset, in int64, is in
// p.i[kDwVnni], a slot gemm mode uses for its PackedWeight): four taps per vpdpbusd, the taps of a quad interleaved
// per channel. Per block of 32 channels and quad j (taps 4j..4j+3, 0 past the last tap), 4 vectors of 8 dwords: vector
// s, lane l holds the 4 tap codes of channel dwv_channel(s, l), the order vpunpck{l,h}bw then vpunpck{l,h}wd give the
// four tap rows. Then per channel, in the same order: comb (s_x * s_w), bias (0 without one) and -(128 + z) * sum of
// the codes (the accumulator's start: the activations are flipped to u8 = x + 128).
constexpr int kDwVnni = 36;  // == kPw
inline int dwv_channel(int s, int l) { return l < 4 ? 4 * s + l : 16 + 4 * s + l - 4; }
struct DwVnni {
  const int8_t* w;     // [Cb / 32][quads][4][32]
  const float* comb;   // [Cb] (permuted)
  const float* bias;   // [Cb] (permuted)
  const int32_t* zq;   // [Cb] (permuted)
  int64_t quads;
  bool one;  // the last quad holds one tap (taps % 4 == 1: 3x3, 5x5, 7x7), its other weights 0
};
#if defined(__x86_64__)
DwVnni dw_vnni_view(const OpParams& p) {  // (read by the x86 kernels only: the tables are built everywhere)
  const int64_t Cb = (p.i[kC] + 31) / 32 * 32, nq = (p.i[kTaps] + 3) / 4;
  const int8_t* w = reinterpret_cast<const int8_t*>(p.v.data() + p.i[kDwVnni]);
  const float* comb = reinterpret_cast<const float*>(w + Cb * nq * 4);
  return DwVnni{w, comb, comb + Cb, reinterpret_cast<const int32_t*>(comb + 2 * Cb), nq, p.i[kTaps] % 4 == 1};
}
#endif

/// True when every requantized value x * inv of this conv is finite and far below 2^30 (|x - z| <= 255 per product,
/// |x| <= sum |w| * 255 * |scale| + |bias|, times the smoothing multiplier): then q8_lanes' min(2^30, .) cannot change
/// a code and the VNNI kernels skip it. wabs[n]: sum of |code| of output n; scale[n]: its float factor.
/// lim: the largest |bound| of a float clamp applied before the multipliers (Clip), else 0.
/// limit: the bound asked for (2^28: no range guard; 2^21: the rounding by adding 1.5 * 2^23, see q8_round).
bool qrange_ok(const std::vector<int64_t>& wabs, const float* scale, const float* bias, const float* mv, float lim,
               float inv, double limit) {
  for (size_t n = 0; n < wabs.size(); ++n) {
    const double a = double(wabs[n]) * 255.0 * std::fabs(double(scale[n])) + (bias ? std::fabs(double(bias[n])) : 0.0);
    const double x = std::max(a, double(lim)) * (mv ? std::fabs(double(mv[n])) : 1.0) * std::fabs(double(inv));
    if (!(x < limit)) return false;  // (NaN / inf fail too)
  }
  return true;
}

lb_status conv_infer(OpCtx& c) {
  const Tensor* x = c.in[0];
  OpParams& p = *c.p;
  const Json& a = *c.attrs;
  const std::string mode = attr_str(a, "mode", "");
  const Tensor* w = c.in.size() > 1 ? c.in[1] : nullptr;
  const Tensor* b = c.in.size() > 2 ? c.in[2] : nullptr;
  const Tensor* ws = c.in.size() > 3 ? c.in[3] : nullptr;
  const Tensor* res = c.in.size() > 4 ? c.in[4] : nullptr;  // inputs 5...: post-step constants
  if (x->dtype != DType::I8 || x->shape.size() != 4) {
    c.err = "expects an i8 NHWC input [N, H, W, Cs] (from quantize_nhwc_q8 or another qconv2d_nhwc_q8), got " +
            std::string(dtype_name(x->dtype)) + " " + shape_str(x->shape);
    return LB_ERR_SHAPE;
  }
  if (!w || !w->data) {
    c.err = "needs a constant weight";
    return LB_ERR_UNSUPPORTED;
  }
  p.v.clear();  // (re-planned on new shapes: rebuilt below)
  p.i[kN] = x->shape[0]; p.i[kH] = x->shape[1]; p.i[kW] = x->shape[2]; p.i[kCs] = x->shape[3];
  static_assert(kKw == kKh + 1 && kSh == kKw + 1 && kPr == kSh + 7 && kW == kH + 1 && kOW == kOH + 1, "window slots");
  if (const lb_status st = conv_window_attrs(a, &p.i[kH], &p.i[kKh], &p.i[kOH], &c.err); st != LB_OK) {
    if (st == LB_ERR_SHAPE) c.err += " (input " + shape_str(x->shape) + ")";
    return st;
  }
  if (!parse_act(a, &p, kAct, 0)) {
    c.err = "unknown fused activation '" + attr_str(a, "act", "") + "'";
    return LB_ERR_UNSUPPORTED;
  }
  if (attr_str(a, "aq", "") != "static") {
    c.err = "int8 NHWC convs need static activation quantization (aq 'static')";
    return LB_ERR_UNSUPPORTED;
  }
  p.f[2] = attr_float(a, "aq_scale", 0.f);
  p.i[kZin] = attr_int(a, "aq_zero", 0);
  if (!(p.f[2] > 0.f) || !std::isfinite(p.f[2]) || p.i[kZin] < -128 || p.i[kZin] > 127) {
    c.err = "needs aq_scale > 0 and aq_zero in [-128, 127]";
    return LB_ERR_UNSUPPORTED;
  }
  const int64_t group = attr_int(a, "group", 1);
  const int64_t taps = p.i[kKh] * p.i[kKw];
  if (mode == "gemm") {
    p.i[kMode] = 0;
    const int64_t n = attr_int(a, "n", 0), k = attr_int(a, "k", 0);
    if (w->dtype != DType::U8 || attr_int(a, "wfmt", -1) != LB_WFMT_Q8) {
      c.err = "gemm mode needs the packed u8 int8 (Q8) weight";
      return LB_ERR_UNSUPPORTED;
    }
    PackedWeight pw;
    const lb_status st = packed_weight_init(LB_WFMT_Q8, n, k, int32_t(k), w->data, w->nbytes(), &pw);
    if (st != LB_OK) {
      c.err = std::string("packed weight does not match its format: ") + lb_last_error();
      return st;
    }
    new (&packed(p)) PackedWeight(pw);
    if (group != 1 || k % taps != 0) {
      c.err = "gemm mode needs group 1 and k = C * kh * kw (k=" + std::to_string(k) + ")";
      return LB_ERR_SHAPE;
    }
    p.i[kC] = k / taps;
    p.i[kO] = n;
    p.i[kK] = k;
    p.i[kKp] = pw.kp;
    p.i[kDirect] = taps == 1 && p.i[kSh] == 1 && p.i[kSw] == 1 && !p.i[kPt] && !p.i[kPl] && !p.i[kPb] && !p.i[kPr] &&
                   nhwc_cstride(p.i[kC]) == pw.kp;
  } else if (mode == "depthwise") {
    p.i[kMode] = 1;
    if (w->dtype != DType::I8 || w->shape.size() != 2 || w->shape[1] != taps || group != w->shape[0]) {
      c.err = "depthwise weight must be i8 [C, kh*kw] with group == C, got " + shape_str(w->shape);
      return LB_ERR_SHAPE;
    }
    p.i[kC] = p.i[kO] = w->shape[0];
    if (!ws || !ws->data || ws->dtype != DType::F32 || ws->numel() != p.i[kC]) {
      c.err = "depthwise needs constant f32 per-channel weight scales [C] as input 3";
      return LB_ERR_SHAPE;
    }
    p.i[kTaps] = taps;
    p.i[kPairs] = (taps + 1) / 2;
    const int64_t Cb = (p.i[kC] + 15) / 16 * 16, C = p.i[kC];
    const size_t wbytes = size_t(Cb / 16 * p.i[kPairs] * 32) * 2, fbytes = size_t(Cb) * 4 * 2;
    p.v.assign((wbytes + fbytes + 7) / 8, 0);
    int16_t* wi = reinterpret_cast<int16_t*>(p.v.data());
    float* comb = reinterpret_cast<float*>(wi + Cb / 16 * p.i[kPairs] * 32);
    const int8_t* codes = static_cast<const int8_t*>(w->data);
    const float* sc = ws->f32();
    for (int64_t blk = 0; blk < Cb / 16; ++blk)
      for (int64_t j = 0; j < p.i[kPairs]; ++j)
        for (int h = 0; h < 2; ++h)
          for (int i = 0; i < 8; ++i)
            for (int s = 0; s < 2; ++s) {
              const int64_t ch = blk * 16 + dw_lane_channel(i, h == 1), t = 2 * j + s;
              wi[((blk * p.i[kPairs] + j) * 2 + h) * 16 + 2 * i + s] =
                  int16_t(ch < C && t < taps ? codes[ch * taps + t] : 0);
            }
    for (int64_t ch = 0; ch < Cb; ++ch) comb[ch] = ch < C ? p.f[2] * sc[ch] : 0.f;
    int32_t* zc = reinterpret_cast<int32_t*>(comb + Cb);  // z * sum of the channel's weight codes
    for (int64_t ch = 0; ch < Cb; ++ch) {
      int32_t sw = 0;
      for (int64_t t = 0; ch < C && t < taps; ++t) sw += codes[ch * taps + t];
      zc[ch] = int32_t(p.i[kZin]) * sw;
    }
    {  // the VNNI kernel's tables (dw_vnni_view), appended
      const int64_t Cv = (C + 31) / 32 * 32, nq = (taps + 3) / 4;
      const size_t vbytes = size_t(Cv * nq * 4) + size_t(Cv) * 12;
      p.i[kDwVnni] = int64_t(p.v.size());
      p.v.resize(p.v.size() + (vbytes + 7) / 8, 0);
      int8_t* vw = reinterpret_cast<int8_t*>(p.v.data() + p.i[kDwVnni]);
      float* vc = reinterpret_cast<float*>(vw + Cv * nq * 4);
      float* vb = vc + Cv;
      int32_t* vz = reinterpret_cast<int32_t*>(vc + 2 * Cv);
      const float* bv = b && b->data && b->dtype == DType::F32 && b->numel() == C ? b->f32() : nullptr;
      for (int64_t blk = 0; blk < Cv / 32; ++blk)
        for (int s = 0; s < 4; ++s)
          for (int l = 0; l < 8; ++l) {
            const int64_t ch = blk * 32 + dwv_channel(s, l), at = blk * 32 + s * 8 + l;
            int32_t sw = 0;
            for (int64_t j = 0; j < nq; ++j)
              for (int t = 0; t < 4; ++t) {
                const int64_t tap = 4 * j + t;
                const int8_t v = ch < C && tap < taps ? codes[ch * taps + tap] : int8_t(0);
                vw[((blk * nq + j) * 4 + s) * 32 + 4 * l + t] = v;
                sw += v;
              }
            vc[at] = ch < C ? comb[ch] : 0.f;
            vb[at] = ch < C && bv ? bv[ch] : 0.f;
            vz[at] = -(128 + int32_t(p.i[kZin])) * sw;
          }
    }
  } else {
    c.err = "unknown mode '" + mode + "' (gemm or depthwise)";
    return LB_ERR_UNSUPPORTED;
  }
  if (p.i[kCs] != nhwc_cstride(p.i[kC])) {
    c.err = "input channel stride " + std::to_string(p.i[kCs]) + " does not match " + std::to_string(p.i[kC]) +
            " channels (expected " + std::to_string(nhwc_cstride(p.i[kC])) + ")";
    return LB_ERR_SHAPE;
  }
  const int64_t O = p.i[kO];
  p.i[kOs] = nhwc_cstride(O);
  if (b && (!b->data || b->dtype != DType::F32 || b->numel() != O)) {
    c.err = "bias must be " + std::to_string(O) + " constant f32 values";
    return LB_ERR_SHAPE;
  }
  // outputs
  std::vector<std::string> outs;
  const Json& jo = a["outs"];
  if (jo.is_array())
    for (const Json& e : jo.elems()) outs.push_back(e.is_string() ? e.str() : std::string("?"));
  if (outs.size() != c.out.size() || outs.empty()) {
    c.err = "attr 'outs' must name one kind per output (q8, f32_nhwc, f32)";
    return LB_ERR_FORMAT;
  }
  p.i[kOutQ] = p.i[kOutF] = p.i[kOutN] = -1;
  const int64_t N = p.i[kN], OH = p.i[kOH], OW = p.i[kOW];
  for (size_t j = 0; j < outs.size(); ++j) {
    Tensor* t = c.out[j];
    int64_t* slot = outs[j] == "q8" ? &p.i[kOutQ] : outs[j] == "f32_nhwc" ? &p.i[kOutF] : outs[j] == "f32" ? &p.i[kOutN] : nullptr;
    if (!slot || *slot >= 0) {
      c.err = "attr 'outs': unknown or repeated kind '" + outs[j] + "' (q8, f32_nhwc, f32)";
      return LB_ERR_FORMAT;
    }
    *slot = int64_t(j);
    if (outs[j] == "q8") {
      t->dtype = DType::I8;
      t->shape = {N, OH, OW, p.i[kOs]};
    } else if (outs[j] == "f32_nhwc") {
      t->dtype = DType::F32;
      t->shape = {N, OH, OW, O};
    } else {
      t->dtype = DType::F32;
      t->shape = {N, O, OH, OW};
    }
  }
  p.f[4] = 0.f;  // input index of the next convs' smoothing multipliers [O] (0: none)
  if (p.i[kOutQ] >= 0 && attr_int(a, "oq_mul", 0) > 0) {
    const int64_t k = attr_int(a, "oq_mul", 0);
    const Tensor* t = k >= 5 && size_t(k) < c.in.size() ? c.in[size_t(k)] : nullptr;
    if (!t || !t->data || t->dtype != DType::F32 || t->numel() != O || k > 64) {
      c.err = "oq_mul must name a constant f32 input (index >= 5) of " + std::to_string(O) + " values";
      return LB_ERR_SHAPE;
    }
    p.f[4] = float(k);
  }
  if (p.i[kOutQ] >= 0) {
    p.f[3] = attr_float(a, "oq_scale", 0.f);
    p.i[kZout] = attr_int(a, "oq_zero", 0);
    if (!(p.f[3] > 0.f) || !std::isfinite(p.f[3]) || p.i[kZout] < -128 || p.i[kZout] > 127) {
      c.err = "a q8 output needs oq_scale > 0 and oq_zero in [-128, 127]";
      return LB_ERR_UNSUPPORTED;
    }
  }
  p.i[kRes] = res != nullptr;
  if (res && (res->dtype != DType::F32 || res->shape != std::vector<int64_t>{N, OH, OW, O})) {
    c.err = "residual input 4 must be f32 NHWC " + shape_str({N, OH, OW, O}) + ", got " + shape_str(res->shape);
    return LB_ERR_SHAPE;
  }
  // elementwise steps folded after the activation (attr "post"), kept at the end of OpParams::v as
  // 4 int64 each: kind, input index, two float parameters (bit patterns)
  p.i[kNPost] = 0;
  p.i[kPostOff] = int64_t(p.v.size());
  const Json& jp = a["post"];
  if (jp.is_array()) {
    for (const Json& js : jp.elems()) {
      const std::string kind = js.is_array() && js.size() >= 1 && js.at(0).is_string() ? js.at(0).str() : "";
      int64_t code = -1, idx = 0;
      float f0 = 0.f, f1 = 0.f;
      if (kind == "add_s" || kind == "mul_s") {
        code = kind == "add_s" ? POST_ADD_S : POST_MUL_S;
        if (js.size() != 2 || !js.at(1).is_number()) code = -1;
        else f0 = float(js.at(1).num());
      } else if (kind == "add_c" || kind == "mul_c") {
        code = kind == "add_c" ? POST_ADD_C : POST_MUL_C;
        idx = js.size() == 2 && js.at(1).is_number() ? js.at(1).i64() : -1;
        const Tensor* t = idx >= 5 && size_t(idx) < c.in.size() ? c.in[size_t(idx)] : nullptr;
        if (!t || !t->data || t->dtype != DType::F32 || t->numel() != O) {
          c.err = "post step '" + kind + "' needs a constant f32 input of " + std::to_string(O) + " values";
          return LB_ERR_SHAPE;
        }
      } else if (kind == "hswish" || kind == "hsig") {
        code = kind == "hswish" ? POST_HSWISH : POST_HSIG;
        if (js.size() != 3 || !js.at(1).is_number() || !js.at(2).is_number()) code = -1;
        else f0 = float(js.at(1).num()), f1 = float(js.at(2).num());
      } else if (kind == "relu") {
        code = POST_RELU;
      }
      if (code < 0) {
        c.err = "unknown post step '" + kind + "' (add_s, mul_s, add_c, mul_c, hswish, hsig, relu with their arguments)";
        return LB_ERR_FORMAT;
      }
      int64_t fb[2];
      uint32_t u0, u1;
      std::memcpy(&u0, &f0, 4);
      std::memcpy(&u1, &f1, 4);
      fb[0] = u0;
      fb[1] = u1;
      p.v.insert(p.v.end(), {code, idx, fb[0], fb[1]});
      ++p.i[kNPost];
    }
  }
  if (pw_vnni_ok(p)) pw_vnni_tables(p, b ? b->f32() : nullptr);  // the VNNI 1x1 path's tables, after the post steps
  // p.f[5] = 1: the int8 output's requantization needs no range guard (qrange_ok; used by the VNNI kernels);
  // p.f[6] = 1: every x * inv is below 2^21, so the VNNI kernels round it by adding 1.5 * 2^23 (q8_round)
  p.f[5] = p.f[6] = 0.f;
  if (p.i[kOutQ] >= 0 && !(b && !b->data)) {
    const float* mvp = p.f[4] > 0.f ? c.in[size_t(p.f[4])]->f32() : nullptr;
    const float* bp = b ? b->f32() : nullptr;
    std::vector<int64_t> wabs(size_t(O), 0);
    std::vector<float> sc(size_t(O), 0.f);
    if (p.i[kMode] == 0) {
      const PackedWeight& pw = packed(p);
      const uint8_t* wd = static_cast<const uint8_t*>(pw.data);
      for (int64_t n = 0; n < O; ++n) {
        for (int64_t k = 0; k < pw.kp; ++k) wabs[size_t(n)] += std::abs(int(int8_t(wd[layout::q8_offset(n, k, pw.kp)])));
        sc[size_t(n)] = p.f[2] * pw.row_scale[n];
      }
    } else {
      const int8_t* codes = static_cast<const int8_t*>(w->data);
      const float* comb = reinterpret_cast<const float*>(dw_view(p).comb);
      for (int64_t ch = 0; ch < O; ++ch) {
        for (int64_t t = 0; t < taps; ++t) wabs[size_t(ch)] += std::abs(int(codes[ch * taps + t]));
        sc[size_t(ch)] = comb[ch];
      }
    }
    const float lim = p.i[kAct] == ACT_CLIP ? std::max(std::fabs(p.f[0]), std::fabs(p.f[1])) : 0.f;
    p.f[5] = qrange_ok(wabs, sc.data(), bp, mvp, lim, 1.0f / p.f[3], 268435456.0) ? 1.f : 0.f;
    p.f[6] = qrange_ok(wabs, sc.data(), bp, mvp, lim, 1.0f / p.f[3], 2097152.0) ? 1.f : 0.f;
  }
  // tiles of output pixels (over N * OH * OW), each done whole by one thread
  const int64_t P = N * OH * OW;
  int64_t T;
  if (p.i[kMode] == 0) {
    T = std::min<int64_t>(240, std::max<int64_t>(48, 32768 / std::max<int64_t>(O, 1) / 6 * 6));
    const int64_t quarter = ((P + 3) / 4 + 5) / 6 * 6;  // at least ~4 tiles (2 threads) on small maps
    if (P >= 24) T = std::min(T, quarter);
    // im2col tiles of at most ~64 KB of rows (det's 3x3 96 -> 24 head convs: 72 rows of 864 bytes instead
    // of 240: ~2 % faster per op at 1 thread, a smaller working set between the gather and the GEMM)
    if (!p.i[kDirect]) T = std::min(T, std::max<int64_t>(48, 65536 / std::max<int64_t>(p.i[kKp], 1) / 6 * 6));
  } else {
    T = std::min<int64_t>(256, std::max<int64_t>(4, 8192 / std::max<int64_t>(O, 1)));
    T = T / 4 * 4;  // whole groups of four pixels per tile (the four-pixel kernels; a tail group wastes slots)
  }
  T = std::max<int64_t>(1, std::min(T, P));
  // With several threads, small maps get a tile count that is a multiple of the thread count (tiles of
  // equal size): 49 pixels in 3 tiles of 18 / 18 / 13 left one thread 31 rows and the other 18. The cut
  // never changes a bit (every output is computed whole by one tile).
  if (const int64_t th = op_threads(c); th > 1 && P > T) {
    int64_t nt = (P + T - 1) / T;
    if (nt < 4 * th) {
      nt = (nt + th - 1) / th * th;
      T = (P + nt - 1) / nt;
    }
  }
  p.i[kT] = T;
  size_t per = al64(size_t(T * O) * 4);                              // float tile
  if (p.i[kMode] == 0) {
    per += al64(size_t(T) * sizeof(lb_q8_meta));                     // row metadata
    if (!p.i[kDirect] || smallk_ok(p)) per += al64(size_t(T * p.i[kKp]));  // im2col / u8 rows
    if (packed(p).code_bits == 7) per += al64(size_t(T * p.i[kKp]));      // u8 rows for gemm_q7 (lb_mm_args::xu)
  } else {
    // pad row, 4 x tap pointers (2 * pairs for the AVX2 kernels, 4 * quads for the VNNI one)
    per += al64(size_t(p.i[kCs] + 64)) + al64(size_t(16 * ((p.i[kTaps] + 3) / 4)) * sizeof(void*));
  }
  p.i[kPer] = int64_t(per);
  c.scratch_bytes = per * size_t(op_threads(c));
  c.flops = uint64_t(2) * uint64_t(P) * uint64_t(O) * uint64_t(p.i[kMode] == 0 ? p.i[kK] : taps);
  return LB_OK;
}

// ---- depthwise rows ----------------------------------------------------------------------------
// acc[c] = float(sum_t (x_t[c] - z) * w[c][t]) * comb[c] + bias[c] for c < C (a pixel), where x_t
// points at the tap's input pixel or at a row of z (padding).
void dw_pixel_scalar(const OpParams& p, const int8_t* const* xt, const int8_t* codes, const float* comb,
                     const float* bias, float* acc) {
  const int64_t C = p.i[kC], taps = p.i[kTaps];
  const int32_t z = int32_t(p.i[kZin]);
  for (int64_t ch = 0; ch < C; ++ch) {
    int32_t s = 0;
    for (int64_t t = 0; t < taps; ++t) s += (int32_t(xt[t][ch]) - z) * int32_t(codes[ch * taps + t]);
    acc[ch] = std::fma(float(s), comb[ch], bias ? bias[ch] : 0.f);
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void dw_pixel_avx2(const OpParams& p, const int8_t* const* xt,
                                                        const int8_t* codes, const float* comb, const float* bias,
                                                        float* acc) {
  const int64_t C = p.i[kC], Cs = p.i[kCs], pairs = p.i[kPairs], taps = p.i[kTaps];
  const DwView dv = dw_view(p);
  int64_t c0 = 0;
  for (; c0 + 16 <= Cs && c0 < C; c0 += 16) {
    // sum_t (q_t - z) w_t = sum_t q_t w_t - z * sum_t w_t (padding taps read z): exact int32
    const __m256i* wv = reinterpret_cast<const __m256i*>(dv.wi + (c0 / 16) * pairs * 32);
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
    for (int64_t j = 0; j < pairs; ++j) {
      const __m256i a = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xt[2 * j] + c0)));
      const __m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xt[2 * j + 1] + c0)));
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), _mm256_loadu_si256(wv + 2 * j)));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), _mm256_loadu_si256(wv + 2 * j + 1)));
    }
    const __m256i r0 = _mm256_sub_epi32(_mm256_permute2x128_si256(lo, hi, 0x20),
                                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dv.zc + c0)));
    const __m256i r1 = _mm256_sub_epi32(_mm256_permute2x128_si256(lo, hi, 0x31),
                                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dv.zc + c0 + 8)));
    const __m256 b0 = bias ? _mm256_loadu_ps(bias + c0) : _mm256_setzero_ps();
    const __m256 f0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(r0), _mm256_loadu_ps(dv.comb + c0), b0);
    if (c0 + 16 <= C) {
      const __m256 b1 = bias ? _mm256_loadu_ps(bias + c0 + 8) : _mm256_setzero_ps();
      _mm256_storeu_ps(acc + c0, f0);
      _mm256_storeu_ps(acc + c0 + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(r1), _mm256_loadu_ps(dv.comb + c0 + 8), b1));
    } else {  // the last block of C (bias has only C values)
      alignas(32) float t[16];
      alignas(32) int32_t s[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(s), r0);
      _mm256_store_si256(reinterpret_cast<__m256i*>(s + 8), r1);
      for (int64_t ch = c0; ch < C; ++ch) t[ch - c0] = std::fma(float(s[ch - c0]), dv.comb[ch], bias ? bias[ch] : 0.f);
      std::memcpy(acc + c0, t, size_t(C - c0) * 4);
    }
  }
  if (c0 < C) {  // channels past the last full vector of the stride (only when Cs < 16)
    const int32_t z = int32_t(p.i[kZin]);
    for (int64_t ch = c0; ch < C; ++ch) {
      int32_t s = 0;
      for (int64_t t = 0; t < taps; ++t) s += (int32_t(xt[t][ch]) - z) * int32_t(codes[ch * taps + t]);
      acc[ch] = std::fma(float(s), dv.comb[ch], bias ? bias[ch] : 0.f);
    }
  }
}
#endif

#if defined(__x86_64__)
// int8 NHWC output of the four-pixel depthwise kernels: the epilogue's act_requant_avx2 (Relu / Clip applied to
// the codes, no smoothing multipliers) done on the registers, so the float tile is neither stored nor read back.
// Only for C % 16 == 0 (every channel block full); pixel q's row is q + q * Os, its bytes C..Os zero.
struct DwQ8 {
  int8_t* q;
  int64_t Os;
  float inv;
  int16_t z;       // zero point
  int8_t lo, hi;   // the act's clamp on the codes (-128 / 127 without one)
  bool guard = true;  // q8_lanes' min(2^30, .) (the VNNI kernel uses q8_round where qrange_ok proved |x * inv| < 2^21)
};
// Four output pixels at once: the weight pair vectors are loaded once for the four pixels; per
// pixel the same integer sums and the same final vfmadd as dw_pixel_avx2 (so the same bits).
// taps(q, j, &pa, &pb) gives pixel q's two taps of weight pair j (channel 0). kQ: int8 rows (dq) instead of floats.
template <bool kQ, class Taps>
__attribute__((target("avx2,fma"), always_inline)) inline void dw_pixel4_core(const OpParams& p, Taps taps,
                                                                               const float* bias, float* acc,
                                                                               const DwQ8* dq) {
  const int64_t C = p.i[kC], Cs = p.i[kCs], pairs = p.i[kPairs], O = p.i[kO];
  const DwView dv = dw_view(p);
  if constexpr (kQ)
    for (int q = 0; q < 4; ++q)
      for (int64_t c = C; c < dq->Os; c += 16) _mm_storeu_si128(reinterpret_cast<__m128i*>(dq->q + q * dq->Os + c), _mm_setzero_si128());
  [[maybe_unused]] const __m256 vinv = _mm256_set1_ps(kQ ? dq->inv : 0.f);
  [[maybe_unused]] const __m256i vz = _mm256_set1_epi16(kQ ? dq->z : 0);
  [[maybe_unused]] const __m128i qlo = _mm_set1_epi8(kQ ? dq->lo : 0), qhi = _mm_set1_epi8(kQ ? dq->hi : 0);
  for (int64_t c0 = 0; c0 + 16 <= Cs && c0 < C; c0 += 16) {
    const __m256i* wv = reinterpret_cast<const __m256i*>(dv.wi + (c0 / 16) * pairs * 32);
    __m256i lo[4], hi[4];
    for (int j = 0; j < 4; ++j) lo[j] = hi[j] = _mm256_setzero_si256();
    for (int64_t j = 0; j < pairs; ++j) {
      const __m256i wl = _mm256_loadu_si256(wv + 2 * j), wh = _mm256_loadu_si256(wv + 2 * j + 1);
      for (int q = 0; q < 4; ++q) {
        const int8_t *pa, *pb;
        taps(q, j, &pa, &pb);
        const __m256i a = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pa + c0)));
        const __m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pb + c0)));
        lo[q] = _mm256_add_epi32(lo[q], _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), wl));
        hi[q] = _mm256_add_epi32(hi[q], _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), wh));
      }
    }
    const __m256i z0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dv.zc + c0));
    const __m256i z1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dv.zc + c0 + 8));
    const __m256 m0 = _mm256_loadu_ps(dv.comb + c0), m1 = _mm256_loadu_ps(dv.comb + c0 + 8);
    const bool full = c0 + 16 <= C;
    const __m256 b0 = bias ? _mm256_loadu_ps(bias + c0) : _mm256_setzero_ps();
    const __m256 b1 = bias && full ? _mm256_loadu_ps(bias + c0 + 8) : _mm256_setzero_ps();
    for (int q = 0; q < 4; ++q) {
      const __m256i r0 = _mm256_sub_epi32(_mm256_permute2x128_si256(lo[q], hi[q], 0x20), z0);
      const __m256i r1 = _mm256_sub_epi32(_mm256_permute2x128_si256(lo[q], hi[q], 0x31), z1);
      if constexpr (kQ) {  // act_requant_avx2's operations: q8_lanes, saturating packs, zero point, code clamp
        const __m256 f0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(r0), m0, b0);
        const __m256 f1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(r1), m1, b1);
        const __m256i w = _mm256_adds_epi16(_mm256_packs_epi32(q8_lanes(f0, vinv), q8_lanes(f1, vinv)), vz);
        // bytes of packs_epi16(w, w), in dwords: [0-3 8-11 0-3 8-11 | 4-7 12-15 4-7 12-15]
        const __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w, w), _mm256_setr_epi32(0, 4, 1, 5, 0, 4, 1, 5));
        const __m128i v = _mm_min_epi8(_mm_max_epi8(_mm256_castsi256_si128(b), qlo), qhi);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dq->q + q * dq->Os + c0), v);
        continue;
      }
      float* a = acc + q * O;
      if (full) {
        _mm256_storeu_ps(a + c0, _mm256_fmadd_ps(_mm256_cvtepi32_ps(r0), m0, b0));
        _mm256_storeu_ps(a + c0 + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(r1), m1, b1));
      } else {  // the last block of C (bias has only C values)
        alignas(32) int32_t sv[16];
        _mm256_store_si256(reinterpret_cast<__m256i*>(sv), r0);
        _mm256_store_si256(reinterpret_cast<__m256i*>(sv + 8), r1);
        for (int64_t ch = c0; ch < C; ++ch) a[ch] = std::fma(float(sv[ch - c0]), dv.comb[ch], bias ? bias[ch] : 0.f);
      }
    }
  }
}
// Four neighbouring output pixels of one row, every tap inside the image: pixel q reads at
// px + q * step + toff[t] (the last tap of an odd count pairs with itself and a zero weight).
template <bool kQ>
__attribute__((target("avx2,fma"))) void dw_pixel4_avx2(const OpParams& p, const int8_t* px, int64_t step,
                                                         const int64_t* toff, const float* bias, float* acc,
                                                         const DwQ8* dq) {
  const int64_t taps = p.i[kTaps];
  dw_pixel4_core<kQ>(p, [&](int q, int64_t j, const int8_t** pa, const int8_t** pb) {
    *pa = px + q * step + toff[2 * j];
    *pb = 2 * j + 1 >= taps ? *pa : px + q * step + toff[2 * j + 1];
  }, bias, acc, dq);
}
// Four output pixels anywhere in the tile (border pixels included): tap t of pixel q at xt4[q * tp + t]
// (tp = 2 * pairs pointers per pixel: a row of zero points for padding taps and for the odd count's
// partner, whose weight is 0).
template <bool kQ>
__attribute__((target("avx2,fma"))) void dw_pixel4p_avx2(const OpParams& p, const int8_t* const* xt4, int64_t tp,
                                                          const float* bias, float* acc, const DwQ8* dq) {
  dw_pixel4_core<kQ>(p, [&](int q, int64_t j, const int8_t** pa, const int8_t** pb) {
    *pa = xt4[q * tp + 2 * j];
    *pb = xt4[q * tp + 2 * j + 1];
  }, bias, acc, dq);
}
#endif

#if defined(__x86_64__)
/// acc += the dword dot products of u (u8) and w (s8): vpdpbusd as inline asm with the accumulator tied in place (the
/// intrinsic let GCC 12 copy each accumulator to another register and back around every vpdpbusd of the tap loop).
LB_TARGET_VNNI __attribute__((always_inline)) inline void dpbusd_acc(__m256i& acc, __m256i u, __m256i w) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "vm"(w));
}
// The AVX-512 VNNI depthwise kernel (ymm, AVX-512VL): four output pixels x 32 channels at a time, four taps per
// vpdpbusd. Per quad of taps the four tap rows (32 bytes each) are flipped to u8 and interleaved per channel (two
// vpunpck levels), then dotted with the quad's weight vectors (dw_vnni_view): 8 shuffles and 4 vpdpbusd per 128
// products, where the AVX2 kernel spends 16 shuffles (sign extensions and unpacks) and 8 multiply-adds. The integer
// sums are exact (the start -(128 + z) * sum w makes them sum (x - z) w), and the finish is dw_pixel4_core's int8 one
// (the same vfmadd, q8_lanes, saturating packs and code clamp), in the permuted channel order, which the packs undo: the
// same bits. Only for its qfuse case (C % 16 == 0, int8 output of act + requantization); the padding bytes C..Os are 0.
// taps(q, j, pt) gives pixel q's 4 tap pointers of quad j (channel 0), out(q) its int8 row; ng groups of four pixels
// (q < 4 * ng) per call, each over all channel blocks (its input rows stay in L1).
template <class Taps, class Out>
LB_TARGET_VNNI __attribute__((always_inline)) inline void dw4_vnni_core(const OpParams& p, const DwVnni& v, Taps taps,
                                                                      Out out, const DwQ8* dq, int64_t ng) {
  const int64_t C = p.i[kC], nq = v.quads;
  for (int64_t q = 0; q < 4 * ng; ++q)
    for (int64_t c = C; c < dq->Os; c += 16) _mm_storeu_si128(reinterpret_cast<__m128i*>(out(q) + c), _mm_setzero_si128());
  const __m256 vinv = _mm256_set1_ps(dq->inv);
  const __m256i vz = _mm256_set1_epi16(dq->z), flip = _mm256_set1_epi8(int8_t(0x80));
  const __m256i vbz = _mm256_set1_epi32(0x4B400000 - dq->z);
  const __m256i qlo = _mm256_set1_epi8(dq->lo), qhi = _mm256_set1_epi8(dq->hi);
  __m256i one_idx[4];  // lane l of acc[q][s] is channel 4s + l (l < 4) / 16 + 4s + l - 4: byte 4s + (l % 4) of its half
  for (int s = 0; s < 4; ++s) {
    const auto m = [s](int i) { return int(0x80808000u | unsigned(4 * s + i)); };
    one_idx[s] = _mm256_setr_epi32(m(0), m(1), m(2), m(3), m(0), m(1), m(2), m(3));
  }
  for (int64_t g = 0; g < ng; ++g) {
    for (int64_t c0 = 0; c0 < C; c0 += 32) {
      const __m256i* wb = reinterpret_cast<const __m256i*>(v.w + (c0 / 32) * nq * 128);
      __m256i acc[4][4];
      for (int s = 0; s < 4; ++s) {
        const __m256i z0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v.zq + c0 + 8 * s));
        for (int q = 0; q < 4; ++q) {  // each accumulator its own value: with one shared start value GCC 12 copied
          __m256i t = z0;               // every accumulator around each vpdpbusd of the tap loop (as in pw_dot)
          __asm__("" : "+v"(t));
          acc[q][s] = t;
        }
      }
      for (int64_t j = 0; j < nq - v.one; ++j) {
        const __m256i w0 = _mm256_loadu_si256(wb + 4 * j), w1 = _mm256_loadu_si256(wb + 4 * j + 1);
        const __m256i w2 = _mm256_loadu_si256(wb + 4 * j + 2), w3 = _mm256_loadu_si256(wb + 4 * j + 3);
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
          const int8_t* pt[4];
          taps(int(4 * g + q), j, pt);
          const __m256i a = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pt[0] + c0)), flip);
          const __m256i b = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pt[1] + c0)), flip);
          const __m256i c = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pt[2] + c0)), flip);
          const __m256i d = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pt[3] + c0)), flip);
          const __m256i ab0 = _mm256_unpacklo_epi8(a, b), ab1 = _mm256_unpackhi_epi8(a, b);
          const __m256i cd0 = _mm256_unpacklo_epi8(c, d), cd1 = _mm256_unpackhi_epi8(c, d);
          dpbusd_acc(acc[q][0], _mm256_unpacklo_epi16(ab0, cd0), w0);
          dpbusd_acc(acc[q][1], _mm256_unpackhi_epi16(ab0, cd0), w1);
          dpbusd_acc(acc[q][2], _mm256_unpacklo_epi16(ab1, cd1), w2);
          dpbusd_acc(acc[q][3], _mm256_unpackhi_epi16(ab1, cd1), w3);
        }
      }
      if (v.one) {  // a one-tap last quad: each channel's byte moved to byte 0 of its dword (the rest 0) by vpshufb
        const int64_t j = nq - 1;
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
          const int8_t* pt[4];
          taps(int(4 * g + q), j, pt);
          const __m256i a = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pt[0] + c0)), flip);
#pragma GCC unroll 4
          for (int s = 0; s < 4; ++s)
            dpbusd_acc(acc[q][s], _mm256_shuffle_epi8(a, one_idx[s]), _mm256_loadu_si256(wb + 4 * j + s));
        }
      }
      __m256 m[4], bs[4];
      for (int s = 0; s < 4; ++s) m[s] = _mm256_loadu_ps(v.comb + c0 + 8 * s), bs[s] = _mm256_loadu_ps(v.bias + c0 + 8 * s);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        __m256 f[4];
        for (int s = 0; s < 4; ++s) f[s] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[q][s]), m[s], bs[s]);
        __m256i r[4], w0, w1;
        if (dq->guard) {
          for (int s = 0; s < 4; ++s) r[s] = q8_lanes(f[s], vinv);
          w0 = _mm256_adds_epi16(_mm256_packs_epi32(r[0], r[1]), vz);
          w1 = _mm256_adds_epi16(_mm256_packs_epi32(r[2], r[3]), vz);
        } else {  // the zero point already in the lanes (pack32_q8z)
          for (int s = 0; s < 4; ++s) r[s] = q8_round(f[s], vinv, vbz);
          w0 = _mm256_packs_epi32(r[0], r[1]), w1 = _mm256_packs_epi32(r[2], r[3]);
        }
        // packs per 128-bit lane: [s0 s1 s2 s3 lanes 0-3 | lanes 4-7] = channels [0-15 | 16-31]: in order
        __m256i o = _mm256_packs_epi16(w0, w1);  // then the code clamp, where it can change a code
        if (dq->lo != -128) o = _mm256_max_epi8(o, qlo);
        if (dq->hi != 127) o = _mm256_min_epi8(o, qhi);
        int8_t* dst = out(4 * g + q) + c0;
        if (c0 + 32 <= C) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), o);
        else _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm256_castsi256_si128(o));  // C % 32 == 16
      }
    }
  }
}
// ng groups of four neighbouring output pixels of one row (4 * ng pixels), every tap inside (toff: 4 * quads
// offsets, 0 past the last tap).
LB_TARGET_VNNI void dw4_vnni(const OpParams& p, const DwVnni& v, const int8_t* px, int64_t step, const int64_t* toff,
                             const DwQ8* dq, int64_t ng) {
  dw4_vnni_core(p, v, [&](int q, int64_t j, const int8_t** pt) {
    const int8_t* b = px + q * step;
    for (int t = 0; t < 4; ++t) pt[t] = b + toff[4 * j + t];
  }, [&](int64_t q) { return dq->q + q * dq->Os; }, dq, ng);
}
// Four output pixels anywhere: tap t of pixel q at xt4[q * tp + t] (tp = 4 * quads; padding taps: a row of zero points),
// its int8 row at dst[q].
LB_TARGET_VNNI void dw4p_vnni(const OpParams& p, const DwVnni& v, const int8_t* const* xt4, int64_t tp,
                              int8_t* const* dst, const DwQ8* dq) {
  dw4_vnni_core(p, v, [&](int q, int64_t j, const int8_t** pt) {
    for (int t = 0; t < 4; ++t) pt[t] = xt4[q * tp + 4 * j + t];
  }, [&](int64_t q) { return dst[q]; }, dq, 1);
}
#endif

// ---- epilogue ---------------------------------------------------------------------------------
// Flat elementwise steps over a tile, scalar and AVX2 (separate multiply and add, never an FMA, and
// the operand order of vmaxps / vminps that gives std::max / std::min's result for NaN and -0: the
// same bits as the scalar loops and as the float ops they replace).
enum FlatKind { F_CLAMP, F_ADD_S, F_MUL_S, F_HSWISH, F_HSIG, F_RELU };
void flat_scalar(float* y, int64_t n, int kind, float a, float b) {
  switch (kind) {
    case F_CLAMP:
      for (int64_t j = 0; j < n; ++j) {
        const float v = y[j] > a ? y[j] : a;
        y[j] = v < b ? v : b;
      }
      break;
    case F_ADD_S: for (int64_t j = 0; j < n; ++j) y[j] = y[j] + a; break;
    case F_MUL_S: for (int64_t j = 0; j < n; ++j) y[j] = a * y[j]; break;
    case F_HSWISH: for (int64_t j = 0; j < n; ++j) y[j] = std::min(std::max(a * y[j] + b, 0.f), 1.f) * y[j]; break;
    case F_HSIG: for (int64_t j = 0; j < n; ++j) y[j] = std::min(std::max(a * y[j] + b, 0.f), 1.f); break;
    case F_RELU: for (int64_t j = 0; j < n; ++j) y[j] = y[j] > 0.f ? y[j] : 0.f; break;
    default: break;
  }
}
#if defined(__x86_64__)
__attribute__((target("avx2"))) void flat_avx2(float* y, int64_t n, int kind, float a, float b) {
  const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), z = _mm256_setzero_ps(), one = _mm256_set1_ps(1.f);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_loadu_ps(y + j);
    __m256 r;
    switch (kind) {
      case F_CLAMP: r = _mm256_min_ps(_mm256_max_ps(v, va), vb); break;  // v > a ? v : a, then r < b ? r : b
      case F_ADD_S: r = _mm256_add_ps(v, va); break;
      case F_MUL_S: r = _mm256_mul_ps(va, v); break;
      case F_HSWISH:
      case F_HSIG: {
        const __m256 t = _mm256_add_ps(_mm256_mul_ps(va, v), vb);
        const __m256 h = _mm256_min_ps(one, _mm256_max_ps(z, t));  // std::min(std::max(t, 0), 1)
        r = kind == F_HSIG ? h : _mm256_mul_ps(h, v);
        break;
      }
      default: r = _mm256_max_ps(v, z); break;  // v > 0 ? v : 0
    }
    _mm256_storeu_ps(y + j, r);
  }
  flat_scalar(y + j, n - j, kind, a, b);
}
#endif
using FlatFn = void (*)(float*, int64_t, int, float, float);
// Chain exit to NCHW: d[j * ld + i] = y[i * O + j] for i < len, j < nc (pixels x channels ->
// channels x pixels; O is the row stride of y).
void to_nchw_scalar(const float* y, int64_t O, int64_t nc, int64_t len, float* d, int64_t ld) {
  for (int64_t j = 0; j < nc; ++j) {
    float* dj = d + j * ld;
    for (int64_t i = 0; i < len; ++i) dj[i] = y[i * O + j];
  }
}
#if defined(__x86_64__)
__attribute__((target("avx2"))) void to_nchw_avx2(const float* y, int64_t O, int64_t len, float* d, int64_t ld) {
  const int64_t O8 = O / 8 * 8, L8 = len / 8 * 8;
  for (int64_t j0 = 0; j0 < O8; j0 += 8)
    for (int64_t i0 = 0; i0 < L8; i0 += 8) {  // 8 x 8 block transposed in registers
      __m256 r[8];
      for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(y + (i0 + k) * O + j0);
      transpose8x8_ps(r);
      for (int k = 0; k < 8; ++k) _mm256_storeu_ps(d + (j0 + k) * ld + i0, r[k]);
    }
  if (L8 < len)  // pixel tail of the channel blocks
    for (int64_t j = 0; j < O8; ++j)
      for (int64_t i = L8; i < len; ++i) d[j * ld + i] = y[i * O + j];
  if (O8 < O) to_nchw_scalar(y + O8, O, O - O8, len, d + O8 * ld, ld);  // channel tail
}
#endif
// y[j] = y[j] + c[j] or y[j] * c[j] (per-channel constants of a row, or the residual): one
// IEEE operation per element, the same bits at any vector width.
void vec_scalar(float* y, const float* c, int64_t n, bool mul) {
  if (mul)
    for (int64_t j = 0; j < n; ++j) y[j] = y[j] * c[j];
  else
    for (int64_t j = 0; j < n; ++j) y[j] = y[j] + c[j];
}
#if defined(__x86_64__)
__attribute__((target("avx2"))) void vec_avx2(float* y, const float* c, int64_t n, bool mul) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 a = _mm256_loadu_ps(y + j), b = _mm256_loadu_ps(c + j);
    _mm256_storeu_ps(y + j, mul ? _mm256_mul_ps(a, b) : _mm256_add_ps(a, b));
  }
  vec_scalar(y + j, c + j, n - j, mul);
}
#endif
struct PostStep {
  int64_t kind;
  const float* c;  // per-channel constants (POST_ADD_C / POST_MUL_C), else null
  float f0, f1;
};
/// Post step k of a chain conv (validated at load: four int64 per step, kind / input / f0 bits / f1 bits).
PostStep post_step(const OpParams& p, const std::vector<Tensor*>& in, int64_t k) {
  const int64_t* st = p.v.data() + p.i[kPostOff] + 4 * k;
  PostStep q;
  const uint32_t u0 = uint32_t(st[2]), u1 = uint32_t(st[3]);
  q.kind = st[0];
  std::memcpy(&q.f0, &u0, 4);
  std::memcpy(&q.f1, &u1, 4);
  q.c = st[0] == POST_ADD_C || st[0] == POST_MUL_C ? in[size_t(st[1])]->f32() : nullptr;
  return q;
}
/// The flat (not per-channel) kernel of a post step.
int flat_kind(int64_t post) {
  switch (post) {
    case POST_ADD_S: return F_ADD_S;
    case POST_MUL_S: return F_MUL_S;
    case POST_HSWISH: return F_HSWISH;
    case POST_HSIG: return F_HSIG;
    default: return F_RELU;  // POST_RELU (the per-channel kinds never get here)
  }
}
#if defined(__x86_64__)
// Relu / Clip, the folded elementwise steps and the residual add in one pass over the tile (AVX2):
// each element goes through the same IEEE operations in the same order as the separate passes
// (flat_avx2 / vec_avx2, their scalar tails for the last O % 8 channels of a row), so the bits are
// the same; the tile is read and written once instead of once per step.
/// NV vectors of a row at y (channel offset j0): each step dispatched once for all NV (constant NV
/// keeps them in registers).
template <int NV>
__attribute__((target("avx2"), always_inline)) inline void post_block_avx2(float* y, const float* r, int64_t j0, bool clamp,
                                                                          float lo, float hi, const PostStep* st,
                                                                          int64_t ns) {
  const __m256 z = _mm256_setzero_ps(), one = _mm256_set1_ps(1.f);
  __m256 v[NV];
  for (int u = 0; u < NV; ++u) v[u] = _mm256_loadu_ps(y + 8 * u);
  if (clamp) {
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    for (int u = 0; u < NV; ++u) v[u] = _mm256_min_ps(_mm256_max_ps(v[u], vlo), vhi);
  }
  for (int64_t s = 0; s < ns; ++s) {
    const PostStep& q = st[s];
    const __m256 f0 = _mm256_set1_ps(q.f0), f1 = _mm256_set1_ps(q.f1);
    switch (q.kind) {
      case POST_ADD_S: for (int u = 0; u < NV; ++u) v[u] = _mm256_add_ps(v[u], f0); break;
      case POST_MUL_S: for (int u = 0; u < NV; ++u) v[u] = _mm256_mul_ps(f0, v[u]); break;
      case POST_ADD_C: for (int u = 0; u < NV; ++u) v[u] = _mm256_add_ps(v[u], _mm256_loadu_ps(q.c + j0 + 8 * u)); break;
      case POST_MUL_C: for (int u = 0; u < NV; ++u) v[u] = _mm256_mul_ps(v[u], _mm256_loadu_ps(q.c + j0 + 8 * u)); break;
      case POST_HSWISH:
        for (int u = 0; u < NV; ++u)
          v[u] = _mm256_mul_ps(_mm256_min_ps(one, _mm256_max_ps(z, _mm256_add_ps(_mm256_mul_ps(f0, v[u]), f1))), v[u]);
        break;
      case POST_HSIG:
        for (int u = 0; u < NV; ++u) v[u] = _mm256_min_ps(one, _mm256_max_ps(z, _mm256_add_ps(_mm256_mul_ps(f0, v[u]), f1)));
        break;
      case POST_RELU: for (int u = 0; u < NV; ++u) v[u] = _mm256_max_ps(v[u], z); break;
      default: break;
    }
  }
  if (r)
    for (int u = 0; u < NV; ++u) v[u] = _mm256_add_ps(v[u], _mm256_loadu_ps(r + 8 * u));
  for (int u = 0; u < NV; ++u) _mm256_storeu_ps(y + 8 * u, v[u]);
}
__attribute__((target("avx2"))) void post_fused_avx2(float* yt, int64_t m, int64_t O, bool clamp, float lo, float hi,
                                                    const PostStep* st, int64_t ns, const float* res) {
  bool per_channel = false;
  for (int64_t s = 0; s < ns; ++s) per_channel |= st[s].kind == POST_ADD_C || st[s].kind == POST_MUL_C;
  if (!per_channel) {  // every step is elementwise: the m rows are one flat array (as flat_avx2 sees it)
    const int64_t n = m * O, n8 = n / 8 * 8;
    int64_t j0 = 0;
    for (; j0 + 64 <= n8; j0 += 64) post_block_avx2<8>(yt + j0, res ? res + j0 : nullptr, 0, clamp, lo, hi, st, ns);
    for (; j0 < n8; j0 += 8) post_block_avx2<1>(yt + j0, res ? res + j0 : nullptr, 0, clamp, lo, hi, st, ns);
    if (j0 < n) {  // the scalar tail, the same steps in the same order
      if (clamp) flat_scalar(yt + j0, n - j0, F_CLAMP, lo, hi);
      for (int64_t s = 0; s < ns; ++s) {
        flat_scalar(yt + j0, n - j0, flat_kind(st[s].kind), st[s].f0, st[s].f1);
      }
      if (res) vec_scalar(yt + j0, res + j0, n - j0, false);
    }
    return;
  }
  const int64_t O8 = O / 8 * 8;
  for (int64_t i = 0; i < m; ++i) {
    float* y = yt + i * O;
    const float* r = res ? res + i * O : nullptr;
    int64_t j0 = 0;
    for (; j0 + 64 <= O8; j0 += 64) post_block_avx2<8>(y + j0, r ? r + j0 : nullptr, j0, clamp, lo, hi, st, ns);
    if (O8 - j0 >= 32) post_block_avx2<4>(y + j0, r ? r + j0 : nullptr, j0, clamp, lo, hi, st, ns), j0 += 32;
    if (O8 - j0 >= 16) post_block_avx2<2>(y + j0, r ? r + j0 : nullptr, j0, clamp, lo, hi, st, ns), j0 += 16;
    if (O8 - j0 >= 8) post_block_avx2<1>(y + j0, r ? r + j0 : nullptr, j0, clamp, lo, hi, st, ns), j0 += 8;
    if (O8 == O) continue;
    float* yj = y + O8;  // the channel tail: the scalar steps, in the same order
    const int64_t nt = O - O8;
    if (clamp) flat_scalar(yj, nt, F_CLAMP, lo, hi);
    for (int64_t s = 0; s < ns; ++s) {
      const PostStep& q = st[s];
      if (q.c) vec_scalar(yj, q.c + O8, nt, q.kind == POST_MUL_C);
      else flat_scalar(yj, nt, flat_kind(q.kind), q.f0, q.f1);
    }
    if (r) vec_scalar(yj, r + O8, nt, false);
  }
}
#endif
struct Outs {
  const std::vector<Tensor*>* in = nullptr;  // the op's inputs (post-step constants)
  const float* qmul = nullptr;               // smoothing multipliers of the q8 output, or null
  RequantMulFn rqm = nullptr;
  int8_t* q = nullptr;
  float* f = nullptr;  // f32 NHWC
  float* n = nullptr;  // f32 NCHW
  const float* res = nullptr;
};

void epilogue(const OpParams& p, const Outs& o, float* yt, int64_t P0, int64_t m, RequantFn rq, FlatFn flat) {
  const int64_t O = p.i[kO], Os = p.i[kOs], act = p.i[kAct], OHW = p.i[kOH] * p.i[kOW], n = m * O;
#if defined(__x86_64__)
  if (rq == requant_row_avx2 && o.q && !o.f && !o.n && !o.res && !p.i[kNPost] &&
      (act == ACT_NONE || act == ACT_RELU || act == ACT_CLIP)) {  // only act + requantization: one pass
    const float inv = 1.0f / p.f[3], zf = float(p.i[kZout]);
    const float alo = act == ACT_CLIP ? p.f[0] : 0.f, ahi = act == ACT_CLIP ? p.f[1] : INFINITY;
    if (O == Os && !o.qmul)  // one flat row
      act_requant_avx2(yt, nullptr, 1, n, n, act != ACT_NONE, alo, ahi, inv, zf, o.q + P0 * Os);
    else
      act_requant_avx2(yt, o.qmul, m, O, Os, act != ACT_NONE, alo, ahi, inv, zf, o.q + P0 * Os);
    return;
  }
#endif
  // The tile is m contiguous rows of O floats: elementwise steps run over it as one array.
  void (*vec)(float*, const float*, int64_t, bool) = vec_scalar;
  bool done = false;  // act, post steps and residual applied
#if defined(__x86_64__)
  if (rq == requant_row_avx2) {
    vec = vec_avx2;
    constexpr int64_t kMaxFused = 16;
    const int64_t ns = p.i[kNPost];
    if (ns <= kMaxFused && (ns > 0 || o.res)) {  // one pass instead of one per step
      PostStep steps[kMaxFused];
      for (int64_t k = 0; k < ns; ++k) steps[k] = post_step(p, *o.in, k);
      const bool clamp = act == ACT_RELU || act == ACT_CLIP;
      if (!clamp && act != ACT_NONE) apply_act(yt, n, act, p.f[0], p.f[1]);
      post_fused_avx2(yt, m, O, clamp, act == ACT_CLIP ? p.f[0] : 0.f, act == ACT_CLIP ? p.f[1] : INFINITY, steps, ns,
                      o.res ? o.res + P0 * O : nullptr);
      done = true;
    }
  }
#endif
  if (done) {
  } else if (act == ACT_RELU || act == ACT_CLIP) {
    flat(yt, n, F_CLAMP, act == ACT_RELU ? 0.f : p.f[0], act == ACT_CLIP ? p.f[1] : INFINITY);
  } else if (act != ACT_NONE) {
    apply_act(yt, n, act, p.f[0], p.f[1]);
  }
  // folded elementwise ops, each with the float operations of its own kernel (add, mul,
  // hardsigmoid_f32 then mul, relu_f32): a + b, a * b, min(max(alpha * v + beta, 0), 1)
  for (int64_t k = 0; !done && k < p.i[kNPost]; ++k) {
    const PostStep q = post_step(p, *o.in, k);
    if (q.c)
      for (int64_t i = 0; i < m; ++i) vec(yt + i * O, q.c, O, q.kind == POST_MUL_C);
    else
      flat(yt, n, flat_kind(q.kind), q.f0, q.f1);
  }
  if (o.res && !done) vec(yt, o.res + P0 * O, n, false);
  if (o.f && yt != o.f + P0 * O) std::memcpy(o.f + P0 * O, yt, size_t(n) * 4);
#if defined(__x86_64__)
  if (rq == requant_row_avx2 && o.q && O != Os) {  // padded rows (O < Os): all rows in one act_requant_avx2 call
    act_requant_avx2(yt, o.qmul, m, O, Os, false, 0.f, 0.f, 1.0f / p.f[3], float(p.i[kZout]), o.q + P0 * Os);
  } else
#endif
  if (o.q && o.qmul) {
    const float inv = 1.0f / p.f[3], zf = float(p.i[kZout]);
    for (int64_t i = 0; i < m; ++i) o.rqm(yt + i * O, o.qmul, 0.f, O, Os, inv, zf, o.q + (P0 + i) * Os);
  } else if (o.q) {
    const float inv = 1.0f / p.f[3], zf = float(p.i[kZout]);
    if (O == Os) rq(yt, n, n, inv, zf, o.q + P0 * Os);
    else
      for (int64_t i = 0; i < m; ++i) rq(yt + i * O, O, Os, inv, zf, o.q + (P0 + i) * Os);
  }
  if (o.n)  // NCHW: per channel, one contiguous run per image the tile touches (strided reads in cache)
    for (int64_t i0 = 0; i0 < m;) {
      const int64_t P = P0 + i0, img = P / OHW, pix = P % OHW, len = std::min(m - i0, OHW - pix);
      float* d = o.n + img * O * OHW + pix;
      const float* y = yt + i0 * O;
#if defined(__x86_64__)
      if (rq == requant_row_avx2) to_nchw_avx2(y, O, len, d, OHW);
      else
#endif
        to_nchw_scalar(y, O, O, len, d, OHW);
      i0 += len;
    }
}

#if defined(__x86_64__)
/// u[i] = x[i] ^ 0x80 (= x + 128 as u8) for i < n: rows for gemm_q7's direct path (lb_mm_args::xu).
__attribute__((target("avx2"))) void flip_rows_avx2(const int8_t* x, uint8_t* u, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(u + i),
                        _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)),
                                         _mm256_set1_epi8(int8_t(0x80))));
  for (; i < n; ++i) u[i] = uint8_t(x[i]) ^ 0x80u;
}
#endif

void conv_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const int8_t* x = static_cast<const int8_t*>(c.in[0]->data);
  const float* bias = c.in.size() > 2 && c.in[2] ? c.in[2]->f32() : nullptr;
  Outs o;
  o.in = &c.in;
  if (p.i[kOutQ] >= 0) o.q = static_cast<int8_t*>(c.out[size_t(p.i[kOutQ])]->data);
  if (p.i[kOutF] >= 0) o.f = c.out[size_t(p.i[kOutF])]->f32();
  if (p.i[kOutN] >= 0) o.n = c.out[size_t(p.i[kOutN])]->f32();
  if (p.i[kRes]) o.res = c.in[4]->f32();
  const bool avx2 = use_avx2();
  RequantFn rq = requant_row_scalar;
  FlatFn flat = flat_scalar;
  o.rqm = requant_mul_scalar;
#if defined(__x86_64__)
  if (avx2) rq = requant_row_avx2, flat = flat_avx2, o.rqm = requant_mul_avx2;
#endif
  if (p.f[4] > 0.f) o.qmul = c.in[size_t(p.f[4])]->f32();
  const int64_t N = p.i[kN], H = p.i[kH], W = p.i[kW], Cs = p.i[kCs], C = p.i[kC], O = p.i[kO];
  const int64_t OH = p.i[kOH], OW = p.i[kOW], OHW = OH * OW, P = N * OHW, T = p.i[kT];
  // With an f32 NHWC output the tile is computed in place there (the epilogue then skips its copy),
  // unless the residual shares that memory (the tile would overwrite residual rows before they are read).
  float* const fout = o.f && (!o.res || o.res + P * O <= o.f || o.f + P * O <= o.res) ? o.f : nullptr;
  const int64_t kh = p.i[kKh], kw = p.i[kKw], sh = p.i[kSh], sw = p.i[kSw], dh = p.i[kDh], dwl = p.i[kDw];
  const int64_t pt = p.i[kPt], pl = p.i[kPl];
  const int8_t zin = int8_t(p.i[kZin]);
  const int64_t tiles = (P + T - 1) / T;
  const size_t per = size_t(p.i[kPer]);
  char* sbase = static_cast<char*>(c.scratch);
  if (p.i[kMode] == 1) {
    c.isa = avx2 ? "avx2" : "scalar";
    const int8_t* codes = static_cast<const int8_t*>(c.in[1]->data);
    const DwView dv = dw_view(p);
    const int64_t taps = p.i[kTaps], pairs = p.i[kPairs];
    const int64_t ekh = (kh - 1) * dh + 1, ekw = (kw - 1) * dwl + 1;
#if defined(__x86_64__)
    // int8 output straight from the four-pixel kernels when the epilogue would only be act + requantization
    // (its act_requant_avx2 branch without multipliers); single pixels requantize their float row the same way
    const int64_t act = p.i[kAct];
    const bool qfuse = avx2 && Cs >= 16 && C % 16 == 0 && O == C && o.q && !o.f && !o.n && !o.res && !o.qmul &&
                       !p.i[kNPost] && (act == ACT_NONE || act == ACT_RELU || act == ACT_CLIP);
    const float qinv = 1.0f / p.f[3], qzf = float(p.i[kZout]);
    const float alo = act == ACT_CLIP ? p.f[0] : 0.f, ahi = act == ACT_CLIP ? p.f[1] : INFINITY;
    const DwQ8 dq{nullptr, p.i[kOs], qinv, int16_t(qzf), act != ACT_NONE ? q8_scalar(alo, qinv, qzf) : int8_t(-128),
                  act != ACT_NONE ? q8_scalar(ahi, qinv, qzf) : int8_t(127)};
    // the VNNI kernel for the four-pixel groups (the single pixels keep dw_pixel_avx2: the same bits)
    const bool vnni = qfuse && lb_isa_active() == LB_ISA_AVX512VNNI && taps <= 64;
    const bool vguard = p.f[5] == 0.f || p.f[6] == 0.f;  // (no guard: q8_round)
    const bool vtail = T * O * 4 >= 4 * p.i[kOs];  // the float tile holds a group's 4 int8 rows (tile tails)
    const DwVnni dvv = dw_vnni_view(p);
#else
    const bool vnni = false;
#endif
    const int64_t tp = vnni ? 4 * ((taps + 3) / 4) : 2 * pairs;  // tap pointers per pixel slot (4 slots)
    if (vnni) c.isa = "avx512vnni";
    for_ranges(c, tiles, T * C * taps, [&](int tid, int64_t t0, int64_t t1) {
      char* s = sbase + size_t(tid) * per;
      float* const ys = reinterpret_cast<float*>(s);
      int8_t* pad = reinterpret_cast<int8_t*>(s + al64(size_t(T * O) * 4));
      const int8_t** xt4 = reinterpret_cast<const int8_t**>(s + al64(size_t(T * O) * 4) + al64(size_t(Cs + 64)));
      std::memset(pad, zin, size_t(Cs + 64));
      for (int q = 0; q < 4; ++q)
        for (int64_t t = tp - 1; t >= taps; --t) xt4[q * tp + t] = pad;  // the odd pair's / last quad's partners
      int64_t toff[64];
      for (int64_t t = 0; t < 64; ++t) toff[t] = t < taps ? ((t / kw) * dh * W + (t % kw) * dwl) * Cs : 0;
      [[maybe_unused]] const bool four = avx2 && Cs >= 16;  // pixels in groups of four (dw_pixel4p_avx2), border pixels included
#if defined(__x86_64__)
      DwQ8 tq = dq;
      if (vnni) tq.guard = vguard;  // (the AVX2 kernels always keep it)
      int8_t* dst4[4] = {};  // (VNNI) the output rows of the pending pixels
#endif
      int64_t pend = 0;  // pending pixels: their tap pointers in slots 0..pend-1 (AVX2: pixels [i - pend, i))
      for (int64_t tile = t0; tile < t1; ++tile) {
        const int64_t P0 = tile * T, m = std::min(T, P - P0);
        float* const yt = fout ? fout + P0 * O : ys;
#if defined(__x86_64__)
        // pixel i alone (AVX2): its float row, then (qfuse) that row requantized as the epilogue would
        auto one = [&](const int8_t* const* xt, int64_t i) {
          dw_pixel_avx2(p, xt, codes, dv.comb, bias, yt + i * O);
          if (qfuse) act_requant_avx2(yt + i * O, nullptr, 1, O, tq.Os, act != ACT_NONE, alo, ahi, qinv, qzf,
                                      o.q + (P0 + i) * tq.Os);
        };
#endif
        int64_t n = P0 / OHW, oy = (P0 % OHW) / OW, ox = P0 % OW;  // pixel P0 + i (advanced with i, no divisions)
        auto advance = [&](int64_t k) {
          for (ox += k; ox >= OW; ox -= OW)
            if (++oy == OH) oy = 0, ++n;
        };
        for (int64_t i = 0; i < m;) {
          const int64_t iy0 = oy * sh - pt, ix0 = ox * sw - pl;
#if defined(__x86_64__)
          // four pixels of this row, all inside (after the pending ones, one by one on AVX2; the VNNI kernel keeps
          // them pending: its slots carry their output rows, so no pixel runs alone)
          if (four && taps <= 64 && i + 4 <= m && ox + 4 <= OW && iy0 >= 0 && iy0 + ekh <= H && ix0 >= 0 &&
              ix0 + 3 * sw + ekw <= W) {
            if (!vnni) {
              for (int64_t q = 0; q < pend; ++q) one(xt4 + q * tp, i - pend + q);
              pend = 0;
            }
            const int8_t* px = x + ((n * H + iy0) * W + ix0) * Cs;
            int64_t k = 4;
            if (vnni) {  // every following group of four of this row that is inside too, in one call
              const int64_t ng = std::min({(m - i) / 4, (OW - ox) / 4, ((W - ekw - ix0) / sw + 1) / 4});
              tq.q = o.q + (P0 + i) * tq.Os;
              dw4_vnni(p, dvv, px, sw * Cs, toff, &tq, ng);
              k = 4 * ng;
            } else if (qfuse) {
              tq.q = o.q + (P0 + i) * tq.Os;
              dw_pixel4_avx2<true>(p, px, sw * Cs, toff, bias, nullptr, &tq);
            } else {
              dw_pixel4_avx2<false>(p, px, sw * Cs, toff, bias, yt + i * O, nullptr);
            }
            i += k;
            advance(k);
            continue;
          }
#endif
          const int8_t** xt = xt4 + pend * tp;
#if defined(__x86_64__)
          if (vnni) dst4[pend] = o.q + (P0 + i) * tq.Os;
#endif
          if (taps <= 64 && iy0 >= 0 && iy0 + ekh <= H && ix0 >= 0 && ix0 + ekw <= W) {  // every tap inside
            const int8_t* px = x + ((n * H + iy0) * W + ix0) * Cs;
            for (int64_t t = 0; t < taps; ++t) xt[t] = px + toff[t];
          } else if (taps <= 64) {  // a border pixel: a tap inside the image points at its pixel, one outside at the
            // pad row, chosen by a mask of the taps inside (row and column tests): no branch per tap (the pattern
            // changes from pixel to pixel; the per-tap tests were ~1 % of an EfficientNet w8a8 run's samples)
            uint64_t cm = 0, mask = 0;  // columns inside (bit kx); taps inside (bit t)
            for (int64_t kx = 0; kx < kw; ++kx) cm |= uint64_t(uint64_t(ix0 + kx * dwl) < uint64_t(W)) << kx;
            for (int64_t ky = 0; ky < kh; ++ky)
              mask |= (uint64_t(iy0 + ky * dh) < uint64_t(H) ? cm : 0) << (ky * kw);
            // pixel (iy0, ix0) as an integer address (it may lie outside the tensor; only taps inside are formed)
            const uintptr_t base = uintptr_t(x) + uintptr_t(((n * H + iy0) * W + ix0) * Cs);
            for (int64_t t = 0; t < taps; ++t)
              xt[t] = (mask >> t) & 1 ? reinterpret_cast<const int8_t*>(base + uintptr_t(toff[t])) : pad;
          } else {
            for (int64_t ky = 0; ky < kh; ++ky) {
              const int64_t iy = iy0 + ky * dh;
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t ix = ix0 + kx * dwl;
                xt[ky * kw + kx] = iy >= 0 && iy < H && ix >= 0 && ix < W ? x + ((n * H + iy) * W + ix) * Cs : pad;
              }
            }
          }
          ++i;
          advance(1);
#if defined(__x86_64__)
          if (four) {
            if (++pend == 4) {
              if (vnni) {
                dw4p_vnni(p, dvv, xt4, tp, dst4, &tq);
              } else if (qfuse) {
                tq.q = o.q + (P0 + i - 4) * tq.Os;
                dw_pixel4p_avx2<true>(p, xt4, tp, bias, nullptr, &tq);
              } else {
                dw_pixel4p_avx2<false>(p, xt4, tp, bias, yt + (i - 4) * O, nullptr);
              }
              pend = 0;
            }
            continue;
          }
          if (avx2) one(xt, i - 1);
          else
#endif
            dw_pixel_scalar(p, xt, codes, dv.comb, bias, yt + (i - 1) * O);
        }
#if defined(__x86_64__)
        if (vnni && vtail && tile + 1 < t1) continue;  // (VNNI) pending pixels wait for the next tile of this range
        if (vnni && pend > 0 && vtail) {  // the last 1-3 pending pixels of the range: one VNNI group, its free
          for (int64_t q = pend; q < 4; ++q) {  // slots reading the pad row and writing to scratch
            for (int64_t t = 0; t < taps; ++t) xt4[q * tp + t] = pad;
            dst4[q] = reinterpret_cast<int8_t*>(ys);
          }
          dw4p_vnni(p, dvv, xt4, tp, dst4, &tq);
          pend = 0;
        }
        for (int64_t q = 0; q < pend; ++q)  // the last 1-3 pixels of the tile (pending: of the tile's end)
          one(xt4 + q * tp, vnni ? (dst4[q] - o.q) / tq.Os - P0 : m - pend + q);
        pend = 0;
        if (qfuse) continue;
#endif
        epilogue(p, o, yt, P0, m, rq, flat);
      }
    });
    return;
  }
  // gemm
  if (dispatch_status() != LB_OK) {
    c.isa = "error";
    for (Tensor* t : c.out) std::memset(t->data, 0, t->nbytes());
    return;
  }
  const PackedWeight& pw = packed(p);
  // the GEMM lb::qlinear would pick: the 7-bit kernel when every weight code fits (packed_weight_init)
  const KernelRef<lb_mm_t>& kern = pw.code_bits == 7 ? kernels().gemm_q7 : kernels().gemm_q8;
  c.isa = lb_isa_name(kern.isa);
  const int64_t kp = p.i[kKp];
  const bool direct = p.i[kDirect] != 0;
  // gemm_q7 on AVX2 reads the activations pre-flipped to u8 (lb_mm_args::xu); the other kernels ignore them
  const bool flip = pw.code_bits == 7 && kern.isa == LB_ISA_AVX2;
  lb_mm_args base = mm_args(pw);
  base.act_zero = int32_t(p.i[kZin]);
  base.bias = bias;
  base.ldy = O;
  const float sx = p.f[2];
#if defined(__x86_64__)
  const SmallKFn skf = avx2 && smallk_ok(p) ? smallk_fn(p.i[kK]) : nullptr;
  const SmallK sk{pw.data, kp, O, pw.row_sum, pw.row_scale, bias, int32_t(p.i[kZin]), sx};
  // 1x1 convs on AVX-512 VNNI (pw_vnni_tile); int8 output from registers when the epilogue would be act_requant_avx2
  const bool pwv = lb_isa_active() == LB_ISA_AVX512VNNI && pw_vnni_ok(p);
  const int64_t act = p.i[kAct];
  const bool pwq = pwv && o.q && !o.f && !o.n && !o.res && !p.i[kNPost] && p.i[kOs] % 32 == 0 &&
                   (act == ACT_NONE || act == ACT_RELU || act == ACT_CLIP);
  const PwTables tabs = pwv ? pw_vnni_view(p) : PwTables{};
  PwVnni pv{pw.data, kp, O, (p.i[kK] + 3) / 4, tabs.init, tabs.scf, tabs.bsf, p.i[kOs], o.qmul, act != ACT_NONE,
            p.f[5] == 0.f || p.f[6] == 0.f, false, false, 0.f, INFINITY, 0.f, 0, -128, 127, {}};
  // int8 output from registers after the residual add and / or with the f32 NHWC copy (the epilogue would be
  // post_fused_avx2's add and the requantization): pw_finish_q with kPwRes / kPwF; not where the f32 output overlaps
  // the residual
  const bool pwr = pwv && !pwq && o.q && !o.n && !p.i[kNPost] && act == ACT_NONE && p.i[kOs] % 32 == 0 &&
                   (o.res || o.f) && (!o.f || fout);
  if (pwr) {
    pv.inv = 1.0f / p.f[3];
    pv.z = int16_t(p.i[kZout]);
    for (int np = 1; np <= 4; ++np)
      pv.fin[np - 1] = pw_finish_res_fn(np, o.f != nullptr, o.res != nullptr, o.qmul != nullptr);
  }
  if (pwq) {
    pv.inv = 1.0f / p.f[3];
    pv.z = int16_t(p.i[kZout]);
    if (act == ACT_CLIP) pv.lo = p.f[0], pv.hi = p.f[1];
    if (pv.clamp) pv.qlo = q8_scalar(pv.lo, pv.inv, float(pv.z)), pv.qhi = q8_scalar(pv.hi, pv.inv, float(pv.z));
    pv.cmax = pv.qlo != -128;
    pv.cmin = pv.qhi != 127;
    const bool mv = pv.mv != nullptr;
    const int fl = (mv ? kPwMv : 0) | (mv && pv.clamp ? kPwFClamp : 0) | (!mv && pv.clamp && pv.cmax ? kPwCMax : 0) |
                   (!mv && pv.clamp && pv.cmin ? kPwCMin : 0) | (pv.guard ? kPwGuard : 0);
    for (int np = 1; np <= 4; ++np) pv.fin[np - 1] = pw_finish_fn(np, fl);
  }
  // f32 NHWC rows computed in place whose epilogue would be only the Relu / Clip (EfficientNet's head): the clamp
  // in pw_block's float finish, no epilogue pass over the tile
  if (pwv && !pwq && !pwr && fout && !o.q && !o.n && !o.res && !p.i[kNPost] && (act == ACT_RELU || act == ACT_CLIP)) {
    pv.fclamp = true;
    pv.lo = act == ACT_CLIP ? p.f[0] : 0.f;
    pv.hi = act == ACT_CLIP ? p.f[1] : INFINITY;
  }
  if (pwv) c.isa = "avx512vnni";
#endif
  for_ranges(c, tiles, T * kp * O / 8, [&](int tid, int64_t t0, int64_t t1) {
    char* s = sbase + size_t(tid) * per;
    float* const ys = reinterpret_cast<float*>(s);
    s += al64(size_t(T * O) * 4);
    lb_q8_meta* meta = reinterpret_cast<lb_q8_meta*>(s);
    s += al64(size_t(T) * sizeof(lb_q8_meta));
    int8_t* rows = reinterpret_cast<int8_t*>(s);
    if (!direct || smallk_ok(p)) s += al64(size_t(T * kp));
    uint8_t* xu = flip ? reinterpret_cast<uint8_t*>(s) : nullptr;
    if (!direct) std::memset(rows, 0, size_t(T * kp));  // K padding: written once, the gather fills [0, K)
    for (int64_t i = 0; i < T; ++i) meta[i] = lb_q8_meta{sx, 0};
    lb_mm_args a = base;
    a.xm = meta;
    for (int64_t tile = t0; tile < t1; ++tile) {
      const int64_t P0 = tile * T, m = std::min(T, P - P0);
      float* const yt = fout ? fout + P0 * O : ys;
      a.y = yt;
#if defined(__x86_64__)
      if (pwv) {  // 1x1 on VNNI: the input rows in place, same bits as the GEMM
        if (pwq) {
          pw_vnni_tile<true>(pv, x + P0 * Cs, m, yt, o.q + P0 * pv.Os);
        } else if (pwr) {
          pw_vnni_tile<true>(pv, x + P0 * Cs, m, yt, o.q + P0 * pv.Os,
                             o.res ? o.res + P0 * O : nullptr);
        } else {
          pw_vnni_tile<false>(pv, x + P0 * Cs, m, yt, reinterpret_cast<int8_t*>(yt));
          if (!pv.fclamp) epilogue(p, o, yt, P0, m, rq, flat);
        }
        continue;
      }
      if (skf) {  // 1x1, K <= 64, 7-bit codes: the input rows in place, same bits as gemm_q7
        skf(sk, x + P0 * Cs, Cs, m, reinterpret_cast<uint8_t*>(rows), yt);
        epilogue(p, o, yt, P0, m, rq, flat);
        continue;
      }
#endif
      if (direct) {
        a.xq = x + P0 * Cs;
      } else {
        for (int64_t i = 0; i < m; ++i) {
          const int64_t Pi = P0 + i, n = Pi / OHW, oy = (Pi % OHW) / OW, ox = Pi % OW;
          int8_t* d = rows + i * kp;
          const int64_t iy0 = oy * sh - pt, ix0 = ox * sw - pl;
          if (dwl == 1 && Cs == C && ix0 >= 0 && ix0 + kw <= W && iy0 >= 0 && iy0 + (kh - 1) * dh < H) {
            const int64_t len = kw * C;  // a window row is kw * C contiguous bytes
            for (int64_t ky = 0; ky < kh; ++ky, d += len) {
              const int8_t* src = x + ((n * H + iy0 + ky * dh) * W + ix0) * Cs;
              if (len >= 8 && len <= 16) {  // two overlapping 8-byte moves (the 3-channel stem: 9 bytes)
                std::memcpy(d, src, 8);
                std::memcpy(d + len - 8, src + len - 8, 8);
              } else {
                std::memcpy(d, src, size_t(len));
              }
            }
          } else
          for (int64_t ky = 0; ky < kh; ++ky) {
            const int64_t iy = oy * sh - pt + ky * dh;
            for (int64_t kx = 0; kx < kw; ++kx, d += C) {
              const int64_t ix = ox * sw - pl + kx * dwl;
              if (iy >= 0 && iy < H && ix >= 0 && ix < W) std::memcpy(d, x + ((n * H + iy) * W + ix) * Cs, size_t(C));
              else std::memset(d, zin, size_t(C));
            }
          }
        }
        a.xq = rows;
      }
      if (xu) {  // the tile's rows flipped to u8 once (the kernel would flip them once per L2 block of panels)
#if defined(__x86_64__)
        flip_rows_avx2(a.xq, xu, m * kp);
#endif
        a.xu = xu;
      }
      kern.fn(&a, 0, m, 0, O);
      epilogue(p, o, yt, P0, m, rq, flat);
    }
  });
}


// ---- conv_stem_nhwc_q8: the float stem conv written straight as the chain's int8 NHWC codes ----------
// The model's first conv (float: the quantizer keeps the model input float) and the chain entry that
// quantizes its output, in one op. Per output element the float operations of conv2d_f32's direct path
// (bias, then the K = C * kh * kw taps in (c, ky, kx) order: FMA on AVX2, multiply + add on the scalar
// path, a padding tap as w * 0), its fused act, then quantize_nhwc_q8's (times the smoothing multiplier,
// times 1/s, rint, + zero point, clamp): the same bits as conv2d_f32 + quantize_nhwc_q8, without the f32
// NCHW tensor between them (1.6 MB for EfficientNet-Lite0), its transposes and the quantizer's pass.
// AVX2: output channels in the lanes (O = 8, 16, 24, 32: OB vectors), J pixels of an output row per tile
// (OB * J = 12 accumulators), the input read in place (border tiles gather a zero-filled patch first),
// conv2d_f32's stem tile (conv_stem_avx2) with an int8 finish: each pixel's O channels are requantized
// in registers and stored as one NHWC row.
// params: the conv slots above (kCs: the output's channel stride), kZout; f[0..1] act lo / hi, f[2] scale.
// p.v: the weight as wp[K][O] floats.
constexpr int64_t kStemMaxK = 32;

lb_status stem_infer(OpCtx& c) {
  const Tensor* x = c.in[0];
  const Tensor* w = c.in.size() > 1 ? c.in[1] : nullptr;
  const Tensor* b = c.in.size() > 2 ? c.in[2] : nullptr;
  const Tensor* mul = c.in.size() > 3 ? c.in[3] : nullptr;
  OpParams& p = *c.p;
  const Json& a = *c.attrs;
  if (x->dtype != DType::F32 || x->shape.size() != 4) {
    c.err = "expects a 4-D f32 NCHW input, got " + std::string(dtype_name(x->dtype)) + " " + shape_str(x->shape);
    return LB_ERR_SHAPE;
  }
  if (!w || !w->data || w->dtype != DType::F32 || w->shape.size() != 4) {
    c.err = "needs a constant 4-D f32 weight [O, C, kh, kw]";
    return LB_ERR_UNSUPPORTED;
  }
  p.i[kN] = x->shape[0]; p.i[kC] = x->shape[1]; p.i[kH] = x->shape[2]; p.i[kW] = x->shape[3];
  p.i[kO] = w->shape[0];
  if (attr_int(a, "group", 1) != 1 || w->shape[1] != p.i[kC]) {
    c.err = "needs group 1 and a weight [O, " + std::to_string(p.i[kC]) + ", kh, kw] for input " +
            shape_str(x->shape) + ", got weight " + shape_str(w->shape);
    return LB_ERR_SHAPE;
  }
  if (const lb_status st = conv_window_attrs(a, &p.i[kH], &p.i[kKh], &p.i[kOH], &c.err); st != LB_OK) {
    if (st == LB_ERR_SHAPE) c.err += " (input " + shape_str(x->shape) + ")";
    return st;
  }
  if (p.i[kKh] != w->shape[2] || p.i[kKw] != w->shape[3]) {
    c.err = "kernel_shape does not match the weight " + shape_str(w->shape);
    return LB_ERR_SHAPE;
  }
  const int64_t K = p.i[kC] * p.i[kKh] * p.i[kKw], O = p.i[kO];
  if (K > kStemMaxK || O % 8 || O < 8 || O > 32) {
    c.err = "takes at most 32 taps (C * kh * kw) and 8, 16, 24 or 32 output channels, got " + std::to_string(K) +
            " taps and " + std::to_string(O) + " channels (export the conv as conv2d_f32 + quantize_nhwc_q8)";
    return LB_ERR_UNSUPPORTED;
  }
  if (b && (b->dtype != DType::F32 || b->numel() != O)) {
    c.err = "bias must be " + std::to_string(O) + " f32 values";
    return LB_ERR_SHAPE;
  }
  if (!parse_act(a, &p, kAct, 0) || p.i[kAct] == ACT_SIGMOID) {
    c.err = "unsupported fused activation '" + attr_str(a, "act", "") + "' (none, relu, clip, hardswish, hardsigmoid)";
    return LB_ERR_UNSUPPORTED;
  }
  p.f[2] = attr_float(a, "scale", 0.f);
  p.i[kZout] = attr_int(a, "zero", 0);
  if (!(p.f[2] > 0.f) || !std::isfinite(p.f[2]) || p.i[kZout] < -128 || p.i[kZout] > 127) {
    c.err = "needs scale > 0 and zero in [-128, 127]";
    return LB_ERR_UNSUPPORTED;
  }
  if (mul && (!mul->data || mul->dtype != DType::F32 || mul->numel() != O)) {
    c.err = "input 3 (smoothing multipliers) must be " + std::to_string(O) + " constant f32 values";
    return LB_ERR_SHAPE;
  }
  p.i[kCs] = nhwc_cstride(O);
  // p.f[3] = 1: the requantization needs no range guard (q8_round, the AVX-512 tile): a Clip bounds every value
  // (NaN included: vmaxps returns the bound) and |max(|lo|, |hi|) * mul / scale| < 2^20
  double lim = p.i[kAct] == ACT_CLIP ? std::max(std::fabs(double(p.f[0])), std::fabs(double(p.f[1]))) : INFINITY;
  double mmax = mul ? 0.0 : 1.0;
  for (int64_t o = 0; mul && o < O; ++o)
    mmax = std::isfinite(mul->f32()[o]) ? std::max(mmax, std::fabs(double(mul->f32()[o]))) : INFINITY;
  p.f[3] = lim * mmax / double(p.f[2]) < 1048576.0 ? 1.f : 0.f;
  p.v.assign(size_t(K * O + 1) / 2, 0);
  float* wp = reinterpret_cast<float*>(p.v.data());
  const float* wv = w->f32();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t o = 0; o < O; ++o) wp[k * O + o] = wv[o * K + k];
  c.out[0]->dtype = DType::I8;
  c.out[0]->shape = {p.i[kN], p.i[kOH], p.i[kOW], p.i[kCs]};
  c.scratch_bytes = 0;
  c.flops = uint64_t(2) * p.i[kN] * O * p.i[kOH] * p.i[kOW] * K;
  return LB_OK;
}

#if defined(__x86_64__)
// One tile: OB * 8 channels x J pixels (nj stored) of an output row; taps at base + off[k] + j * ps.
template <int OB, int J>
__attribute__((target("avx2,fma"))) void stem_q8_tile(const float* wp, int64_t K, const float* base,
                                                      const int64_t* off, int64_t ps, const float* bias, int64_t nj,
                                                      int64_t act, float lo, float hi, const float* mul, float inv,
                                                      int64_t zero, int8_t* y, int64_t Cs) {
  __m256 acc[OB][J];
  ocv_start<OB, J>(bias, acc);  // conv2d_f32's stem tile's sums (conv_ocv.h): the same bits
  ocv_accumulate<OB, J>(wp, K, base, off, ps, acc);
  const __m256 vinv = _mm256_set1_ps(inv);
  const __m256i vz = _mm256_set1_epi16(int16_t(zero));
#pragma GCC unroll 12
  for (int j = 0; j < J; ++j) {  // compile-time indices only: acc stays in registers
    if (j >= nj) break;
    __m256i r[4];
#pragma GCC unroll 4
    for (int ob = 0; ob < OB; ++ob) {
      __m256 v = vmath::act8(acc[ob][j], act, lo, hi);
      if (mul) v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + ob * 8));
      r[ob] = q8_lanes(v, vinv);
    }
    int8_t* d = y + j * Cs;
    if constexpr (OB == 4) {
      store32_q8(d, r, vz);
    } else {
#pragma GCC unroll 4
      for (int ob = 0; ob < OB; ++ob) store8_q8(d + ob * 8, r[ob], vz);
      if (Cs > OB * 8) std::memset(d + OB * 8, 0, size_t(Cs - OB * 8));
    }
  }
}
using StemQ8Fn = void (*)(const float*, int64_t, const float*, const int64_t*, int64_t, const float*, int64_t, int64_t,
                          float, float, const float*, float, int64_t, int8_t*, int64_t);

void stem_avx2(OpCtx& c, const float* x, const float* b, const float* mul, int8_t* y) {
  const OpParams& p = *c.p;
  const int64_t N = p.i[kN], C = p.i[kC], H = p.i[kH], W = p.i[kW], O = p.i[kO], OH = p.i[kOH], OW = p.i[kOW];
  const int64_t kh = p.i[kKh], kw = p.i[kKw], sh = p.i[kSh], sw = p.i[kSw], dh = p.i[kDh], dw = p.i[kDw];
  const int64_t pt = p.i[kPt], pl = p.i[kPl], K = C * kh * kw, HW = H * W, Cs = p.i[kCs], act = p.i[kAct];
  const float lo = p.f[0], hi = p.f[1], inv = 1.0f / p.f[2];
  const int64_t zero = p.i[kZout];
  const float* wp = reinterpret_cast<const float*>(p.v.data());
  int64_t off[kStemMaxK];
  for (int64_t ci = 0, k = 0; ci < C; ++ci)
    for (int64_t ky = 0; ky < kh; ++ky)
      for (int64_t kx = 0; kx < kw; ++kx, ++k) off[k] = ci * HW + ky * dh * W + kx * dw;
  const int OB = int(O / 8), J = OB == 4 ? 3 : OB == 3 ? 4 : OB == 2 ? 6 : 12;
  const StemQ8Fn fn = OB == 4 ? stem_q8_tile<4, 3> : OB == 3 ? stem_q8_tile<3, 4>
                    : OB == 2 ? stem_q8_tile<2, 6> : stem_q8_tile<1, 12>;
  const int64_t ey = (kh - 1) * dh, ex = (kw - 1) * dw;
  for_ranges(c, N * OH, O * K * OW, [&](int, int64_t r0, int64_t r1) {
    alignas(32) float patch[kStemMaxK * 12];
    int64_t offp[kStemMaxK];
    for (int64_t k = 0; k < K; ++k) offp[k] = k * J;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / OH, oy = r % OH, iy0 = oy * sh - pt;
      const float* xn = x + n * C * HW;
      int8_t* yr = y + r * OW * Cs;
      const bool rows_in = iy0 >= 0 && iy0 + ey < H;
      for (int64_t ox0 = 0; ox0 < OW; ox0 += J) {
        const int64_t nj = std::min<int64_t>(J, OW - ox0), ix0 = ox0 * sw - pl;
        if (rows_in && nj == J && ix0 >= 0 && ix0 + (J - 1) * sw + ex < W) {
          fn(wp, K, xn + iy0 * W + ix0, off, sw, b, J, act, lo, hi, mul, inv, zero, yr + ox0 * Cs, Cs);
          continue;
        }
        for (int64_t ci = 0, k = 0; ci < C; ++ci)  // border tile: its K x J taps, 0 for padding
          for (int64_t ky = 0; ky < kh; ++ky)
            for (int64_t kx = 0; kx < kw; ++kx, ++k) {
              const int64_t iy = iy0 + ky * dh;
              for (int64_t j = 0; j < J; ++j) {
                const int64_t ix = ix0 + j * sw + kx * dw;
                patch[k * J + j] = j < nj && iy >= 0 && iy < H && ix >= 0 && ix < W ? xn[ci * HW + iy * W + ix] : 0.f;
              }
            }
        fn(wp, K, patch, offp, 1, b, nj, act, lo, hi, mul, inv, zero, yr + ox0 * Cs, Cs);
      }
    }
  });
}

// AVX-512 (LB_ISA_AVX512VNNI, O = 32, act none / Relu / Clip): the 32 channels in two zmm, 8 pixels of an output row
// per tile (16 accumulators); per tap 2 weight loads, 8 broadcasts and 16 FMAs, each channel's the same FMA in the
// same order as stem_q8_tile (the same bits). Border tiles read a zero-filled copy of their input span (one segment
// of kStemSeg floats per (c, ky) row, written with two memsets and a memcpy) instead of a gather per tap and pixel.
// The finish: act, multipliers, q8_round where p.f[3] proved the range (else q8_lanes' operations), then two pixels'
// 64 codes with the saturating packs (+ zero point) of pack32_q8 / pack32_q8z and one vpermd.
constexpr int kStemJ = 8;
constexpr int64_t kStemSeg = 64;
bool stem512_ok(const OpParams& p) {
  const int64_t act = p.i[kAct];
  return lb_isa_active() == LB_ISA_AVX512VNNI && p.i[kO] == 32 && p.i[kCs] == 32 &&
         (act == ACT_NONE || act == ACT_RELU || act == ACT_CLIP) &&
         (kStemJ - 1) * p.i[kSw] + (p.i[kKw] - 1) * p.i[kDw] + 1 <= kStemSeg;
}

// q8_lanes (rnd false) or q8_round with the zero point (rnd: vbz = 0x4B400000 - z) on 16 lanes
LB_TARGET_VNNI inline __m512i q8_lanes16(__m512 x, __m512 vinv, bool rnd, __m512i vbz) {
  __m512 t = _mm512_mul_ps(x, vinv);
  if (!rnd) return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_set1_ps(1073741824.f), t));
  __asm__("" : "+v"(t));  // q8_round: no FMA contraction
  t = _mm512_add_ps(t, _mm512_set1_ps(12582912.f));
  return _mm512_sub_epi32(_mm512_castps_si512(t), vbz);
}

template <bool RND>
LB_TARGET_VNNI void stem_q8_tile512(const float* wp, int64_t K, const float* base, const int64_t* off, int64_t ps,
                                    const float* bias, int64_t nj, int64_t act, float lo, float hi, const float* mul,
                                    float inv, int64_t zero, int8_t* y) {
  __m512 acc[2][kStemJ];
  const __m512 b0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int j = 0; j < kStemJ; ++j) acc[0][j] = b0, acc[1][j] = b1;
  for (int64_t k = 0; k < K; ++k) {
    const float* xb = base + off[k];
    const __m512 w0 = _mm512_loadu_ps(wp + k * 32), w1 = _mm512_loadu_ps(wp + k * 32 + 16);
#pragma GCC unroll 8
    for (int j = 0; j < kStemJ; ++j) {  // acc += w * x[j] (the input as an embedded broadcast: no broadcast uop)
      __asm__("vfmadd231ps %2%{1to16%}, %1, %0" : "+v"(acc[0][j]) : "v"(w0), "m"(xb[j * ps]));
      __asm__("vfmadd231ps %2%{1to16%}, %1, %0" : "+v"(acc[1][j]) : "v"(w1), "m"(xb[j * ps]));
    }
  }
  const __m512 vinv = _mm512_set1_ps(inv), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi), z0 = _mm512_setzero_ps();
  const __m512 m0 = mul ? _mm512_loadu_ps(mul) : z0, m1 = mul ? _mm512_loadu_ps(mul + 16) : z0;
  const __m512i vz = _mm512_set1_epi16(int16_t(zero)), vbz = _mm512_set1_epi32(0x4B400000 - int32_t(zero));
  const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  __m512i w[kStemJ];
#pragma GCC unroll 8
  for (int j = 0; j < kStemJ; ++j) {  // compile-time indices only: acc stays in registers
    __m512 v0 = acc[0][j], v1 = acc[1][j];
    if (act == ACT_RELU) v0 = _mm512_max_ps(v0, z0), v1 = _mm512_max_ps(v1, z0);  // act8's operand order
    if (act == ACT_CLIP)
      v0 = _mm512_min_ps(_mm512_max_ps(v0, vlo), vhi), v1 = _mm512_min_ps(_mm512_max_ps(v1, vlo), vhi);
    if (mul) v0 = _mm512_mul_ps(v0, m0), v1 = _mm512_mul_ps(v1, m1);
    // int16 lanes [c 4i..4i+3, c 16+4i..16+4i+3] per 128-bit lane i
    w[j] = _mm512_packs_epi32(q8_lanes16(v0, vinv, RND, vbz), q8_lanes16(v1, vinv, RND, vbz));
    if (!RND) w[j] = _mm512_adds_epi16(w[j], vz);  // RND: the zero point is in the lanes (pack32_q8z)
  }
#pragma GCC unroll 4
  for (int j = 0; j < kStemJ; j += 2) {
    if (j >= nj) break;
    // dwords per lane i: [a 4i.., a 16+4i.., b 4i.., b 16+4i..] -> pixel j's 32 codes, then pixel j + 1's
    const __m512i q = _mm512_permutexvar_epi32(perm, _mm512_packs_epi16(w[j], w[j + 1]));
    if (j + 1 < nj) _mm512_storeu_si512(y + j * 32, q);
    else _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + j * 32), _mm512_castsi512_si256(q));
  }
}

void stem_avx512(OpCtx& c, const float* x, const float* b, const float* mul, int8_t* y) {
  const OpParams& p = *c.p;
  const int64_t N = p.i[kN], C = p.i[kC], H = p.i[kH], W = p.i[kW], O = p.i[kO], OH = p.i[kOH], OW = p.i[kOW];
  const int64_t kh = p.i[kKh], kw = p.i[kKw], sh = p.i[kSh], sw = p.i[kSw], dh = p.i[kDh], dw = p.i[kDw];
  const int64_t pt = p.i[kPt], pl = p.i[kPl], K = C * kh * kw, HW = H * W, act = p.i[kAct];
  const float lo = p.f[0], hi = p.f[1], inv = 1.0f / p.f[2];
  const int64_t zero = p.i[kZout];
  const float* wp = reinterpret_cast<const float*>(p.v.data());
  const auto fn = p.f[3] != 0.f ? stem_q8_tile512<true> : stem_q8_tile512<false>;
  int64_t off[kStemMaxK], offs[kStemMaxK];  // taps in the image / in the border tiles' segments
  for (int64_t ci = 0, k = 0; ci < C; ++ci)
    for (int64_t ky = 0; ky < kh; ++ky)
      for (int64_t kx = 0; kx < kw; ++kx, ++k)
        off[k] = ci * HW + ky * dh * W + kx * dw, offs[k] = (ci * kh + ky) * kStemSeg + kx * dw;
  const int64_t ey = (kh - 1) * dh, ex = (kw - 1) * dw, span = (kStemJ - 1) * sw + ex + 1;
  for_ranges(c, N * OH, O * K * OW, [&](int, int64_t r0, int64_t r1) {
    alignas(64) float seg[kStemMaxK * kStemSeg];
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / OH, oy = r % OH, iy0 = oy * sh - pt;
      const float* xn = x + n * C * HW;
      int8_t* yr = y + r * OW * 32;
      const bool rows_in = iy0 >= 0 && iy0 + ey < H;
      for (int64_t ox0 = 0; ox0 < OW; ox0 += kStemJ) {
        const int64_t nj = std::min<int64_t>(kStemJ, OW - ox0), ix0 = ox0 * sw - pl;
        if (rows_in && nj == kStemJ && ix0 >= 0 && ix0 + span <= W) {
          fn(wp, K, xn + iy0 * W + ix0, off, sw, b, kStemJ, act, lo, hi, mul, inv, zero, yr + ox0 * 32);
          continue;
        }
        // border tile: each (c, ky) row's span [ix0, ix0 + span), 0 outside the image (padding taps: w * 0)
        const int64_t a0 = std::clamp<int64_t>(-ix0, 0, span), a1 = std::clamp<int64_t>(W - ix0, a0, span);
        for (int64_t ci = 0; ci < C; ++ci)
          for (int64_t ky = 0; ky < kh; ++ky) {
            float* d = seg + (ci * kh + ky) * kStemSeg;
            const int64_t iy = iy0 + ky * dh;
            if (iy < 0 || iy >= H) {
              std::memset(d, 0, size_t(span) * 4);
              continue;
            }
            std::memset(d, 0, size_t(a0) * 4);
            if (a1 > a0) std::memcpy(d + a0, xn + ci * HW + iy * W + ix0 + a0, size_t(a1 - a0) * 4);  // (else past the row)
            std::memset(d + a1, 0, size_t(span - a1) * 4);
          }
        fn(wp, K, seg, offs, sw, b, nj, act, lo, hi, mul, inv, zero, yr + ox0 * 32);
      }
    }
  });
}
#endif

// Scalar path (LOWBIT_ISA=scalar, non-x86 builds): conv2d_f32's portable direct tile per output pixel
// (acc = bias, then acc += w * x over k in order, padding taps x = 0), apply_act, quantize_nhwc_q8's q8_scalar.
void stem_scalar(OpCtx& c, const float* x, const float* b, const float* mul, int8_t* y) {
  const OpParams& p = *c.p;
  const int64_t N = p.i[kN], C = p.i[kC], H = p.i[kH], W = p.i[kW], O = p.i[kO], OH = p.i[kOH], OW = p.i[kOW];
  const int64_t kh = p.i[kKh], kw = p.i[kKw], sh = p.i[kSh], sw = p.i[kSw], dh = p.i[kDh], dw = p.i[kDw];
  const int64_t pt = p.i[kPt], pl = p.i[kPl], K = C * kh * kw, HW = H * W, Cs = p.i[kCs], act = p.i[kAct];
  const float lo = p.f[0], hi = p.f[1], inv = 1.0f / p.f[2], zf = float(p.i[kZout]);
  const float* wp = reinterpret_cast<const float*>(p.v.data());
  for_ranges(c, N * OH, O * K * OW, [&](int, int64_t r0, int64_t r1) {
    float acc[32];
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / OH, oy = r % OH;
      const float* xn = x + n * C * HW;
      for (int64_t ox = 0; ox < OW; ++ox) {
        for (int64_t o = 0; o < O; ++o) acc[o] = b ? b[o] : 0.f;
        for (int64_t ci = 0, k = 0; ci < C; ++ci)
          for (int64_t ky = 0; ky < kh; ++ky)
            for (int64_t kx = 0; kx < kw; ++kx, ++k) {
              const int64_t iy = oy * sh - pt + ky * dh, ix = ox * sw - pl + kx * dw;
              const float xv = iy >= 0 && iy < H && ix >= 0 && ix < W ? xn[ci * HW + iy * W + ix] : 0.f;
              for (int64_t o = 0; o < O; ++o) acc[o] += wp[k * O + o] * xv;
            }
        apply_act(acc, O, act, lo, hi);
        int8_t* d = y + (r * OW + ox) * Cs;
        for (int64_t o = 0; o < O; ++o) d[o] = q8_scalar(mul ? acc[o] * mul[o] : acc[o], inv, zf);
        for (int64_t o = O; o < Cs; ++o) d[o] = 0;
      }
    }
  });
}

void stem_run(OpCtx& c) {
  const float* x = c.in[0]->f32();
  const float* b = c.in.size() > 2 && c.in[2] ? c.in[2]->f32() : nullptr;
  const float* mul = c.in.size() > 3 && c.in[3] ? c.in[3]->f32() : nullptr;
  int8_t* y = static_cast<int8_t*>(c.out[0]->data);
#if defined(__x86_64__)
  if (stem512_ok(*c.p)) {
    c.isa = "avx512vnni";
    stem_avx512(c, x, b, mul, y);
    return;
  }
  if (use_avx2() && (lb_cpu_features() & LB_CPU_FMA)) {
    c.isa = "avx2";
    stem_avx2(c, x, b, mul, y);
    return;
  }
#endif
  c.isa = "scalar";
  stem_scalar(c, x, b, mul, y);
}

}  // namespace

void register_ops_qnhwc(std::vector<OpDef>& r) {
  r.push_back(OpDef{"quantize_nhwc_q8", quant_infer, quant_run, false});
  r.push_back(OpDef{"qconv2d_nhwc_q8", conv_infer, conv_run, false});
  r.push_back(OpDef{"conv_stem_nhwc_q8", stem_infer, stem_run, false});
}

// Shared with ops_qnhwc_graph.cpp (declared in ops_qnhwc.h).
lb_status quantizer_attrs(OpCtx& c, int64_t channels, float* scale, int64_t* zero) {
  *scale = attr_float(*c.attrs, "scale", 0.f);
  *zero = attr_int(*c.attrs, "zero", 0);
  if (!(*scale > 0.f) || !std::isfinite(*scale) || *zero < -128 || *zero > 127) {
    c.err = "needs scale > 0 and zero in [-128, 127]";
    return LB_ERR_UNSUPPORTED;
  }
  const Tensor* mul = c.in.size() > 1 ? c.in[1] : nullptr;
  if (mul && (!mul->data || mul->dtype != DType::F32 || mul->numel() != channels)) {
    c.err = "input 1 (smoothing multipliers) must be " + std::to_string(channels) + " constant f32 values";
    return LB_ERR_SHAPE;
  }
  return LB_OK;
}

}  // namespace lb
