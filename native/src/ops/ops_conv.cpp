// Conv (2-D; 1x1 as a GEMM, depthwise direct, others im2col + GEMM) and ConvTranspose, with a
// fused activation ("act" attribute, set by the exporter when it folds Relu/Clip/... into Conv).
#pragma GCC optimize("O3")
#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include "conv_ocv.h"
#include "ops.h"
#include "transpose8.h"
#include "vmath.h"

namespace lb {
namespace {

// params: i[0..3] N C H W, i[4] O, i[5] kh, i[6] kw, i[7] sh, i[8] sw, i[9] dh, i[10] dw,
// i[11] pt, i[12] pl, i[13] pb, i[14] pr, i[15] group, i[16] OH, i[17] OW, i[18] act, i[19] mode
// (0 gemm1x1, 1 depthwise, 2 im2col, 3 direct; conv2d_pw_f32: 4), i[20] col bytes, i[21] / i[22] input /
// output in the blocked NCHW8c layout (attrs x_nchw8c / y_nchw8c, below), i[23] the NCHW depthwise kernels'
// output plane stride (0: OH * OW; conv2d_pwdw_f32's row strips write into the whole map), i[24] their input plane
// stride (0: H * W; conv2d_dwpw_f32's strips read rows of the whole map); f[0], f[1] act bounds.
enum { kN, kC, kH, kW, kO, kKh, kKw, kSh, kSw, kDh, kDw, kPt, kPl, kPb, kPr, kG, kOH, kOW, kAct, kMode, kCol, kXb, kYb,
       kYs, kXs };
inline int64_t dw_ys(const OpParams& p) { return p.i[kYs] ? p.i[kYs] : p.i[kOH] * p.i[kOW]; }
inline int64_t dw_xs(const OpParams& p) { return p.i[kXs] ? p.i[kXs] : p.i[kH] * p.i[kW]; }

// Blocked fp32 chains (exporters/lbpk_fpw.py, float_blocked_chains): a tensor between two ops that
// both take it blocked is stored NCHW8c, [N][C/8][H][W][8] (C a multiple of 8: the same bytes as
// NCHW), so a depthwise conv and the 1x1 convs around it (conv2d_pw_f32) skip their transposes. The
// attrs x_nchw8c / y_nchw8c (0/1) say which side of an op is blocked; only the depthwise conv2d_f32
// and conv2d_pw_f32 take them. Same sums as the NCHW kernels (bitwise equal on each ISA path).
lb_status parse_blocked(OpCtx& c, int64_t in_ch, int64_t out_ch, bool allowed) {
  OpParams& p = *c.p;
  p.i[kXb] = attr_int(*c.attrs, "x_nchw8c", 0);
  p.i[kYb] = attr_int(*c.attrs, "y_nchw8c", 0);
  if (!p.i[kXb] && !p.i[kYb]) return LB_OK;
  if (!allowed) {
    c.err = "x_nchw8c / y_nchw8c (blocked layout) is only supported on a depthwise conv2d_f32 or conv2d_pw_f32; "
            "re-export the package";
    return LB_ERR_UNSUPPORTED;
  }
  if ((p.i[kXb] && in_ch % 8) || (p.i[kYb] && out_ch % 8)) {
    c.err = "the blocked NCHW8c layout needs channels divisible by 8 (input " + std::to_string(in_ch) + ", output " +
            std::to_string(out_ch) + "); re-export the package";
    return LB_ERR_SHAPE;
  }
  return LB_OK;
}
// Index of (n, c, q) (q a pixel of a P-pixel map) in NCHW (blk false) or NCHW8c.
inline int64_t lay_idx(bool blk, int64_t C, int64_t P, int64_t n, int64_t ch, int64_t q) {
  return blk ? (n * C + ch / 8 * 8) * P + q * 8 + ch % 8 : (n * C + ch) * P + q;
}

lb_status conv_geometry(OpCtx& c, bool transpose) {
  const Tensor* x = c.in[0];
  const Tensor* w = c.in.size() > 1 ? c.in[1] : nullptr;
  if (!w || x->shape.size() != 4 || w->shape.size() != 4 || x->dtype != DType::F32 || w->dtype != DType::F32) {
    c.err = "expects a 4-D f32 input and a 4-D f32 weight";
    return LB_ERR_UNSUPPORTED;
  }
  OpParams& p = *c.p;
  const Json& a = *c.attrs;
  p.i[kN] = x->shape[0]; p.i[kC] = x->shape[1]; p.i[kH] = x->shape[2]; p.i[kW] = x->shape[3];
  p.i[kG] = attr_int(a, "group", 1);
  p.i[kKh] = w->shape[2]; p.i[kKw] = w->shape[3];
  p.i[kO] = transpose ? w->shape[1] * p.i[kG] : w->shape[0];
  if (!parse_conv_window(a, &p.i[kSh], &c.err)) return LB_ERR_SHAPE;
  const std::string ap = attr_str(a, "auto_pad", "NOTSET");
  const int64_t g = p.i[kG];
  if (g <= 0 || p.i[kC] % g || p.i[kO] % g || (!transpose && w->shape[1] * g != p.i[kC]) || (transpose && w->shape[0] != p.i[kC])) {
    c.err = "input channels " + std::to_string(p.i[kC]) + " do not match weight " + shape_str(w->shape) + " with group " + std::to_string(g);
    return LB_ERR_SHAPE;
  }
  const int64_t ekh = (p.i[kKh] - 1) * p.i[kDh] + 1, ekw = (p.i[kKw] - 1) * p.i[kDw] + 1;
  static_assert(kKw == kKh + 1 && kSh == kKw + 1 && kPr == kSh + 7 && kW == kH + 1 && kOW == kOH + 1, "window slots");
  if (!transpose) {
    if (!conv_output_hw(ap, &p.i[kH], &p.i[kKh], &p.i[kSh], &p.i[kOH], &c.err)) {
      c.err += " (input " + shape_str(x->shape) + ")";
      return LB_ERR_SHAPE;
    }
  } else {
    std::vector<int64_t> op;
    attr_ints(a, "output_padding", &op);
    const int64_t oph = op.size() == 2 ? op[0] : 0, opw = op.size() == 2 ? op[1] : 0;
    p.i[kOH] = (p.i[kH] - 1) * p.i[kSh] + ekh - p.i[kPt] - p.i[kPb] + oph;
    p.i[kOW] = (p.i[kW] - 1) * p.i[kSw] + ekw - p.i[kPl] - p.i[kPr] + opw;
  }
  if (p.i[kOH] <= 0 || p.i[kOW] <= 0) {
    c.err = "output would be empty for input " + shape_str(x->shape);
    return LB_ERR_SHAPE;
  }
  if (c.in.size() > 2 && c.in[2] && c.in[2]->numel() != p.i[kO]) {
    c.err = "bias has " + std::to_string(c.in[2]->numel()) + " values, expected " + std::to_string(p.i[kO]);
    return LB_ERR_SHAPE;
  }
  if (!parse_act(a, &p, kAct, 0)) {
    c.err = "unknown fused activation '" + attr_str(a, "act", "") + "'";
    return LB_ERR_UNSUPPORTED;
  }
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = {p.i[kN], p.i[kO], p.i[kOH], p.i[kOW]};
  return LB_OK;
}

size_t dw_scratch_floats(const OpParams& p);
size_t direct_scratch_bytes(const OpParams& p, int64_t threads);
size_t dwb_scratch_floats(const OpParams& p);
bool dwb_fits(const OpParams& p);

lb_status conv_infer(OpCtx& c) {
  lb_status s = conv_geometry(c, false);
  if (s != LB_OK) return s;
  OpParams& p = *c.p;
  const int64_t g = p.i[kG], cg = p.i[kC] / g;
  const bool pw = p.i[kKh] == 1 && p.i[kKw] == 1 && p.i[kSh] == 1 && p.i[kSw] == 1 && !p.i[kPt] && !p.i[kPl] && !p.i[kPb] && !p.i[kPr];
  if (g == p.i[kC] && g == p.i[kO]) p.i[kMode] = 1;
  else if (pw && g == 1) p.i[kMode] = 0;
  else if (direct_scratch_bytes(p, op_threads(c)) <= (size_t(64) << 20)) p.i[kMode] = 3;  // direct (padded input copy)
  else p.i[kMode] = 2;
  const int64_t kdim = cg * p.i[kKh] * p.i[kKw];
  p.i[kCol] = 0;  // im2col is gathered panel by panel inside the GEMM (no column buffer)
  c.scratch_bytes = size_t(p.i[kCol]) + gemm_scratch_per_thread() * op_threads(c);
  if (p.i[kMode] == 1)
    c.scratch_bytes = (std::max(dw_scratch_floats(p), dwb_scratch_floats(p)) * sizeof(float) + 63) / 64 * 64 * op_threads(c);
  s = parse_blocked(c, p.i[kC], p.i[kO], p.i[kMode] == 1);
  if (s != LB_OK) return s;
  if ((p.i[kXb] || p.i[kYb]) && !dwb_fits(p)) {
    c.err = "a blocked (NCHW8c) depthwise conv needs rows of at most ~2500 padded pixels and at most 64 taps";
    return LB_ERR_UNSUPPORTED;
  }
  if (p.i[kMode] == 3) c.scratch_bytes = direct_scratch_bytes(p, op_threads(c));
  c.flops = uint64_t(2) * p.i[kN] * p.i[kO] * p.i[kOH] * p.i[kOW] * kdim;
  return LB_OK;
}

// Depthwise: each channel is copied once into a zero-padded buffer split into `sw` column phases,
// so every tap of every output row reads a contiguous run (stride 1 and 2 alike), then a register
// tile of 8 outputs accumulates all kh*kw taps before one store.
struct DwGeom {
  int64_t PH, PWp, OWp, phases;  // padded rows, padded row length per phase, OW rounded to 8, sw
};

DwGeom dw_geom(const OpParams& p) {
  DwGeom g;
  g.phases = p.i[kSw];
  g.PH = p.i[kH] + p.i[kPt] + p.i[kPb];
  const int64_t pw = p.i[kW] + p.i[kPl] + p.i[kPr];
  g.OWp = (p.i[kOW] + 7) / 8 * 8;
  g.PWp = (pw + g.phases - 1) / g.phases + g.OWp - p.i[kOW] + 16;
  return g;
}

size_t dw_scratch_floats(const OpParams& p) {
  const DwGeom g = dw_geom(p);
  return size_t(g.phases * g.PH * g.PWp + g.OWp + 16);
}

inline __attribute__((always_inline)) void dw_fill(const OpParams& p, const DwGeom& g, const float* in, float* buf) {
  const int64_t H = p.i[kH], W = p.i[kW], pt = p.i[kPt], pl = p.i[kPl], sw = g.phases;
  std::memset(buf, 0, size_t(g.phases * g.PH * g.PWp) * sizeof(float));
  for (int64_t y = 0; y < H; ++y) {
    const float* src = in + y * W;
    if (sw == 1) {
      std::memcpy(buf + (y + pt) * g.PWp + pl, src, size_t(W) * sizeof(float));
    } else if (sw == 2) {  // even columns to one phase, odd to the other (4 + 4 per step)
      float* de = buf + ((pl % 2) * g.PH + y + pt) * g.PWp + pl / 2;
      float* dd = buf + (((pl + 1) % 2) * g.PH + y + pt) * g.PWp + (pl + 1) / 2;
      int64_t x = 0;
#if defined(__x86_64__)
      for (; x + 8 <= W; x += 8) {
        const __m128 a = _mm_loadu_ps(src + x), b = _mm_loadu_ps(src + x + 4);
        _mm_storeu_ps(de + x / 2, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
        _mm_storeu_ps(dd + x / 2, _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
      }
#endif
      for (; x < W; ++x) (x % 2 ? dd : de)[x / 2] = src[x];
    } else {
      for (int64_t ph = 0; ph < sw; ++ph) {  // padded column xp = x + pl lands in phase xp % sw
        int64_t x = ((ph - pl) % sw + sw) % sw;
        float* d = buf + (ph * g.PH + y + pt) * g.PWp + (x + pl) / sw;
        for (; x < W; x += sw) *d++ = src[x];
      }
    }
  }
}

// The per-channel loop both depthwise paths share: fill the padded buffer, then rows(...) writes
// output row oy of the channel from it.
template <class RowFn>
inline __attribute__((always_inline)) void dw_channels(const OpParams& p, const float* x, float* y, int64_t c0,
                                                       int64_t c1, float* buf, RowFn rows) {
  const DwGeom g = dw_geom(p);
  const int64_t C = p.i[kC], HW = dw_xs(p), OH = p.i[kOH], OW = p.i[kOW];
  float* acc = buf + g.phases * g.PH * g.PWp;
  for (int64_t nc = c0; nc < c1; ++nc) {
    dw_fill(p, g, x + nc * HW, buf);
    for (int64_t oy = 0; oy < OH; ++oy) rows(g, nc % C, oy, y + nc * dw_ys(p) + oy * OW, acc);
  }
}

// Start of the tap (ky, kx) of output row oy in the padded buffer.
inline const float* dw_tap(const OpParams& p, const DwGeom& g, const float* buf, int64_t oy, int64_t ky, int64_t kx) {
  const int64_t off = kx * p.i[kDw];
  return buf + ((off % g.phases) * g.PH + oy * p.i[kSh] + ky * p.i[kDh]) * g.PWp + off / g.phases;
}

void dw_range_portable(const OpParams& p, const float* x, const float* w, const float* b, float* y, int64_t c0,
                       int64_t c1, float* buf) {
  const int64_t OW = p.i[kOW], kh = p.i[kKh], kw = p.i[kKw];
  dw_channels(p, x, y, c0, c1, buf, [&](const DwGeom& g, int64_t ch, int64_t oy, float* o, float* acc) {
    const float* wc = w + ch * kh * kw;
    const float bias = b ? b[ch] : 0.f;
    for (int64_t ox = 0; ox < g.OWp; ++ox) acc[ox] = bias;
    for (int64_t ky = 0; ky < kh; ++ky)
      for (int64_t kx = 0; kx < kw; ++kx) {
        const float* src = dw_tap(p, g, buf, oy, ky, kx);
        const float wv = wc[ky * kw + kx];
        for (int64_t ox = 0; ox < g.OWp; ++ox) acc[ox] += wv * src[ox];
      }
    std::memcpy(o, acc, size_t(OW) * sizeof(float));
    apply_act(o, OW, p.i[kAct], p.f[0], p.f[1]);
  });
}

// Portable depthwise with a blocked (NCHW8c) input and/or output (channels [c0, c1) of all images):
// per output, bias then the taps inside the map in order (padding adds nothing).
void dw_blocked_portable(const OpParams& p, const float* x, const float* w, const float* b, float* y, int64_t c0,
                         int64_t c1) {
  const int64_t C = p.i[kC], H = p.i[kH], W = p.i[kW], OH = p.i[kOH], OW = p.i[kOW], kh = p.i[kKh], kw = p.i[kKw];
  const bool xbl = p.i[kXb] != 0, ybl = p.i[kYb] != 0;
  for (int64_t nc = c0; nc < c1; ++nc) {
    const int64_t n = nc / C, ch = nc % C;
    const float* wc = w + ch * kh * kw;
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox) {
        float acc = b ? b[ch] : 0.f;
        for (int64_t ky = 0; ky < kh; ++ky) {
          const int64_t iy = oy * p.i[kSh] - p.i[kPt] + ky * p.i[kDh];
          if (iy < 0 || iy >= H) continue;
          for (int64_t kx = 0; kx < kw; ++kx) {
            const int64_t ix = ox * p.i[kSw] - p.i[kPl] + kx * p.i[kDw];
            if (ix >= 0 && ix < W) acc += wc[ky * kw + kx] * x[lay_idx(xbl, C, H * W, n, ch, iy * W + ix)];
          }
        }
        float* o = y + lay_idx(ybl, C, OH * OW, n, ch, oy * OW + ox);
        *o = acc;
        apply_act(o, 1, p.i[kAct], p.f[0], p.f[1]);
      }
  }
}

#if defined(__x86_64__)
// AVX2: 4 vectors (32 outputs) per step, every tap's weight broadcast once per row, Relu/Clip
// applied in registers; the same per-output sum order as the portable path (taps in order).
__attribute__((target("avx2,fma"))) void dw_range_avx2(const OpParams& p, const float* x, const float* w,
                                                        const float* b, float* y, int64_t c0, int64_t c1, float* buf) {
  const int64_t OW = p.i[kOW], kh = p.i[kKh], kw = p.i[kKw], taps = kh * kw;
  const int64_t act = p.i[kAct];
  const bool in_reg = act == ACT_NONE || act == ACT_RELU || act == ACT_CLIP, clamp = act != ACT_NONE;
  const __m256 lo = _mm256_set1_ps(act == ACT_RELU ? 0.f : act == ACT_CLIP ? p.f[0] : -HUGE_VALF);
  const __m256 hi = _mm256_set1_ps(act == ACT_CLIP ? p.f[1] : HUGE_VALF);
  const float* tap[64];
  int64_t tap_off[64];  // tap start relative to the output row's first padded row (same for every row)
  __m256 wv[64];
  const bool small = taps <= 64;
  int64_t wch = -1;  // channel whose weights are in wv
  if (small) {
    const DwGeom g0 = dw_geom(p);
    for (int64_t ky = 0; ky < kh; ++ky)
      for (int64_t kx = 0; kx < kw; ++kx) tap_off[ky * kw + kx] = dw_tap(p, g0, buf, 0, ky, kx) - buf;
  }
  auto row = [&](const DwGeom& g, int64_t ch, int64_t oy, float* o, float* acc) __attribute__((target("avx2,fma"))) {
    const float* wc = w + ch * kh * kw;
    const __m256 bias = _mm256_set1_ps(b ? b[ch] : 0.f);
    if (small) {
      const float* base = buf + oy * p.i[kSh] * g.PWp;
      for (int64_t t = 0; t < taps; ++t) tap[t] = base + tap_off[t];
      if (ch != wch) {
        for (int64_t t = 0; t < taps; ++t) wv[t] = _mm256_set1_ps(wc[t]);
        wch = ch;
      }
    }
    float* dst = in_reg ? o : acc;
    int64_t ox = 0;
    if (small) {
      for (; ox + 32 <= OW; ox += 32) {
        __m256 a0 = bias, a1 = bias, a2 = bias, a3 = bias;
        for (int64_t t = 0; t < taps; ++t) {
          const float* s = tap[t] + ox;
          a0 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(s), a0);
          a1 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(s + 8), a1);
          a2 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(s + 16), a2);
          a3 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(s + 24), a3);
        }
        if (clamp && in_reg) {
          a0 = _mm256_min_ps(_mm256_max_ps(a0, lo), hi); a1 = _mm256_min_ps(_mm256_max_ps(a1, lo), hi);
          a2 = _mm256_min_ps(_mm256_max_ps(a2, lo), hi); a3 = _mm256_min_ps(_mm256_max_ps(a3, lo), hi);
        }
        _mm256_storeu_ps(dst + ox, a0); _mm256_storeu_ps(dst + ox + 8, a1);
        _mm256_storeu_ps(dst + ox + 16, a2); _mm256_storeu_ps(dst + ox + 24, a3);
      }
    }
    for (; ox < g.OWp; ox += 8) {
      __m256 a = bias;
      if (small) {
        for (int64_t t = 0; t < taps; ++t) a = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(tap[t] + ox), a);
      } else {
        for (int64_t ky = 0; ky < kh; ++ky)
          for (int64_t kx = 0; kx < kw; ++kx)
            a = _mm256_fmadd_ps(_mm256_set1_ps(wc[ky * kw + kx]), _mm256_loadu_ps(dw_tap(p, g, buf, oy, ky, kx) + ox), a);
      }
      if (clamp && in_reg) a = _mm256_min_ps(_mm256_max_ps(a, lo), hi);
      if (ox + 8 <= OW) {
        _mm256_storeu_ps(dst + ox, a);
      } else {
        _mm256_storeu_ps(acc + ox, a);
        if (dst != acc) std::memcpy(dst + ox, acc + ox, size_t(OW - ox) * sizeof(float));
      }
    }
    if (!in_reg) {
      std::memcpy(o, acc, size_t(OW) * sizeof(float));
      apply_act(o, OW, act, p.f[0], p.f[1]);
    }
  };
  dw_channels(p, x, y, c0, c1, buf, row);
}
#endif

#if defined(__x86_64__)
// 3x3 stride-1 depthwise on wide maps (AVX2), NCHW in place of the channel-blocked kernel's
// transposes: each channel copied into its padded buffer (dw_fill), the 9 weights held in registers,
// 6 vectors (48 outputs) of a row per step, every FMA reading its input from the padded rows.
// Same per-output order (bias, then the taps in order): bitwise equal to the other AVX2 paths.
__attribute__((target("avx2,fma"))) void dw3_range_avx2(const OpParams& p, const float* x, const float* w,
                                                         const float* b, float* y, int64_t c0, int64_t c1, float* buf) {
  const int64_t OW = p.i[kOW], act = p.i[kAct];
  const float lo = p.f[0], hi = p.f[1];
  dw_channels(p, x, y, c0, c1, buf, [&](const DwGeom& g, int64_t ch, int64_t oy, float* o, float* acc)
                                        __attribute__((target("avx2,fma"))) {
    const float* wc = w + ch * 9;
    const __m256 w0 = _mm256_set1_ps(wc[0]), w1 = _mm256_set1_ps(wc[1]), w2 = _mm256_set1_ps(wc[2]);
    const __m256 w3 = _mm256_set1_ps(wc[3]), w4 = _mm256_set1_ps(wc[4]), w5 = _mm256_set1_ps(wc[5]);
    const __m256 w6 = _mm256_set1_ps(wc[6]), w7 = _mm256_set1_ps(wc[7]), w8 = _mm256_set1_ps(wc[8]);
    const __m256 bias = _mm256_set1_ps(b ? b[ch] : 0.f);
    const float* r0 = buf + oy * g.PWp;
    const float* r1 = r0 + g.PWp;
    const float* r2 = r1 + g.PWp;
    auto vec = [&](int64_t ox) __attribute__((target("avx2,fma"), always_inline)) {
      __m256 a = bias;
      a = _mm256_fmadd_ps(w0, _mm256_loadu_ps(r0 + ox), a);
      a = _mm256_fmadd_ps(w1, _mm256_loadu_ps(r0 + ox + 1), a);
      a = _mm256_fmadd_ps(w2, _mm256_loadu_ps(r0 + ox + 2), a);
      a = _mm256_fmadd_ps(w3, _mm256_loadu_ps(r1 + ox), a);
      a = _mm256_fmadd_ps(w4, _mm256_loadu_ps(r1 + ox + 1), a);
      a = _mm256_fmadd_ps(w5, _mm256_loadu_ps(r1 + ox + 2), a);
      a = _mm256_fmadd_ps(w6, _mm256_loadu_ps(r2 + ox), a);
      a = _mm256_fmadd_ps(w7, _mm256_loadu_ps(r2 + ox + 1), a);
      a = _mm256_fmadd_ps(w8, _mm256_loadu_ps(r2 + ox + 2), a);
      return act == ACT_SIGMOID ? a : vmath::act8(a, act, lo, hi);
    };
    int64_t ox = 0;
    for (; ox + 48 <= OW; ox += 48) {
      __m256 v[6];
#pragma GCC unroll 6
      for (int j = 0; j < 6; ++j) v[j] = vec(ox + 8 * j);
#pragma GCC unroll 6
      for (int j = 0; j < 6; ++j) _mm256_storeu_ps(o + ox + 8 * j, v[j]);
    }
    for (; ox + 8 <= OW; ox += 8) _mm256_storeu_ps(o + ox, vec(ox));
    if (ox < OW && OW >= 8) {
      _mm256_storeu_ps(o + OW - 8, vec(OW - 8));  // overlaps the previous vector: the same values
    } else if (ox < OW) {
      _mm256_storeu_ps(acc, vec(ox));
      std::memcpy(o + ox, acc, size_t(OW - ox) * sizeof(float));
    }
    if (act == ACT_SIGMOID) apply_act(o, OW, act, lo, hi);
  });
}
#endif

