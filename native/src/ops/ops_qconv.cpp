// Quantized 2-D convolution "qconv2d_f32" (NCHW float in and out, like conv2d_f32, so the rest of
// the graph is unchanged) and the fake-quantization op "qdq_f32" of the exporter's fallback path.
// See docs/package-format.md (section 6) for the manifest side and docs/runtime.md ("Quantized
// Conv") for the numerics.
//
// mode "gemm" (group 1): the weight is packed by lowbit.packing as an [O, C*kh*kw] matrix; each
//   image becomes im2col rows [OH*OW, K] (for 1x1 stride-1 convs: the transposed input), which go
//   through lb::qlinear (int8 activations: static scale/zero point, or one dynamic scale for the
//   whole tensor, or the kernels' per-group scales for 4-bit weights), then the [OH*OW, O] result
//   is transposed back to NCHW with the fused activation.
// mode "depthwise" (group == C == O): int8 codes [O, kh*kw] and f32 scales [O]; the input channel
//   is quantized once into a zero-padded int16 buffer of (q - zero point) values, split into
//   column phases for strided convs, and a direct kernel accumulates the taps in int32 (AVX2:
//   vpmaddwd on pairs of taps, 16 outputs per step; scalar reference below, bitwise identical).
#pragma GCC optimize("O3")
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <new>

#include "../qlinear.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include "ops.h"
#include "transpose8.h"

namespace lb {
namespace {

// params: i[0..3] N C H W, i[4] O, i[5] kh, i[6] kw, i[7] sh, i[8] sw, i[9] dh, i[10] dw,
// i[11] pt, i[12] pl, i[13] pb, i[14] pr, i[15] mode (0 gemm, 1 depthwise), i[16] OH, i[17] OW,
// i[18] act, i[19] aq (AqMode), i[20] aq zero, i[21] K, i[22] rows bytes, i[23] ytmp bytes,
// i[24] qlinear scratch bytes; f[0], f[1] act bounds, f[2] static scale.
// PackedWeight (gemm) in i[kPw..].
enum { kN, kC, kH, kW, kO, kKh, kKw, kSh, kSw, kDh, kDw, kPt, kPl, kPb, kPr, kMode, kOH, kOW, kAct, kAq, kAz,
       kK, kRows, kYtmp, kQs, kTile, kPw = 26 };
enum AqMode : int64_t { AQ_STATIC = 0, AQ_DYNAMIC_TENSOR, AQ_DYNAMIC_BLOCK, AQ_FLOAT };
static_assert(sizeof(PackedWeight) <= sizeof(int64_t) * (48 - kPw), "PackedWeight must fit in OpParams");

PackedWeight& packed(OpParams& p) { return *reinterpret_cast<PackedWeight*>(&p.i[kPw]); }
const PackedWeight& packed(const OpParams& p) { return *reinterpret_cast<const PackedWeight*>(&p.i[kPw]); }

inline size_t al64(size_t v) { return (v + 63) / 64 * 64; }

bool parse_aq(const Json& a, OpParams& p, std::string* err) {
  const std::string aq = attr_str(a, "aq", "");
  if (aq == "static") {
    p.i[kAq] = AQ_STATIC;
    p.f[2] = attr_float(a, "aq_scale", 0.f);
    p.i[kAz] = attr_int(a, "aq_zero", 0);
    if (!(p.f[2] > 0.f) || !std::isfinite(p.f[2]) || p.i[kAz] < -128 || p.i[kAz] > 127) {
      *err = "static activation quantization needs aq_scale > 0 and aq_zero in [-128, 127]";
      return false;
    }
  } else if (aq == "dynamic_tensor") {
    p.i[kAq] = AQ_DYNAMIC_TENSOR;
  } else if (aq == "dynamic_block") {
    p.i[kAq] = AQ_DYNAMIC_BLOCK;
  } else if (aq == "float") {
    p.i[kAq] = AQ_FLOAT;
  } else {
    *err = "unknown activation quantization aq='" + aq + "' (static, dynamic_tensor, dynamic_block or float)";
    return false;
  }
  return true;
}

lb_status qconv_geometry(OpCtx& c) {
  const Tensor* x = c.in[0];
  OpParams& p = *c.p;
  const Json& a = *c.attrs;
  if (x->shape.size() != 4 || x->dtype != DType::F32) {
    c.err = "expects a 4-D f32 NCHW input, got " + shape_str(x->shape);
    return LB_ERR_SHAPE;
  }
  p.i[kN] = x->shape[0]; p.i[kC] = x->shape[1]; p.i[kH] = x->shape[2]; p.i[kW] = x->shape[3];
  static_assert(kKw == kKh + 1 && kSh == kKw + 1 && kPr == kSh + 7 && kW == kH + 1 && kOW == kOH + 1, "window slots");
  if (const lb_status st = conv_window_attrs(a, &p.i[kH], &p.i[kKh], &p.i[kOH], &c.err); st != LB_OK) {
    if (st == LB_ERR_SHAPE) c.err += " (input " + shape_str(x->shape) + ")";
    return st;
  }
  if (!parse_act(a, &p, kAct, 0)) {
    c.err = "unknown fused activation '" + attr_str(a, "act", "") + "'";
    return LB_ERR_UNSUPPORTED;
  }
  if (!parse_aq(a, p, &c.err)) return LB_ERR_UNSUPPORTED;
  return LB_OK;
}

// ---- depthwise --------------------------------------------------------------------------
struct DwGeom {
  int64_t PH, PWp, OWp, phases;  // padded rows, row length per phase (int16), OW rounded to 16, sw
  int64_t taps, pairs;
};

DwGeom dw_geom(const OpParams& p) {
  DwGeom g;
  g.phases = p.i[kSw];
  g.PH = p.i[kH] + p.i[kPt] + p.i[kPb];
  const int64_t pw = p.i[kW] + p.i[kPl] + p.i[kPr];
  const int64_t ekw = (p.i[kKw] - 1) * p.i[kDw] + 1;
  g.OWp = (p.i[kOW] + 15) / 16 * 16;
  g.PWp = std::max((pw + g.phases - 1) / g.phases, (ekw - 1) / g.phases + g.OWp) + 16;
  g.taps = p.i[kKh] * p.i[kKw];
  g.pairs = (g.taps + 1) / 2;
  return g;
}

// Per-thread scratch: the int16 phase buffer, one quantized input row, the float output row,
// the tap offsets and the packed weight pairs.
size_t dw_scratch_per_thread(const OpParams& p) {
  const DwGeom g = dw_geom(p);
  return al64(size_t(g.phases * g.PH * g.PWp) * 2) + al64(size_t(p.i[kW] + 16) * 2) + al64(size_t(g.OWp) * 4) +
         al64(size_t(2 * g.pairs) * 8) + al64(size_t(g.pairs) * 4);
}

struct DwArgs {
  const float* x;        // input [N, C, H, W]
  const int8_t* w;       // codes [C, kh*kw]
  const float* wscale;   // [C]
  const float* bias;     // [C] or null
  const float* mul;      // [C] activation multipliers (1/smooth) or null
  float* y;              // output [N, C, OH, OW]
  float sx;              // activation scale
  int32_t zero;          // activation zero point
};

// Quantizes W floats (times m) to (clamp(rint(v / s) + z, -128, 127) - z) as int16: the same float
// operations as the kernels' activation quantizer (lb_quant_q8d_f32__ref, static mode).
void quant_row_scalar(const float* src, int64_t n, float m, bool use_m, float inv, float zf, int16_t* dst) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = use_m ? src[i] * m : src[i];
    float r = std::nearbyint(v * inv) + zf;
    r = r > -128.f ? r : -128.f;
    r = r < 127.f ? r : 127.f;
    dst[i] = int16_t(int(r) - int(zf));
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void quant_row_avx2(const float* src, int64_t n, float m, bool use_m, float inv,
                                                         float zf, int16_t* dst) {
  const __m256 vm = _mm256_set1_ps(m), vinv = _mm256_set1_ps(inv), vz = _mm256_set1_ps(zf);
  const __m256 lo = _mm256_set1_ps(-128.f), hi = _mm256_set1_ps(127.f);
  const __m256i iz = _mm256_set1_epi32(int(zf));
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 a = _mm256_loadu_ps(src + i), b = _mm256_loadu_ps(src + i + 8);
    if (use_m) { a = _mm256_mul_ps(a, vm); b = _mm256_mul_ps(b, vm); }
    a = _mm256_round_ps(_mm256_mul_ps(a, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    b = _mm256_round_ps(_mm256_mul_ps(b, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    a = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(a, vz), lo), hi);  // max first: NaN -> -128 like the ref
    b = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(b, vz), lo), hi);
    const __m256i ia = _mm256_sub_epi32(_mm256_cvtps_epi32(a), iz), ib = _mm256_sub_epi32(_mm256_cvtps_epi32(b), iz);
    const __m256i pk = _mm256_permute4x64_epi64(_mm256_packs_epi32(ia, ib), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), pk);
  }
  quant_row_scalar(src + i, n - i, m, use_m, inv, zf, dst + i);
}
#endif