struct Dws2Geom {
  int64_t PWh;  // floats per phase row (the ring holds kh rows of two phases)
};
Dws2Geom dws2_geom(const OpParams& p) {
  return Dws2Geom{(p.i[kW] + p.i[kPl] + p.i[kPr] + 1) / 2 + 16};
}
#if defined(__x86_64__)
// Stride-2 depthwise on wide rows (AVX2), NCHW, no whole-plane copy: each padded input row of the
// channel is split once into its even and odd columns (two 8-float deinterleaves per 16 inputs)
// into a ring of kh row pairs (in L1), so tap (ky, kx) of output row oy reads a contiguous run of
// phase kx % 2 of padded row 2 oy + ky from column kx / 2. Four output vectors per step (positions
// 0, 8, ..., and an overlapping OW - 8). Bias, then the taps in order: bitwise equal to the other
// AVX2 paths. (The channel-blocked kernel's 8x8 transposes of a wide map's whole input cost more.)
// Padded row r of a channel plane into its phases E (even padded columns) and O (odd ones).
__attribute__((target("avx2,fma"))) inline void dws2_row(const OpParams& p, const Dws2Geom& g, const float* plane,
                                                         int64_t r, float* E, float* O) {
  const int64_t W = p.i[kW], pl = p.i[kPl], yy = r - p.i[kPt];
  std::memset(E, 0, size_t(2 * g.PWh) * sizeof(float));  // E and O are adjacent
  if (yy < 0 || yy >= p.i[kH]) return;
  const float* src = plane + yy * W;
  float* de = (pl % 2 ? O : E) + pl / 2;        // input column x even
  float* dd = (pl % 2 ? E : O) + (pl + 1) / 2;  // input column x odd
  int64_t x = 0;
  for (; x + 16 <= W; x += 16) {
    const __m256 a = _mm256_loadu_ps(src + x), b = _mm256_loadu_ps(src + x + 8);
    const __m256 ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    const __m256 od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
    _mm256_storeu_ps(de + x / 2, ev);
    _mm256_storeu_ps(dd + x / 2, od);
  }
  if (x < W) {  // the last < 16 inputs by masked loads: the lanes past W are zeros (right padding)
    alignas(32) static const int32_t kLanes[24] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                                    0, 0, 0, 0, 0, 0, 0, 0};
    const int64_t n = W - x;
    const __m256i m0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLanes + 16 - std::min<int64_t>(n, 8)));
    const __m256i m1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLanes + 16 - std::max<int64_t>(n - 8, 0)));
    const __m256 a = _mm256_maskload_ps(src + x, m0), b = _mm256_maskload_ps(src + x + 8, m1);
    _mm256_storeu_ps(de + x / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8)));
    _mm256_storeu_ps(dd + x / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8)));
  }
}
// Four output vectors of one row at column positions q[0..3] (repeats allowed: the same values are
// stored twice); taps KH x KW read from the phase rows (row ky: even phase at rows[ky], odd at
// rows[ky] + PWh).
template <int KH, int KW>
__attribute__((target("avx2,fma"), always_inline)) inline void dws2_quad(const float* const* rows, int64_t PWh,
                                                                        const float* wc, __m256 bias, const int64_t* q,
                                                                        int64_t act, float lo, float hi, float* o) {
  __m256 a0 = bias, a1 = bias, a2 = bias, a3 = bias;
#pragma GCC unroll 5
  for (int ky = 0; ky < KH; ++ky) {
#pragma GCC unroll 5
    for (int kx = 0; kx < KW; ++kx) {
      const float* s = rows[ky] + (kx % 2) * PWh + kx / 2;
      const __m256 wv = _mm256_broadcast_ss(wc + ky * KW + kx);
      a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s + q[0]), a0);
      a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s + q[1]), a1);
      a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s + q[2]), a2);
      a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s + q[3]), a3);
    }
  }
  if (act != ACT_SIGMOID) {
    a0 = vmath::act8(a0, act, lo, hi); a1 = vmath::act8(a1, act, lo, hi);
    a2 = vmath::act8(a2, act, lo, hi); a3 = vmath::act8(a3, act, lo, hi);
  }
  _mm256_storeu_ps(o + q[0], a0); _mm256_storeu_ps(o + q[1], a1);
  _mm256_storeu_ps(o + q[2], a2); _mm256_storeu_ps(o + q[3], a3);
}
template <int KH, int KW>
__attribute__((target("avx2,fma"))) void dws2_range_avx2(const OpParams& p, const float* x, const float* w,
                                                          const float* b, float* y, int64_t c0, int64_t c1, float* buf) {
  const Dws2Geom g = dws2_geom(p);
  const int64_t C = p.i[kC], HW = dw_xs(p), OH = p.i[kOH], OW = p.i[kOW], act = p.i[kAct];
  const float lo = p.f[0], hi = p.f[1];
  // vector positions of a row: 0, 8, ..., and OW - 8 when OW is not a multiple of 8, padded to a
  // multiple of 4 by repeating the last
  int64_t q[64];
  int64_t nq = 0;
  for (int64_t ox = 0; ox < OW; ox += 8) q[nq++] = std::min(ox, OW - 8);
  while (nq % 4) q[nq] = q[nq - 1], ++nq;
  const float* rows[KH];
  for (int64_t nc = c0; nc < c1; ++nc) {
    const int64_t ch = nc % C;
    const float* plane = x + nc * HW;
    const float* wc = w + ch * KH * KW;
    float* o = y + nc * dw_ys(p);
    const __m256 bias = _mm256_set1_ps(b ? b[ch] : 0.f);
    int64_t filled = 0;  // padded rows [0, filled) split so far
    for (int64_t oy = 0; oy < OH; ++oy, o += OW) {
      for (; filled < 2 * oy + KH; ++filled) {
        float* E = buf + (filled % KH) * 2 * g.PWh;
        dws2_row(p, g, plane, filled, E, E + g.PWh);
      }
      for (int ky = 0; ky < KH; ++ky) rows[ky] = buf + ((2 * oy + ky) % KH) * 2 * g.PWh;
      for (int64_t i = 0; i < nq; i += 4) dws2_quad<KH, KW>(rows, g.PWh, wc, bias, q + i, act, lo, hi, o);
      if (act == ACT_SIGMOID) apply_act(o, OW, act, lo, hi);
    }
  }
}

// AVX-512 path (lb_isa_active() == LB_ISA_AVX512VNNI; AVX-512F/VL are part of it), session 10.
#define LB_Z512 __attribute__((target("avx2,fma,avx512f,avx512vl,avx512dq,avx512bw")))
// vmath::act8 on 16 lanes: the same float operations. max / min through their all-lanes maskz forms (the
// plain intrinsics pass an undefined vector that GCC 12 reports as -Wmaybe-uninitialized).
#define LB_MAX16(a, b) _mm512_maskz_max_ps(__mmask16(0xFFFF), a, b)
#define LB_MIN16(a, b) _mm512_maskz_min_ps(__mmask16(0xFFFF), a, b)
LB_Z512 inline __m512 act16(__m512 v, int64_t act, float lo, float hi) {
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.f);
  switch (act) {
    case ACT_RELU: return LB_MAX16(v, zero);
    case ACT_CLIP: return LB_MIN16(LB_MAX16(v, _mm512_set1_ps(lo)), _mm512_set1_ps(hi));
    case ACT_HARDSIGMOID:
      return LB_MIN16(LB_MAX16(_mm512_fmadd_ps(_mm512_set1_ps(lo), v, _mm512_set1_ps(hi)), zero), one);
    case ACT_HARDSWISH: {
      const __m512 t = _mm512_add_ps(_mm512_div_ps(v, _mm512_set1_ps(6.f)), _mm512_set1_ps(0.5f));
      return _mm512_mul_ps(v, LB_MIN16(LB_MAX16(t, zero), one));
    }
    case ACT_HARDSWISH_AFFINE: {
      const __m512 t = _mm512_add_ps(_mm512_div_ps(v, _mm512_set1_ps(6.f)), _mm512_set1_ps(0.5f));
      const __m512 h = _mm512_mul_ps(v, LB_MIN16(LB_MAX16(t, zero), one));
      return _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(lo), h), _mm512_set1_ps(hi));
    }
    default: return v;
  }
}
#undef LB_MAX16
#undef LB_MIN16
inline bool use_avx512() {
  static const uint64_t need = LB_CPU_AVX512F | LB_CPU_AVX512VL | LB_CPU_AVX512DQ | LB_CPU_AVX512BW;
  return (lb_cpu_features() & need) == need && lb_isa_active() == LB_ISA_AVX512VNNI;
}

// dw3_range_avx2 on 16-output vectors, two output rows at a time (session 10): 4 vector positions
// per row (0, 16, ..., an overlapping OW - 16; OW >= 16) x 2 rows (an odd last row: the last pair
// overlaps the previous one) = 8 FMA chains (a row's 3-4 chains
// alone were bound by the FMA latency), each loaded input vector feeding both rows (4 input rows,
// 48 loads per 72 FMAs). The padded plane's border is zeroed once per call (the inner copy never
// writes it). The same per-output sums (bias, then the taps in order): bitwise equal to dw3_range_avx2.
// NJ vector positions (i, i + 1, ...; the last one OW - 16) of the two output rows: 2 NJ FMA chains.
template <int NJ>
LB_Z512 __attribute__((always_inline)) inline void dw3_group512(const float* const* r, int64_t i, int64_t nvec,
                                                                int64_t OW, const __m512* wv, __m512 bias,
                                                                int64_t act, float lo, float hi, float* o0,
                                                                float* o1, bool two) {
  int64_t q[NJ];
#pragma GCC unroll 4
  for (int j = 0; j < NJ; ++j) q[j] = std::min(std::min(i + j, nvec - 1) * 16, OW - 16);
  __m512 a[NJ], c[NJ];
#pragma GCC unroll 4
  for (int j = 0; j < NJ; ++j) a[j] = c[j] = bias;
#pragma GCC unroll 4
  for (int ry = 0; ry < 4; ++ry)
#pragma GCC unroll 3
    for (int kx = 0; kx < 3; ++kx)
#pragma GCC unroll 4
      for (int j = 0; j < NJ; ++j) {
        const __m512 v = _mm512_loadu_ps(r[ry] + q[j] + kx);
        if (ry < 3) a[j] = _mm512_fmadd_ps(wv[ry * 3 + kx], v, a[j]);
        if (ry > 0) c[j] = _mm512_fmadd_ps(wv[(ry - 1) * 3 + kx], v, c[j]);
      }
  if (act != ACT_SIGMOID)
#pragma GCC unroll 4
    for (int j = 0; j < NJ; ++j) a[j] = act16(a[j], act, lo, hi), c[j] = act16(c[j], act, lo, hi);
#pragma GCC unroll 4
  for (int j = 0; j < NJ; ++j) _mm512_storeu_ps(o0 + q[j], a[j]);
  if (two)
#pragma GCC unroll 4
    for (int j = 0; j < NJ; ++j) _mm512_storeu_ps(o1 + q[j], c[j]);
}
LB_Z512 void dw3_range_avx512(const OpParams& p, const float* x, const float* w, const float* b, float* y, int64_t c0,
                              int64_t c1, float* buf) {
  const DwGeom g = dw_geom(p);
  const int64_t C = p.i[kC], H = p.i[kH], W = p.i[kW], HW = dw_xs(p), OH = p.i[kOH], OW = p.i[kOW], act = p.i[kAct];
  const int64_t pt = p.i[kPt], pl = p.i[kPl], PWp = g.PWp;
  const float lo = p.f[0], hi = p.f[1];
  std::memset(buf, 0, size_t(g.PH * PWp) * sizeof(float));
  // vector positions of a row: 0, 16, ..., an overlapping OW - 16, in groups of 4 and a last group of 1-3;
  // computed per group, so any OW works (a fixed array of 40 overflowed past OW = 640)
  const int64_t nvec = (OW + 15) / 16;
  const __mmask16 tail = __mmask16((1u << (W % 16)) - 1);
  for (int64_t nc = c0; nc < c1; ++nc) {
    const float* in = x + nc * HW;
    for (int64_t yy = 0; yy < H; ++yy) {  // the inner rows of the padded plane
      const float* src = in + yy * W;
      float* dst = buf + (yy + pt) * PWp + pl;
      int64_t i = 0;
      for (; i + 16 <= W; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
      if (i < W) _mm512_mask_storeu_ps(dst + i, tail, _mm512_maskz_loadu_ps(tail, src + i));
    }
    const int64_t ch = nc % C;
    const float* wc = w + ch * 9;
    __m512 wv[9];
#pragma GCC unroll 9
    for (int t = 0; t < 9; ++t) wv[t] = _mm512_set1_ps(wc[t]);
    const __m512 bias = _mm512_set1_ps(b ? b[ch] : 0.f);
    float* yc = y + nc * dw_ys(p);
    const bool two = OH >= 2;
    for (int64_t oy0 = 0; oy0 < OH; oy0 += 2) {
      const int64_t oy = two ? std::min(oy0, OH - 2) : 0;  // odd OH: the last pair overlaps the previous one
      const float* r[4] = {buf + oy * PWp, buf + (oy + 1) * PWp, buf + (oy + 2) * PWp,
                           two ? buf + (oy + 3) * PWp : buf + (oy + 2) * PWp};
      float* o0 = yc + oy * OW;
      float* o1 = o0 + OW;
      int64_t i = 0;
      for (; i + 4 <= nvec; i += 4) dw3_group512<4>(r, i, nvec, OW, wv, bias, act, lo, hi, o0, o1, two);
      // the last 1-3 vector positions (session 11: were padded to 4 by repeating the last, 1/8 of the FMAs of
      // a 112-wide row wasted; in-process A/B, 32x112x112, chrt, load 2-3: -25 us in two runs)
      switch (nvec - i) {
        case 3: dw3_group512<3>(r, i, nvec, OW, wv, bias, act, lo, hi, o0, o1, two); break;
        case 2: dw3_group512<2>(r, i, nvec, OW, wv, bias, act, lo, hi, o0, o1, two); break;
        case 1: dw3_group512<1>(r, i, nvec, OW, wv, bias, act, lo, hi, o0, o1, two); break;
        default: break;
      }
      if (act == ACT_SIGMOID) {
        apply_act(o0, OW, act, lo, hi);
        if (two) apply_act(o1, OW, act, lo, hi);
      }
    }
  }
}

// dws2_row with 16-float vectors: 32 inputs per step split by two permutes, the last < 32 by
// masked (zeroing) loads; the phases' left padding and up to 16 floats after each phase's last input
// are zeroed by vector stores instead of a memset of both rows (PWh has 16 floats of slack).
LB_Z512 inline void dws2_row512(const OpParams& p, const Dws2Geom& g, const float* plane, int64_t r, float* E,
                                float* O) {
  const int64_t W = p.i[kW], pl = p.i[kPl], yy = r - p.i[kPt];
  const __m512 zero = _mm512_setzero_ps();
  if (yy < 0 || yy >= p.i[kH]) {
    int64_t i = 0;
    for (; i + 16 <= 2 * g.PWh; i += 16) _mm512_storeu_ps(E + i, zero);  // E and O are adjacent
    if (i < 2 * g.PWh) _mm512_mask_storeu_ps(E + i, __mmask16((1u << (2 * g.PWh - i)) - 1), zero);
    return;
  }
  _mm512_storeu_ps(E, zero);
  _mm512_storeu_ps(O, zero);
  const float* src = plane + yy * W;
  float* de = (pl % 2 ? O : E) + pl / 2;        // input column x even
  float* dd = (pl % 2 ? E : O) + (pl + 1) / 2;  // input column x odd
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  int64_t x = 0;
  for (; x + 32 <= W; x += 32) {
    const __m512 a = _mm512_loadu_ps(src + x), b = _mm512_loadu_ps(src + x + 16);
    _mm512_storeu_ps(de + x / 2, _mm512_permutex2var_ps(a, ie, b));
    _mm512_storeu_ps(dd + x / 2, _mm512_permutex2var_ps(a, io, b));
  }
  if (x < W) {  // lanes past W load as zeros (the right padding)
    const int64_t n = W - x;
    const __m512 a = _mm512_maskz_loadu_ps(__mmask16((1u << std::min<int64_t>(n, 16)) - 1), src + x);
    const __m512 b = _mm512_maskz_loadu_ps(__mmask16((1u << std::max<int64_t>(n - 16, 0)) - 1), src + x + 16);
    _mm512_storeu_ps(de + x / 2, _mm512_permutex2var_ps(a, ie, b));
    _mm512_storeu_ps(dd + x / 2, _mm512_permutex2var_ps(a, io, b));
  }
  // the right padding: up to 16 zeros after each phase's last input (taps read at most kw / 2 + 1 past it)
  const int64_t ie0 = pl / 2 + (W + 1) / 2, io0 = (pl + 1) / 2 + W / 2;
  _mm512_mask_storeu_ps((pl % 2 ? O : E) + ie0, __mmask16((1u << std::min<int64_t>(16, g.PWh - ie0)) - 1), zero);
  _mm512_mask_storeu_ps((pl % 2 ? E : O) + io0, __mmask16((1u << std::min<int64_t>(16, g.PWh - io0)) - 1), zero);
}
// dws2_quad on 16-float vectors, NJ (4 or 1) positions q[0..NJ).
template <int KH, int KW, int NJ = 4>
LB_Z512 __attribute__((always_inline)) inline void dws2_quad512(const float* const* rows, int64_t PWh, const float* wc,
                                                                __m512 bias, const int64_t* q, int64_t act, float lo,
                                                                float hi, float* o) {
  __m512 a[NJ];
#pragma GCC unroll 4
  for (int j = 0; j < NJ; ++j) a[j] = bias;
#pragma GCC unroll 5
  for (int ky = 0; ky < KH; ++ky) {
#pragma GCC unroll 5
    for (int kx = 0; kx < KW; ++kx) {
      const float* s = rows[ky] + (kx % 2) * PWh + kx / 2;
      const __m512 wv = _mm512_set1_ps(wc[ky * KW + kx]);
#pragma GCC unroll 4
      for (int j = 0; j < NJ; ++j) a[j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(s + q[j]), a[j]);
    }
  }
  if (act != ACT_SIGMOID)
#pragma GCC unroll 4
    for (int j = 0; j < NJ; ++j) a[j] = act16(a[j], act, lo, hi);
#pragma GCC unroll 4
  for (int j = 0; j < NJ; ++j) _mm512_storeu_ps(o + q[j], a[j]);
}
// Two output rows (oy, oy + 1) at NJ positions: the KH + 2 phase rows 2 oy .. 2 oy + KH + 1 each loaded once per
// (kx, position) and used by both rows (rows[r], r < KH: tap (r, kx) of row oy; r >= 2: tap (r - 2, kx) of row
// oy + 1), 2 NJ FMA chains (a quad has NJ), (KH + 2) / (2 KH) loads per FMA instead of 1. Per output the taps still
// come in order (ky, then kx): bitwise equal to dws2_quad512.
template <int KH, int KW, int NJ>
LB_Z512 __attribute__((always_inline)) inline void dws2_pair512(const float* const* rows, int64_t PWh, const float* wc,
                                                                __m512 bias, const int64_t* q, int64_t act, float lo,
                                                                float hi, float* o0, float* o1) {
  __m512 a[NJ], c[NJ];
#pragma GCC unroll 4
  for (int j = 0; j < NJ; ++j) a[j] = c[j] = bias;
#pragma GCC unroll 7
  for (int r = 0; r < KH + 2; ++r) {
#pragma GCC unroll 5
    for (int kx = 0; kx < KW; ++kx) {
      const float* s = rows[r] + (kx % 2) * PWh + kx / 2;
      const __m512 wa = _mm512_set1_ps(wc[(r < KH ? r : 0) * KW + kx]);
      const __m512 wb = _mm512_set1_ps(wc[(r >= 2 ? r - 2 : 0) * KW + kx]);
#pragma GCC unroll 4
      for (int j = 0; j < NJ; ++j) {
        const __m512 v = _mm512_loadu_ps(s + q[j]);
        if (r < KH) a[j] = _mm512_fmadd_ps(wa, v, a[j]);
        if (r >= 2) c[j] = _mm512_fmadd_ps(wb, v, c[j]);
      }
    }
  }
  if (act != ACT_SIGMOID)
#pragma GCC unroll 4
    for (int j = 0; j < NJ; ++j) a[j] = act16(a[j], act, lo, hi), c[j] = act16(c[j], act, lo, hi);
#pragma GCC unroll 4
  for (int j = 0; j < NJ; ++j) _mm512_storeu_ps(o0 + q[j], a[j]), _mm512_storeu_ps(o1 + q[j], c[j]);
}
// Vector positions of a row of OW >= 16 outputs (0, 16, ..., an overlapping OW - 16) into q; returns how many.
// Full quads; a last 2 or 3 positions run as a quad repeating the last (4 FMA chains: in-process A/B on det's
// 32x160x320 s2, 10 = 4 + 4 + 2 positions, the group of 2 was 10 us slower), a last single one alone (det's
// 48x80x160 s2, 5 = 4 + 1: 134 -> 113 us; the quad computed it four times).
inline int64_t dws2_positions512(int64_t OW, int64_t* q) {
  int64_t nq = 0;
  for (int64_t ox = 0; ox < OW; ox += 16) q[nq++] = std::min(ox, OW - 16);
  if (nq % 4 >= 2)
    while (nq % 4) q[nq] = q[nq - 1], ++nq;
  return nq;
}
// Output row o (and o + OW when two) from the phase rows (rows[0 .. KH + 1] for two rows, KH for one).
template <int KH, int KW>
LB_Z512 __attribute__((always_inline)) inline void dws2_rows512(const float* const* rows, int64_t PWh, const float* wc,
                                                                __m512 bias, const int64_t* q, int64_t nq, int64_t act,
                                                                float lo, float hi, float* o, int64_t OW, bool two) {
  const int64_t n4 = nq / 4 * 4;
  if (two) {
    for (int64_t i = 0; i < n4; i += 4) dws2_pair512<KH, KW, 4>(rows, PWh, wc, bias, q + i, act, lo, hi, o, o + OW);
    if (nq > n4) dws2_pair512<KH, KW, 1>(rows, PWh, wc, bias, q + n4, act, lo, hi, o, o + OW);
  } else {
    for (int64_t i = 0; i < n4; i += 4) dws2_quad512<KH, KW>(rows, PWh, wc, bias, q + i, act, lo, hi, o);
    if (nq > n4) dws2_quad512<KH, KW, 1>(rows, PWh, wc, bias, q + n4, act, lo, hi, o);
  }
  if (act == ACT_SIGMOID) {
    apply_act(o, OW, act, lo, hi);
    if (two) apply_act(o + OW, OW, act, lo, hi);
  }
}
// dws2_range_avx2 with 16-output vectors (positions 0, 16, ..., and an overlapping OW - 16; OW >= 16), two output
// rows at a time (dws2_pair512; a ring of KH + 2 phase-row pairs): the same per-output sums (bias, then the taps
// in order), bitwise equal to it.
template <int KH, int KW>
LB_Z512 void dws2_range_avx512(const OpParams& p, const float* x, const float* w, const float* b, float* y, int64_t c0,
                               int64_t c1, float* buf) {
  const Dws2Geom g = dws2_geom(p);
  const int64_t C = p.i[kC], HW = dw_xs(p), OH = p.i[kOH], OW = p.i[kOW], act = p.i[kAct];
  const float lo = p.f[0], hi = p.f[1];
  int64_t q[32];
  const int64_t nq = dws2_positions512(OW, q);
  constexpr int kRing = KH + 2;
  const float* rows[kRing];
  for (int64_t nc = c0; nc < c1; ++nc) {
    const int64_t ch = nc % C;
    const float* plane = x + nc * HW;
    const float* wc = w + ch * KH * KW;
    float* yc = y + nc * dw_ys(p);
    const __m512 bias = _mm512_set1_ps(b ? b[ch] : 0.f);
    int64_t filled = 0;
    for (int64_t oy = 0; oy < OH; oy += 2) {
      const bool two = oy + 1 < OH;  // an odd last row runs alone
      for (; filled < 2 * oy + KH + (two ? 2 : 0); ++filled) {
        float* E = buf + (filled % kRing) * 2 * g.PWh;
        dws2_row512(p, g, plane, filled, E, E + g.PWh);
      }
      for (int r = 0; r < kRing; ++r) rows[r] = buf + ((2 * oy + r) % kRing) * 2 * g.PWh;
      dws2_rows512<KH, KW>(rows, g.PWh, wc, bias, q, nq, act, lo, hi, yc + oy * OW, OW, two);
    }
  }
}
#endif
// 3x3 or 5x5, stride 2, no dilation, rows of at least kDws2MinOW outputs: dws2_range_avx2 (A/B
// against the channel-blocked kernel, op time, load 4-6: rows of 160 / 80 / 56 outputs 0.85-0.90x of
// its time, 40 1.0-1.1x, 28 (5x5) 1.3x, 14 1.6x).
constexpr int64_t kDws2MinOW = 48;
[[maybe_unused]] bool dws2_wide(const OpParams& p) {
  return p.i[kSh] == 2 && p.i[kSw] == 2 && p.i[kDh] == 1 && p.i[kDw] == 1 && p.i[kKh] == p.i[kKw] &&
         (p.i[kKh] == 3 || p.i[kKh] == 5) && p.i[kOW] >= kDws2MinOW && p.i[kOW] <= 256 &&
         2 * dws2_geom(p).PWh * (p.i[kKh] + 2) <= int64_t(dw_scratch_floats(p));  // the AVX-512 ring: KH + 2 rows
}

// Channel-blocked depthwise (AVX2): 8 channels per vector. Each block of 8 channels is copied
// (8x8 transposes) into a zero-padded buffer of 8-float pixels, P[PH][PW][8]; an output row is
// computed J <= 8 pixels at a time, all taps accumulated in registers (each tap's 8 channel
// weights loaded once per J pixels), then the J x 8 tile is transposed back into the 8 NCHW
// planes. Same per-output order as the other paths (bias, then the taps in order), so it is
// bitwise equal to dw_range_avx2. Larger maps run in strips of S output rows whose padded input
// rows (SR of them, from padded row r0) fit in ~160 KB (L2); 56x56 and smaller maps are one strip.
struct DwBlockGeom {
  int64_t PH, PW, S, SR, r0;  // padded rows / columns, output rows per strip, buffer rows, first padded row held
};
constexpr int64_t kDwbBytes = 160 << 10;
DwBlockGeom dwb_geom(const OpParams& p) {
  DwBlockGeom g;
  g.PH = p.i[kH] + p.i[kPt] + p.i[kPb];
  g.PW = p.i[kW] + p.i[kPl] + p.i[kPr];
  const int64_t ekh = (p.i[kKh] - 1) * p.i[kDh] + 1;
  const int64_t rows = std::max(ekh, int64_t(kDwbBytes / 4 - p.i[kKh] * p.i[kKw] * 8 - 72) / (g.PW * 8));
  g.S = std::min(p.i[kOH], (rows - ekh) / p.i[kSh] + 1);
  g.SR = std::min(g.PH, (g.S - 1) * p.i[kSh] + ekh);
  g.r0 = 0;
  return g;
}
size_t dwb_scratch_floats(const OpParams& p) {
  const DwBlockGeom g = dwb_geom(p);
  return size_t(g.SR * g.PW * 8 + p.i[kKh] * p.i[kKw] * 8 + 8 + 64);
}
// 3x3, stride 1, no dilation, rows of at least kDw3MinOW outputs: dw3_range_avx2 (A/B against the
// channel-blocked kernel, op time: 160-wide maps 0.90x of its time, 112-wide 0.80-1.0x, 56 and less 1.05-1.1x,
// on the Zen 3 VM). The AVX-512 path (dw3_range_avx512, 16 lanes) from 48 (session 10, Zen 4: EfficientNet's
// 144 x 56 x 56 ran 0.238 ms with dw3_range_avx2 vs 0.267 channel-blocked).
constexpr int64_t kDw3MinOW = 100, kDw3MinOW512 = 48;
[[maybe_unused]] bool dw3_wide(const OpParams& p, bool avx512 = false) {
  return p.i[kKh] == 3 && p.i[kKw] == 3 && p.i[kSh] == 1 && p.i[kSw] == 1 && p.i[kDh] == 1 && p.i[kDw] == 1 &&
         p.i[kOW] >= (avx512 ? kDw3MinOW512 : kDw3MinOW);
}
[[maybe_unused]] bool dwb_fits(const OpParams& p) {  // one strip row set in the budget; taps in registers
  return dwb_scratch_floats(p) * sizeof(float) <= size_t(kDwbBytes) && p.i[kKh] * p.i[kKw] <= 64;
}

#if defined(__x86_64__)
// Padded rows [r0, r1) of a buffer of 8-float pixels P[r1 - r0][PW][8] (pt rows / pl columns of padding
// before the map): border rows and columns zeroed, inner(d, yy) writes input row yy's W pixels at d.
// pads_zeroed: the buffer's padding is already zero (a one-strip map: zeroed once per call, since the
// inner pixels never reach it), only the inner pixels are written.
template <class Inner>
__attribute__((always_inline)) inline void fill_padded_rows(int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t r0,
                                                            int64_t r1, int64_t PW, float* P, Inner inner,
                                                            bool pads_zeroed = false) {
  for (int64_t r = r0; r < r1; ++r) {
    float* prow = P + (r - r0) * PW * 8;
    const int64_t yy = r - pt;
    if (yy < 0 || yy >= H) {
      if (!pads_zeroed) std::memset(prow, 0, size_t(PW * 8) * sizeof(float));
      continue;
    }
    if (!pads_zeroed) {
      std::memset(prow, 0, size_t(pl * 8) * sizeof(float));
      std::memset(prow + (pl + W) * 8, 0, size_t((PW - pl - W) * 8) * sizeof(float));
    }
    inner(prow + pl * 8, yy);
  }
}

// fill_padded_rows for one block of nc <= 8 channels (planes xin + c*H*W; missing channels 0): inner
// pixels by 8x8 transposes (a row's last 8 pixels overlap the previous step; rows shorter than 8 read
// with a lane mask).
__attribute__((target("avx2,fma"))) void fill_block8(const float* xin, int64_t nc, int64_t H, int64_t W, int64_t pt,
                                                      int64_t pl, int64_t r0, int64_t r1, int64_t PW, float* P,
                                                      bool pads_zeroed) {
  const int64_t HW = H * W;
  alignas(32) static const int32_t kLanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLanes + 8 - std::min<int64_t>(W, 8)));
  fill_padded_rows(H, W, pt, pl, r0, r1, PW, P, [&](float* row, int64_t yy) __attribute__((target("avx2,fma"))) {
    const float* src = xin + yy * W;
    for (int64_t xs = 0; xs < W; xs += 8) {
      const int64_t xx = W >= 8 ? std::min(xs, W - 8) : 0;
      __m256 v[8];
#pragma GCC unroll 8
      for (int u = 0; u < 8; ++u)
        v[u] = u >= nc ? _mm256_setzero_ps() : W >= 8 ? _mm256_loadu_ps(src + u * HW + xx)
                                                       : _mm256_maskload_ps(src + u * HW, mask);
      transpose8x8_ps(v);
      float* d = row + xx * 8;
      const int64_t np = std::min<int64_t>(W, 8);
      for (int64_t u = 0; u < np; ++u) _mm256_storeu_ps(d + 8 * u, v[u]);
    }
  }, pads_zeroed);
}

// fill_block8 for a blocked (NCHW8c) input: block plane xb [H][W][8]; inner rows are plain copies
// (vector moves, not a memcpy call per row: 7x7 / 14x14 rows are 7-14 vectors).
__attribute__((target("avx2,fma"))) void fill_block8b(const float* xb, int64_t H, int64_t W, int64_t pt, int64_t pl,
                                                       int64_t r0, int64_t r1, int64_t PW, float* P, bool pads_zeroed) {
  fill_padded_rows(H, W, pt, pl, r0, r1, PW, P, [&](float* row, int64_t yy) __attribute__((target("avx2,fma"))) {
    const float* src = xb + yy * W * 8;
    for (int64_t u = 0; u < W; ++u) _mm256_storeu_ps(row + u * 8, _mm256_loadu_ps(src + u * 8));
  }, pads_zeroed);
}

// 8 output pixels of one channel block, given the padded-buffer position of each (px[j]: pixel j's
// top-left tap; the pixels may lie on different output rows): bias, then every tap in order
// (toff[t] floats from px[j]), the activation in registers, then (tr) the 8 x 8 tile transposed so
// that acc[c] holds channel c's 8 pixels; without tr acc[j] is pixel j's 8 channels (NCHW8c).
__attribute__((target("avx2,fma"), always_inline)) inline void dwb_tile(const float* const* px, const int64_t* toff,
                                                                       int64_t taps, const float* wb, __m256 bias,
                                                                       int64_t act, float lo, float hi, __m256* acc,
                                                                       bool tr) {
  const float *p0 = px[0], *p1 = px[1], *p2 = px[2], *p3 = px[3], *p4 = px[4], *p5 = px[5], *p6 = px[6], *p7 = px[7];
  __m256 a0 = bias, a1 = bias, a2 = bias, a3 = bias, a4 = bias, a5 = bias, a6 = bias, a7 = bias;
  for (int64_t t = 0; t < taps; ++t) {
    const __m256 wv = _mm256_loadu_ps(wb + t * 8);
    const int64_t o = toff[t];
    a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p0 + o), a0);
    a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p1 + o), a1);
    a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p2 + o), a2);
    a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p3 + o), a3);
    a4 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p4 + o), a4);
    a5 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p5 + o), a5);
    a6 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p6 + o), a6);
    a7 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p7 + o), a7);
  }
  acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3; acc[4] = a4; acc[5] = a5; acc[6] = a6; acc[7] = a7;
  if (act != ACT_NONE && act != ACT_SIGMOID)
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) acc[j] = vmath::act8(acc[j], act, lo, hi);
  if (tr) transpose8x8_ps(acc);
}

// AVX-512 path of the channel-blocked depthwise with a blocked output (session 11): J consecutive
// output pixels of one row per tile (J = 14 or 7 accumulators; EVEX has 32 registers), and per kernel
// row ky each padded input pixel of the row loaded once and used for every (output, tap) pair that
// reads it: S (J - 1) + KW loads per KW * J FMAs instead of one load per FMA (dwb_tile was bound by its
// loads: 9 per 8 FMAs), the KW weights of the row in registers. Per output the taps still come in
// order (ky, then kx as the input column grows): bias, then every tap in order, bitwise equal to
// dwb_tile. `in` is the float offset from `base` of the tile's first input pixel (row oy * sh - pt, column
// ox0 * S - pl; negative at the top-left edge, so it is added only to loads inside the map) in a buffer of
// rows of PW 8-float pixels, o the output pixel. Edge tiles (session 15), so that a blocked input can
// be read in place: only the kernel rows [ky0, ky1) lie inside the map (the others read a zero row), and
// the row's first L and last R input pixels are outside it (zero vectors); the same FMAs as on a
// zero-padded buffer, so the same bits.
alignas(64) const float kDwbZeroRow[256] = {};  // >= the widest row of taps (5 wide, stride 2, J 14: 31 pixels)
template <int KW, int S, int J, int L, int R>
LB_Z512 __attribute__((noinline)) void dwb_row512(const float* base, int64_t in, int64_t PW, int64_t KH, int64_t ky0,
                                                  int64_t ky1, const float* wb, __m256 bias, int64_t act, float lo,
                                                  float hi, float* o) {
  __m256 acc[J];
#pragma GCC unroll 16
  for (int j = 0; j < J; ++j) acc[j] = bias;
  constexpr int NC = S * (J - 1) + KW;  // input pixels of a row of taps
  static_assert(NC * 8 <= 256, "kDwbZeroRow");
  for (int64_t ky = 0; ky < KH; ++ky) {
    // the row's offset stays an integer until it is added to a load in the map (L / R keep its ends out)
    const bool inside = ky >= ky0 && ky < ky1;
    const float* rb = inside ? base : kDwbZeroRow;
    const int64_t ro = inside ? in + ky * PW * 8 : 0;
    __m256 wv[KW];
#pragma GCC unroll 5
    for (int kx = 0; kx < KW; ++kx) wv[kx] = _mm256_loadu_ps(wb + (ky * KW + kx) * 8);
#pragma GCC unroll 40
    for (int c = 0; c < NC; ++c) {
      const __m256 v = c < L || c >= NC - R ? _mm256_setzero_ps() : _mm256_loadu_ps(rb + (ro + c * 8));
#pragma GCC unroll 5
      for (int kx = 0; kx < KW; ++kx) {
        const int d = c - kx;
        if (d >= 0 && d % S == 0 && d / S < J) acc[d / S] = _mm256_fmadd_ps(wv[kx], v, acc[d / S]);
      }
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < J; ++j) {
    if (act != ACT_NONE && act != ACT_SIGMOID) acc[j] = vmath::act8(acc[j], act, lo, hi);
    _mm256_storeu_ps(o + j * 8, acc[j]);
  }
  if (act == ACT_SIGMOID) apply_act(o, J * 8, act, lo, hi);
}
using DwbRowFn = void (*)(const float*, int64_t, int64_t, int64_t, int64_t, int64_t, const float*, __m256, int64_t, float,
                          float, float*);
struct DwbRow512 {
  DwbRowFn fn[3][3] = {};  // [L][R]: the tile with L / R pixels of its row of taps left / right of the map
  int64_t J = 0, NC = 0;   // outputs per tile; input pixels per row of taps
};
template <int KW, int S, int J>
DwbRow512 dwb_row512_pick() {
  DwbRow512 r;
  r.fn[0][0] = dwb_row512<KW, S, J, 0, 0>; r.fn[0][1] = dwb_row512<KW, S, J, 0, 1>; r.fn[0][2] = dwb_row512<KW, S, J, 0, 2>;
  r.fn[1][0] = dwb_row512<KW, S, J, 1, 0>; r.fn[1][1] = dwb_row512<KW, S, J, 1, 1>; r.fn[1][2] = dwb_row512<KW, S, J, 1, 2>;
  r.fn[2][0] = dwb_row512<KW, S, J, 2, 0>; r.fn[2][1] = dwb_row512<KW, S, J, 2, 1>; r.fn[2][2] = dwb_row512<KW, S, J, 2, 2>;
  r.J = J; r.NC = S * (J - 1) + KW;
  return r;
}
// The row tiles for p (fn[0][0] == nullptr: none): blocked output, no dilation, 3x3 or 5x5 (any KH for the
// rows), stride 1 or 2 across, rows of >= 7 outputs (tiles of 14, or 7 below 14; a row's last tile
// overlaps the one before when J does not divide OW: the same values stored twice).
DwbRow512 dwb_row512_fn(const OpParams& p) {
  if (!use_avx512() || !p.i[kYb] || p.i[kDh] != 1 || p.i[kDw] != 1 || p.i[kOW] < 7) return {};
  const int64_t kw = p.i[kKw], sw = p.i[kSw];
  const bool j14 = p.i[kOW] >= 14;
  if (kw == 3 && sw == 1) return j14 ? dwb_row512_pick<3, 1, 14>() : dwb_row512_pick<3, 1, 7>();
  if (kw == 3 && sw == 2) return j14 ? dwb_row512_pick<3, 2, 14>() : dwb_row512_pick<3, 2, 7>();
  if (kw == 5 && sw == 1) return j14 ? dwb_row512_pick<5, 1, 14>() : dwb_row512_pick<5, 1, 7>();
  if (kw == 5 && sw == 2) return j14 ? dwb_row512_pick<5, 2, 14>() : dwb_row512_pick<5, 2, 7>();
  return {};
}

// Channel blocks [b0, b1) (block = (n, 8 channels)). The output pixels of a strip are taken 8 at a
// time in flat (row-major) order, across row ends, so every store is a full 8-pixel vector of a
// channel plane; the strip's last step overlaps the previous one (the same values), a strip of
// fewer than 8 pixels stores with a lane mask. A blocked input (kXb) is read in place by the AVX-512
// row tiles (edge tiles for the padding, session 15), else copied row by row into the padded buffer; a
// blocked output (kYb) stores the untransposed tile, pixel j's 8 channels at a time.
__attribute__((target("avx2,fma"))) void dwb_range_avx2(const OpParams& p, const float* x, const float* w,
                                                         const float* b, float* y, int64_t b0, int64_t b1, float* buf) {
  const DwBlockGeom g = dwb_geom(p);
  const int64_t C = p.i[kC], H = p.i[kH], W = p.i[kW], OH = p.i[kOH], OW = p.i[kOW], taps = p.i[kKh] * p.i[kKw];
  const int64_t kw = p.i[kKw], sh = p.i[kSh], sw = p.i[kSw];
  const int64_t pt = p.i[kPt], pl = p.i[kPl], HW = H * W, OHW = OH * OW, blocks = (C + 7) / 8;
  const int64_t act = p.i[kAct];
  const bool xbl = p.i[kXb] != 0, ybl = p.i[kYb] != 0;
  // A blocked input on a one-strip map: the buffer's padding is zeroed once per call, and each block
  // copies only its inner rows (session 10: the per-row memsets / memcpy calls were ~15% of the 7x7
  // depthwise ops). The NCHW input keeps its per-row zeroing (measured faster, 144 x 56 x 56 s2 5x5).
  const bool one_strip = xbl && g.S >= OH;
  float* P = buf;
  float* wb = buf + g.SR * g.PW * 8;  // [taps][8]
  int64_t toff[64];
  for (int64_t t = 0; t < taps; ++t) toff[t] = ((t / kw) * p.i[kDh] * g.PW + (t % kw) * p.i[kDw]) * 8;
  alignas(32) static const int32_t kLanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  alignas(32) float bias8[8];
  const DwbRow512 row512 = dwb_row512_fn(p);
  const int64_t J512 = row512.J;
  // the edge tiles take up to 2 pixels outside the map on each side (3x3 and 5x5 "same" padding): L at
  // most pl (first tile), R at most the last tile's
  const bool in_place = row512.fn[0][0] && xbl && pl <= 2 && (OW - J512) * sw - pl + row512.NC - W <= 2;
  for (int64_t blk = b0; blk < b1; ++blk) {
    const int64_t n = blk / blocks, c0 = (blk % blocks) * 8, nc = std::min<int64_t>(8, C - c0);
    const float* xin = x + (n * C + c0) * HW;
    // weights [taps][8] and bias of the block (missing channels: 0); 8 taps x 8 channels per transpose
    int64_t t0 = 0;
    if (nc == 8 && taps >= 8) {
      for (int64_t ts = 0; ts < taps; ts += 8) {
        t0 = std::min(ts, taps - 8);
        __m256 v[8];
        for (int c = 0; c < 8; ++c) v[c] = _mm256_loadu_ps(w + (c0 + c) * taps + t0);
        transpose8x8_ps(v);
        for (int u = 0; u < 8; ++u) _mm256_storeu_ps(wb + (t0 + u) * 8, v[u]);
      }
      t0 = taps;
    }
    for (int64_t t = t0; t < taps; ++t)
      for (int64_t c = 0; c < 8; ++c) wb[t * 8 + c] = c < nc ? w[(c0 + c) * taps + t] : 0.f;
    for (int64_t c = 0; c < 8; ++c) bias8[c] = b && c < nc ? b[c0 + c] : 0.f;
    const __m256 bias = _mm256_load_ps(bias8);
    float* yout = y + (n * C + c0) * OHW;
    if (in_place) {  // AVX-512 rows on a blocked input, read in place: edge tiles for the padding
      const int64_t KH = p.i[kKh];
      for (int64_t oy = 0; oy < OH; ++oy) {
        const int64_t iy0 = oy * sh - pt, ky0 = std::max<int64_t>(0, -iy0), ky1 = std::min(KH, H - iy0);
        for (int64_t xs = 0; xs < OW; xs += J512) {
          const int64_t ox = std::min(xs, OW - J512), ix0 = ox * sw - pl;
          const int64_t L = std::max<int64_t>(0, -ix0), R = std::max<int64_t>(0, ix0 + row512.NC - W);
          row512.fn[L][R](xin, (iy0 * W + ix0) * 8, W, KH, ky0, ky1, wb, bias, act, p.f[0], p.f[1],
                          yout + (oy * OW + ox) * 8);
        }
      }
      continue;
    }
    if (one_strip && blk == b0) std::memset(P, 0, size_t(g.SR * g.PW * 8) * sizeof(float));  // the padding, once
    for (int64_t oy0 = 0; oy0 < OH; oy0 += g.S) {
      const int64_t oy1 = std::min(OH, oy0 + g.S), r0 = oy0 * sh;
      if (xbl) fill_block8b(xin, H, W, pt, pl, r0, std::min(g.PH, r0 + g.SR), g.PW, P, one_strip);
      else fill_block8(xin, nc, H, W, pt, pl, r0, std::min(g.PH, r0 + g.SR), g.PW, P, one_strip);
      if (row512.fn[0][0]) {  // AVX-512 rows (blocked output)
        for (int64_t oy = oy0; oy < oy1; ++oy)
          for (int64_t xs = 0; xs < OW; xs += J512) {
            const int64_t ox = std::min(xs, OW - J512);
            row512.fn[0][0](P, ((oy * sh - r0) * g.PW + ox * sw) * 8, g.PW, p.i[kKh], 0, p.i[kKh], wb, bias, act,
                            p.f[0], p.f[1], yout + (oy * OW + ox) * 8);
          }
        continue;
      }
      const int64_t q1 = oy1 * OW, qn = q1 - oy0 * OW;
      for (int64_t qs = oy0 * OW; qs < q1; qs += 8) {
        const int64_t q = qn >= 8 ? std::min(qs, q1 - 8) : qs;
        const float* px[8];
        int64_t oy = q / OW, ox = q % OW;
        for (int j = 0; j < 8; ++j) {  // pixels past the strip (qn < 8) read its first pixel; not stored
          px[j] = q + j < q1 ? P + ((oy * sh - r0) * g.PW + ox * sw) * 8 : P;
          if (++ox == OW) ox = 0, ++oy;
        }
        __m256 acc[8];
        if (ybl) {
          dwb_tile(px, toff, taps, wb, bias, act, p.f[0], p.f[1], acc, false);
          const int64_t ns = std::min<int64_t>(qn, 8);
          float* o = yout + q * 8;
#pragma GCC unroll 8
          for (int j = 0; j < 8; ++j)
            if (j < ns) _mm256_storeu_ps(o + j * 8, acc[j]);
          if (act == ACT_SIGMOID) apply_act(o, ns * 8, act, p.f[0], p.f[1]);
          continue;
        }
        dwb_tile(px, toff, taps, wb, bias, act, p.f[0], p.f[1], acc, true);
        float* o = yout + q;
        if (qn >= 8) {
          for (int64_t c = 0; c < nc; ++c) _mm256_storeu_ps(o + c * OHW, acc[c]);
        } else {
          const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLanes + 8 - qn));
          for (int64_t c = 0; c < nc; ++c) _mm256_maskstore_ps(o + c * OHW, m, acc[c]);
        }
        if (act == ACT_SIGMOID)
          for (int64_t c = 0; c < nc; ++c) apply_act(o + c * OHW, std::min<int64_t>(qn, 8), act, p.f[0], p.f[1]);
      }
    }
  }
}
#endif