using QuantRowFn = void (*)(const float*, int64_t, float, bool, float, float, int16_t*);
// One output row: acc[ox] = float(sum_t xs[off[t] + ox] * w[t]) * comb + bias for ox < OWp (AVX2) / OW.
using DwRowFn = void (*)(const int16_t* base, const int64_t* off, const int32_t* wp, const int8_t* wc, int64_t taps,
                         int64_t pairs, int64_t OW, int64_t OWp, float comb, float bias, float lo, float hi,
                         float* acc);

// Fills the zero-padded, phase-split int16 buffer of one channel.
inline void dw_fill(const OpParams& p, const DwGeom& g, const float* in, float m, bool use_m, float inv, float zf,
                    int16_t* buf, int16_t* row, QuantRowFn quant_row) {
  const int64_t H = p.i[kH], W = p.i[kW], pt = p.i[kPt], pl = p.i[kPl], sw = g.phases;
  std::memset(buf, 0, size_t(g.phases * g.PH * g.PWp) * 2);
  for (int64_t yy = 0; yy < H; ++yy) {
    int16_t* dst = sw == 1 ? buf + (yy + pt) * g.PWp + pl : row;
    quant_row(in + yy * W, W, m, use_m, inv, zf, dst);
    if (sw != 1)
      for (int64_t ph = 0; ph < sw; ++ph) {  // input column xx goes to phase (xx + pl) % sw, slot (xx + pl) / sw
        int16_t* d = buf + (ph * g.PH + yy + pt) * g.PWp;
        const int64_t x0 = ((ph - pl) % sw + sw) % sw;
        for (int64_t xx = x0, j = (x0 + pl) / sw; xx < W; xx += sw, ++j) d[j] = row[xx];
      }
  }
}