// Direct convolution (group convs that are neither 1x1 stride-1 nor depthwise): the input is
// copied once into a zero-padded buffer split into `sw` column phases (as for depthwise), so for
// an output row oy and 16 neighbouring output columns, row k = (ci, ky, kx) of the im2col matrix
// is 16 contiguous floats of that buffer at base(oy, ox0) + off[k]. The GEMM tile reads them in
// place: no im2col gather, no packing. C[o, pixel] = bias[o] + sum_k W[o, k] * B[k, pixel], k in
// order (the same sum as the im2col GEMM). Output tiles are (row, 16 columns) x all O; a row's
// last tile may be partial (its extra lanes read the next row's data and are not stored).
struct DirectGeom {
  int64_t PH, PWp, phases, plane;  // padded rows, padded row length per phase, sw, floats per channel
  int64_t tiles_x;                 // 16-column tiles per output row
};

DirectGeom direct_geom(const OpParams& p) {
  DirectGeom g;
  g.phases = p.i[kSw];
  g.PH = p.i[kH] + p.i[kPt] + p.i[kPb];
  g.PWp = (p.i[kW] + p.i[kPl] + p.i[kPr] + g.phases - 1) / g.phases;
  g.plane = g.phases * g.PH * g.PWp;
  g.tiles_x = (p.i[kOW] + 15) / 16;
  return g;
}

// Floats of the padded input: C phase-split planes + 32 of slack for a partial tile's extra lanes,
// or (the output-channel tile) ceil(C/8) blocks of [PH][PW][8] + slack for a partial tile's pixels.
size_t direct_input_floats(const OpParams& p) {
  const DirectGeom g = direct_geom(p);
  const int64_t PW = p.i[kW] + p.i[kPl] + p.i[kPr];
  const int64_t blocked = (p.i[kC] + 7) / 8 * g.PH * PW * 8 + (12 * p.i[kSw] + 8) * 8;
  return size_t(std::max(p.i[kC] * g.plane + 32, blocked) + 15) / 16 * 16;
}

// The output-channel tile's K chunk (input channels) and its per-thread row of partial sums
// (og channels x OW rounded up to 12 pixels), placed after the packed weights wp[K][og].
constexpr int64_t kOcvChunkC = 8;
inline int64_t ocv_part_offset(int64_t K, int64_t og) { return (K * og + 15) / 16 * 16; }
inline int64_t ocv_part_floats(int64_t OW, int64_t og) { return (OW + 11) / 12 * 12 * og; }

// Scratch: padded input, then the K offsets, then the packed weights of the output-channel tile
// and its per-thread partial-sum rows (`threads` of them).
size_t direct_scratch_bytes(const OpParams& p, int64_t threads) {
  const int64_t K = p.i[kC] / p.i[kG] * p.i[kKh] * p.i[kKw], og = p.i[kO] / p.i[kG];
  return direct_input_floats(p) * sizeof(float) + (size_t(K) * sizeof(int64_t) + 63) / 64 * 64 +
         size_t(ocv_part_offset(K, og) + threads * ocv_part_floats(p.i[kOW], og)) * sizeof(float) + 64;
}

// Fills channel planes [c0, c1) of the padded, phase-split buffer from x.
void direct_fill(const OpParams& p, const DirectGeom& g, const float* x, float* buf, int64_t c0, int64_t c1) {
  DwGeom dg;
  dg.phases = g.phases;
  dg.PH = g.PH;
  dg.PWp = g.PWp;
  dg.OWp = 0;
  const int64_t HW = p.i[kH] * p.i[kW];
  for (int64_t ci = c0; ci < c1; ++ci) dw_fill(p, dg, x + ci * HW, buf + ci * g.plane);
}

// Rows [0, R) of one tile over k in [0, kc) (A and off already offset to the K chunk; A's row
// stride is lda): the first chunk starts from the bias, later ones from C; the last applies the
// activation. Portable version: the same per-element order (bias, then k in order).
void direct_tile_portable(const float* A, int64_t lda, const float* base, const int64_t* off, int64_t kc, int64_t R,
                          const float* bias, float* C, int64_t ldc, int64_t nr, bool first, bool last, int64_t act,
                          float lo, float hi) {
  float acc[16];
  for (int64_t r = 0; r < R; ++r) {
    const float bv = bias ? bias[r] : 0.f;
    for (int j = 0; j < 16; ++j) acc[j] = first ? bv : j < nr ? C[r * ldc + j] : 0.f;
    const float* a = A + r * lda;
    for (int64_t k = 0; k < kc; ++k) {
      const float av = a[k];
      const float* b = base + off[k];
      for (int j = 0; j < 16; ++j) acc[j] += av * b[j];
    }
    if (last) apply_act(acc, nr, act, lo, hi);
    std::memcpy(C + r * ldc, acc, size_t(nr) * sizeof(float));
  }
}

#if defined(__x86_64__)
template <int R>
__attribute__((target("avx2,fma"))) void direct_tile_avx2(const float* A, int64_t lda, const float* base,
                                                           const int64_t* off, int64_t kc, const float* bias, float* C,
                                                           int64_t ldc, int64_t nr, bool first, bool last, int64_t act,
                                                           float lo, float hi) {
  __m256 c0[R], c1[R];
  alignas(32) float tmp[16];
  const bool full = nr == 16;
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    if (first) {
      c0[r] = c1[r] = _mm256_set1_ps(bias ? bias[r] : 0.f);
    } else if (full) {
      c0[r] = _mm256_loadu_ps(C + r * ldc);
      c1[r] = _mm256_loadu_ps(C + r * ldc + 8);
    } else {
      for (int j = 0; j < 16; ++j) tmp[j] = j < nr ? C[r * ldc + j] : 0.f;
      c0[r] = _mm256_load_ps(tmp);
      c1[r] = _mm256_load_ps(tmp + 8);
    }
  }
  for (int64_t k = 0; k < kc; ++k) {
    const float* b = base + off[k];
    // the rows 12 taps ahead (scattered over channel planes: the hardware prefetcher misses them)
    const float* q = base + off[k + 12 < kc ? k + 12 : k];
    _mm_prefetch(reinterpret_cast<const char*>(q), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(q + 15), _MM_HINT_T0);
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
      c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
    }
  }
  const bool in_reg = last && act != ACT_NONE && act != ACT_SIGMOID;
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    __m256 v0 = c0[r], v1 = c1[r];
    if (in_reg) {
      v0 = vmath::act8(v0, act, lo, hi);
      v1 = vmath::act8(v1, act, lo, hi);
    }
    float* cr = C + r * ldc;
    if (full) {
      _mm256_storeu_ps(cr, v0);
      _mm256_storeu_ps(cr + 8, v1);
    } else {
      _mm256_store_ps(tmp, v0);
      _mm256_store_ps(tmp + 8, v1);
      std::memcpy(cr, tmp, size_t(nr) * sizeof(float));
    }
    if (last && act == ACT_SIGMOID) apply_act(cr, nr, act, lo, hi);
  }
}
// Few output channels (8, 16 or 24, one group): vectors over output channels instead. The weights
// are packed once per run as wp[K][og]; a tile is og channels x J output pixels of one row, each
// tap's og weights loaded once (sequential in k) and each input value broadcast once, so the
// inner loop has 7 loads per 12 FMAs, all but the broadcasts sequential. Same per-element order
// (bias, then k in order) as direct_tile_avx2, so the two are bitwise equal.
template <int OB, int J>
__attribute__((target("avx2,fma"))) void ocv_tile_avx2(const float* wp, int64_t K, const float* base,
                                                        const int64_t* off, int64_t ps, const float* bias, float* part,
                                                        bool first, bool last, float* y, int64_t OHW, int64_t nj,
                                                        int64_t act, float lo, float hi) {
  __m256 acc[OB][J];
#pragma GCC unroll 4
  for (int ob = 0; ob < OB; ++ob) {
    const __m256 bv = bias ? _mm256_loadu_ps(bias + ob * 8) : _mm256_setzero_ps();
#pragma GCC unroll 12
    for (int j = 0; j < J; ++j) acc[ob][j] = first ? bv : _mm256_load_ps(part + (ob * J + j) * 8);
  }
  ocv_accumulate<OB, J>(wp, K, base, off, ps, acc);
  if (!last) {  // partial sums of this K chunk parked in the per-thread row buffer (L1)
#pragma GCC unroll 4
    for (int ob = 0; ob < OB; ++ob)
#pragma GCC unroll 12
      for (int j = 0; j < J; ++j) _mm256_store_ps(part + (ob * J + j) * 8, acc[ob][j]);
    return;
  }
  alignas(32) float tmp[8];
#pragma GCC unroll 4
  for (int ob = 0; ob < OB; ++ob)
#pragma GCC unroll 12
    for (int j = 0; j < J; ++j) {  // compile-time indices only: acc stays in registers
      if (j >= nj) break;
      __m256 v = acc[ob][j];
      if (act != ACT_NONE && act != ACT_SIGMOID) v = vmath::act8(v, act, lo, hi);
      _mm256_store_ps(tmp, v);
      if (act == ACT_SIGMOID) apply_act(tmp, 8, act, lo, hi);
      for (int c = 0; c < 8; ++c) y[(ob * 8 + c) * OHW + j] = tmp[c];
    }
}
// Stems (K <= 32 taps, e.g. 3 input channels x 3x3; 8..32 output channels, one group): output
// channels in the lanes, the input read in place (no padded copy): a tile is og = 8 OB channels x J
// pixels of one output row, per tap OB weight vectors (wp[K][og]) and J broadcasts of the input
// (pixel stride ps). Results go to a row buffer rb[OW][og] (activation in registers); the row is
// then moved to the og NCHW planes by 8x8 transposes. Per element bias, then k in order: bitwise
// equal to the 6x16 direct tile.
template <int OB, int J>
__attribute__((target("avx2,fma"))) void stem_tile_avx2(const float* wp, int64_t K, const float* base,
                                                         const int64_t* off, int64_t ps, const float* bias, float* rb,
                                                         int64_t nj, int64_t act, float lo, float hi) {
  __m256 acc[OB][J];
  ocv_start<OB, J>(bias, acc);
  ocv_accumulate<OB, J>(wp, K, base, off, ps, acc);
#pragma GCC unroll 12
  for (int j = 0; j < J; ++j) {  // compile-time indices only: acc stays in registers
    if (j >= nj) break;
#pragma GCC unroll 4
    for (int ob = 0; ob < OB; ++ob)
      _mm256_storeu_ps(rb + j * OB * 8 + ob * 8, act == ACT_SIGMOID ? acc[ob][j] : vmath::act8(acc[ob][j], act, lo, hi));
  }
}
using StemFn = void (*)(const float*, int64_t, const float*, const int64_t*, int64_t, const float*, float*, int64_t,
                        int64_t, float, float);

// The stem path over output rows (K <= 32, og in {8, 16, 24, 32}, one group, OW >= 8). Tiles whose
// taps all lie inside the input read it in place; border tiles (padding) gather their K x J taps
// into a zero-filled patch first. Scratch: off[K], wp[K][og], then per thread a row buffer.
void conv_stem_avx2(OpCtx& c, const float* x, const float* w, const float* b, float* y, int64_t* off) {
  const OpParams& p = *c.p;
  const int64_t N = p.i[kN], C = p.i[kC], H = p.i[kH], W = p.i[kW], O = p.i[kO], OH = p.i[kOH], OW = p.i[kOW];
  const int64_t kh = p.i[kKh], kw = p.i[kKw], sh = p.i[kSh], sw = p.i[kSw], dh = p.i[kDh], dw = p.i[kDw];
  const int64_t pt = p.i[kPt], pl = p.i[kPl], K = C * kh * kw, HW = H * W, OHW = OH * OW, og = O;
  const int64_t act = p.i[kAct];
  const float lo = p.f[0], hi = p.f[1];
  float* wp = reinterpret_cast<float*>(reinterpret_cast<char*>(off) + (size_t(K) * sizeof(int64_t) + 63) / 64 * 64);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t o = 0; o < og; ++o) wp[k * og + o] = w[o * K + k];
  for (int64_t ci = 0, k = 0; ci < C; ++ci)
    for (int64_t ky = 0; ky < kh; ++ky)
      for (int64_t kx = 0; kx < kw; ++kx, ++k) off[k] = ci * HW + ky * dh * W + kx * dw;
  const int OB = int(og / 8), J = OB == 4 ? 3 : OB == 3 ? 4 : OB == 2 ? 6 : 12;
  const StemFn fn = OB == 4 ? stem_tile_avx2<4, 3> : OB == 3 ? stem_tile_avx2<3, 4>
                  : OB == 2 ? stem_tile_avx2<2, 6> : stem_tile_avx2<1, 12>;
  const int64_t ey = (kh - 1) * dh, ex = (kw - 1) * dw;
  for_ranges(c, N * OH, og * K * OW, [&](int t, int64_t r0, int64_t r1) __attribute__((target("avx2,fma"))) {
    float* rb = wp + ocv_part_offset(K, og) + t * ocv_part_floats(OW, og);
    alignas(32) float patch[32 * 12];
    int64_t offp[32];
    for (int64_t k = 0; k < K; ++k) offp[k] = k * J;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / OH, oy = r % OH, iy0 = oy * sh - pt;
      const float* xn = x + n * C * HW;
      const bool rows_in = iy0 >= 0 && iy0 + ey < H;
      for (int64_t ox0 = 0; ox0 < OW; ox0 += J) {
        const int64_t nj = std::min<int64_t>(J, OW - ox0), ix0 = ox0 * sw - pl;
        if (rows_in && nj == J && ix0 >= 0 && ix0 + (J - 1) * sw + ex < W) {
          fn(wp, K, xn + iy0 * W + ix0, off, sw, b, rb + ox0 * og, J, act, lo, hi);
          continue;
        }
        for (int64_t ci = 0, k = 0; ci < C; ++ci)
          for (int64_t ky = 0; ky < kh; ++ky)
            for (int64_t kx = 0; kx < kw; ++kx, ++k) {
              const int64_t iy = iy0 + ky * dh;
              for (int64_t j = 0; j < J; ++j) {
                const int64_t ix = ix0 + j * sw + kx * dw;
                patch[k * J + j] = j < nj && iy >= 0 && iy < H && ix >= 0 && ix < W ? xn[ci * HW + iy * W + ix] : 0.f;
              }
            }
        fn(wp, K, patch, offp, 1, b, rb + ox0 * og, nj, act, lo, hi);
      }
      if (act == ACT_SIGMOID) apply_act(rb, OW * og, act, lo, hi);
      float* yr = y + n * O * OHW + oy * OW;
      // [OW][og] -> og planes, 8 pixels x 8 channels at a time, one 8-channel block after the other:
      // each plane row is written in consecutive stores (A/B in EfficientNet, load 2.5-3: the stem's
      // op time 459-725 us vs 536-780 with the pixel blocks outer, which touched all og planes per 8 pixels).
      // The sizes in locals: the (may-alias) vector stores made GCC reload the captured ones per store.
      const int64_t ow = OW, ohw = OHW, ogl = og;
      for (int64_t ob = 0; ob < OB; ++ob) {
        float* yb = yr + ob * 8 * ohw;
        for (int64_t q0 = 0; q0 < ow; q0 += 8) {
          const int64_t q = std::min(q0, ow - 8);
          __m256 v[8];
#pragma GCC unroll 8
          for (int u = 0; u < 8; ++u) v[u] = _mm256_loadu_ps(rb + (q + u) * ogl + ob * 8);
          transpose8x8_ps(v);
#pragma GCC unroll 8
          for (int u = 0; u < 8; ++u) _mm256_storeu_ps(yb + u * ohw + q, v[u]);
        }
      }
    }
  });
}
using OcvFn = void (*)(const float*, int64_t, const float*, const int64_t*, int64_t, const float*, float*, bool, bool,
                       float*, int64_t, int64_t, int64_t, float, float);
using DirectFn = void (*)(const float*, int64_t, const float*, const int64_t*, int64_t, const float*, float*, int64_t,
                          int64_t, bool, bool, int64_t, float, float);
const DirectFn kDirectAvx2[7] = {nullptr, direct_tile_avx2<1>, direct_tile_avx2<2>, direct_tile_avx2<3>,
                                 direct_tile_avx2<4>, direct_tile_avx2<5>, direct_tile_avx2<6>};
#endif

void conv_direct_run(OpCtx& c, const float* x, const float* w, const float* b, float* y) {
  const OpParams& p = *c.p;
  const DirectGeom g = direct_geom(p);
  const int64_t N = p.i[kN], C = p.i[kC], O = p.i[kO], G = p.i[kG], OH = p.i[kOH], OW = p.i[kOW];
  const int64_t kh = p.i[kKh], kw = p.i[kKw], sh = p.i[kSh], sw = p.i[kSw], dh = p.i[kDh], dw = p.i[kDw];
  const int64_t cg = C / G, og = O / G, K = cg * kh * kw, HW = p.i[kH] * p.i[kW], OHW = OH * OW;
  float* buf = static_cast<float*>(c.scratch);
  int64_t* off = reinterpret_cast<int64_t*>(static_cast<char*>(c.scratch) + direct_input_floats(p) * sizeof(float));
  for (int64_t ci = 0, k = 0; ci < cg; ++ci)
    for (int64_t ky = 0; ky < kh; ++ky)
      for (int64_t kx = 0; kx < kw; ++kx, ++k)
        off[k] = ci * g.plane + ((kx * dw) % sw) * g.PH * g.PWp + ky * dh * g.PWp + (kx * dw) / sw;
  std::memset(buf + C * g.plane, 0, 32 * sizeof(float));  // (the 6x16 tile's slack)
  bool avx2 = false;
#if defined(__x86_64__)
  avx2 = (lb_cpu_features() & (LB_CPU_AVX2 | LB_CPU_FMA)) == (LB_CPU_AVX2 | LB_CPU_FMA) && lb_isa_active() != LB_ISA_SCALAR;
#endif
  c.isa = avx2 ? "avx2" : "scalar";
  const int64_t act = p.i[kAct];
  const float lo = p.f[0], hi = p.f[1];
  const int64_t kchunk = std::max<int64_t>(1, 256 / (kh * kw)) * kh * kw;
#if defined(__x86_64__)
  if (avx2 && G == 1 && og % 8 == 0 && og <= 32 && K <= 32 && OW >= 8) {
    conv_stem_avx2(c, x, w, b, y, off);
    return;
  }
  if (avx2 && G == 1 && (og == 8 || og == 16 || og == 24) && K >= 64) {  // (small K: the scatter dominates)
    float* wp = reinterpret_cast<float*>(reinterpret_cast<char*>(off) + (size_t(K) * sizeof(int64_t) + 63) / 64 * 64);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t o = 0; o < og; ++o) wp[k * og + o] = w[o * K + k];
    const int OB = int(og / 8), J = OB == 3 ? 4 : OB == 2 ? 6 : 12;
    const OcvFn fn = OB == 3 ? ocv_tile_avx2<3, 4> : OB == 2 ? ocv_tile_avx2<2, 6> : ocv_tile_avx2<1, 12>;
    const int64_t tx = (OW + J - 1) / J;
    // input channels interleaved by 8 (blocks [PH][PW][8]): a tile's taps of 8 neighbouring
    // channels share cache lines instead of lying in 8 planes
    const int64_t PH = g.PH, PW = p.i[kW] + p.i[kPl] + p.i[kPr], nblk = (C + 7) / 8, bs = PH * PW * 8;
    for (int64_t ci = 0, k = 0; ci < C; ++ci)
      for (int64_t ky = 0; ky < kh; ++ky)
        for (int64_t kx = 0; kx < kw; ++kx, ++k) off[k] = (ci / 8) * bs + (ky * dh * PW + kx * dw) * 8 + ci % 8;
    std::memset(buf + nblk * bs, 0, size_t((12 * sw + 8) * 8) * sizeof(float));
    for (int64_t n = 0; n < N; ++n) {
      for_ranges(c, nblk, 8 * HW * 2, [&](int, int64_t b0, int64_t b1) {
        for (int64_t bi = b0; bi < b1; ++bi)
          fill_block8(x + (n * C + bi * 8) * HW, std::min<int64_t>(8, C - bi * 8), p.i[kH], p.i[kW], p.i[kPt],
                      p.i[kPl], 0, PH, PW, buf + bi * bs, false);
      });
      // items: output rows; K in chunks of kOcvChunkC input channels (one interleaved block: the
      // chunk's weights, 8*kh*kw*og floats, stay in L1 over the row's tiles), partial sums parked
      // per tile in the thread's row buffer. Per element still bias, then k in order.
      const int64_t kc = std::min<int64_t>(K, kOcvChunkC * kh * kw);
      for_ranges(c, OH, og * K * OW, [&](int t, int64_t r0, int64_t r1) {
        float* part = wp + ocv_part_offset(K, og) + t * ocv_part_floats(OW, og);
        for (int64_t oy = r0; oy < r1; ++oy)
          for (int64_t k0 = 0; k0 < K; k0 += kc) {
            const int64_t kn = std::min(kc, K - k0);
            for (int64_t ti = 0; ti < tx; ++ti) {
              const int64_t ox0 = ti * J;
              fn(wp + k0 * og, kn, buf + (oy * sh * PW + ox0 * sw) * 8, off + k0, sw * 8, b, part + ti * J * og,
                 k0 == 0, k0 + kn >= K, y + n * O * OHW + oy * OW + ox0, OHW, std::min<int64_t>(J, OW - ox0), act, lo,
                 hi);
            }
          }
      });
    }
    return;
  }
#endif
  for (int64_t n = 0; n < N; ++n) {
    for_ranges(c, C, HW * 2, [&](int, int64_t c0, int64_t c1) { direct_fill(p, g, x + n * C * HW, buf, c0, c1); });
    const int64_t items = G * OH * g.tiles_x;  // (group, output row, 16-column tile)
    for_ranges(c, items, og * K * 16, [&](int, int64_t i0, int64_t i1) {
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t gi = it / (OH * g.tiles_x), rem = it % (OH * g.tiles_x);
        const int64_t oy = rem / g.tiles_x, ox0 = (rem % g.tiles_x) * 16, nr = std::min<int64_t>(16, OW - ox0);
        const float* base = buf + gi * cg * g.plane + oy * sh * g.PWp + ox0;
        const float* wg = w + gi * og * K;
        float* yg = y + (n * O + gi * og) * OHW + oy * OW + ox0;
        const float* bg = b ? b + gi * og : nullptr;
        // K in chunks of whole input channels (~256 taps): the chunk's rows of B (a few KB per
        // channel) stay in L1 while every 6-row tile of the weights runs over them.
        for (int64_t k0 = 0; k0 < K; k0 += kchunk) {
          const int64_t kc = std::min(kchunk, K - k0);
          const bool first = k0 == 0, last = k0 + kc >= K;
          for (int64_t m0 = 0; m0 < og; m0 += 6) {
            const int64_t R = std::min<int64_t>(6, og - m0);
            const float* bias = bg && first ? bg + m0 : nullptr;
#if defined(__x86_64__)
            if (avx2) {
              kDirectAvx2[R](wg + m0 * K + k0, K, base, off + k0, kc, bias, yg + m0 * OHW, OHW, nr, first, last, act, lo,
                             hi);
              continue;
            }
#endif
            direct_tile_portable(wg + m0 * K + k0, K, base, off + k0, kc, R, bias, yg + m0 * OHW, OHW, nr, first, last,
                                 act, lo, hi);
          }
        }
      }
    });
  }
}

// conv2d_pw_f32: a 1x1, stride-1, one-group conv whose weight the exporter stored blocked by 8
// output channels, wb[O/8][K][8] (zero-padded; exporters/lbpk_fpw.py, small maps). The GEMM
// Y[O,P] = W[O,K] X[K,P] puts pixels in the vector lanes: on EfficientNet's 7x7 and 14x14 maps P =
// 49 / 196 leaves a 1- or 4-column edge panel. Here X is packed once per run into 4-pixel panels
// xp[P/4][K][4] (zero-padded), and a register tile is OB*8 output channels x 4 pixels (OB = 3, 2 or
// 1): per k, OB weight vectors read in place from the blocks (OB sequential streams) and 4
// broadcasts from the panel. K runs in blocks of 128 (the blocks' weights stay in L1 over a chunk
// of panels; partial sums parked in L1). Work items are (pixel chunk, channel tile), chunk-major,
// a chunk's panels sized to stay in L2. Per element: bias, then k in order with FMA (the GEMM's
// order: bitwise equal to conv2d_f32 on the AVX2 path). The portable path: per output channel,
// bias then y += w[k] * x[k] rows in k order.
constexpr int64_t kPwKb = 128;  // K block
struct PwGeom {
  int64_t nb, tiles, np, pc, chunks;  // 8-channel blocks, channel tiles, 4-pixel panels, panels per chunk, chunks
};

PwGeom pw_geom(const OpParams& p) {
  PwGeom g;
  const int64_t K = p.i[kC], P = p.i[kH] * p.i[kW];
  g.nb = (p.i[kO] + 7) / 8;
  g.tiles = g.nb / 3 + (g.nb % 3 != 0);
  g.np = (P + 3) / 4;
  g.pc = std::min(g.np, std::max<int64_t>(12, (128 << 10) / (K * 16)));  // ~128 KB of panels per chunk
  // Chunks of equal size, rounded to the nearest count: every chunk streams all of the weights once,
  // so a last chunk of 1 panel (7x7 maps: 13 panels = 12 + 1) re-read them for 1/13 of the FMAs
  // (session 10).
  g.chunks = std::max<int64_t>(1, (g.np + g.pc / 2) / g.pc);
  g.pc = (g.np + g.chunks - 1) / g.chunks;
  g.chunks = (g.np + g.pc - 1) / g.pc;
  return g;
}

// Channel tile t of nb 8-channel blocks: tb blocks each (3; 6 for the zmm tiles, nb even); a remainder
// of tb / 3 turns the last tb + tb / 3 into two tiles of 2 tb / 3 (3 + 1 -> 2 + 2, 6 + 2 -> 4 + 4), any
// other remainder is one tile of its own (only nb = 1 runs a 1-block tile).
inline int64_t pw_tiles(int64_t nb, int tb) { return nb / tb + (nb % tb != 0); }
inline void pw_tile_blocks(int64_t nb, int64_t t, int64_t* blk0, int64_t* nblk, int tb = 3) {
  const int64_t a = nb / tb, split = 2 * tb / 3;
  if (nb % tb == tb / 3 && a > 0 && t >= a - 1) {
    *blk0 = (a - 1) * tb + (t - (a - 1)) * split;
    *nblk = split;
    return;
  }
  *blk0 = t * tb;
  *nblk = std::min<int64_t>(tb, nb - t * tb);
}

// Shared: the packed panels; per thread: the tile's bias [48] and the chunk's partial sums [pc][J * 8 * tb]
// (one tile's when K is one block).
template <int J>
PwGeom pw_geom_j(const OpParams& p);
size_t pw_panels_bytes(const OpParams& p) {
  const size_t np4 = size_t(pw_geom(p).np) * 4, np8 = size_t(pw_geom_j<8>(p).np) * 8,
               np7 = size_t(pw_geom_j<7>(p).np) * 7;  // pixels incl. padding
  return (std::max({np4, np8, np7}) * p.i[kC] * sizeof(float) + 63) / 64 * 64;
}
size_t pw_thread_bytes(const OpParams& p) {
  const bool kb = p.i[kC] > kPwKb;  // partial sums of a chunk's panels, or of one tile
  const size_t a4 = size_t(kb ? pw_geom(p).pc : 1) * 96, a8 = size_t(kb ? pw_geom_j<8>(p).pc : 1) * 192,
               a7 = size_t(kb ? pw_geom_j<7>(p).pc : 1) * 336;  // 7 pixels x 48 channels (zmm tiles)
  return (48 + std::max({a4, a8, a7})) * sizeof(float) + 64;
}
// The AVX-512 tiles' geometry: panels of J = 8 (session 10) or 7 (session 11) pixels, ~128 KB of them
// per chunk.
template <int J>
PwGeom pw_geom_j(const OpParams& p) {
  PwGeom g = pw_geom(p);
  const int64_t K = p.i[kC], P = p.i[kH] * p.i[kW];
  g.np = (P + J - 1) / J;
  g.pc = std::min(g.np, std::max<int64_t>(6, (128 << 10) / (K * J * 4)));
  g.chunks = std::max<int64_t>(1, (g.np + g.pc / 2) / g.pc);
  g.pc = (g.np + g.chunks - 1) / g.chunks;
  g.chunks = (g.np + g.pc - 1) / g.pc;
  return g;
}


#if defined(__x86_64__)
// Panels [t0, t1) of xp[P/J][K][J] from X[K][P] (pixels past P: 0); J = 4 (AVX2 tiles) or 8 (AVX-512).
template <int J>
void pw_pack_panels(const float* x, int64_t K, int64_t P, int64_t t0, int64_t t1, float* xp) {
  for (int64_t t = t0; t < t1; ++t) {
    float* d = xp + t * K * J;
    const int64_t p0 = t * J, n = std::min<int64_t>(J, P - p0);
    if (n == J) {
      for (int64_t k = 0; k < K; ++k) std::memcpy(d + k * J, x + k * P + p0, J * sizeof(float));
    } else {
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < J; ++j) d[k * J + j] = j < n ? x[k * P + p0 + j] : 0.f;
    }
  }
}

// 4 vectors of 8 channels (pixels j0..j0+3) stored as nc channel rows of n4 <= 4 pixels: y[c*P + j].
__attribute__((target("avx2,fma"), always_inline)) inline void pw_store4(__m256 a0, __m256 a1, __m256 a2, __m256 a3,
                                                                         float* y, int64_t P, int64_t nc, int64_t n4) {
  const __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
  const __m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
  const __m256 u[4] = {_mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
                       _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2))};
  for (int64_t c = 0; c < nc; ++c) {  // channel c: the low half of u[c] (c < 4) or the high half of u[c - 4]
    const __m128 v = c < 4 ? _mm256_castps256_ps128(u[c]) : _mm256_extractf128_ps(u[c - 4], 1);
    if (n4 == 4) {
      _mm_storeu_ps(y + c * P, v);
    } else {
      alignas(16) float tmp[4];
      _mm_store_ps(tmp, v);
      std::memcpy(y + c * P, tmp, size_t(n4) * sizeof(float));
    }
  }
}

// The FMAs of one tile over k in [0, kc) (wb, xp already at the K block; block ob's weights at wb + ob * ldw),
// J pixels (4: the AVX2 tiles, 8: the AVX-512 ones, which need the 32 EVEX registers), from the bias (first)
// or from the sums parked in acc_buf (OB*J*8 floats, L1), parked there again. The wrappers (pw_accumulate,
// pw_accumulate512) are not inlined: with the tile's epilogue in the same function GCC spilled accumulators
// / re-read weights. XB: xp is the blocked input itself at (K block, first pixel): k's J pixels at
// xp + (k/8)*P*8 + k%8 + j*8 (pixels past nj repeat the last one, not stored; kc a multiple of 8).
template <int OB, bool XB, int J>
__attribute__((target("avx2,fma"), always_inline)) inline void pw_accumulate_body(const float* wb, int64_t ldw,
                                                                                  int64_t kc, const float* xp,
                                                                                  const float* bias8, bool first,
                                                                                  float* acc_buf, int64_t P,
                                                                                  int64_t nj) {
  __m256 acc[OB][J];
#pragma GCC unroll 3
  for (int ob = 0; ob < OB; ++ob)
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j)
      acc[ob][j] = first ? _mm256_loadu_ps(bias8 + ob * 8) : _mm256_loadu_ps(acc_buf + (ob * J + j) * 8);
  if constexpr (XB) {
    int64_t jo[J];
    for (int j = 0; j < J; ++j) jo[j] = std::min<int64_t>(j, nj - 1) * 8;
    for (int64_t k8 = 0; k8 < kc; k8 += 8) {
      const float* xk = xp + k8 * P;
#pragma GCC unroll 8
      for (int kk = 0; kk < 8; ++kk) {
        __m256 wv[OB];
#pragma GCC unroll 3
        for (int ob = 0; ob < OB; ++ob) wv[ob] = _mm256_loadu_ps(wb + ob * ldw + (k8 + kk) * 8);
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) {
          const __m256 xv = _mm256_broadcast_ss(xk + jo[j] + kk);
#pragma GCC unroll 3
          for (int ob = 0; ob < OB; ++ob) acc[ob][j] = _mm256_fmadd_ps(wv[ob], xv, acc[ob][j]);
        }
      }
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      __m256 wv[OB];
#pragma GCC unroll 3
      for (int ob = 0; ob < OB; ++ob) wv[ob] = _mm256_loadu_ps(wb + ob * ldw + k * 8);
#pragma GCC unroll 8
      for (int j = 0; j < J; ++j) {
        const __m256 xv = _mm256_broadcast_ss(xp + k * J + j);
#pragma GCC unroll 3
        for (int ob = 0; ob < OB; ++ob) acc[ob][j] = _mm256_fmadd_ps(wv[ob], xv, acc[ob][j]);
      }
    }
  }
#pragma GCC unroll 3
  for (int ob = 0; ob < OB; ++ob)
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) _mm256_storeu_ps(acc_buf + (ob * J + j) * 8, acc[ob][j]);
}
template <int OB, bool XB>
__attribute__((target("avx2,fma"), noinline)) void pw_accumulate(const float* wb, int64_t ldw, int64_t kc,
                                                                 const float* xp, const float* bias8, bool first,
                                                                 float* acc_buf, int64_t P, int64_t nj) {
  pw_accumulate_body<OB, XB, 4>(wb, ldw, kc, xp, bias8, first, acc_buf, P, nj);
}

// One tile over k in [0, kc): pw_accumulate, then (last K block) the activation and the store to y.
// YB: y is the blocked output at (block blk0, first pixel); block ob's pixel j at y + ob*P*8 + j*8.
template <int OB, bool XB, bool YB>
__attribute__((target("avx2,fma"))) void pw_tile_avx2(const float* wb, int64_t ldw, int64_t kc, const float* xp,
                                                       const float* bias8, float* acc_buf, bool first, bool last,
                                                       float* y, int64_t P, int64_t nc, int64_t nj, int64_t act,
                                                       float lo, float hi) {
  pw_accumulate<OB, XB>(wb, ldw, kc, xp, bias8, first, acc_buf, P, nj);
  if (!last) return;
  __m256 acc[OB][4];
#pragma GCC unroll 3
  for (int ob = 0; ob < OB; ++ob)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[ob][j] = _mm256_loadu_ps(acc_buf + (ob * 4 + j) * 8);
#pragma GCC unroll 3
  for (int ob = 0; ob < OB; ++ob) {
    const int64_t ncb = std::min<int64_t>(8, nc - ob * 8);
    if (ncb <= 0) break;
    if (act != ACT_NONE && act != ACT_SIGMOID)
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[ob][j] = vmath::act8(acc[ob][j], act, lo, hi);
    if constexpr (YB) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j)  // constant indices: acc stays in registers
        if (j < nj) _mm256_storeu_ps(y + ob * P * 8 + j * 8, acc[ob][j]);
    } else {
      pw_store4(acc[ob][0], acc[ob][1], acc[ob][2], acc[ob][3], y + ob * 8 * P, P, ncb, nj);
    }
  }
  if (YB && act == ACT_SIGMOID)  // after every store: no call while acc is live (it would spill acc)
    for (int64_t ob = 0; ob < std::min<int64_t>(OB, nc / 8); ++ob) apply_act(y + ob * P * 8, nj * 8, act, lo, hi);
  if (!YB && act == ACT_SIGMOID)
    for (int64_t c = 0; c < std::min<int64_t>(nc, OB * 8); ++c) apply_act(y + c * P, nj, act, lo, hi);
}
using PwFn = void (*)(const float*, int64_t, int64_t, const float*, const float*, float*, bool, bool, float*, int64_t,
                      int64_t, int64_t, int64_t, float, float);

// The tile driver of conv2d_pw_f32 on x86, for J-pixel tiles (fns: the tile functions by [number of blocks]).
template <int J, int TB = 3>
void conv_pw_drive(OpCtx& c, const float* x, const float* w, const float* b, float* y, const PwFn* fns,
                   const PwGeom& g, const char* isa) {
  const OpParams& p = *c.p;
  const bool xbl = p.i[kXb] != 0, ybl = p.i[kYb] != 0;
  const int64_t N = p.i[kN], K = p.i[kC], O = p.i[kO], P = p.i[kH] * p.i[kW];
  const int64_t act = p.i[kAct];
  const float lo = p.f[0], hi = p.f[1];
  float* xp = static_cast<float*>(c.scratch);
  char* per_thread = static_cast<char*>(c.scratch) + pw_panels_bytes(p);
  const size_t per = pw_thread_bytes(p);
  c.isa = isa;
  for (int64_t n = 0; n < N; ++n) {
    const float* xn = x + n * K * P;
    float* yn = y + n * O * P;
    if (!xbl)  // a blocked input is read in place
      for_ranges(c, g.np, K * J, [&](int, int64_t t0, int64_t t1) { pw_pack_panels<J>(xn, K, P, t0, t1, xp); });
    for_ranges(c, g.chunks * g.tiles, g.pc * J * 8 * TB * K, [&](int tid, int64_t i0, int64_t i1) {
      float* bias8 = reinterpret_cast<float*>(per_thread + size_t(tid) * per);
      float* acc_buf = bias8 + 48;
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t chunk = it / g.tiles, t = it % g.tiles;
        int64_t blk0, nblk;
        pw_tile_blocks(g.nb, t, &blk0, &nblk, TB);
        const int64_t o0 = blk0 * 8, nc = std::min<int64_t>(nblk * 8, O - o0);
        for (int64_t j = 0; j < nblk * 8; ++j) bias8[j] = b && o0 + j < O ? b[o0 + j] : 0.f;
        const float* wt = w + blk0 * K * 8;
        // K in blocks of kPwKb: the blocks' weights (<= 12 KB; 24 KB for TB = 6) stay in L1 over the chunk's panels
        const int64_t q0 = chunk * g.pc, q1 = std::min(g.np, q0 + g.pc);
        for (int64_t k0 = 0; k0 < K; k0 += kPwKb) {
          const int64_t kc = std::min(kPwKb, K - k0);
          // The next unit's weights (this tile's next K block, else the next item's first) are
          // prefetched into L1 a slice per panel: each block's 4 KB of a K block starts a new page,
          // where the hardware prefetcher stops, and on 7x7 maps (13 panels per weight) the weights'
          // L3 latency was ~10% of the op (session 10).
          const float* nw = nullptr;
          int64_t nkc = 0, nnb = 0;
          if (k0 + kPwKb < K) {
            nw = wt + (k0 + kPwKb) * 8, nkc = std::min(kPwKb, K - k0 - kPwKb), nnb = nblk;
          } else if (it + 1 < i1) {
            int64_t b1;
            pw_tile_blocks(g.nb, (it + 1) % g.tiles, &b1, &nnb, TB);
            nw = w + b1 * K * 8, nkc = std::min(kPwKb, K);
          }
          const int64_t lines = nkc / 2, nq = q1 - q0;  // 64-byte lines per block's K block
          for (int64_t q = q0; q < q1; ++q) {
            if (nw)
              for (int64_t l = lines * (q - q0) / nq, l1 = lines * (q - q0 + 1) / nq; l < l1; ++l)
                for (int64_t ob = 0; ob < nnb; ++ob)
                  _mm_prefetch(reinterpret_cast<const char*>(nw + ob * K * 8 + l * 16), _MM_HINT_T0);
            fns[nblk](wt + k0 * 8, K * 8, kc, xbl ? xn + k0 * P + q * J * 8 : xp + (q * K + k0) * J, bias8,
                      acc_buf + (K > kPwKb ? q - q0 : 0) * 8 * TB * J, k0 == 0, k0 + kc >= K,
                      yn + o0 * P + q * (ybl ? J * 8 : J), P, nc, std::min<int64_t>(J, P - q * J), act, lo, hi);
          }
        }
      }
    });
  }
}

void conv_pw_run_avx2(OpCtx& c, const float* x, const float* w, const float* b, float* y) {
  static const PwFn kFns[2][2][4] = {
      {{nullptr, pw_tile_avx2<1, false, false>, pw_tile_avx2<2, false, false>, pw_tile_avx2<3, false, false>},
       {nullptr, pw_tile_avx2<1, false, true>, pw_tile_avx2<2, false, true>, pw_tile_avx2<3, false, true>}},
      {{nullptr, pw_tile_avx2<1, true, false>, pw_tile_avx2<2, true, false>, pw_tile_avx2<3, true, false>},
       {nullptr, pw_tile_avx2<1, true, true>, pw_tile_avx2<2, true, true>, pw_tile_avx2<3, true, true>}}};
  const OpParams& p = *c.p;
  conv_pw_drive<4>(c, x, w, b, y, kFns[p.i[kXb] != 0][p.i[kYb] != 0], pw_geom(p), "avx2");
}
#endif

#if defined(__x86_64__)
// AVX-512 path (session 10): the same tiles with 8 pixels instead of 4 (OB x 8 accumulators, up to
// 24 of the 32 vector registers: per k OB weight loads and 8 broadcasts for 8*OB FMAs), on 256-bit
// vectors (Zen 4 runs 512-bit FMAs as two halves: no more FMAs per cycle, and the weights stay in
// their 8-channel blocks). Same per-element order (bias, then k in order): bitwise equal to the AVX2
// tiles. Panels xp[P/8][K][8] for an NCHW input; an NCHW output tile goes out by an 8x8 transpose.
template <int OB, bool XB, int J>
LB_Z512 __attribute__((noinline)) void pw_accumulate512(const float* wb, int64_t ldw, int64_t kc, const float* xp,
                                                        const float* bias8, bool first, float* acc_buf, int64_t P,
                                                        int64_t nj) {
  pw_accumulate_body<OB, XB, J>(wb, ldw, kc, xp, bias8, first, acc_buf, P, nj);  // EVEX: 32 registers
}