// Tap offsets (relative to the start of an output row's first input row) and weight pairs
// (low 16 bits: tap 2j, high: tap 2j+1; an odd last tap is paired with a zero weight).
inline void dw_taps(const OpParams& p, const DwGeom& g, const int8_t* wc, int64_t* off, int32_t* wp) {
  const int64_t kw = p.i[kKw], sw = g.phases;
  for (int64_t t = 0; t < 2 * g.pairs; ++t) {
    const int64_t tt = t < g.taps ? t : g.taps - 1;
    const int64_t ky = tt / kw, kx = tt % kw, o = kx * p.i[kDw];
    off[t] = ((o % sw) * g.PH + ky * p.i[kDh]) * g.PWp + o / sw;
  }
  for (int64_t j = 0; j < g.pairs; ++j) {
    const int32_t w0 = wc[2 * j], w1 = 2 * j + 1 < g.taps ? wc[2 * j + 1] : 0;
    wp[j] = int32_t(uint32_t(uint16_t(int16_t(w0))) | (uint32_t(uint16_t(int16_t(w1))) << 16));
  }
}

// Scalar reference of the row kernel: int32 sums in tap order, then one fused multiply-add.
// A fused Relu / Clip is the clamp to [lo, hi] (-inf / +inf when there is none).
void dw_row_scalar(const int16_t* base, const int64_t* off, const int32_t*, const int8_t* wc, int64_t taps, int64_t,
                   int64_t OW, int64_t, float comb, float bias, float lo, float hi, float* acc) {
  for (int64_t ox = 0; ox < OW; ++ox) {
    int32_t s32 = 0;
    for (int64_t t = 0; t < taps; ++t) s32 += int32_t(base[off[t] + ox]) * int32_t(wc[t]);
    float v = std::fma(float(s32), comb, bias);  // one rounding, like the AVX2 vfmadd
    v = v > lo ? v : lo;                         // like vmaxps / vminps
    acc[ox] = v < hi ? v : hi;
  }
}

#if defined(__x86_64__)
// 16 outputs per step: vpunpck{l,h}wd interleaves the inputs of two taps, vpmaddwd multiplies
// them by the (w[2j], w[2j+1]) pair and adds the two products into int32 lanes.
__attribute__((target("avx2,fma"))) void dw_row_avx2(const int16_t* base, const int64_t* off, const int32_t* wp,
                                                      const int8_t*, int64_t, int64_t pairs, int64_t, int64_t OWp,
                                                      float comb, float bias, float lo, float hi, float* acc) {
  const __m256 vc = _mm256_set1_ps(comb), vb = _mm256_set1_ps(bias), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  for (int64_t ox = 0; ox < OWp; ox += 16) {
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
    for (int64_t j = 0; j < pairs; ++j) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + off[2 * j] + ox));
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + off[2 * j + 1] + ox));
      const __m256i wv = _mm256_set1_epi32(wp[j]);
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), wv));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), wv));
    }
    // lo holds outputs [0..3 | 8..11], hi [4..7 | 12..15]
    const __m256i r0 = _mm256_permute2x128_si256(lo, hi, 0x20), r1 = _mm256_permute2x128_si256(lo, hi, 0x31);
    const __m256 f0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(r0), vc, vb), f1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(r1), vc, vb);
    _mm256_storeu_ps(acc + ox, _mm256_min_ps(_mm256_max_ps(f0, vlo), vhi));
    _mm256_storeu_ps(acc + ox + 8, _mm256_min_ps(_mm256_max_ps(f1, vlo), vhi));
  }
}
#endif

void dw_range(const OpParams& p, const DwArgs& A, int64_t c0, int64_t c1, char* scratch, QuantRowFn quant_row,
              DwRowFn row_fn) {
  const DwGeom g = dw_geom(p);
  const int64_t C = p.i[kC], HW = p.i[kH] * p.i[kW], OH = p.i[kOH], OW = p.i[kOW], sh = p.i[kSh];
  int16_t* buf = reinterpret_cast<int16_t*>(scratch);
  char* s = scratch + al64(size_t(g.phases * g.PH * g.PWp) * 2);
  int16_t* row = reinterpret_cast<int16_t*>(s);
  s += al64(size_t(p.i[kW] + 16) * 2);
  float* acc = reinterpret_cast<float*>(s);
  s += al64(size_t(g.OWp) * 4);
  int64_t* off = reinterpret_cast<int64_t*>(s);
  s += al64(size_t(2 * g.pairs) * 8);
  int32_t* wp = reinterpret_cast<int32_t*>(s);
  const float inv = 1.0f / A.sx, zf = float(A.zero);
  for (int64_t nc = c0; nc < c1; ++nc) {
    const int64_t ch = nc % C;
    const float m = A.mul ? A.mul[ch] : 1.f;
    dw_fill(p, g, A.x + nc * HW, m, A.mul != nullptr, inv, zf, buf, row, quant_row);
    const int8_t* wc = A.w + ch * g.taps;
    dw_taps(p, g, wc, off, wp);
    const float comb = A.sx * A.wscale[ch];
    const float bias = A.bias ? A.bias[ch] : 0.f;
    const int64_t act = p.i[kAct];
    const bool clamp = act == ACT_RELU || act == ACT_CLIP;
    const float lo = act == ACT_RELU ? 0.f : act == ACT_CLIP ? p.f[0] : -INFINITY;
    const float hi = act == ACT_CLIP ? p.f[1] : INFINITY;
    for (int64_t oy = 0; oy < OH; ++oy) {
      row_fn(buf + oy * sh * g.PWp, off, wp, wc, g.taps, g.pairs, OW, g.OWp, comb, bias, lo, hi, acc);
      float* o = A.y + nc * OH * OW + oy * OW;
      std::memcpy(o, acc, size_t(OW) * sizeof(float));
      if (!clamp) apply_act(o, OW, act, p.f[0], p.f[1]);
    }
  }
}