// zmm tiles (session 15): OB2 vectors of 16 channels (8-channel blocks 2 ob and 2 ob + 1 of wb, joined by
// an insert) x J pixels, sums parked in acc_buf as [OB2][J][16]. Per k OB2 x 2 weight loads and J
// broadcasts for J * OB2 zmm FMAs (Zen 4: half the instructions per FMA of the ymm tiles). Same
// per-element order (bias, then k in order): bitwise equal.
template <int OB2, bool XB, int J>
LB_Z512 __attribute__((noinline)) void pw_accumulate_z(const float* wb, int64_t ldw, int64_t kc, const float* xp,
                                                       const float* bias8, bool first, float* acc_buf, int64_t P,
                                                       int64_t nj) {
  __m512 acc[OB2][J];
#pragma GCC unroll 3
  for (int ob = 0; ob < OB2; ++ob)
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j)
      acc[ob][j] = first ? _mm512_loadu_ps(bias8 + ob * 16) : _mm512_loadu_ps(acc_buf + (ob * J + j) * 16);
  auto wload = [&](int ob, int64_t k) LB_Z512 {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(wb + 2 * ob * ldw + k * 8)),
                              _mm256_loadu_ps(wb + (2 * ob + 1) * ldw + k * 8), 1);
  };
  if constexpr (XB) {
    int64_t jo[J];
    for (int j = 0; j < J; ++j) jo[j] = std::min<int64_t>(j, nj - 1) * 8;
    for (int64_t k8 = 0; k8 < kc; k8 += 8) {
      const float* xk = xp + k8 * P;
#pragma GCC unroll 8
      for (int kk = 0; kk < 8; ++kk) {
        __m512 wv[OB2];
#pragma GCC unroll 3
        for (int ob = 0; ob < OB2; ++ob) wv[ob] = wload(ob, k8 + kk);
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) {
          const __m512 xv = _mm512_set1_ps(xk[jo[j] + kk]);
#pragma GCC unroll 3
          for (int ob = 0; ob < OB2; ++ob) acc[ob][j] = _mm512_fmadd_ps(wv[ob], xv, acc[ob][j]);
        }
      }
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      __m512 wv[OB2];
#pragma GCC unroll 3
      for (int ob = 0; ob < OB2; ++ob) wv[ob] = wload(ob, k);
#pragma GCC unroll 8
      for (int j = 0; j < J; ++j) {
        const __m512 xv = _mm512_set1_ps(xp[k * J + j]);
#pragma GCC unroll 3
        for (int ob = 0; ob < OB2; ++ob) acc[ob][j] = _mm512_fmadd_ps(wv[ob], xv, acc[ob][j]);
      }
    }
  }
#pragma GCC unroll 3
  for (int ob = 0; ob < OB2; ++ob)
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) _mm512_storeu_ps(acc_buf + (ob * J + j) * 16, acc[ob][j]);
}

template <int OB, bool XB, bool YB, int J = 8, bool Z = false>
LB_Z512 void pw_tile512(const float* wb, int64_t ldw, int64_t kc, const float* xp, const float* bias8, float* acc_buf,
                        bool first, bool last, float* y, int64_t P, int64_t nc, int64_t nj, int64_t act, float lo,
                        float hi) {
  if constexpr (Z)
    pw_accumulate_z<OB / 2, XB, J>(wb, ldw, kc, xp, bias8, first, acc_buf, P, nj);
  else
    pw_accumulate512<OB, XB, J>(wb, ldw, kc, xp, bias8, first, acc_buf, P, nj);
  if (!last) return;
  const __mmask8 m = __mmask8((1u << nj) - 1);
  for (int64_t ob = 0; ob < OB; ++ob) {
    const int64_t ncb = std::min<int64_t>(8, nc - ob * 8);
    if (ncb <= 0) break;
    __m256 a[8];
    a[7] = _mm256_setzero_ps();  // J = 7: the transpose's eighth pixel (not stored)
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) {
      a[j] = _mm256_loadu_ps(acc_buf + (Z ? ((ob / 2) * J + j) * 16 + (ob % 2) * 8 : (ob * J + j) * 8));
      if (act != ACT_NONE && act != ACT_SIGMOID) a[j] = vmath::act8(a[j], act, lo, hi);
    }
    if constexpr (YB) {
      for (int64_t j = 0; j < nj; ++j) _mm256_storeu_ps(y + ob * P * 8 + j * 8, a[j]);
      if (act == ACT_SIGMOID) apply_act(y + ob * P * 8, nj * 8, act, lo, hi);
    } else {
      transpose8x8_ps(a);  // a[c]: channel c's 8 pixels (J = 7: 7 of them)
      for (int64_t c = 0; c < ncb; ++c) _mm256_mask_storeu_ps(y + (ob * 8 + c) * P, m, a[c]);
      if (act == ACT_SIGMOID)
        for (int64_t c = 0; c < ncb; ++c) apply_act(y + (ob * 8 + c) * P, nj, act, lo, hi);
    }
  }
}

// Maps of at least kPw512MinP pixels and K > kPwKb run the 8-pixel tiles (7x7 maps: 49 = 6 x 8 + 1
// wastes 13% of the FMAs; with K <= 128 the 14x14 expand convs measured 2-3% slower than the
// 4-pixel tiles): the others keep the AVX2 tiles.
// Session 11: maps whose pixel count is a multiple of 7 but not of 8 (EfficientNet's 7x7 and 14x14)
// run 7-pixel tiles instead, any K: OB x 7 accumulators (21 of the 32 registers), per k OB weight
// loads and 7 broadcasts for 7*OB FMAs, no padded pixel (the 4-pixel tiles computed 52 for 49), and
// each weight vector read from L1 once per 7 pixels instead of 4. A/B in one process (EfficientNet,
// 1 thread, chrt, load 4-8): the 7x7 expand convs 257 -> 246 us, projections 222 -> 215, the head
// 457 -> 434, 14x14 ops within noise or a few us faster; the model's op sum -95 us.
constexpr int64_t kPw512MinP = 128;
bool pw7_fits(const OpParams& p) {
  const int64_t P = p.i[kH] * p.i[kW];
  return P % 7 == 0 && P % 8 != 0;
}
void conv_pw_run_avx512(OpCtx& c, const float* x, const float* w, const float* b, float* y) {
  static const PwFn kFns[2][2][4] = {
      {{nullptr, pw_tile512<1, false, false>, pw_tile512<2, false, false>, pw_tile512<3, false, false>},
       {nullptr, pw_tile512<1, false, true>, pw_tile512<2, false, true>, pw_tile512<3, false, true>}},
      {{nullptr, pw_tile512<1, true, false>, pw_tile512<2, true, false>, pw_tile512<3, true, false>},
       {nullptr, pw_tile512<1, true, true>, pw_tile512<2, true, true>, pw_tile512<3, true, true>}}};
  const OpParams& p = *c.p;
  conv_pw_drive<8>(c, x, w, b, y, kFns[p.i[kXb] != 0][p.i[kYb] != 0], pw_geom_j<8>(p), "avx512vnni");
}
// Session 15: the 7-pixel maps' expansions (O > K, an even number of 8-channel blocks) run zmm tiles of
// up to 48 channels (pw_accumulate_z): half the instructions per FMA, which the ymm tiles spend on
// loads and broadcasts. In EfficientNet (1 thread, in-network per-op medians, the two tiles alternating
// run by run in one process, load ~6): 192 -> 1152 on 7x7 240-248 -> 224-228 us, 320 -> 1280 422-428 ->
// 410-413, 80 -> 480 / 112 -> 672 on 14x14 -2 / -3 us; the projections (K > O: 1152 -> 192, 672 -> 112,
// 480 -> 80 / 112) were 1-5 % slower with them (6 blocks x 128 k = 24 KB of weights per unit with the
// next unit prefetched into L1 over the chunk's 25 KB of panels): they keep the ymm tiles.
bool pw_z_fits(const OpParams& p) { return pw_geom(p).nb % 2 == 0 && p.i[kO] > p.i[kC]; }
void conv_pw_run_avx512_j7z(OpCtx& c, const float* x, const float* w, const float* b, float* y) {
#define LB_PWZ(XB, YB) {nullptr, nullptr, pw_tile512<2, XB, YB, 7, true>, nullptr, pw_tile512<4, XB, YB, 7, true>, nullptr, \
                        pw_tile512<6, XB, YB, 7, true>}
  static const PwFn kFns[2][2][7] = {{LB_PWZ(false, false), LB_PWZ(false, true)}, {LB_PWZ(true, false), LB_PWZ(true, true)}};
#undef LB_PWZ
  const OpParams& p = *c.p;
  PwGeom g = pw_geom_j<7>(p);
  g.tiles = pw_tiles(g.nb, 6);
  conv_pw_drive<7, 6>(c, x, w, b, y, kFns[p.i[kXb] != 0][p.i[kYb] != 0], g, "avx512vnni");
}
void conv_pw_run_avx512_j7(OpCtx& c, const float* x, const float* w, const float* b, float* y) {
  static const PwFn kFns[2][2][4] = {
      {{nullptr, pw_tile512<1, false, false, 7>, pw_tile512<2, false, false, 7>, pw_tile512<3, false, false, 7>},
       {nullptr, pw_tile512<1, false, true, 7>, pw_tile512<2, false, true, 7>, pw_tile512<3, false, true, 7>}},
      {{nullptr, pw_tile512<1, true, false, 7>, pw_tile512<2, true, false, 7>, pw_tile512<3, true, false, 7>},
       {nullptr, pw_tile512<1, true, true, 7>, pw_tile512<2, true, true, 7>, pw_tile512<3, true, true, 7>}}};
  const OpParams& p = *c.p;
  conv_pw_drive<7>(c, x, w, b, y, kFns[p.i[kXb] != 0][p.i[kYb] != 0], pw_geom_j<7>(p), "avx512vnni");
}
#endif

// Portable conv2d_pw_f32: per output channel, y = bias, then y += wb[o/8][k][o%8] * x[k] for k in order.
void conv_pw_run_portable(OpCtx& c, const float* x, const float* w, const float* b, float* y) {
  const OpParams& p = *c.p;
  const int64_t N = p.i[kN], K = p.i[kC], O = p.i[kO], P = p.i[kH] * p.i[kW];
  c.isa = "scalar";
  if (p.i[kXb] || p.i[kYb]) {  // blocked input and/or output: the same per-element order, strided
    const bool xbl = p.i[kXb] != 0, ybl = p.i[kYb] != 0;
    for (int64_t n = 0; n < N; ++n)
      for_ranges(c, O, K * P, [&](int, int64_t o0, int64_t o1) {
        for (int64_t o = o0; o < o1; ++o) {
          const float bv = b ? b[o] : 0.f;
          const float* wo = w + (o / 8) * K * 8 + o % 8;
          for (int64_t q = 0; q < P; ++q) {
            float acc = bv;
            for (int64_t k = 0; k < K; ++k) acc += wo[k * 8] * x[lay_idx(xbl, K, P, n, k, q)];
            float* yo = y + lay_idx(ybl, O, P, n, o, q);
            *yo = acc;
            apply_act(yo, 1, p.i[kAct], p.f[0], p.f[1]);
          }
        }
      });
    return;
  }
  for (int64_t n = 0; n < N; ++n)
    for_ranges(c, O, K * P, [&](int, int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        float* yo = y + (n * O + o) * P;
        const float bv = b ? b[o] : 0.f;
        for (int64_t q = 0; q < P; ++q) yo[q] = bv;
        const float* wo = w + (o / 8) * K * 8 + o % 8;
        for (int64_t k = 0; k < K; ++k) {
          const float wv = wo[k * 8];
          const float* xk = x + (n * K + k) * P;
          for (int64_t q = 0; q < P; ++q) yo[q] += wv * xk[q];
        }
        apply_act(yo, P, p.i[kAct], p.f[0], p.f[1]);
      }
    });
}

lb_status conv_pw_infer(OpCtx& c) {
  const Tensor* x = c.in[0];
  const Tensor* w = c.in.size() > 1 ? c.in[1] : nullptr;
  OpParams& p = *c.p;
  const int64_t O = attr_int(*c.attrs, "out_channels", 0);
  if (!w || x->shape.size() != 4 || w->shape.size() != 3 || x->dtype != DType::F32 || w->dtype != DType::F32 ||
      w->shape[2] != 8) {
    c.err = "expects a 4-D f32 input and an f32 weight blocked as [O/8, K, 8]";
    return LB_ERR_UNSUPPORTED;
  }
  if (O <= 0 || w->shape[0] != (O + 7) / 8 || w->shape[1] != x->shape[1]) {
    c.err = "weight " + shape_str(w->shape) + " does not match input " + shape_str(x->shape) + " and out_channels " +
            std::to_string(O) + " (expected [" + std::to_string((O + 7) / 8) + ", " + std::to_string(x->shape[1]) +
            ", 8])";
    return LB_ERR_SHAPE;
  }
  if (c.in.size() > 2 && c.in[2] && c.in[2]->numel() != O) {
    c.err = "bias has " + std::to_string(c.in[2]->numel()) + " values, expected " + std::to_string(O);
    return LB_ERR_SHAPE;
  }
  if (!parse_act(*c.attrs, &p, kAct, 0)) {
    c.err = "unknown fused activation '" + attr_str(*c.attrs, "act", "") + "'";
    return LB_ERR_UNSUPPORTED;
  }
  p.i[kN] = x->shape[0]; p.i[kC] = x->shape[1]; p.i[kH] = x->shape[2]; p.i[kW] = x->shape[3];
  p.i[kO] = O; p.i[kG] = 1; p.i[kKh] = p.i[kKw] = 1; p.i[kOH] = p.i[kH]; p.i[kOW] = p.i[kW]; p.i[kMode] = 4;
  if (lb_status s = parse_blocked(c, p.i[kC], O, true); s != LB_OK) return s;
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = {p.i[kN], O, p.i[kH], p.i[kW]};
  c.scratch_bytes = pw_panels_bytes(p) + pw_thread_bytes(p) * size_t(op_threads(c));
  c.flops = uint64_t(2) * p.i[kN] * O * p.i[kH] * p.i[kW] * p.i[kC];
  return LB_OK;
}

void conv_pw_run(OpCtx& c) {
  const float* x = c.in[0]->f32();
  const float* w = c.in[1]->f32();
  const float* b = c.in.size() > 2 && c.in[2] ? c.in[2]->f32() : nullptr;
  float* y = c.out[0]->f32();
#if defined(__x86_64__)
  if (use_avx512() && pw7_fits(*c.p)) {
    if (pw_z_fits(*c.p))
      conv_pw_run_avx512_j7z(c, x, w, b, y);
    else
      conv_pw_run_avx512_j7(c, x, w, b, y);
    return;
  }
  if (use_avx512() && c.p->i[kH] * c.p->i[kW] >= kPw512MinP && c.p->i[kC] > kPwKb) {
    conv_pw_run_avx512(c, x, w, b, y);
    return;
  }
  if (vmath::use_avx2()) {
    conv_pw_run_avx2(c, x, w, b, y);
    return;
  }
#endif
  conv_pw_run_portable(c, x, w, b, y);
}

// im2col, one GEMM panel at a time: B[k][n] = x[ci][oy*sh - pt + ky*dh][ox*sw - pl + kx*dw] with
// k = (ci*kh + ky)*kw + kx and n = oy*OW + ox, gathered straight into the packed [kc][16] panel.
struct Im2col {
  const OpParams* p;
  const float* x;  // the group's first input channel
};

void im2col_pack(const void* vctx, int64_t k0, int64_t kc, int64_t n0, int64_t nr, float* dst) {
  const Im2col& c = *static_cast<const Im2col*>(vctx);
  const OpParams& p = *c.p;
  const int64_t H = p.i[kH], W = p.i[kW], OW = p.i[kOW], kh = p.i[kKh], kw = p.i[kKw];
  const int64_t sh = p.i[kSh], sw = p.i[kSw], dh = p.i[kDh], dw = p.i[kDw], pt = p.i[kPt], pl = p.i[kPl];
  const int64_t oy0 = n0 / OW, ox0 = n0 % OW;
  const bool one_row = ox0 + nr <= OW;
  int64_t ci = k0 / (kh * kw), ky = (k0 % (kh * kw)) / kw, kx = k0 % kw;  // then stepped, no divisions
  for (int64_t k = k0; k < k0 + kc; ++k, ++kx) {
    if (kx == kw) {
      kx = 0;
      if (++ky == kh) {
        ky = 0;
        ++ci;
      }
    }
    const float* src = c.x + ci * H * W;
    float* d = dst + (k - k0) * 16;
    if (one_row) {
      const int64_t iy = oy0 * sh - pt + ky * dh, ix0 = ox0 * sw - pl + kx * dw;
      if (iy < 0 || iy >= H) {
        std::memset(d, 0, 16 * sizeof(float));
        continue;
      }
      const float* row = src + iy * W;
      if (sw == 1 && ix0 >= 0 && ix0 + nr <= W) {
        if (nr == 16) std::memcpy(d, row + ix0, 16 * sizeof(float));  // constant size: inlined
        else std::memcpy(d, row + ix0, size_t(nr) * sizeof(float));
#if defined(__x86_64__)
      } else if (sw == 2 && nr == 16 && ix0 >= 0 && ix0 + 32 <= W) {  // every other column: even lanes
        for (int q = 0; q < 4; ++q) {
          const __m128 a = _mm_loadu_ps(row + ix0 + 8 * q), b = _mm_loadu_ps(row + ix0 + 8 * q + 4);
          _mm_storeu_ps(d + 4 * q, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
        }
#endif
      } else {
        for (int64_t j = 0; j < nr; ++j) {
          const int64_t ix = ix0 + j * sw;
          d[j] = ix >= 0 && ix < W ? row[ix] : 0.f;
        }
      }
      for (int64_t j = nr; j < 16; ++j) d[j] = 0.f;
      continue;
    }
    int64_t oy = oy0, ox = ox0;
    for (int64_t j = 0; j < 16; ++j) {
      float v = 0.f;
      if (j < nr) {
        const int64_t iy = oy * sh - pt + ky * dh, ix = ox * sw - pl + kx * dw;
        if (iy >= 0 && iy < H && ix >= 0 && ix < W) v = src[iy * W + ix];
        if (++ox == OW) {
          ox = 0;
          ++oy;
        }
      }
      d[j] = v;
    }
  }
}

#if defined(__x86_64__)
// 1x1 convs with few input channels on large maps (NCHW, AVX2, mode 0): y[o][p] = bias[o] + sum_k
// w[o][k] * x[k][p], k in order (the GEMM's per-element order: bitwise equal to it). Nothing is
// packed: a chunk of pw1_chunk(K) pixels of all K input rows is read in place by
// every group of 4 output channels; a tile is R <= 4 channels x J vectors of 8 pixels, per k J loads
// of x, R broadcasts of w, R*J FMAs (4 x 3: 7 loads per 12 FMAs). The GEMM instead copied the whole
// input into panels and ran 6-row tiles (16 or 24 rows: a 4-row edge tile).
// Chunks of 24 to 384 pixels, K x chunk <= 8192 floats (A/B in EfficientNet, load 2.5-3, 1 thread: the
// 32 -> 16 conv on 112x112 ran 221-234 us with 8192, 255-280 with 4096, 445-463 with 1152: longer runs
// of each input row stream better; 16 -> 96, 96 -> 24, 24 -> 144 were within noise of each other).
inline int64_t pw1_chunk(int64_t K) { return std::max<int64_t>(24, std::min<int64_t>(384, 8192 / K / 24 * 24)); }
// K <= 160 and maps of >= 1024 pixels (on 28x28, 40 -> 240 was no faster than the GEMM).
bool pw1_fits(const OpParams& p) {
  return p.i[kMode] == 0 && p.i[kC] <= 160 && p.i[kH] * p.i[kW] >= 1024;
}
template <int R, int J>
__attribute__((target("avx2,fma"), always_inline)) inline void pw1_tile_body(const float* w, int64_t K, const float* x,
                                                                             int64_t P, const float* bias, float* y,
                                                                             int64_t ldy, int64_t act, float lo, float hi) {
  __m256 acc[R][J];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m256 bv = bias ? _mm256_set1_ps(bias[r]) : _mm256_setzero_ps();
#pragma GCC unroll 6
    for (int j = 0; j < J; ++j) acc[r][j] = bv;
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* xk = x + k * P;
    __m256 xv[J];
#pragma GCC unroll 6
    for (int j = 0; j < J; ++j) xv[j] = _mm256_loadu_ps(xk + j * 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_broadcast_ss(w + r * K + k);
#pragma GCC unroll 6
      for (int j = 0; j < J; ++j) acc[r][j] = _mm256_fmadd_ps(wv, xv[j], acc[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 6
    for (int j = 0; j < J; ++j)
      _mm256_storeu_ps(y + r * ldy + j * 8, act == ACT_SIGMOID ? acc[r][j] : vmath::act8(acc[r][j], act, lo, hi));
}
// x: K input rows P floats apart; y: R output rows ldy floats apart.
template <int R, int J>
__attribute__((target("avx2,fma"))) void pw1_tile(const float* w, int64_t K, const float* x, int64_t P,
                                                   const float* bias, float* y, int64_t ldy, int64_t act, float lo,
                                                   float hi) {
  pw1_tile_body<R, J>(w, K, x, P, bias, y, ldy, act, lo, hi);
  if (act == ACT_SIGMOID)
    for (int r = 0; r < R; ++r) apply_act(y + r * ldy, J * 8, act, lo, hi);
}
// AVX-512 (session 11): the same tile with up to 8 rows (R x 3 = 24 accumulators of the 32 EVEX registers),
// so a chunk of the input is read once per 8 output channels instead of 4. Same per-element order (bitwise
// equal). In-process A/B (EfficientNet, 1 thread, chrt, load 4-5): 16 -> 96 on 112x112 509 -> 487 us, 96 -> 24
// and 144 -> 24 on 56x56 217 -> 205 and 290 -> 239. For O <= 24 see pw1z_tile.
template <int R, int J>
LB_Z512 void pw1_tile512(const float* w, int64_t K, const float* x, int64_t P, const float* bias, float* y,
                         int64_t ldy, int64_t act, float lo, float hi) {
  pw1_tile_body<R, J>(w, K, x, P, bias, y, ldy, act, lo, hi);
  if (act == ACT_SIGMOID)
    for (int r = 0; r < R; ++r) apply_act(y + r * ldy, J * 8, act, lo, hi);
}
using Pw1Fn = void (*)(const float*, int64_t, const float*, int64_t, const float*, float*, int64_t, int64_t, float,
                       float);
const Pw1Fn kPw1Tiles512[9][2] = {{nullptr, nullptr},
                                  {pw1_tile512<1, 1>, pw1_tile512<1, 3>},
                                  {pw1_tile512<2, 1>, pw1_tile512<2, 3>},
                                  {pw1_tile512<3, 1>, pw1_tile512<3, 3>},
                                  {pw1_tile512<4, 1>, pw1_tile512<4, 3>},
                                  {pw1_tile512<5, 1>, pw1_tile512<5, 3>},
                                  {pw1_tile512<6, 1>, pw1_tile512<6, 3>},
                                  {pw1_tile512<7, 1>, pw1_tile512<7, 3>},
                                  {pw1_tile512<8, 1>, pw1_tile512<8, 3>}};
// AVX-512, O <= 24 (session 12: the projections 32 -> 16 on 112x112, 96 -> 24 and 144 -> 24 on 56x56): R <= 8
// rows x J zmm vectors of 16 pixels (8 x 3: 48 pixels, 24 accumulators), and while the first row group runs a
// chunk it prefetches the same rows of the next chunk (pf floats ahead, J lines per input row): these convs
// read few outputs per input byte and their input rows (K streams 12-50 KB apart, just written by the
// depthwise) stalled the loads of the ymm tiles. Same per-element order as pw1_tile (bitwise equal).
// In-network A/B (EfficientNet, 1 thread, chrt, one liblowbit.a, processes alternating in both orders, 10
// rounds each, load 7-9): 32 -> 16 182-230 -> 182-189 us, 96 -> 24 154-199 -> 139-143, 144 -> 24 226-250 ->
// 200-201; the expansions (O 96, 144) were 10-30 us slower this way and keep the ymm tiles; 16 rows x 1 zmm
// measured the same as 8 x 3 on 32 -> 16, and without the prefetch only 96 -> 24 / 144 -> 24 gained.
template <int R, int J>
LB_Z512 void pw1z_tile(const float* w, int64_t K, const float* x, int64_t P, const float* bias, float* y, int64_t ldy,
                       int64_t act, float lo, float hi, int64_t pf) {
  __m512 acc[R][J];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512 bv = bias ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();
#pragma GCC unroll 3
    for (int j = 0; j < J; ++j) acc[r][j] = bv;
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* xk = x + k * P;
    if (pf)
#pragma GCC unroll 3
      for (int j = 0; j < J; ++j) _mm_prefetch(reinterpret_cast<const char*>(xk + pf + j * 16), _MM_HINT_T0);
    __m512 xv[J];
#pragma GCC unroll 3
    for (int j = 0; j < J; ++j) xv[j] = _mm512_loadu_ps(xk + j * 16);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 wv = _mm512_set1_ps(w[r * K + k]);
#pragma GCC unroll 3
      for (int j = 0; j < J; ++j) acc[r][j] = _mm512_fmadd_ps(wv, xv[j], acc[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int j = 0; j < J; ++j) {
      float* d = y + r * ldy + j * 16;
      if (act == ACT_NONE || act == ACT_SIGMOID) {
        _mm512_storeu_ps(d, acc[r][j]);
      } else {
        _mm256_storeu_ps(d, vmath::act8(_mm512_castps512_ps256(acc[r][j]), act, lo, hi));
        _mm256_storeu_ps(d + 8, vmath::act8(_mm512_extractf32x8_ps(acc[r][j], 1), act, lo, hi));
      }
    }
  if (act == ACT_SIGMOID)
    for (int r = 0; r < R; ++r) apply_act(y + r * ldy, J * 16, act, lo, hi);
}
using Pw1zFn = void (*)(const float*, int64_t, const float*, int64_t, const float*, float*, int64_t, int64_t, float,
                        float, int64_t);
const Pw1zFn kPw1zTiles[9][2] = {{nullptr, nullptr},
                                 {pw1z_tile<1, 1>, pw1z_tile<1, 3>},
                                 {pw1z_tile<2, 1>, pw1z_tile<2, 3>},
                                 {pw1z_tile<3, 1>, pw1z_tile<3, 3>},
                                 {pw1z_tile<4, 1>, pw1z_tile<4, 3>},
                                 {pw1z_tile<5, 1>, pw1z_tile<5, 3>},
                                 {pw1z_tile<6, 1>, pw1z_tile<6, 3>},
                                 {pw1z_tile<7, 1>, pw1z_tile<7, 3>},
                                 {pw1z_tile<8, 1>, pw1z_tile<8, 3>}};
const Pw1Fn kPw1Tiles[5][2] = {{nullptr, nullptr},
                               {pw1_tile<1, 1>, pw1_tile<1, 3>},
                               {pw1_tile<2, 1>, pw1_tile<2, 3>},
                               {pw1_tile<3, 1>, pw1_tile<3, 3>},
                               {pw1_tile<4, 1>, pw1_tile<4, 3>}};

// Output rows [0, R) over n pixels with the ymm tiles (x: the first pixel of K input rows P floats apart; y: the
// first pixel of R output rows ldy floats apart), the last 1-7 pixels by scalar FMAs in the same order.
void pw1_span(const Pw1Fn (*tiles)[2], const float* w, int64_t K, const float* x, int64_t P, const float* bias,
              float* y, int64_t ldy, int64_t R, int64_t n, int64_t act, float lo, float hi) {
  int64_t i = 0;
  for (; i + 24 <= n; i += 24) tiles[R][1](w, K, x + i, P, bias, y + i, ldy, act, lo, hi);
  for (; i + 8 <= n; i += 8) tiles[R][0](w, K, x + i, P, bias, y + i, ldy, act, lo, hi);
  for (int64_t r = 0; r < R && i < n; ++r) {
    float* yr = y + r * ldy;
    for (int64_t q = i; q < n; ++q) {
      float s = bias ? bias[r] : 0.f;
      for (int64_t k = 0; k < K; ++k) s = std::fma(w[r * K + k], x[k * P + q], s);
      yr[q] = s;
    }
    apply_act(yr + i, n - i, act, lo, hi);
  }
}

// The 1x1 mode-0 schedule: AVX-512: 8-row ymm tiles for O > 24, 8-row zmm tiles with prefetch (pw1z_tile) for
// O <= 24; AVX2: 4-row tiles. Pixels in chunks of pw1_geom's cp (zmm: whole 48-pixel tiles).
struct Pw1Geom {
  bool zz;                  // zmm tiles (O <= 24)
  int64_t RM, cp;           // rows per tile, pixels per chunk
  const Pw1Fn (*tiles)[2];  // the ymm tiles (the zmm tiles' tails too)
  const char* isa;
};
Pw1Geom pw1_geom(int64_t K, int64_t O) {
  const bool z = use_avx512() && O > 24, zz = use_avx512() && O <= 24;
  return Pw1Geom{zz, z || zz ? 8 : 4,
                 zz ? std::max<int64_t>(48, std::min<int64_t>(384, 8192 / K / 48 * 48)) : pw1_chunk(K),
                 z || zz ? kPw1Tiles512 : kPw1Tiles, z || zz ? "avx512vnni" : "avx2"};
}
// Output channels [0, O) of one chunk, pixels [p0, pe) (x: K input rows P floats apart; y: O output rows ldy floats
// apart; pf: the zmm tiles' prefetch distance for the first row group). Per element bias, then k in order.
void pw1_chunk_rows(const Pw1Geom& g, const float* w, const float* b, int64_t K, int64_t O, const float* x, int64_t P,
                    float* y, int64_t ldy, int64_t p0, int64_t pe, int64_t pf, int64_t act, float lo, float hi) {
  for (int64_t o0 = 0; o0 < O; o0 += g.RM) {
    const int64_t R = std::min<int64_t>(g.RM, O - o0);
    const float* wo = w + o0 * K;
    const float* bo = b ? b + o0 : nullptr;
    float* yo = y + o0 * ldy;
    int64_t px = p0;
    if (g.zz) {
      const int64_t f = o0 == 0 ? pf : 0;
      for (; px + 48 <= pe; px += 48) kPw1zTiles[R][1](wo, K, x + px, P, bo, yo + px, ldy, act, lo, hi, f);
      for (; px + 16 <= pe; px += 16) kPw1zTiles[R][0](wo, K, x + px, P, bo, yo + px, ldy, act, lo, hi, f);
    }
    pw1_span(g.tiles, wo, K, x + px, P, bo, yo + px, ldy, R, pe - px, act, lo, hi);
  }
}

void pw1_run_avx2(OpCtx& c, const float* x, const float* w, const float* b, float* y) {
  const OpParams& p = *c.p;
  const int64_t N = p.i[kN], K = p.i[kC], O = p.i[kO], P = p.i[kH] * p.i[kW];
  const Pw1Geom g = pw1_geom(K, O);
  c.isa = g.isa;
  for (int64_t n = 0; n < N; ++n) {
    const float* xn = x + n * K * P;
    float* yn = y + n * O * P;
    const int64_t cp = g.cp;
    for_ranges(c, (P + cp - 1) / cp, K * O * cp, [&](int, int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q)
        pw1_chunk_rows(g, w, b, K, O, xn, P, yn, P, q * cp, std::min(P, q * cp + cp), cp, p.i[kAct], p.f[0], p.f[1]);
    });
  }
}
#endif

// The NCHW depthwise kernel for p and its ISA name (all of them bitwise equal on the x86 SIMD paths: bias,
// then the taps in order); dwb_range_avx2 (channel blocks instead of channels) only when blocks_ok.
using DwFn = void (*)(const OpParams&, const float*, const float*, const float*, float*, int64_t, int64_t, float*);
DwFn dw_nchw_kernel(const OpParams& p, bool blocks_ok, const char** isa) {
  *isa = "scalar";
#if defined(__x86_64__)
  if ((lb_cpu_features() & LB_CPU_AVX2) && lb_isa_active() != LB_ISA_SCALAR) {
    *isa = "avx512vnni";
    if (use_avx512() && dw3_wide(p, true) && p.i[kOW] >= 16) return dw3_range_avx512;
    if (dws2_wide(p) && use_avx512())
      return p.i[kKh] == 3 ? dws2_range_avx512<3, 3> : dws2_range_avx512<5, 5>;
    *isa = "avx2";
    if (dw3_wide(p)) return dw3_range_avx2;
    if (dws2_wide(p)) return p.i[kKh] == 3 ? dws2_range_avx2<3, 3> : dws2_range_avx2<5, 5>;
    if (blocks_ok && dwb_fits(p)) return dwb_range_avx2;
    return dw_range_avx2;
  }
#endif
  (void)blocks_ok;
  return dw_range_portable;
}

void conv_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const float* x = c.in[0]->f32();
  const float* w = c.in[1]->f32();
  const float* b = c.in.size() > 2 && c.in[2] ? c.in[2]->f32() : nullptr;
  float* y = c.out[0]->f32();
  const int64_t N = p.i[kN], C = p.i[kC], O = p.i[kO], G = p.i[kG], HW = p.i[kH] * p.i[kW], OHW = p.i[kOH] * p.i[kOW];
  if (p.i[kMode] == 1 && (p.i[kXb] || p.i[kYb])) {  // blocked chain: the channel-blocked kernel
#if defined(__x86_64__)
    if ((lb_cpu_features() & LB_CPU_AVX2) && lb_isa_active() != LB_ISA_SCALAR) {
      c.isa = dwb_row512_fn(p).fn[0][0] ? "avx512vnni" : "avx2";
      const size_t per = (std::max(dw_scratch_floats(p), dwb_scratch_floats(p)) * sizeof(float) + 63) / 64 * 64;
      char* base = static_cast<char*>(c.scratch);
      for_ranges(c, N * ((C + 7) / 8), 8 * OHW * p.i[kKh] * p.i[kKw], [&](int tid, int64_t b0, int64_t b1) {
        dwb_range_avx2(p, x, w, b, y, b0, b1, reinterpret_cast<float*>(base + size_t(tid) * per));
      });
      return;
    }
#endif
    c.isa = "scalar";
    for_ranges(c, N * C, OHW * p.i[kKh] * p.i[kKw],
               [&](int, int64_t c0, int64_t c1) { dw_blocked_portable(p, x, w, b, y, c0, c1); });
    return;
  }
  if (p.i[kMode] == 1) {
    const char* isa = "scalar";
    const DwFn fn = dw_nchw_kernel(p, true, &isa);
    c.isa = isa;
    const size_t per = (std::max(dw_scratch_floats(p), dwb_scratch_floats(p)) * sizeof(float) + 63) / 64 * 64;
    char* base = static_cast<char*>(c.scratch);
#if defined(__x86_64__)
    if (fn == dwb_range_avx2) {
      for_ranges(c, N * ((C + 7) / 8), 8 * OHW * p.i[kKh] * p.i[kKw], [&](int tid, int64_t b0, int64_t b1) {
        fn(p, x, w, b, y, b0, b1, reinterpret_cast<float*>(base + size_t(tid) * per));
      });
      return;
    }
#endif
    for_ranges(c, N * C, OHW * p.i[kKh] * p.i[kKw], [&](int tid, int64_t c0, int64_t c1) {
      fn(p, x, w, b, y, c0, c1, reinterpret_cast<float*>(base + size_t(tid) * per));
    });
    return;
  }
  if (p.i[kMode] == 3) {
    conv_direct_run(c, x, w, b, y);
    return;
  }
#if defined(__x86_64__)
  if (vmath::use_avx2() && pw1_fits(p)) {
    pw1_run_avx2(c, x, w, b, y);
    return;
  }
#endif

  const int64_t cg = C / G, og = O / G, kdim = cg * p.i[kKh] * p.i[kKw];
  char* gemm_scratch = static_cast<char*>(c.scratch) + p.i[kCol];
  const size_t gemm_bytes = c.scratch_bytes - size_t(p.i[kCol]);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < G; ++g) {
      const float* xin = x + (n * C + g * cg) * HW;
      const Im2col gather{&p, xin};
      GemmArgs a{og, OHW, kdim, w + g * og * kdim, kdim, xin, OHW, false, y + (n * O + g * og) * OHW, OHW,
                 b ? b + g * og : nullptr, b ? 1 : 0, p.i[kAct], p.f[0], p.f[1]};
      if (p.i[kMode] == 2) {
        a.pack = im2col_pack;
        a.pack_ctx = &gather;
      }
      c.isa = gemm(a, c.pool, gemm_scratch, gemm_bytes);
    }
}

// ConvTranspose: col[Cout/g*kh*kw, HW] = W_g^T * x_g, then col2im adds into the output.
lb_status convt_infer(OpCtx& c) {
  lb_status s = conv_geometry(c, true);
  if (s != LB_OK) return s;
  OpParams& p = *c.p;
  const int64_t g = p.i[kG], og = p.i[kO] / g, cg = p.i[kC] / g;
  const int64_t m = og * p.i[kKh] * p.i[kKw];
  p.i[kCol] = (m * p.i[kH] * p.i[kW] * 4 + 63) / 64 * 64 + (m * cg * 4 + 63) / 64 * 64;
  c.scratch_bytes = size_t(p.i[kCol]) + gemm_scratch_per_thread() * op_threads(c);
  c.flops = uint64_t(2) * p.i[kN] * p.i[kC] * p.i[kH] * p.i[kW] * og * p.i[kKh] * p.i[kKw];
  return LB_OK;
}

void convt_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const float* x = c.in[0]->f32();
  const float* w = c.in[1]->f32();
  const float* b = c.in.size() > 2 && c.in[2] ? c.in[2]->f32() : nullptr;
  float* y = c.out[0]->f32();
  const int64_t N = p.i[kN], C = p.i[kC], O = p.i[kO], G = p.i[kG], H = p.i[kH], W = p.i[kW];
  const int64_t OH = p.i[kOH], OW = p.i[kOW], kh = p.i[kKh], kw = p.i[kKw];
  const int64_t cg = C / G, og = O / G, m = og * kh * kw, HW = H * W;
  float* col = static_cast<float*>(c.scratch);
  float* wt = col + (m * HW + 15) / 16 * 16;
  char* gs = static_cast<char*>(c.scratch) + p.i[kCol];
  const size_t gbytes = c.scratch_bytes - size_t(p.i[kCol]);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < G; ++g) {
      // W is [C, O/g, kh, kw]: rows of group g, transposed to [m, cg]
      const float* wg = w + g * cg * m;
      for (int64_t ci = 0; ci < cg; ++ci)
        for (int64_t j = 0; j < m; ++j) wt[j * cg + ci] = wg[ci * m + j];
      GemmArgs a{m, HW, cg, wt, cg, x + (n * C + g * cg) * HW, HW, false, col, HW};
      c.isa = gemm(a, c.pool, gs, gbytes);
      // col2im, output channels split over the pool (each channel summed by one thread, taps in order)
      // kernel == stride, no pads/dilation/output padding (PP-OCR det's 2x2 s2 upsampling): every
      // output pixel gets exactly one tap, so each output row is written once as bias + tap (the
      // same value the general path sums), row by row instead of a fill and kh*kw scattered passes.
      const bool tiled = kh == p.i[kSh] && kw == p.i[kSw] && p.i[kDh] == 1 && p.i[kDw] == 1 && OH == H * kh &&
                         OW == W * kw && !p.i[kPt] && !p.i[kPl];
      for_ranges(c, og, OH * OW + kh * kw * HW, [&](int, int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        float* out = y + (n * O + g * og + o) * OH * OW;
        const float bv = b ? b[g * og + o] : 0.f;
        if (tiled) {
          for (int64_t iy = 0; iy < H; ++iy)
            for (int64_t ky = 0; ky < kh; ++ky) {
              float* row = out + (iy * kh + ky) * OW;
              const float* src = col + (o * kh + ky) * kw * HW + iy * W;
              for (int64_t kx = 0; kx < kw; ++kx)
                for (int64_t ix = 0; ix < W; ++ix) row[ix * kw + kx] = bv + src[kx * HW + ix];
              apply_act(row, OW, p.i[kAct], p.f[0], p.f[1]);
            }
          continue;
        }
        for (int64_t i = 0; i < OH * OW; ++i) out[i] = bv;
        for (int64_t ky = 0; ky < kh; ++ky)
          for (int64_t kx = 0; kx < kw; ++kx) {
            const float* src = col + ((o * kh + ky) * kw + kx) * HW;
            for (int64_t iy = 0; iy < H; ++iy) {
              const int64_t oy = iy * p.i[kSh] - p.i[kPt] + ky * p.i[kDh];
              if (oy < 0 || oy >= OH) continue;
              for (int64_t ix = 0; ix < W; ++ix) {
                const int64_t ox = ix * p.i[kSw] - p.i[kPl] + kx * p.i[kDw];
                if (ox >= 0 && ox < OW) out[oy * OW + ox] += src[iy * W + ix];
              }
            }
          }
        apply_act(out, OH * OW, p.i[kAct], p.f[0], p.f[1]);
      }
      });
    }
}

#if defined(__x86_64__)
// Stride-2 fusion on the AVX-512 path: the expansion stores each 16-pixel span of an input row straight into the
// row's even / odd padded-column phases (the layout dws2_row512 builds in its ring), so the depthwise reads them
// in place: no row split. R <= 8 channels x 16 pixels (two ymm vectors each: the 8-row tile's per-element order,
// bias then k in order, then relu / clip), each pair deinterleaved by two permutes; ev / od: phase rows of the
// span's even / odd pixels, channel r at + r * ld.
template <int R>
LB_Z512 void pw1s_tile(const float* w, int64_t K, const float* x, int64_t P, const float* bias, float* ev, float* od,
                       int64_t ld, int64_t act, float lo, float hi) {
  __m256 acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = bias ? _mm256_set1_ps(bias[r]) : _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m256 x0 = _mm256_loadu_ps(x + k * P), x1 = _mm256_loadu_ps(x + k * P + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_broadcast_ss(w + r * K + k);
      acc[r][0] = _mm256_fmadd_ps(wv, x0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(wv, x1, acc[r][1]);
    }
  }
  const __m256i ie = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), io = _mm256_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m256 a = vmath::act8(acc[r][0], act, lo, hi), b = vmath::act8(acc[r][1], act, lo, hi);
    _mm256_storeu_ps(ev + r * ld, _mm256_permutex2var_ps(a, ie, b));
    _mm256_storeu_ps(od + r * ld, _mm256_permutex2var_ps(a, io, b));
  }
}
using Pw1sFn = void (*)(const float*, int64_t, const float*, int64_t, const float*, float*, float*, int64_t, int64_t,
                        float, float);
const Pw1sFn kPw1sTiles[9] = {nullptr,       pw1s_tile<1>, pw1s_tile<2>, pw1s_tile<3>, pw1s_tile<4>,
                              pw1s_tile<5>, pw1s_tile<6>, pw1s_tile<7>, pw1s_tile<8>};
// Zeroes the padding slots of one row's phases E (row) and O (row + PWh) around the inner columns: the left
// pad and 16 floats after each phase's last input (what the taps read), as dws2_row512 does in its ring.
LB_Z512 inline void phase_pads512(float* row, int64_t PWh, int64_t pl, int64_t W) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t ph = 0; ph < 2; ++ph) {
    float* r = row + ph * PWh;
    const int64_t a = (pl - ph + 1) / 2, b = (pl + W - ph + 1) / 2;  // inner slots [a, b) of phase ph
    if (a > 0) _mm512_mask_storeu_ps(r, __mmask16((1u << a) - 1), zero);
    _mm512_mask_storeu_ps(r + b, __mmask16((1u << std::min<int64_t>(16, PWh - b)) - 1), zero);
  }
}
// The depthwise part on the phases in T (R channels of hs rows; strip padding: pts rows on top, rows outside
// [0, hs) read the zero row zr): output rows [0, ohs) of each channel at y + r * OH * OW, the row pairs and
// positions of dws2_range_avx512 (bitwise equal).
template <int KH>
LB_Z512 void pwdw_dws2(const OpParams& p, const float* T, int64_t hs, int64_t pts, int64_t ohs, const float* zr,
                       const float* w, const float* b, float* y, int64_t R, const int64_t* q, int64_t nq) {
  const int64_t PWh = dws2_geom(p).PWh, OW = p.i[kOW], ys = p.i[kOH] * OW, act = p.i[kAct];
  const float lo = p.f[0], hi = p.f[1];
  const float* rows[KH + 2];
  for (int64_t r = 0; r < R; ++r) {
    const float* tr = T + r * hs * 2 * PWh;
    const __m512 bias = _mm512_set1_ps(b ? b[r] : 0.f);
    for (int64_t oy = 0; oy < ohs; oy += 2) {
      for (int k = 0; k < KH + 2; ++k) {
        const int64_t i = 2 * oy + k - pts;
        rows[k] = i >= 0 && i < hs ? tr + i * 2 * PWh : zr;
      }
      dws2_rows512<KH, KH>(rows, PWh, w + r * KH * KH, bias, q, nq, act, lo, hi, y + r * ys + oy * OW, OW, oy + 1 < ohs);
    }
  }
}
#endif