// Largest |x * mul[channel]| of a [N, C, HW] tensor (order-independent, so thread-count independent).
// mul[c * mstride] multiplies channel c (gemm mode passes the [C*kh*kw] im2col multipliers).
float tensor_amax(const OpCtx& c, const float* x, int64_t N, int64_t C, int64_t HW, const float* mul,
                  int64_t mstride) {
  float part[kMaxThreads] = {0};
  for_ranges(c, N * C, HW, [&](int tid, int64_t c0, int64_t c1) {
    float m = 0.f;
    for (int64_t nc = c0; nc < c1; ++nc) {
      const float k = mul ? mul[(nc % C) * mstride] : 1.f;
      const float* s = x + nc * HW;
      for (int64_t i = 0; i < HW; ++i) {
        const float v = std::fabs(mul ? s[i] * k : s[i]);
        m = v > m ? v : m;
      }
    }
    part[tid] = m > part[tid] ? m : part[tid];
  });
  float m = 0.f;
  for (float v : part) m = v > m ? v : m;
  return m;
}

// ---- gemm (group 1) -----------------------------------------------------------------------

// dst[c * ldd + r] = src[r * lds + c] for r in [r0, r1), c in [c0, c1) (cache-blocked, scalar),
// clamped to [lo, hi] when `clamp` (a fused Relu / Clip).
struct Clamp {
  bool on = false;
  float lo = 0.f, hi = 0.f;
};
inline float clampv(float v, const Clamp& k) {
  v = v > k.lo ? v : k.lo;  // like vmaxps(v, lo)
  return v < k.hi ? v : k.hi;
}
void transpose_scalar(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t r0, int64_t r1, int64_t c0,
                      int64_t c1, Clamp k) {
  constexpr int64_t B = 16;
  for (int64_t rb = r0; rb < r1; rb += B)
    for (int64_t cb = c0; cb < c1; cb += B) {
      const int64_t re = std::min(r1, rb + B), ce = std::min(c1, cb + B);
      for (int64_t c = cb; c < ce; ++c)
        for (int64_t r = rb; r < re; ++r) dst[c * ldd + r] = k.on ? clampv(src[r * lds + c], k) : src[r * lds + c];
    }
}

#if defined(__x86_64__)
// The same with 8x8 register transposes (unpack / shuffle / 128-bit permutes); edges in scalar.
__attribute__((target("avx2,fma"))) void transpose_avx2(const float* src, int64_t lds, float* dst, int64_t ldd,
                                                         int64_t r0, int64_t r1, int64_t c0, int64_t c1, Clamp k) {
  const __m256 vlo = _mm256_set1_ps(k.lo), vhi = _mm256_set1_ps(k.hi);
  const int64_t r8 = r0 + (r1 - r0) / 8 * 8, c8 = c0 + (c1 - c0) / 8 * 8;
  for (int64_t rb = r0; rb < r8; rb += 8)
    for (int64_t cb = c0; cb < c8; cb += 8) {
      const float* s0 = src + rb * lds + cb;
      __m256 r[8];
      for (int u = 0; u < 8; ++u) r[u] = _mm256_loadu_ps(s0 + u * lds);
      transpose8x8_ps(r);
      float* d0 = dst + cb * ldd + rb;
      for (int u = 0; u < 8; ++u)  // the clamp is per element: the same before or after the lane permute
        _mm256_storeu_ps(d0 + u * ldd, k.on ? _mm256_min_ps(_mm256_max_ps(r[u], vlo), vhi) : r[u]);
    }
  if (c8 < c1) transpose_scalar(src, lds, dst, ldd, r0, r8, c8, c1, k);
  if (r8 < r1) transpose_scalar(src, lds, dst, ldd, r8, r1, c0, c1, k);
}
#endif

using TransposeFn = void (*)(const float*, int64_t, float*, int64_t, int64_t, int64_t, int64_t, int64_t, Clamp);
TransposeFn transpose_fn() {
#if defined(__x86_64__)
  if ((lb_cpu_features() & LB_CPU_AVX2) && lb_isa_active() != LB_ISA_SCALAR) return transpose_avx2;
#endif
  return transpose_scalar;
}