// conv2d_pwdw_f32 (exporters/lbpk_fpwdw.py): a 1x1 expansion (stride 1, no padding, one group, act none /
// relu / clip) and the depthwise conv that is its only reader, in one op, NCHW. The expanded map never goes to
// memory: for a strip of S depthwise output rows and a group of 8 channels, the expansion writes the strip's
// input rows (S * stride + k - stride, clipped to the map; the rows shared with the next strip are computed again)
// into a per-thread buffer T[8][rows][W] that stays in L2 with the input strip, and the NCHW depthwise kernels
// run on it as a conv over the strip (its top / bottom padding: the map's where the strip touches the border).
// Per element the same arithmetic as the two ops (the 1x1 tiles of mode 0 / the GEMM, the depthwise kernels of
// conv2d_f32 on the same rows): bitwise equal to the unfused pair. Work items (image, strip, channel group) go
// strip-major to the threads. On this VM a write to memory not in cache costs ~60 us/MB (fp32_12): the
// EfficientNet expansions wrote 4.8 / 1.8 MB that the depthwise convs read back.
// params: the depthwise conv's (enum above; kC = kO = kG = expanded channels), then:
enum { kPwK = kXs + 1, kPwAct, kStrip, kStripRows };  // input channels, expansion act (bounds f[2], f[3]), S, rows
constexpr int64_t kPwdwGroup = 8;                  // channels per work item (the AVX-512 tiles' 8 rows)
constexpr int64_t kPwdwStripBytes = 512 << 10;     // input strip + T of one group, bytes (L2 is 1 MB on Zen 4)

// Per-thread T floats: 8 channels x the strip's rows, each row W floats or (the stride-2 AVX-512 path) its two
// padded-column phases of dws2_geom's PWh floats.
size_t pwdw_t_floats(const OpParams& p) {
  return size_t(kPwdwGroup * p.i[kStripRows] * std::max(p.i[kW], 2 * dws2_geom(p).PWh) + 16);
}

lb_status pwdw_infer(OpCtx& c) {
  const auto four_f32 = [](const Tensor* t) { return t && t->shape.size() == 4 && t->dtype == DType::F32; };
  if (c.in.size() < 4 || !four_f32(c.in[0]) || !four_f32(c.in[1]) || !four_f32(c.in[3])) {
    c.err = "expects a 4-D f32 input, a 4-D f32 1x1 weight, an optional bias, a 4-D f32 depthwise weight";
    return LB_ERR_UNSUPPORTED;
  }
  const Tensor *x = c.in[0], *w1 = c.in[1], *w2 = c.in[3];
  OpParams& p = *c.p;
  const Json& a = *c.attrs;
  const int64_t O = w1->shape[0];
  if (w1->shape[1] != x->shape[1] || w1->shape[2] != 1 || w1->shape[3] != 1 || w2->shape[0] != O ||
      w2->shape[1] != 1 || attr_int(a, "group", O) != O) {
    c.err = "weights " + shape_str(w1->shape) + " / " + shape_str(w2->shape) + " are not a 1x1 conv of input " +
            shape_str(x->shape) + " and a depthwise conv of its output";
    return LB_ERR_SHAPE;
  }
  for (int i : {2, 4})
    if (int(c.in.size()) > i && c.in[i] && c.in[i]->numel() != O) {
      c.err = "bias has " + std::to_string(c.in[i]->numel()) + " values, expected " + std::to_string(O);
      return LB_ERR_SHAPE;
    }
  p.i[kN] = x->shape[0]; p.i[kC] = p.i[kO] = p.i[kG] = O; p.i[kH] = x->shape[2]; p.i[kW] = x->shape[3];
  p.i[kKh] = w2->shape[2]; p.i[kKw] = w2->shape[3]; p.i[kPwK] = x->shape[1];
  if (!parse_conv_window(a, &p.i[kSh], &c.err)) return LB_ERR_SHAPE;
  if (!conv_output_hw(attr_str(a, "auto_pad", "NOTSET"), &p.i[kH], &p.i[kKh], &p.i[kSh], &p.i[kOH], &c.err)) {
    c.err += " (input " + shape_str(x->shape) + ")";
    return LB_ERR_SHAPE;
  }
  if (p.i[kDh] != 1 || p.i[kDw] != 1 || p.i[kPt] >= p.i[kKh] || p.i[kPb] >= p.i[kKh]) {
    c.err = "needs no dilation and vertical pads smaller than the kernel; re-export the package";
    return LB_ERR_UNSUPPORTED;
  }
  if (!parse_act(a, &p, kAct, 0)) {
    c.err = "unknown fused activation '" + attr_str(a, "act", "") + "'";
    return LB_ERR_UNSUPPORTED;
  }
  const std::string pa = attr_str(a, "pw_act", "");
  p.i[kPwAct] = pa.empty() ? int64_t(ACT_NONE) : pa == "relu" ? int64_t(ACT_RELU) : pa == "clip" ? int64_t(ACT_CLIP) : -1;
  if (p.i[kPwAct] < 0) {
    c.err = "unknown expansion activation '" + pa + "' (none, relu or clip)";
    return LB_ERR_UNSUPPORTED;
  }
  p.f[2] = pa == "clip" ? attr_float(a, "pw_act_min", -INFINITY) : -INFINITY;
  p.f[3] = pa == "clip" ? attr_float(a, "pw_act_max", INFINITY) : INFINITY;
  // the largest strip whose input rows and T fit the budget, then the strips evened out
  const int64_t H = p.i[kH], W = p.i[kW], K = p.i[kPwK], OH = p.i[kOH], sh = p.i[kSh], kh = p.i[kKh];
  const auto rows = [&](int64_t S) { return std::min(H, (S - 1) * sh + kh); };
  int64_t S = OH;
  while (S > 1 && rows(S) * W * (K + kPwdwGroup) * int64_t(sizeof(float)) > kPwdwStripBytes) --S;
  S = (OH + (OH + S - 1) / S - 1) / ((OH + S - 1) / S);
  p.i[kStrip] = S;
  p.i[kStripRows] = rows(S);
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = {p.i[kN], O, OH, p.i[kOW]};
  c.scratch_bytes = (pwdw_t_floats(p) * sizeof(float) + 63) / 64 * 64 +
                    (dw_scratch_floats(p) * sizeof(float) + 63) / 64 * 64 + gemm_scratch_per_thread();
  c.scratch_bytes *= size_t(op_threads(c));
  c.flops = uint64_t(2) * p.i[kN] * O * (H * W * K + OH * p.i[kOW] * kh * p.i[kKw]);
  return LB_OK;
}

/// q (a copy of the depthwise conv's params p) becomes that conv over the input rows output rows [oy0, oy1)
/// read: its H, OH and top / bottom pads; returns the first of those input rows.
int64_t strip_conv(OpParams& q, const OpParams& p, int64_t oy0, int64_t oy1) {
  const int64_t sh = p.i[kSh], kh = p.i[kKh], pt = p.i[kPt];
  const int64_t ya = std::max<int64_t>(0, oy0 * sh - pt), yb = std::min(p.i[kH], (oy1 - 1) * sh - pt + kh);
  q.i[kH] = yb - ya; q.i[kOH] = oy1 - oy0;
  q.i[kPt] = ya + pt - oy0 * sh;
  q.i[kPb] = (oy1 - oy0 - 1) * sh + kh - q.i[kH] - q.i[kPt];
  return ya;
}

void pwdw_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const float* x = c.in[0]->f32();
  const float* w1 = c.in[1]->f32();
  const float* b1 = c.in[2] ? c.in[2]->f32() : nullptr;
  const float* w2 = c.in[3]->f32();
  const float* b2 = c.in.size() > 4 && c.in[4] ? c.in[4]->f32() : nullptr;
  float* y = c.out[0]->f32();
  const int64_t N = p.i[kN], K = p.i[kPwK], O = p.i[kO], H = p.i[kH], W = p.i[kW], P = H * W, OH = p.i[kOH];
  const int64_t OW = p.i[kOW], sh = p.i[kSh], kh = p.i[kKh], taps = kh * p.i[kKw];
  const int64_t S = p.i[kStrip], ns = (OH + S - 1) / S, groups = (O + kPwdwGroup - 1) / kPwdwGroup;
  const int64_t act = p.i[kPwAct];
  const float lo = p.f[2], hi = p.f[3];
  const size_t t_bytes = (pwdw_t_floats(p) * sizeof(float) + 63) / 64 * 64;
  const size_t d_bytes = (dw_scratch_floats(p) * sizeof(float) + 63) / 64 * 64;
  const size_t per = c.scratch_bytes / size_t(op_threads(c));
  bool simd = false;
#if defined(__x86_64__)
  simd = (lb_cpu_features() & LB_CPU_AVX2) && lb_isa_active() != LB_ISA_SCALAR;
  const bool z = simd && use_avx512();
  const Pw1Fn(*tiles)[2] = z ? kPw1Tiles512 : kPw1Tiles;
  const int64_t RM = z ? 8 : 4;
  c.isa = z ? "avx512vnni" : simd ? "avx2" : "scalar";
  // stride 2 with the AVX-512 row kernels: the expansion writes the phases, the depthwise reads them in place
  const bool split = z && sh == 2 && dws2_wide(p);
  const int64_t PWh = dws2_geom(p).PWh, pl = p.i[kPl];
  int64_t qpos[32];
  const int64_t nq = split ? dws2_positions512(OW, qpos) : 0;
#else
  c.isa = "scalar";
#endif
  for_ranges(c, N * ns * groups, kPwdwGroup * (p.i[kStripRows] * W * K + S * OW * taps),
             [&](int tid, int64_t i0, int64_t i1) {
    // T at the end of the thread's slot, the zero row / GEMM scratch in front: with T at the slot's start,
    // thread 0's T began where the op's input ended in EfficientNet's arena and, at 2 threads only, thread 0's
    // items ran ~1.3x slower than thread 1's (58-60 vs 43-47 kcycles per item, the s2 op 365-379 -> 335-339 us;
    // cause not found: moving T by 384 B or 2 KB changed nothing, slots 1 and 2 of a 3-slot scratch were both fast).
    char* base = static_cast<char*>(c.scratch) + size_t(tid) * per;
    float* T = reinterpret_cast<float*>(base + per - t_bytes);
    float* dbuf = reinterpret_cast<float*>(base);
    OpParams q = p;  // the depthwise conv over one strip of one channel group (q.v is empty: no allocation)
#if defined(__x86_64__)
    if (split) std::memset(dbuf, 0, size_t(2 * PWh) * sizeof(float));  // the zero row (the map's padding)
#endif
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t n = it / (ns * groups), st = it / groups % ns, o0 = it % groups * kPwdwGroup;
      const int64_t oy0 = st * S, oy1 = std::min(OH, oy0 + S), R = std::min(kPwdwGroup, O - o0);
      const int64_t ya = strip_conv(q, p, oy0, oy1), hs = q.i[kH];  // input rows [ya, ya + hs), expanded into T[R][hs][W]
      const float* xs = x + n * K * P + ya * W;
#if defined(__x86_64__)
      if (split) {
        const int64_t ld = hs * 2 * PWh;  // channel stride in T; row i's even phase at T + i * 2 * PWh, odd at + PWh
        const float* wo = w1 + o0 * K;
        const float* bo = b1 ? b1 + o0 : nullptr;
        for (int64_t i = 0; i < hs; ++i) {
          const float* xr = xs + i * W;
          float* pe = T + i * 2 * PWh + (pl % 2) * PWh + pl / 2;              // input columns x even
          float* po = T + i * 2 * PWh + ((pl + 1) % 2) * PWh + (pl + 1) / 2;  // odd
          for (int64_t r = 0; r < R; ++r) phase_pads512(T + r * ld + i * 2 * PWh, PWh, pl, W);
          int64_t x0 = 0;
          for (; x0 + 16 <= W; x0 += 16) kPw1sTiles[R](wo, K, xr + x0, P, bo, pe + x0 / 2, po + x0 / 2, ld, act, lo, hi);
          if (x0 < W) {  // the last < 16 pixels: the 8-pixel tile / scalar FMAs, then into the phases
            float tail[kPwdwGroup * 16];
            pw1_span(tiles, wo, K, xr + x0, P, bo, tail, 16, R, W - x0, act, lo, hi);
            for (int64_t r = 0; r < R; ++r)
              for (int64_t j = 0; j < W - x0; ++j) (j % 2 ? po : pe)[r * ld + (x0 + j) / 2] = tail[r * 16 + j];
          }
        }
        (kh == 3 ? pwdw_dws2<3> : pwdw_dws2<5>)(p, T, hs, q.i[kPt], oy1 - oy0, dbuf, w2 + o0 * taps,
                                                 b2 ? b2 + o0 : nullptr, y + (n * O + o0) * OH * OW + oy0 * OW, R,
                                                 qpos, nq);
        continue;
      }
#endif
      if (simd) {
#if defined(__x86_64__)
        for (int64_t r0 = 0; r0 < R; r0 += RM)
          pw1_span(tiles, w1 + (o0 + r0) * K, K, xs, P, b1 ? b1 + o0 + r0 : nullptr, T + r0 * hs * W, hs * W,
                   std::min(RM, R - r0), hs * W, act, lo, hi);
#endif
      } else {
        const GemmArgs ga{R, hs * W, K, w1 + o0 * K, K, xs, P, false, T, hs * W, b1 ? b1 + o0 : nullptr, b1 ? 1 : 0,
                          act, lo, hi};
        gemm(ga, nullptr, base + d_bytes, per - t_bytes - d_bytes);
      }
      q.i[kN] = 1; q.i[kC] = q.i[kO] = q.i[kG] = R;
      q.i[kYs] = OH * OW;
      const char* isa;
      dw_nchw_kernel(q, false, &isa)(q, T, w2 + o0 * taps, b2 ? b2 + o0 : nullptr, y + (n * O + o0) * OH * OW + oy0 * OW,
                                     0, R, dbuf);
    }
  });
}

// conv2d_dwpw_f32 (exporters/lbpk_fpwdw.py): a depthwise conv and the 1x1 projection (O <= 24 output channels,
// K <= 160 inputs: the mode-0 tiles) that is its only reader, in one op, NCHW: the depthwise output never goes to
// memory. Per strip of S output rows, the depthwise kernels of conv2d_f32 (dw_nchw_kernel, as a conv over the strip's
// input rows as in conv2d_pwdw_f32, input plane stride H * W) write all C channels of the strip into
// a per-thread buffer D[C][S * OW] that stays in L2, then the projection's 1x1 tiles (pw1_chunk_rows; the GEMM on
// the portable path) read it with channel stride S * OW. Per element the two ops' arithmetic: bitwise equal to
// the unfused pair. Work items (image, strip) go to the threads. EfficientNet-Lite0's first block: the 32x112x112
// depthwise wrote 1.6 MB that the 32 -> 16 projection read back.
// params: the depthwise conv's (enum above; kC = kO = kG = its channels; kAct / f[0], f[1]: its activation), then:
enum { kPjO = kXs + 1, kPjAct, kDpStrip };  // projection channels, its activation (bounds f[2], f[3]), S
// D of one strip, bytes (EfficientNet's 32x112x112 -> 16 in the network, 1 thread, load ~8: 128 KB 431-450 us,
// 192-320 KB 388-490, 512 KB 425-459; the two ops 436-519 in the same processes)
constexpr int64_t kDwpwStripBytes = 256 << 10;

lb_status dwpw_infer(OpCtx& c) {
  const auto four_f32 = [](const Tensor* t) { return t && t->shape.size() == 4 && t->dtype == DType::F32; };
  if (c.in.size() < 4 || !four_f32(c.in[0]) || !four_f32(c.in[1]) || !four_f32(c.in[3])) {
    c.err = "expects a 4-D f32 input, a 4-D f32 depthwise weight, an optional bias, a 4-D f32 1x1 weight";
    return LB_ERR_UNSUPPORTED;
  }
  const Tensor *x = c.in[0], *w1 = c.in[1], *w2 = c.in[3];
  OpParams& p = *c.p;
  const Json& a = *c.attrs;
  const int64_t C = x->shape[1], O = w2->shape[0];
  if (w1->shape[0] != C || w1->shape[1] != 1 || attr_int(a, "group", C) != C || w2->shape[1] != C ||
      w2->shape[2] != 1 || w2->shape[3] != 1) {
    c.err = "weights " + shape_str(w1->shape) + " / " + shape_str(w2->shape) + " are not a depthwise conv of input " +
            shape_str(x->shape) + " and a 1x1 conv of its output";
    return LB_ERR_SHAPE;
  }
  if (c.in.size() > 2 && c.in[2] && c.in[2]->numel() != C) {
    c.err = "depthwise bias has " + std::to_string(c.in[2]->numel()) + " values, expected " + std::to_string(C);
    return LB_ERR_SHAPE;
  }
  if (c.in.size() > 4 && c.in[4] && c.in[4]->numel() != O) {
    c.err = "projection bias has " + std::to_string(c.in[4]->numel()) + " values, expected " + std::to_string(O);
    return LB_ERR_SHAPE;
  }
  p.i[kN] = x->shape[0]; p.i[kC] = p.i[kO] = p.i[kG] = C; p.i[kH] = x->shape[2]; p.i[kW] = x->shape[3];
  p.i[kKh] = w1->shape[2]; p.i[kKw] = w1->shape[3]; p.i[kMode] = 1; p.i[kPjO] = O;
  if (!parse_conv_window(a, &p.i[kSh], &c.err)) return LB_ERR_SHAPE;
  if (!conv_output_hw(attr_str(a, "auto_pad", "NOTSET"), &p.i[kH], &p.i[kKh], &p.i[kSh], &p.i[kOH], &c.err)) {
    c.err += " (input " + shape_str(x->shape) + ")";
    return LB_ERR_SHAPE;
  }
  if (p.i[kDh] != 1 || p.i[kDw] != 1 || p.i[kPt] >= p.i[kKh] || p.i[kPb] >= p.i[kKh]) {
    c.err = "needs no dilation and vertical pads smaller than the kernel; re-export the package";
    return LB_ERR_UNSUPPORTED;
  }
  const std::string da = attr_str(a, "dw_act", "");
  p.i[kAct] = da.empty() ? int64_t(ACT_NONE) : da == "relu" ? int64_t(ACT_RELU) : da == "clip" ? int64_t(ACT_CLIP) : -1;
  if (p.i[kAct] < 0) {
    c.err = "unknown depthwise activation '" + da + "' (none, relu or clip)";
    return LB_ERR_UNSUPPORTED;
  }
  p.f[0] = da == "clip" ? attr_float(a, "dw_act_min", -INFINITY) : -INFINITY;
  p.f[1] = da == "clip" ? attr_float(a, "dw_act_max", INFINITY) : INFINITY;
  if (!parse_act(a, &p, kPjAct, 2)) {
    c.err = "unknown fused activation '" + attr_str(a, "act", "") + "'";
    return LB_ERR_UNSUPPORTED;
  }
  const int64_t OH = p.i[kOH], OW = p.i[kOW];
  // the largest strip whose D fits the budget; an even number of strips (2 threads: as many each), evened out
  int64_t S = std::max<int64_t>(1, std::min(OH, kDwpwStripBytes / int64_t(sizeof(float)) / (C * OW)));
  int64_t ns = (OH + S - 1) / S;
  if (ns % 2 && ns < OH) ++ns;
  S = (OH + ns - 1) / ns;
  p.i[kDpStrip] = S;
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = {p.i[kN], O, OH, OW};
  c.scratch_bytes = (size_t(C * S * OW) * sizeof(float) + 63) / 64 * 64 +
                    (dw_scratch_floats(p) * sizeof(float) + 63) / 64 * 64 + gemm_scratch_per_thread();
  c.scratch_bytes *= size_t(op_threads(c));
  c.flops = uint64_t(2) * p.i[kN] * OH * OW * C * (p.i[kKh] * p.i[kKw] + O);
  return LB_OK;
}

void dwpw_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const float* x = c.in[0]->f32();
  const float* w1 = c.in[1]->f32();
  const float* b1 = c.in[2] ? c.in[2]->f32() : nullptr;
  const float* w2 = c.in[3]->f32();
  const float* b2 = c.in.size() > 4 && c.in[4] ? c.in[4]->f32() : nullptr;
  float* y = c.out[0]->f32();
  const int64_t N = p.i[kN], C = p.i[kC], H = p.i[kH], W = p.i[kW], OH = p.i[kOH], OW = p.i[kOW], O = p.i[kPjO];
  const int64_t taps = p.i[kKh] * p.i[kKw], S = p.i[kDpStrip];
  const int64_t ns = (OH + S - 1) / S, ld = S * OW, act = p.i[kPjAct];
  const float lo = p.f[2], hi = p.f[3];
  const size_t d_bytes = (size_t(C * ld) * sizeof(float) + 63) / 64 * 64;
  const size_t w_bytes = (dw_scratch_floats(p) * sizeof(float) + 63) / 64 * 64;
  const size_t per = c.scratch_bytes / size_t(op_threads(c));
  bool simd = false;
#if defined(__x86_64__)
  simd = vmath::use_avx2();
  const Pw1Geom g = pw1_geom(C, O);
  c.isa = simd ? g.isa : "scalar";
#else
  c.isa = "scalar";
#endif
  for_ranges(c, N * ns, C * ld * (taps + O), [&](int tid, int64_t i0, int64_t i1) {
    char* base = static_cast<char*>(c.scratch) + size_t(tid) * per;
    float* D = reinterpret_cast<float*>(base);
    float* dbuf = reinterpret_cast<float*>(base + d_bytes);
    OpParams q = p;  // the depthwise conv over one strip of one image (q.v is empty: no allocation)
    q.i[kN] = 1; q.i[kYs] = ld; q.i[kXs] = H * W;
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t n = it / ns, oy0 = it % ns * S, oy1 = std::min(OH, oy0 + S);
      const int64_t ya = strip_conv(q, p, oy0, oy1);
      const char* isa;
      const DwFn fn = dw_nchw_kernel(q, false, &isa);
      // one call for all channels: the padded buffer is zeroed once per strip (one call per channel zeroed it C
      // times: 2.5 MB per EfficientNet run)
      fn(q, x + (n * C * H + ya) * W, w1, b1, D, 0, C, dbuf);
      const int64_t np = (oy1 - oy0) * OW;
      float* yn = y + n * O * OH * OW + oy0 * OW;
      if (simd) {
#if defined(__x86_64__)
        for (int64_t p0 = 0; p0 < np; p0 += g.cp)
          pw1_chunk_rows(g, w2, b2, C, O, D, ld, yn, OH * OW, p0, std::min(np, p0 + g.cp), g.cp, act, lo, hi);
#endif
      } else {
        const GemmArgs ga{O, np, C, w2, C, D, ld, false, yn, OH * OW, b2, b2 ? 1 : 0, act, lo, hi};
        gemm(ga, nullptr, base + d_bytes + w_bytes, per - d_bytes - w_bytes);
      }
    }
  });
}

}  // namespace

void register_ops_conv(std::vector<OpDef>& r) {
  r.push_back(OpDef{"conv2d_f32", conv_infer, conv_run, false});
  r.push_back(OpDef{"conv_transpose2d_f32", convt_infer, convt_run, false});
  r.push_back(OpDef{"conv2d_pw_f32", conv_pw_infer, conv_pw_run, false});
  r.push_back(OpDef{"conv2d_pwdw_f32", pwdw_infer, pwdw_run, false});
  r.push_back(OpDef{"conv2d_dwpw_f32", dwpw_infer, dwpw_run, false});
}

}  // namespace lb