// im2col [K, OH*OW] of one image (K order: c, ky, kx, as the [O, C, kh, kw] weight flattens), for
// K rows [k0, k1); it is then transposed into the rows qlinear reads.
void im2col_rows(const OpParams& p, const float* x, float* col, int64_t k0, int64_t k1) {
  const int64_t H = p.i[kH], W = p.i[kW], OH = p.i[kOH], OW = p.i[kOW], kh = p.i[kKh], kw = p.i[kKw];
  const int64_t sh = p.i[kSh], sw = p.i[kSw], dh = p.i[kDh], dw = p.i[kDw], pt = p.i[kPt], pl = p.i[kPl];
  for (int64_t kk = k0; kk < k1; ++kk) {
    const int64_t ci = kk / (kh * kw), ky = (kk / kw) % kh, kx = kk % kw;
    float* dst = col + kk * OH * OW;
    const float* src = x + ci * H * W;
    // ox range whose input column is inside the image
    const int64_t xoff = kx * dw - pl;
    int64_t ox0 = xoff >= 0 ? 0 : (-xoff + sw - 1) / sw;
    int64_t ox1 = W - 1 - xoff < 0 ? 0 : std::min(OW, (W - 1 - xoff) / sw + 1);
    if (ox0 > ox1) ox0 = ox1;
    for (int64_t oy = 0; oy < OH; ++oy) {
      const int64_t iy = oy * sh - pt + ky * dh;
      float* d = dst + oy * OW;
      if (iy < 0 || iy >= H) {
        std::memset(d, 0, size_t(OW) * 4);
        continue;
      }
      const float* srow = src + iy * W + xoff;
      for (int64_t ox = 0; ox < ox0; ++ox) d[ox] = 0.f;
      if (sw == 1) std::memcpy(d + ox0, srow + ox0, size_t(ox1 - ox0) * 4);
      else
        for (int64_t ox = ox0; ox < ox1; ++ox) d[ox] = srow[ox * sw];
      for (int64_t ox = ox1; ox < OW; ++ox) d[ox] = 0.f;
    }
  }
}

// im2col of the output pixels [p0, p1) only: col[kk * (p1 - p0) + (pixel - p0)].
void im2col_tile(const OpParams& p, const float* x, float* col, int64_t p0, int64_t p1) {
  const int64_t H = p.i[kH], W = p.i[kW], OW = p.i[kOW], kh = p.i[kKh], kw = p.i[kKw], K = p.i[kK];
  const int64_t sh = p.i[kSh], sw = p.i[kSw], dh = p.i[kDh], dw = p.i[kDw], pt = p.i[kPt], pl = p.i[kPl];
  const int64_t T = p1 - p0;
  for (int64_t kk = 0; kk < K; ++kk) {
    const int64_t ci = kk / (kh * kw), ky = (kk / kw) % kh, kx = kk % kw;
    float* dst = col + kk * T;
    const float* src = x + ci * H * W;
    const int64_t xoff = kx * dw - pl;
    int64_t vx0 = xoff >= 0 ? 0 : (-xoff + sw - 1) / sw;  // ox with an input column inside the image
    const int64_t vx1 = W - 1 - xoff < 0 ? 0 : std::min(OW, (W - 1 - xoff) / sw + 1);
    if (vx0 > vx1) vx0 = vx1;
    for (int64_t pix = p0; pix < p1;) {
      const int64_t oy = pix / OW, oxa = pix % OW, oxb = std::min(OW, oxa + (p1 - pix));
      float* d = dst + (pix - p0) - oxa;  // d[ox] for ox in [oxa, oxb)
      const int64_t iy = oy * sh - pt + ky * dh;
      if (iy < 0 || iy >= H) {
        for (int64_t ox = oxa; ox < oxb; ++ox) d[ox] = 0.f;
      } else {
        const float* srow = src + iy * W + xoff;
        const int64_t a = std::max(oxa, vx0), b = std::max(a, std::min(oxb, vx1));
        for (int64_t ox = oxa; ox < a; ++ox) d[ox] = 0.f;
        if (sw == 1) std::memcpy(d + a, srow + a, size_t(b - a) * 4);
        else
          for (int64_t ox = a; ox < b; ++ox) d[ox] = srow[ox * sw];
        for (int64_t ox = b; ox < oxb; ++ox) d[ox] = 0.f;
      }
      pix += oxb - oxa;
    }
  }
}

lb_status qconv_infer(OpCtx& c) {
  lb_status st = qconv_geometry(c);
  if (st != LB_OK) return st;
  OpParams& p = *c.p;
  const Json& a = *c.attrs;
  const std::string mode = attr_str(a, "mode", "");
  const Tensor* w = c.in.size() > 1 ? c.in[1] : nullptr;
  const Tensor* b = c.in.size() > 2 ? c.in[2] : nullptr;
  const Tensor* mul = c.in.size() > 4 ? c.in[4] : nullptr;
  if (!w || !w->data) {
    c.err = "needs a constant weight";
    return LB_ERR_UNSUPPORTED;
  }
  const int64_t group = attr_int(a, "group", 1);
  if (mode == "gemm") {
    p.i[kMode] = 0;
    const int64_t n = attr_int(a, "n", 0), k = attr_int(a, "k", 0);
    if (w->dtype != DType::U8) {
      c.err = "gemm mode needs the packed u8 weight";
      return LB_ERR_UNSUPPORTED;
    }
    PackedWeight pw;
    st = packed_weight_init(static_cast<lb_wfmt>(attr_int(a, "wfmt", 0)), n, k, int32_t(attr_int(a, "group_k", 0)),
                            w->data, w->nbytes(), &pw);
    if (st != LB_OK) {
      c.err = std::string("packed weight does not match its format: ") + lb_last_error();
      return st;
    }
    new (&packed(p)) PackedWeight(pw);
    if (group != 1 || k != p.i[kC] * p.i[kKh] * p.i[kKw]) {
      c.err = "weight K=" + std::to_string(k) + " does not match input channels " + std::to_string(p.i[kC]) +
              " x kernel " + std::to_string(p.i[kKh]) + "x" + std::to_string(p.i[kKw]) + " (group 1)";
      return LB_ERR_SHAPE;
    }
    if (p.i[kAq] == AQ_STATIC && pw.fmt != LB_WFMT_Q8) {
      c.err = "static activations need int8 weights";
      return LB_ERR_UNSUPPORTED;
    }
    p.i[kO] = n;
    p.i[kK] = k;
    if (mul && (mul->dtype != DType::F32 || mul->numel() != k)) {
      c.err = "act_mul must be " + std::to_string(k) + " f32 values";
      return LB_ERR_SHAPE;
    }
    const int64_t ohw = p.i[kOH] * p.i[kOW];
    QLinearOpts o;
    o.act = p.i[kAq] == AQ_FLOAT ? LB_ACT_FLOAT : p.i[kAq] == AQ_DYNAMIC_BLOCK ? LB_ACT_DYNAMIC : LB_ACT_STATIC;
    o.act_scale = 1.f;
    const bool pointwise = p.i[kKh] == 1 && p.i[kKw] == 1 && p.i[kSh] == 1 && p.i[kSw] == 1 && !p.i[kPt] &&
                           !p.i[kPl] && !p.i[kPb] && !p.i[kPr];
    // Tiles of T output pixels, each done whole by one thread (im2col, transposition, a one-thread
    // qlinear, transposition back) while its pieces stay in cache; images with fewer than 4 tiles
    // go whole through qlinear on the session's pool instead.
    // T: a multiple of 48 (every GEMM kernel's row tile divides it), about 64 KiB of float rows.
    const int64_t T = std::min<int64_t>(528, std::max<int64_t>(48, (16384 / k) / 48 * 48));
    const int64_t rows = (ohw + T - 1) / T >= 4 ? T : ohw;
    p.i[kTile] = rows < ohw ? T : 0;
    p.i[kRows] = int64_t(al64(size_t(rows * k) * 4)) * (pointwise ? 1 : 2);  // rows (+ im2col)
    p.i[kYtmp] = int64_t(al64(size_t(rows * n) * 4));
    p.i[kQs] = int64_t(al64(qlinear_scratch_bytes(pw, rows, o)));
    c.scratch_bytes = size_t(p.i[kRows] + p.i[kYtmp] + p.i[kQs]) * (p.i[kTile] ? kMaxThreads : 1);
    c.flops = uint64_t(2) * p.i[kN] * n * ohw * k;
  } else if (mode == "depthwise") {
    p.i[kMode] = 1;
    const Tensor* ws = c.in.size() > 3 ? c.in[3] : nullptr;
    p.i[kO] = p.i[kC];
    if (w->dtype != DType::I8 || w->shape.size() != 2 || w->shape[0] != p.i[kC] ||
        w->shape[1] != p.i[kKh] * p.i[kKw] || group != p.i[kC]) {
      c.err = "depthwise weight must be i8 [C, kh*kw] = [" + std::to_string(p.i[kC]) + ", " +
              std::to_string(p.i[kKh] * p.i[kKw]) + "] with group == C, got " + shape_str(w->shape);
      return LB_ERR_SHAPE;
    }
    if (!ws || !ws->data || ws->dtype != DType::F32 || ws->numel() != p.i[kC]) {
      c.err = "depthwise needs constant f32 per-channel weight scales [C] as input 3";
      return LB_ERR_SHAPE;
    }
    if (p.i[kAq] != AQ_STATIC && p.i[kAq] != AQ_DYNAMIC_TENSOR) {
      c.err = "depthwise needs int8 activations (aq static or dynamic_tensor)";
      return LB_ERR_UNSUPPORTED;
    }
    if (mul && (mul->dtype != DType::F32 || mul->numel() != p.i[kC])) {
      c.err = "act_mul must be C f32 values";
      return LB_ERR_SHAPE;
    }
    c.scratch_bytes = dw_scratch_per_thread(p) * kMaxThreads;
    c.flops = uint64_t(2) * p.i[kN] * p.i[kC] * p.i[kOH] * p.i[kOW] * p.i[kKh] * p.i[kKw];
  } else {
    c.err = "unknown mode '" + mode + "' (gemm or depthwise)";
    return LB_ERR_UNSUPPORTED;
  }
  if (b && (b->dtype != DType::F32 || b->numel() != p.i[kO])) {
    c.err = "bias has " + std::to_string(b->numel()) + " values, expected " + std::to_string(p.i[kO]);
    return LB_ERR_SHAPE;
  }
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = {p.i[kN], p.i[kO], p.i[kOH], p.i[kOW]};
  return LB_OK;
}

void qconv_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const float* x = c.in[0]->f32();
  const float* b = c.in.size() > 2 && c.in[2] ? c.in[2]->f32() : nullptr;
  const float* mul = c.in.size() > 4 && c.in[4] ? c.in[4]->f32() : nullptr;
  float* y = c.out[0]->f32();
  const int64_t N = p.i[kN], C = p.i[kC], HW = p.i[kH] * p.i[kW];
  float sx = p.f[2];
  int32_t zero = int32_t(p.i[kAz]);
  if (p.i[kAq] == AQ_DYNAMIC_TENSOR) {  // one scale for the whole tensor, as ONNX QDQ computes it
    const float amax = tensor_amax(c, x, N, C, HW, mul, p.i[kMode] == 0 ? p.i[kKh] * p.i[kKw] : 1);
    sx = std::max(amax / 127.0f, 1e-12f);
    zero = 0;
  }
  if (p.i[kMode] == 1) {
    DwArgs A{x, static_cast<const int8_t*>(c.in[1]->data), c.in[3]->f32(), b, mul, y, sx, zero};
    QuantRowFn qf = quant_row_scalar;
    DwRowFn rf = dw_row_scalar;
    c.isa = "scalar";
#if defined(__x86_64__)
    if ((lb_cpu_features() & LB_CPU_AVX2) && lb_isa_active() != LB_ISA_SCALAR) {
      qf = quant_row_avx2;
      rf = dw_row_avx2;
      c.isa = "avx2";
    }
#endif
    const size_t per = dw_scratch_per_thread(p);
    char* base = static_cast<char*>(c.scratch);
    for_ranges(c, N * C, p.i[kOH] * p.i[kOW] * p.i[kKh] * p.i[kKw], [&](int tid, int64_t c0, int64_t c1) {
      dw_range(p, A, c0, c1, base + size_t(tid) * per, qf, rf);
    });
    return;
  }
  // gemm
  const int64_t O = p.i[kO], K = p.i[kK], OHW = p.i[kOH] * p.i[kOW];
  const bool pointwise = p.i[kKh] == 1 && p.i[kKw] == 1 && p.i[kSh] == 1 && p.i[kSw] == 1 && !p.i[kPt] &&
                         !p.i[kPl] && !p.i[kPb] && !p.i[kPr];
  char* s = static_cast<char*>(c.scratch);
  float* rows = reinterpret_cast<float*>(s);
  float* ytmp = reinterpret_cast<float*>(s + p.i[kRows]);
  void* qs = s + p.i[kRows] + p.i[kYtmp];
  QLinearOpts o;
  o.act = p.i[kAq] == AQ_FLOAT ? LB_ACT_FLOAT : p.i[kAq] == AQ_DYNAMIC_BLOCK ? LB_ACT_DYNAMIC : LB_ACT_STATIC;
  o.act_scale = sx;
  o.act_zero = zero;
  o.act_mul = mul;
  const TransposeFn tr = transpose_fn();
  Clamp clamp;  // Relu / Clip ride on the output transposition; other activations run after it
  if (p.i[kAct] == ACT_RELU) clamp = Clamp{true, 0.f, INFINITY};
  if (p.i[kAct] == ACT_CLIP) clamp = Clamp{true, p.f[0], p.f[1]};
  if (p.i[kAct] == ACT_NONE) clamp = Clamp{false, 0.f, 0.f};
  float* col = rows + al64(size_t(OHW * K) * 4) / 4;
  if (p.i[kTile]) {
    const int64_t T = p.i[kTile], tiles = (OHW + T - 1) / T;
    const size_t per = size_t(p.i[kRows] + p.i[kYtmp] + p.i[kQs]);
    QLinearInfo infos[kMaxThreads];
    std::atomic<int> failed{0};
    for (int64_t n = 0; n < N; ++n) {
      const float* xn = x + n * C * HW;
      float* yn = y + n * O * OHW;
      for_ranges(c, tiles, T * K * O / 8, [&](int tid, int64_t t0, int64_t t1) {
        char* base = static_cast<char*>(c.scratch) + size_t(tid) * per;
        float* trow = reinterpret_cast<float*>(base);
        float* tcol = trow + al64(size_t(T * K) * 4) / 4;
        float* ty = reinterpret_cast<float*>(base + p.i[kRows]);
        void* tq = base + p.i[kRows] + p.i[kYtmp];
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t p0 = t * T, p1 = std::min(OHW, p0 + T), m = p1 - p0;
          if (pointwise) {
            tr(xn + p0, HW, trow, K, 0, K, 0, m, Clamp());
          } else {
            im2col_tile(p, xn, tcol, p0, p1);
            tr(tcol, m, trow, K, 0, K, 0, m, Clamp());
          }
          if (qlinear(packed(p), trow, m, b, ty, o, nullptr, tq, size_t(p.i[kQs]), &infos[tid]) != LB_OK) {
            failed.store(1);
            return;
          }
          tr(ty, O, yn + p0, OHW, 0, m, 0, O, clamp);
          if (!clamp.on)
            for (int64_t oc = 0; oc < O; ++oc) apply_act(yn + oc * OHW + p0, m, p.i[kAct], p.f[0], p.f[1]);
        }
      });
    }
    if (failed.load()) {
      std::memset(y, 0, c.out[0]->nbytes());
      c.isa = "error";
      return;
    }
    for (const QLinearInfo& in : infos)
      if (in.kernel && in.kernel[0]) {
        c.isa = lb_isa_name(in.isa);
        break;
      }
    return;
  }
  for (int64_t n = 0; n < N; ++n) {
    const float* xn = x + n * C * HW;
    const float* src = xn;
    if (!pointwise) {  // im2col [K, OHW], then the same transposition as a 1x1 conv
      for_ranges(c, K, OHW, [&](int, int64_t k0, int64_t k1) { im2col_rows(p, xn, col, k0, k1); });
      src = col;
    }
    for_ranges(c, (OHW + 63) / 64, 64 * K, [&](int, int64_t b0, int64_t b1) {
      tr(src, OHW, rows, K, 0, K, std::min(OHW, b0 * 64), std::min(OHW, b1 * 64), Clamp());
    });
    QLinearInfo info;
    const lb_status st = qlinear(packed(p), rows, OHW, b, ytmp, o, c.pool, qs, size_t(p.i[kQs]), &info);
    if (st != LB_OK) {
      std::memset(y, 0, c.out[0]->nbytes());
      c.isa = "error";
      return;
    }
    c.isa = lb_isa_name(info.isa);
    float* yn = y + n * O * OHW;
    for_ranges(c, (O + 7) / 8, 8 * OHW, [&](int, int64_t b0, int64_t b1) {
      const int64_t o0 = std::min(O, b0 * 8), o1 = std::min(O, b1 * 8);
      tr(ytmp, O, yn, OHW, 0, OHW, o0, o1, clamp);
      if (!clamp.on)
        for (int64_t oc = o0; oc < o1; ++oc) apply_act(yn + oc * OHW, OHW, p.i[kAct], p.f[0], p.f[1]);
    });
  }
}

// ---- qdq_f32: x -> dequant(quant(x / smooth)) ----------------------------------------------
// params: i[0] aq, i[1] zero, i[2] C (axis-1 size), i[3] inner size; f[0] scale
lb_status qdq_infer(OpCtx& c) {
  const Tensor* x = c.in[0];
  OpParams& p = *c.p;
  if (x->dtype != DType::F32) {
    c.err = "expects an f32 input";
    return LB_ERR_UNSUPPORTED;
  }
  OpParams tmp;
  std::string err;
  if (!parse_aq(*c.attrs, tmp, &err) || (tmp.i[kAq] != AQ_STATIC && tmp.i[kAq] != AQ_DYNAMIC_TENSOR)) {
    c.err = err.empty() ? "qdq_f32 needs aq static or dynamic_tensor" : err;
    return LB_ERR_UNSUPPORTED;
  }
  p.i[0] = tmp.i[kAq];
  p.i[1] = tmp.i[kAz];
  p.f[0] = tmp.f[2];
  const Tensor* sm = c.in.size() > 1 ? c.in[1] : nullptr;
  p.i[2] = x->shape.size() >= 2 ? x->shape[1] : 1;
  p.i[3] = 1;
  for (size_t d = 2; d < x->shape.size(); ++d) p.i[3] *= x->shape[d];
  if (sm && (sm->dtype != DType::F32 || sm->numel() != p.i[2])) {
    c.err = "smoothing divisors must be " + std::to_string(p.i[2]) + " f32 values (axis 1)";
    return LB_ERR_SHAPE;
  }
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = x->shape;
  c.flops = uint64_t(x->numel()) * 4;
  return LB_OK;
}

void qdq_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const float* x = c.in[0]->f32();
  const float* sm = c.in.size() > 1 && c.in[1] ? c.in[1]->f32() : nullptr;
  float* y = c.out[0]->f32();
  const int64_t C = p.i[2], inner = p.i[3], rows = c.in[0]->numel() / std::max<int64_t>(1, inner);
  float scale = p.f[0];
  float zf = float(p.i[1]), qmin = -128.f;
  if (p.i[0] == AQ_DYNAMIC_TENSOR) {
    float part[kMaxThreads] = {0};
    for_ranges(c, rows, inner, [&](int tid, int64_t r0, int64_t r1) {
      float m = 0.f;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t i = 0; i < inner; ++i) {
          const float v = std::fabs(sm ? x[r * inner + i] / sm[r % C] : x[r * inner + i]);
          m = v > m ? v : m;
        }
      part[tid] = m > part[tid] ? m : part[tid];
    });
    float m = 0.f;
    for (float v : part) m = v > m ? v : m;
    scale = std::max(m / 127.0f, 1e-12f);
    zf = 0.f;
    qmin = -127.f;
  }
  const float inv = 1.0f / scale;
  for_ranges(c, rows, inner * 4, [&](int, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t i = 0; i < inner; ++i) {
        const float v = sm ? x[r * inner + i] / sm[r % C] : x[r * inner + i];
        float q = std::nearbyint(v * inv) + zf;
        q = q > qmin ? q : qmin;
        q = q < 127.f ? q : 127.f;
        y[r * inner + i] = (q - zf) * scale;
      }
  });
  c.isa = "scalar";
}

}  // namespace

void register_ops_qconv(std::vector<OpDef>& r) {
  r.push_back(OpDef{"qconv2d_f32", qconv_infer, qconv_run, false});
  r.push_back(OpDef{"qdq_f32", qdq_infer, qdq_run, false});
}

}  // namespace lb
