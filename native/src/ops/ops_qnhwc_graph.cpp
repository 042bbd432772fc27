// The non-conv ops of int8 NHWC chains (docs/runtime.md, "int8 NHWC chains"; manifest side:
// docs/package-format.md, section 6.2): values stay int8 channels-last (i8 [N, H, W, Cs], Cs =
// nhwc_cstride(C), padding channels 0, ops_qnhwc.h) through the FPN neck and the head of a
// quantized CNN instead of leaving the chain through f32 NCHW.
//
// ops:
//   resize_nearest_nhwc_q8: nearest Resize of an int8 NHWC value (resize_f32's inputs and attrs,
//     its source-index taps): quantization is elementwise, so quantize-then-resize gives the bits
//     of resize-then-quantize.
//   concat_nhwc_q8: channel Concat of int8 NHWC values quantized with one scale / zero point (the
//     exporter quantizes every input with the consumer's parameters): exact for the same reason.
//   quantize_f32nhwc_q8: f32 NHWC [N, H, W, C] (a chain conv's "f32_nhwc" output) -> int8 NHWC with
//     another scale / zero point / smoothing multipliers than the conv's own q8 output: the
//     operations of quantize_nhwc_q8 (x * m[c], then the static quantizer) on contiguous rows.
//   conv_transpose_nhwc_q8: ConvTranspose whose kernel equals its stride (no overlap, no pads, group
//     1; PP-OCRv5 det's 2x2/2 upsamplers): each input pixel's dequantized int8 row ((q - z) * s, the
//     values qdq_f32 makes) times the weight [C, kh*kw*O] (stored [kh, kw, O, C]), + bias, fused act,
//     folded elementwise steps, then each (ky, kx) block of O values goes to output pixel
//     (y*kh+ky, x*kw+kx) as int8 NHWC (requantized to the next transposed conv's input) and / or f32
//     NCHW. The weight's int8 scales are per input channel (the quantizer's axis 0), which an int32 dot
//     product cannot carry, so the products are float: AVX2 kernels with a fixed order of operations
//     (columns in the lanes with one multiply then FMAs in channel order; or, for <= 4 columns, 8-lane
//     partial sums and a fixed reduction), and a scalar reference doing the same operations (same bits).
//   global_avg_pool_nhwc_f32: GlobalAveragePool of an f32 NHWC value (a chain conv's "f32_nhwc"
//     output) with global_avg_pool_f32's summation order: the same bits.
//   se_gate_nhwc_q8: a squeeze-excitation gate's float tail (x * g or x + x * g with the f32 gate of
//     the SE convs), optionally + the nearest upsampling of a lower-resolution f32 NHWC value (an FPN
//     top-down Add), then int8 NHWC (quantize_nhwc_q8's operations) and / or f32 NHWC / NCHW: one pass
//     instead of Mul, Add, Resize, Add and a transposing quantizer over f32 NCHW maps; the same bits.
#pragma GCC optimize("O3")
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops.h"
#include "ops_qnhwc.h"
#include "vmath.h"

namespace lb {
namespace {

inline size_t al64(size_t v) { return (v + 63) / 64 * 64; }

bool int8_nhwc_input(const Tensor* x, const char* what, std::string* err) {
  if (x->dtype != DType::I8 || x->shape.size() != 4) {
    *err = std::string(what) + " must be an int8 NHWC value [N, H, W, Cs], got " + shape_str(x->shape);
    return false;
  }
  return true;
}

// ---- resize_nearest_nhwc_q8 ---------------------------------------------------------------------
// params: resize_f32's (i[0..2], f[0..1]) and i[3] C; v: OH source rows, then OW source columns
lb_status resize_q8_infer(OpCtx& c) {
  const Tensor* x = c.in[0];
  if (!int8_nhwc_input(x, "input 0", &c.err)) return LB_ERR_SHAPE;
  OpParams& p = *c.p;
  const int64_t C = attr_int(*c.attrs, "channels", 0);
  if (C <= 0 || nhwc_cstride(C) != x->shape[3]) {
    c.err = "attr channels (" + std::to_string(C) + ") does not match the int8 NHWC input " + shape_str(x->shape) +
            " (channel stride " + std::to_string(nhwc_cstride(std::max<int64_t>(C, 1))) + " expected)";
    return LB_ERR_SHAPE;
  }
  // resize_f32's own shape inference on the NCHW view of the value: same scales / sizes rules
  Tensor view;
  view.dtype = DType::F32;
  view.shape = {x->shape[0], C, x->shape[1], x->shape[2]};
  Tensor vout;
  OpCtx sub;
  sub.attrs = c.attrs;
  sub.in = c.in;
  sub.in[0] = &view;
  sub.out = {&vout};
  sub.p = &p;
  const lb_status st = find_op("resize_f32")->infer(sub);
  if (st != LB_OK) {
    c.err = sub.err;
    return st;
  }
  if (p.i[0] != 0) {
    c.err = "int8 Resize is nearest only (linear on int8 values would round differently from the float graph)";
    return LB_ERR_UNSUPPORTED;
  }
  p.i[3] = C;
  const int64_t H = x->shape[1], W = x->shape[2], OH = vout.shape[2], OW = vout.shape[3];
  p.v.resize(size_t(OH + OW));
  for (int64_t oy = 0; oy < OH; ++oy) p.v[size_t(oy)] = resize_tap(p, oy, p.f[0], H, OH).i0;
  for (int64_t ox = 0; ox < OW; ++ox) p.v[size_t(OH + ox)] = resize_tap(p, ox, p.f[1], W, OW).i0;
  c.out[0]->dtype = DType::I8;
  c.out[0]->shape = {x->shape[0], OH, OW, x->shape[3]};
  c.flops = 0;
  return LB_OK;
}

void resize_q8_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const auto& s = c.in[0]->shape;
  const auto& o = c.out[0]->shape;
  const int64_t H = s[1], W = s[2], Cs = s[3], OH = o[1], OW = o[2];
  const int8_t* x = static_cast<const int8_t*>(c.in[0]->data);
  int8_t* y = static_cast<int8_t*>(c.out[0]->data);
  const int64_t* ty = p.v.data();
  const int64_t* tx = p.v.data() + OH;
  for_ranges(c, s[0] * OH, OW * Cs / 8 + 1, [&](int, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / OH, oy = r % OH;
      int8_t* orow = y + r * OW * Cs;
      if (oy > 0 && ty[oy] == ty[oy - 1] && r > r0) {  // same source row as the previous one: one copy
        std::memcpy(orow, orow - OW * Cs, size_t(OW * Cs));
        continue;
      }
      const int8_t* irow = x + (n * H + ty[oy]) * W * Cs;
      for (int64_t ox = 0; ox < OW; ++ox) std::memcpy(orow + ox * Cs, irow + tx[ox] * Cs, size_t(Cs));
    }
  });
  c.isa = "scalar";
}

// ---- concat_nhwc_q8 -----------------------------------------------------------------------------
// params: i[0] inputs, i[1] total C, i[2] output Cs; v: the inputs' channel counts
lb_status concat_q8_infer(OpCtx& c) {
  OpParams& p = *c.p;
  if (!attr_ints(*c.attrs, "channels", &p.v) || p.v.size() != c.in.size() || c.in.empty()) {
    c.err = "needs attr channels: one channel count per input (" + std::to_string(c.in.size()) + " inputs)";
    return LB_ERR_SHAPE;
  }
  int64_t total = 0;
  for (size_t k = 0; k < c.in.size(); ++k) {
    const Tensor* x = c.in[k];
    const std::string what = "input " + std::to_string(k);
    if (!x || !int8_nhwc_input(x, what.c_str(), &c.err)) {
      if (!x) c.err = what + " is missing";
      return LB_ERR_SHAPE;
    }
    const auto& s0 = c.in[0]->shape;
    if (p.v[k] <= 0 || nhwc_cstride(p.v[k]) != x->shape[3] || x->shape[0] != s0[0] || x->shape[1] != s0[1] ||
        x->shape[2] != s0[2]) {
      c.err = what + " " + shape_str(x->shape) + " does not match input 0 " + shape_str(s0) + " with " +
              std::to_string(p.v[k]) + " channels (channel stride " + std::to_string(nhwc_cstride(std::max<int64_t>(p.v[k], 1))) + ")";
      return LB_ERR_SHAPE;
    }
    total += p.v[k];
  }
  p.i[0] = int64_t(c.in.size());
  p.i[1] = total;
  p.i[2] = nhwc_cstride(total);
  const auto& s = c.in[0]->shape;
  c.out[0]->dtype = DType::I8;
  c.out[0]->shape = {s[0], s[1], s[2], p.i[2]};
  return LB_OK;
}

void concat_q8_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const auto& s = c.in[0]->shape;
  const int64_t P = s[0] * s[1] * s[2], Cs = p.i[2], C = p.i[1];
  int8_t* y = static_cast<int8_t*>(c.out[0]->data);
  for_ranges(c, P, Cs / 4 + 1, [&](int, int64_t p0, int64_t p1) {
    for (int64_t i = p0; i < p1; ++i) {
      int8_t* d = y + i * Cs;
      int64_t off = 0;
      for (size_t k = 0; k < c.in.size(); ++k) {
        const Tensor* x = c.in[k];
        std::memcpy(d + off, static_cast<const int8_t*>(x->data) + i * x->shape[3], size_t(p.v[k]));
        off += p.v[k];
      }
      std::memset(d + C, 0, size_t(Cs - C));
    }
  });
  c.isa = "scalar";
}

// ---- quantize_f32nhwc_q8 ------------------------------------------------------------------------
// params: i[0] pixels, i[1] C, i[2] Cs, i[3] zero; f[0] scale
lb_status quant_nhwc_infer(OpCtx& c) {
  const Tensor* x = c.in[0];
  OpParams& p = *c.p;
  if (x->dtype != DType::F32 || x->shape.size() != 4) {
    c.err = "expects a 4-D f32 NHWC input, got " + shape_str(x->shape);
    return LB_ERR_SHAPE;
  }
  p.i[0] = x->shape[0] * x->shape[1] * x->shape[2];
  p.i[1] = x->shape[3];
  p.i[2] = nhwc_cstride(p.i[1]);
  if (lb_status st = quantizer_attrs(c, p.i[1], &p.f[0], &p.i[3])) return st;
  c.out[0]->dtype = DType::I8;
  c.out[0]->shape = {x->shape[0], x->shape[1], x->shape[2], p.i[2]};
  c.scratch_bytes = al64(size_t(p.i[1]) * 4) * size_t(op_threads(c));
  c.flops = uint64_t(x->numel()) * 3;
  return LB_OK;
}

void quant_nhwc_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const int64_t C = p.i[1], Cs = p.i[2];
  const float inv = 1.0f / p.f[0], zf = float(p.i[3]);
  const float* x = c.in[0]->f32();
  const float* mul = c.in.size() > 1 && c.in[1] ? c.in[1]->f32() : nullptr;
  int8_t* y = static_cast<int8_t*>(c.out[0]->data);
  RequantFn rq = requant_row_scalar;
#if defined(__x86_64__)
  if (vmath::use_avx2()) rq = requant_row_avx2;
#endif
  c.isa = rq == requant_row_scalar ? "scalar" : "avx2";
  char* base = static_cast<char*>(c.scratch);
  for_ranges(c, p.i[0], C * 2, [&](int tid, int64_t r0, int64_t r1) {
    float* t = reinterpret_cast<float*>(base + size_t(tid) * al64(size_t(C) * 4));
    for (int64_t r = r0; r < r1; ++r) {
      const float* v = x + r * C;
      if (mul) {  // x * m[c] first, then the quantizer: quantize_nhwc_q8's order
        for (int64_t ch = 0; ch < C; ++ch) t[ch] = v[ch] * mul[ch];
        v = t;
      }
      rq(v, C, Cs, inv, zf, y + r * Cs);
    }
  });
}

// ---- conv_transpose_nhwc_q8 ---------------------------------------------------------------------
enum PostKind : int64_t { POST_ADD_S = 0, POST_MUL_S, POST_ADD_C, POST_MUL_C, POST_RELU, POST_SIGMOID };
enum { kN, kH, kW, kC, kCs, kO, kOs, kKh, kKw, kZin, kZout, kAct, kOutQ, kOutF, kNPost };
// input pixels per task; the "dot" form (kh*kw*O <= 4 columns: the DB head's last upsampler) does
// little work per pixel, so it takes more of them
inline int64_t convt_tile(int64_t NO) { return NO <= 4 ? 256 : 128; }

// The layout of one run (all derived from the params):
//   K8 = C rounded up to 8 (the dequantized input row, zeros past C);
//   dot form (NO <= 4): per pixel, 4 columns j of K8 products each in 8 lanes (lane l sums channels
//     l, l+8, ...: a multiply, then fused multiply-adds in channel order), reduced as
//     ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)); weights wd[4][K8]; a row of the tile is 4 floats, two
//     pixels share one 8-lane epilogue (lane l: column l % 4);
//   broadcast form (NO > 4): per pixel, NOp = NO rounded up to 8 columns in the lanes, one multiply
//     then fused multiply-adds over the C channels in order; weights wp[C][NOp]; a row is NOp floats.
// Both the AVX2 path and the scalar reference (std::fma) do exactly these operations: same bits.
struct ConvtLayout {
  int64_t K8, NO, NOp, S, NPat, tile;
  bool dot;
  size_t shared_bytes, per_thread;
};
ConvtLayout convt_layout(const OpParams& p) {
  ConvtLayout L{};
  const int64_t C = p.i[kC];
  L.NO = p.i[kO] * p.i[kKh] * p.i[kKw];
  L.K8 = (C + 7) / 8 * 8;
  L.dot = L.NO <= 4;
  L.NOp = (L.NO + 7) / 8 * 8;
  L.S = L.dot ? 4 : L.NOp;
  L.NPat = L.dot ? 8 : L.NOp;
  L.tile = convt_tile(L.NO);
  L.shared_bytes = al64(size_t(L.dot ? 4 * L.K8 : C * L.NOp) * 4) + al64(size_t((1 + p.i[kNPost]) * L.NPat) * 4);
  L.per_thread = al64(size_t((L.tile + 1) * L.K8) * 4) + al64(size_t((L.tile + 1) * L.S) * 4);
  return L;
}

lb_status convt_infer(OpCtx& c) {
  const Tensor* x = c.in[0];
  OpParams& p = *c.p;
  if (!int8_nhwc_input(x, "input 0", &c.err)) return LB_ERR_SHAPE;
  const Tensor* w = c.in.size() > 1 ? c.in[1] : nullptr;
  if (!w || !w->data || w->dtype != DType::F32 || w->shape.size() != 4) {
    c.err = "input 1 must be the constant f32 weight [kh, kw, O, C]";
    return LB_ERR_SHAPE;
  }
  const int64_t kh = w->shape[0], kw = w->shape[1], O = w->shape[2], C = w->shape[3];
  if (nhwc_cstride(C) != x->shape[3]) {
    c.err = "the weight has " + std::to_string(C) + " input channels, the int8 NHWC input " + shape_str(x->shape);
    return LB_ERR_SHAPE;
  }
  std::vector<int64_t> v;
  const bool ks_ok = !attr_ints(*c.attrs, "kernel_shape", &v) || (v.size() == 2 && v[0] == kh && v[1] == kw);
  std::vector<int64_t> st, pads, dil, outpad;
  const bool st_ok = attr_ints(*c.attrs, "strides", &st) && st.size() == 2 && st[0] == kh && st[1] == kw;
  const bool pad_ok = !attr_ints(*c.attrs, "pads", &pads) || std::all_of(pads.begin(), pads.end(), [](int64_t q) { return q == 0; });
  const bool dil_ok = !attr_ints(*c.attrs, "dilations", &dil) || std::all_of(dil.begin(), dil.end(), [](int64_t q) { return q == 1; });
  const bool op_ok = !attr_ints(*c.attrs, "output_padding", &outpad) ||
                     std::all_of(outpad.begin(), outpad.end(), [](int64_t q) { return q == 0; });
  if (!ks_ok || !st_ok || !pad_ok || !dil_ok || !op_ok || attr_int(*c.attrs, "group", 1) != 1 ||
      c.attrs->has("output_shape") || attr_str(*c.attrs, "auto_pad", "NOTSET") != "NOTSET") {
    c.err = "supports strides == kernel_shape (" + std::to_string(kh) + "x" + std::to_string(kw) +
            "), no pads, dilation 1, group 1, no output_padding / output_shape / auto_pad (export with int8_nhwc=False "
            "for other transposed convs)";
    return LB_ERR_UNSUPPORTED;
  }
  const Tensor* b = c.in.size() > 2 ? c.in[2] : nullptr;
  if (b && (!b->data || b->dtype != DType::F32 || b->numel() != O)) {
    c.err = "input 2 (bias) must be " + std::to_string(O) + " constant f32 values";
    return LB_ERR_SHAPE;
  }
  p.i[kN] = x->shape[0], p.i[kH] = x->shape[1], p.i[kW] = x->shape[2], p.i[kC] = C, p.i[kCs] = x->shape[3];
  p.i[kO] = O, p.i[kOs] = nhwc_cstride(O), p.i[kKh] = kh, p.i[kKw] = kw;
  p.f[0] = attr_float(*c.attrs, "aq_scale", 0.f);
  p.i[kZin] = attr_int(*c.attrs, "aq_zero", 0);
  if (!(p.f[0] > 0.f) || p.i[kZin] < -128 || p.i[kZin] > 127) {
    c.err = "needs aq_scale > 0 and aq_zero in [-128, 127] (the input's quantization)";
    return LB_ERR_UNSUPPORTED;
  }
  if (!parse_act(*c.attrs, &p, kAct, 1)) {
    c.err = "unknown act '" + attr_str(*c.attrs, "act", "") + "'";
    return LB_ERR_UNSUPPORTED;
  }
  // post steps -> v: [kind, input index, f32 bits] per step
  p.v.clear();
  if (c.attrs->has("post")) {
    for (const Json& s : (*c.attrs)["post"].elems()) {
      const auto& e = s.elems();
      const std::string k = e.empty() ? "" : e[0].str();
      int64_t kind = -1, idx = 0;
      float a = 0.f;
      if ((k == "add_s" || k == "mul_s") && e.size() == 2) kind = k == "add_s" ? POST_ADD_S : POST_MUL_S, a = float(e[1].num());
      if ((k == "add_c" || k == "mul_c") && e.size() == 2) {
        kind = k == "add_c" ? POST_ADD_C : POST_MUL_C;
        idx = int64_t(e[1].num());
        const Tensor* t = idx >= 3 && size_t(idx) < c.in.size() ? c.in[size_t(idx)] : nullptr;
        if (!t || !t->data || t->dtype != DType::F32 || t->numel() != O) {
          c.err = "post step " + k + " needs a constant f32 input of " + std::to_string(O) + " values at index >= 3";
          return LB_ERR_SHAPE;
        }
      }
      if (k == "relu" && e.size() == 1) kind = POST_RELU;
      if (k == "sigmoid" && e.size() == 1) kind = POST_SIGMOID;
      if (kind < 0) {
        c.err = "unknown post step (expected [add_s|mul_s, value], [add_c|mul_c, input], [relu] or [sigmoid])";
        return LB_ERR_UNSUPPORTED;
      }
      uint32_t bits;
      std::memcpy(&bits, &a, 4);
      p.v.insert(p.v.end(), {kind, idx, int64_t(bits)});
    }
  }
  p.i[kNPost] = int64_t(p.v.size() / 3);
  p.i[kOutQ] = p.i[kOutF] = -1;
  std::vector<std::string> outs;
  if (c.attrs->has("outs"))
    for (const Json& s : (*c.attrs)["outs"].elems()) outs.push_back(s.str());
  if (outs.empty() || outs.size() != c.out.size()) {
    c.err = "attr outs must name each output (\"q8\" and / or \"f32\")";
    return LB_ERR_SHAPE;
  }
  const int64_t OH = p.i[kH] * kh, OW = p.i[kW] * kw;
  for (size_t k = 0; k < outs.size(); ++k) {
    if (outs[k] == "q8" && p.i[kOutQ] < 0) {
      p.i[kOutQ] = int64_t(k);
      p.f[3] = attr_float(*c.attrs, "oq_scale", 0.f);
      p.i[kZout] = attr_int(*c.attrs, "oq_zero", 0);
      if (!(p.f[3] > 0.f) || p.i[kZout] < -128 || p.i[kZout] > 127) {
        c.err = "a q8 output needs oq_scale > 0 and oq_zero in [-128, 127]";
        return LB_ERR_UNSUPPORTED;
      }
      c.out[k]->dtype = DType::I8;
      c.out[k]->shape = {p.i[kN], OH, OW, p.i[kOs]};
    } else if (outs[k] == "f32" && p.i[kOutF] < 0) {
      p.i[kOutF] = int64_t(k);
      c.out[k]->dtype = DType::F32;
      c.out[k]->shape = {p.i[kN], O, OH, OW};
    } else {
      c.err = "outs entry '" + outs[k] + "' (expected one \"q8\" and / or one \"f32\")";
      return LB_ERR_UNSUPPORTED;
    }
  }
  const ConvtLayout L = convt_layout(p);
  c.scratch_bytes = L.shared_bytes + L.per_thread * size_t(op_threads(c));
  c.flops = uint64_t(p.i[kN] * p.i[kH] * p.i[kW]) * uint64_t(2 * C * L.NO);
  return LB_OK;
}

// The epilogue: bias (when there is one), the fused act, the folded float steps in graph order. Every
// step has a row of NPat lane constants (add_s / mul_s: the scalar in every lane).
struct ConvtEpi {
  const float* bias;  // [NPat] or null
  const float* pat;   // [nposts][NPat]
  const int64_t* v;   // the post steps (kind, input index, f32 bits)
  int64_t nposts, NPat, act;
  float lo, hi;
};
// the scalar reference of the vector epilogue, one value in lane l
float convt_epi_scalar(const ConvtEpi& e, float y, int64_t l) {
  if (e.bias) y = y + e.bias[l];
  if (e.act != ACT_NONE) apply_act(&y, 1, e.act, e.lo, e.hi);
  for (int64_t k = 0; k < e.nposts; ++k) {
    const float a = e.pat[k * e.NPat + l];
    switch (e.v[3 * k]) {
      case POST_ADD_S:
      case POST_ADD_C: y = y + a; break;
      case POST_MUL_S:
      case POST_MUL_C: y = y * a; break;
      case POST_RELU: y = y > 0.f ? y : 0.f; break;
      default: y = vmath::ref(vmath::SIGMOID, y); break;
    }
  }
  return y;
}

// scalar reference GEMMs (the AVX2 operations in the same order)
void convt_dot_scalar(const float* xr, const float* wd, int64_t K8, float* y) {
  for (int64_t j = 0; j < 4; ++j) {
    float l[8];
    for (int k = 0; k < 8; ++k) l[k] = xr[k] * wd[j * K8 + k];
    for (int64_t c0 = 8; c0 < K8; c0 += 8)
      for (int k = 0; k < 8; ++k) l[k] = std::fma(xr[c0 + k], wd[j * K8 + c0 + k], l[k]);
    y[j] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
  }
}
void convt_bc_scalar(const float* xr, const float* wp, int64_t C, int64_t NOp, float* y) {
  for (int64_t j = 0; j < NOp; ++j) {
    float a = xr[0] * wp[j];
    for (int64_t c = 1; c < C; ++c) a = std::fma(xr[c], wp[c * NOp + j], a);
    y[j] = a;
  }
}

#if defined(__x86_64__)
#define LB_CT_T __attribute__((target("avx2,fma"), always_inline)) inline
enum { EPI_ADD, EPI_MUL, EPI_RELU, EPI_SIGMOID, EPI_ACT };
template <int OP>
LB_CT_T __m256 convt_op8(__m256 u, __m256 a, const ConvtEpi& e) {
  if (OP == EPI_ADD) return _mm256_add_ps(u, a);
  if (OP == EPI_MUL) return _mm256_mul_ps(u, a);
  if (OP == EPI_RELU) return _mm256_max_ps(u, _mm256_setzero_ps());
  if (OP == EPI_SIGMOID) return vmath::sigmoid8(u);
  return vmath::act8(u, e.act, e.lo, e.hi);
}
// one step over nv vectors y; lane constants pat + 8v (or pat for every vector when `one`)
template <int OP>
LB_CT_T void convt_pass(const ConvtEpi& e, float* y, int64_t nv, bool one, const float* pat) {
  if (one) {
    const __m256 a = _mm256_loadu_ps(pat);
    for (int64_t v = 0; v < nv; ++v) _mm256_storeu_ps(y + 8 * v, convt_op8<OP>(_mm256_loadu_ps(y + 8 * v), a, e));
  } else {
    for (int64_t v = 0; v < nv; ++v)
      _mm256_storeu_ps(y + 8 * v, convt_op8<OP>(_mm256_loadu_ps(y + 8 * v), _mm256_loadu_ps(pat + 8 * v), e));
  }
}
// the epilogue over nv vectors y, one pass per step (its branch taken once per row, not per vector);
// a multiply's result goes through memory before the next step's add: no FMA contraction
__attribute__((target("avx2,fma"))) void convt_epi_avx2(const ConvtEpi& e, float* y, int64_t nv, bool one) {
  if (e.bias) convt_pass<EPI_ADD>(e, y, nv, one, e.bias);
  if (e.act == ACT_SIGMOID)  // act8 passes Sigmoid through
    convt_pass<EPI_SIGMOID>(e, y, nv, one, e.pat);
  else if (e.act != ACT_NONE)
    convt_pass<EPI_ACT>(e, y, nv, one, e.pat);
  for (int64_t k = 0; k < e.nposts; ++k) {
    const float* pat = e.pat + k * e.NPat;
    switch (e.v[3 * k]) {
      case POST_ADD_S:
      case POST_ADD_C: convt_pass<EPI_ADD>(e, y, nv, one, pat); break;
      case POST_MUL_S:
      case POST_MUL_C: convt_pass<EPI_MUL>(e, y, nv, one, pat); break;
      case POST_RELU: convt_pass<EPI_RELU>(e, y, nv, one, pat); break;
      default: convt_pass<EPI_SIGMOID>(e, y, nv, one, pat); break;
    }
  }
}
// 8 lanes of rint(y / s) + z as int8 (the bits of requant_row_scalar: cvtps rounds to nearest even, the
// packs saturate; min(2^30, .) keeps large values positive, NaN becomes INT_MIN -> -128)
LB_CT_T __m128i convt_q8(__m256 y, __m256 vinv, __m128i z16) {
  const __m256i r = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_set1_ps(1073741824.f), _mm256_mul_ps(y, vinv)));
  const __m128i w = _mm_adds_epi16(_mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)), z16);
  return _mm_packs_epi16(w, w);
}
// the 8 lanes of a as ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)) for 4 vectors: one 4-lane result
LB_CT_T __m128 convt_hsum4(const __m256* a) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
// dot form: rows i and i + 1 of the tile -> yt rows (4 floats each), epilogue applied
__attribute__((target("avx2,fma"))) void convt_dot_avx2(const float* xf, const float* wd, int64_t K8, int64_t m,
                                                        const ConvtEpi& e, float* yt) {
  for (int64_t i = 0; i < m; i += 2) {
    const float* xa = xf + i * K8;
    const float* xb = xa + K8;
    __m256 a[4], b[4];
    const __m256 x0 = _mm256_loadu_ps(xa), x1 = _mm256_loadu_ps(xb);
    for (int j = 0; j < 4; ++j) {
      const __m256 w = _mm256_loadu_ps(wd + j * K8);
      a[j] = _mm256_mul_ps(x0, w);
      b[j] = _mm256_mul_ps(x1, w);
    }
    for (int64_t c0 = 8; c0 < K8; c0 += 8) {
      const __m256 y0 = _mm256_loadu_ps(xa + c0), y1 = _mm256_loadu_ps(xb + c0);
      for (int j = 0; j < 4; ++j) {
        const __m256 w = _mm256_loadu_ps(wd + j * K8 + c0);
        a[j] = _mm256_fmadd_ps(y0, w, a[j]);
        b[j] = _mm256_fmadd_ps(y1, w, b[j]);
      }
    }
    _mm256_storeu_ps(yt + i * 4, _mm256_insertf128_ps(_mm256_castps128_ps256(convt_hsum4(a)), convt_hsum4(b), 1));
  }
  convt_epi_avx2(e, yt, (m + 1) / 2, true);
}
// broadcast form: NB vectors of columns from vector j0 of one pixel's row, the raw sums into y
template <int NB>
__attribute__((target("avx2,fma"))) void convt_bc_gemm(const float* xr, const float* wp, int64_t C, int64_t NOp,
                                                       int64_t j0, float* y) {
  const float* w = wp + j0 * 8;
  __m256 acc[NB];
  const __m256 x0 = _mm256_broadcast_ss(xr);
  for (int v = 0; v < NB; ++v) acc[v] = _mm256_mul_ps(x0, _mm256_loadu_ps(w + 8 * v));
  for (int64_t c = 1; c < C; ++c) {
    const __m256 xv = _mm256_broadcast_ss(xr + c);
    const float* wr = w + c * NOp;
    for (int v = 0; v < NB; ++v) acc[v] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(wr + 8 * v), acc[v]);
  }
  for (int v = 0; v < NB; ++v) _mm256_storeu_ps(y + j0 * 8 + 8 * v, acc[v]);
}
// where the int8 output goes when the broadcast kernel writes it (O % 8 == 0: an 8-lane group never
// straddles two output pixels)
struct ConvtQ8 {
  int8_t* yq;  // null: the epilogue's floats stay in yt
  int64_t O, Os, H, W, kh, kw;
  float inv;
  int16_t z;
};
// broadcast form over the m pixels of a tile starting at pixel P0: GEMM, epilogue, int8 stores
__attribute__((target("avx2,fma"))) void convt_bc_avx2(const float* xf, int64_t m, int64_t P0, int64_t K8,
                                                       const float* wp, int64_t C, int64_t NOp, const ConvtEpi& e,
                                                       const ConvtQ8& q, float* yt) {
  const int64_t nv = NOp / 8, OW = q.W * q.kw, OH = q.H * q.kh;
  const __m256 vinv = _mm256_set1_ps(q.inv);
  const __m128i z16 = _mm_set1_epi16(q.z);
  int8_t* dst[64];
  int64_t n = P0 / (q.H * q.W), yy = P0 / q.W % q.H, xx = P0 % q.W;  // pixel i's coordinates, stepped below
  for (int64_t i = 0; i < m; ++i, ++xx) {
    if (xx == q.W) {
      xx = 0;
      if (++yy == q.H) yy = 0, ++n;
    }
    const float* xr = xf + i * K8;
    float* y = yt + i * NOp;
    int64_t j0 = 0;
    for (; j0 + 12 <= nv; j0 += 12) convt_bc_gemm<12>(xr, wp, C, NOp, j0, y);
    switch (nv - j0) {
      case 0: break;
      case 1: convt_bc_gemm<1>(xr, wp, C, NOp, j0, y); break;
      case 2: convt_bc_gemm<2>(xr, wp, C, NOp, j0, y); break;
      case 3: convt_bc_gemm<3>(xr, wp, C, NOp, j0, y); break;
      case 4: convt_bc_gemm<4>(xr, wp, C, NOp, j0, y); break;
      case 5: convt_bc_gemm<5>(xr, wp, C, NOp, j0, y); break;
      case 6: convt_bc_gemm<6>(xr, wp, C, NOp, j0, y); break;
      case 7: convt_bc_gemm<7>(xr, wp, C, NOp, j0, y); break;
      case 8: convt_bc_gemm<8>(xr, wp, C, NOp, j0, y); break;
      case 9: convt_bc_gemm<9>(xr, wp, C, NOp, j0, y); break;
      case 10: convt_bc_gemm<10>(xr, wp, C, NOp, j0, y); break;
      default: convt_bc_gemm<11>(xr, wp, C, NOp, j0, y); break;
    }
    convt_epi_avx2(e, y, nv, false);
    if (!q.yq) continue;
    for (int64_t ky = 0; ky < q.kh; ++ky)
      for (int64_t kx = 0; kx < q.kw; ++kx) {
        int8_t* d = q.yq + ((n * OH + yy * q.kh + ky) * OW + xx * q.kw + kx) * q.Os;
        dst[ky * q.kw + kx] = d;
        for (int64_t o = q.O; o < q.Os; o += 8) _mm_storel_epi64(reinterpret_cast<__m128i*>(d + o), _mm_setzero_si128());
      }
    for (int64_t v = 0, blk = 0, o = 0; v < nv; ++v) {
      const __m256 r = _mm256_loadu_ps(y + 8 * v);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(dst[blk] + o), convt_q8(r, vinv, z16));
      if ((o += 8) == q.O) o = 0, ++blk;
    }
  }
}
// the tile's int8 rows dequantized ((q - z) * s, as qdq_f32), K8 floats per pixel, zeros past C
__attribute__((target("avx2,fma"))) void convt_dequant_avx2(const int8_t* q, int64_t m, int64_t C, int64_t Cs,
                                                            int64_t K8, float z, float s, float* xf) {
  const __m256 vz = _mm256_set1_ps(z), vs = _mm256_set1_ps(s);
  for (int64_t i = 0; i < m; ++i) {
    const int8_t* r = q + i * Cs;
    for (int64_t c0 = 0; c0 < K8; c0 += 8) {
      __m128i b;
      if (c0 + 8 <= Cs) {
        b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r + c0));
      } else {
        alignas(16) int8_t t[16] = {0};
        std::memcpy(t, r + c0, size_t(Cs - c0));
        b = _mm_load_si128(reinterpret_cast<const __m128i*>(t));
      }
      __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), vz), vs);
      if (c0 + 8 > C) {  // lanes past C: 0
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        v = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(C - c0)), lane)));
      }
      _mm256_storeu_ps(xf + i * K8 + c0, v);
    }
  }
}
// the dot form's f32 NCHW rows when O = 1 and the kernel is 2x2 (the DB head's probability map): tile
// rows [k00 k01 k10 k11] of len pixels -> output rows 2y (k00 k01 ...) and 2y + 1 (k10 k11 ...)
__attribute__((target("avx2,fma"))) void convt_rows_2x2_avx2(const float* yt, int64_t len, float* d0, float* d1) {
  int64_t i = 0;
  for (; i + 4 <= len; i += 4) {
    const __m256d a = _mm256_castps_pd(_mm256_loadu_ps(yt + 4 * i)), b = _mm256_castps_pd(_mm256_loadu_ps(yt + 4 * i + 8));
    _mm256_storeu_pd(reinterpret_cast<double*>(d0 + 2 * i), _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, b), 0xD8));
    _mm256_storeu_pd(reinterpret_cast<double*>(d1 + 2 * i), _mm256_permute4x64_pd(_mm256_unpackhi_pd(a, b), 0xD8));
  }
  for (; i < len; ++i) {
    d0[2 * i] = yt[4 * i], d0[2 * i + 1] = yt[4 * i + 1];
    d1[2 * i] = yt[4 * i + 2], d1[2 * i + 1] = yt[4 * i + 3];
  }
}
#undef LB_CT_T
#endif

void convt_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const ConvtLayout L = convt_layout(p);
  const int64_t H = p.i[kH], W = p.i[kW], C = p.i[kC], Cs = p.i[kCs], O = p.i[kO], Os = p.i[kOs];
  const int64_t kh = p.i[kKh], kw = p.i[kKw], kk = kh * kw, NO = L.NO, OH = H * kh, OW = W * kw;
  const int64_t K8 = L.K8, NOp = L.NOp, S = L.S, NPat = L.NPat, kTile = L.tile;
  const int64_t P = p.i[kN] * H * W, tiles = (P + kTile - 1) / kTile, nposts = p.i[kNPost];
  const int8_t* x = static_cast<const int8_t*>(c.in[0]->data);
  const float* w = c.in[1]->f32();  // [kh, kw, O, C]: column (ky*kw + kx)*O + o, C values
  const float* bias = c.in.size() > 2 && c.in[2] ? c.in[2]->f32() : nullptr;
  int8_t* yq = p.i[kOutQ] >= 0 ? static_cast<int8_t*>(c.out[size_t(p.i[kOutQ])]->data) : nullptr;
  float* yf = p.i[kOutF] >= 0 ? c.out[size_t(p.i[kOutF])]->f32() : nullptr;
  const float s_in = p.f[0], z_in = float(p.i[kZin]);
  const float inv = yq ? 1.0f / p.f[3] : 0.f, z_out = float(p.i[kZout]);
  const bool avx2 = vmath::use_avx2();
  // the weights and lane constants in the kernels' layout (a few KB, once per run)
  char* base = static_cast<char*>(c.scratch);
  float* wk = reinterpret_cast<float*>(base);
  float* pats = reinterpret_cast<float*>(base + al64(size_t(L.dot ? 4 * K8 : C * NOp) * 4));  // bias, then steps
  const auto lane_col = [&](int64_t l) { return L.dot ? l % 4 : l; };  // the tile column of pattern lane l
  if (L.dot) {
    std::fill(wk, wk + 4 * K8, 0.f);
    for (int64_t j = 0; j < NO; ++j) std::memcpy(wk + j * K8, w + j * C, size_t(C) * 4);
  } else {
    for (int64_t ch = 0; ch < C; ++ch)
      for (int64_t j = 0; j < NOp; ++j) wk[ch * NOp + j] = j < NO ? w[j * C + ch] : 0.f;
  }
  for (int64_t l = 0; l < NPat; ++l) {
    const int64_t j = lane_col(l);
    pats[l] = bias && j < NO ? bias[j % O] : 0.f;
    for (int64_t k = 0; k < nposts; ++k) {
      const int64_t* st = p.v.data() + 3 * k;
      float a;
      const uint32_t bits = uint32_t(st[2]);
      std::memcpy(&a, &bits, 4);
      if (st[0] == POST_ADD_C || st[0] == POST_MUL_C) a = j < NO ? c.in[size_t(st[1])]->f32()[j % O] : 0.f;
      pats[(1 + k) * NPat + l] = a;
    }
  }
  const ConvtEpi epi{bias ? pats : nullptr, pats + NPat, p.v.data(), nposts, NPat, p.i[kAct], p.f[1], p.f[2]};
  // int8 output written by the AVX2 broadcast kernel itself (8-lane groups within one output pixel)
  const bool direct_q8 = avx2 && yq && !L.dot && O % 8 == 0 && kk <= 64;
  RequantFn rq = requant_row_scalar;
#if defined(__x86_64__)
  if (avx2) rq = requant_row_avx2;
#endif
  char* tbase = base + L.shared_bytes;
  for_ranges(c, tiles, kTile * C * NO, [&](int tid, int64_t t0, int64_t t1) {
    char* mine = tbase + size_t(tid) * L.per_thread;
    float* xf = reinterpret_cast<float*>(mine);                                 // [kTile + 1, K8]
    float* yt = reinterpret_cast<float*>(mine + al64(size_t((kTile + 1) * K8) * 4));  // [kTile + 1, S]
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t P0 = t * kTile, m = std::min(kTile, P - P0);
      const int8_t* q = x + P0 * Cs;
#if defined(__x86_64__)
      if (avx2) {
        convt_dequant_avx2(q, m, C, Cs, K8, z_in, s_in, xf);
      } else
#endif
      {
        for (int64_t i = 0; i < m; ++i)
          for (int64_t ch = 0; ch < K8; ++ch) xf[i * K8 + ch] = ch < C ? (float(q[i * Cs + ch]) - z_in) * s_in : 0.f;
      }
      if (L.dot) std::fill(xf + m * K8, xf + (m + 1) * K8, 0.f);  // the pair partner of an odd last pixel
      // GEMM + epilogue -> yt rows (and, direct_q8, the int8 output)
#if defined(__x86_64__)
      if (avx2 && L.dot) {
        convt_dot_avx2(xf, wk, K8, m, epi, yt);
      } else if (avx2) {
        const ConvtQ8 cq{direct_q8 ? yq : nullptr, O, Os, H, W, kh, kw, inv, int16_t(z_out)};
        convt_bc_avx2(xf, m, P0, K8, wk, C, NOp, epi, cq, yt);
      } else
#endif
      {
        for (int64_t i = 0; i < m; ++i) {
          float* yr = yt + i * S;
          if (L.dot)
            convt_dot_scalar(xf + i * K8, wk, K8, yr);
          else
            convt_bc_scalar(xf + i * K8, wk, C, NOp, yr);
          for (int64_t j = 0; j < std::min(NO, S); ++j) yr[j] = convt_epi_scalar(epi, yr[j], j);
        }
      }
      // the rest of the outputs from yt: int8 blocks (unless written above), f32 NCHW rows
      for (int64_t i0 = 0; i0 < m;) {  // runs of pixels within one input row
        const int64_t pix = P0 + i0, n = pix / (H * W), yy = pix / W % H, xx = pix % W;
        const int64_t len = std::min(m - i0, W - xx);
#if defined(__x86_64__)
        if (avx2 && yf && !yq && L.dot && O == 1 && kh == 2 && kw == 2) {
          float* d0 = yf + (n * OH + 2 * yy) * OW + 2 * xx;
          convt_rows_2x2_avx2(yt + i0 * S, len, d0, d0 + OW);
          i0 += len;
          continue;
        }
#endif
        for (int64_t ky = 0; ky < kh; ++ky) {
          const int64_t oy = yy * kh + ky;
          if (yq && !direct_q8)
            for (int64_t i = 0; i < len; ++i)
              for (int64_t kx = 0; kx < kw; ++kx)
                rq(yt + (i0 + i) * S + (ky * kw + kx) * O, O, Os, inv, z_out,
                   yq + ((n * OH + oy) * OW + (xx + i) * kw + kx) * Os);
          if (yf)
            for (int64_t o = 0; o < O; ++o) {  // output row oy of channel o: len * kw contiguous floats
              float* d = yf + ((n * O + o) * OH + oy) * OW + xx * kw;
              const float* sr = yt + i0 * S + ky * kw * O + o;
              for (int64_t i = 0; i < len; ++i)
                for (int64_t kx = 0; kx < kw; ++kx) d[i * kw + kx] = sr[i * S + kx * O];
            }
        }
        i0 += len;
      }
    }
  });
  c.isa = avx2 ? "avx2" : "scalar";
}


// ---- global_avg_pool_nhwc_f32 -------------------------------------------------------------------
// f32 NHWC [N, H, W, C] -> f32 [N, C, 1, 1]: global_avg_pool_f32's sums (pixel j into partial sum
// j % 32, in pixel order, then the fixed pairwise reduction and one division), over channels
// instead of along rows: the same bits. params: i[0] N, i[1] HW, i[2] C
lb_status gap_nhwc_infer(OpCtx& c) {
  const Tensor* x = c.in[0];
  OpParams& p = *c.p;
  if (x->dtype != DType::F32 || x->shape.size() != 4) {
    c.err = "expects a 4-D f32 NHWC input, got " + shape_str(x->shape);
    return LB_ERR_SHAPE;
  }
  p.i[0] = x->shape[0], p.i[1] = x->shape[1] * x->shape[2], p.i[2] = x->shape[3];
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = {x->shape[0], x->shape[3], 1, 1};
  c.scratch_bytes = al64(size_t(32 * p.i[2]) * 4) * size_t(op_threads(c));
  c.flops = uint64_t(x->numel());
  return LB_OK;
}

#if defined(__x86_64__)
/// gap_nhwc_run's sums for the channels [0, w) of one image (xn: pixel rows of stride C), in chunks of
/// 8-channel vectors whose np partial rows (part: np x cw floats, 8 KB) stay in L1: pixel j's row segment into
/// partial j % np, in pixel order, then the same pairwise reduction and division: each channel gets the scalar
/// loop's additions in its order (the same bits). Returns the channels done (a multiple of 8). The scalar loop
/// ran the 8 partial rows of a 1280-channel map (40 KB) through L1 for every pixel.
__attribute__((target("avx2"))) int64_t gap_nhwc_avx2(const float* xn, int64_t HW, int64_t C, int64_t w, int64_t np,
                                                      float* part, float* y) {
  const __m256 d = _mm256_set1_ps(float(HW));
  const int64_t cmax = 2048 / np, w8 = w / 8 * 8;
  for (int64_t c0 = 0; c0 < w8; c0 += cmax) {
    const int64_t cw = std::min(cmax, w8 - c0);
    std::fill(part, part + np * cw, 0.f);
    for (int64_t j = 0; j < HW; ++j) {
      float* pj = part + (j % np) * cw;
      const float* r = xn + j * C + c0;
      for (int64_t k = 0; k < cw; k += 8)
        _mm256_storeu_ps(pj + k, _mm256_add_ps(_mm256_loadu_ps(pj + k), _mm256_loadu_ps(r + k)));
    }
    for (int64_t h = np / 2; h >= 1; h /= 2)
      for (int64_t l = 0; l < h; ++l)
        for (int64_t k = 0; k < cw; k += 8)
          _mm256_storeu_ps(part + l * cw + k, _mm256_add_ps(_mm256_loadu_ps(part + l * cw + k),
                                                            _mm256_loadu_ps(part + (l + h) * cw + k)));
    for (int64_t k = 0; k < cw; k += 8) _mm256_storeu_ps(y + c0 + k, _mm256_div_ps(_mm256_loadu_ps(part + k), d));
  }
  return w8;
}
#endif

void gap_nhwc_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const int64_t HW = p.i[1], C = p.i[2];
  // one task per (image, channel block): whole pixel rows for one thread (a block per channel
  // would read the map with a stride of C floats), a block per thread otherwise; each channel's
  // sums are its own, so the cut does not change the bits
  const int64_t nb = std::max<int64_t>(1, std::min<int64_t>(op_threads(c), (C + 7) / 8));
  const int64_t bw = ((C + nb - 1) / nb + 7) / 8 * 8;
  const float* x = c.in[0]->f32();
  float* y = c.out[0]->f32();
  char* base = static_cast<char*>(c.scratch);
  const bool avx2 = vmath::use_avx2();
  for_ranges(c, p.i[0] * nb, HW * bw, [&](int tid, int64_t b, int64_t e) {
    float* part = reinterpret_cast<float*>(base + size_t(tid) * al64(size_t(32 * C) * 4));
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / nb;
      int64_t c0 = std::min(C, t % nb * bw), w = std::min(C, c0 + bw) - c0;
      if (w <= 0) continue;
      // global_avg_pool_f32's partial sums: 8 for maps of fewer than 64 values, else 32
      const int64_t np = HW < 64 ? 8 : 32;
#if defined(__x86_64__)
      if (avx2) {
        const int64_t k = gap_nhwc_avx2(x + n * HW * C + c0, HW, C, w, np, part, y + n * C + c0);
        c0 += k, w -= k;
        if (w == 0) continue;
      }
#endif
      std::fill(part, part + np * w, 0.f);
      const float* xn = x + n * HW * C + c0;
      for (int64_t j = 0; j < HW; ++j) {
        float* pj = part + (j % np) * w;
        const float* r = xn + j * C;
        for (int64_t k = 0; k < w; ++k) pj[k] += r[k];
      }
      for (int64_t h = np / 2; h >= 1; h /= 2)
        for (int64_t l = 0; l < h; ++l)
          for (int64_t k = 0; k < w; ++k) part[l * w + k] += part[(l + h) * w + k];
      for (int64_t k = 0; k < w; ++k) y[n * C + c0 + k] = part[k] / float(HW);
    }
  });
  c.isa = avx2 && C >= 8 ? "avx2" : "scalar";  // fewer than 8 channels: the scalar loop ran them all
}

// ---- se_gate_nhwc_q8 ----------------------------------------------------------------------------
// The float tail of a squeeze-excitation gate and an FPN top-down merge on f32 NHWC values, in one
// pass per pixel row, writing the int8 NHWC input of the next conv (and / or f32 NHWC / NCHW):
//   t = x * g[n, c]; t = x + t (attr residual = 1); t = t + up[n, ty[y], tx[x], c] (input 2: nearest
//   Resize of a lower-resolution f32 NHWC value, resize_f32's taps); q = quantizer(t * m[c]).
// The float operations of the Mul / Add / Resize / Add / quantize_nhwc_q8 ops it replaces, one
// rounding each, in their order: the same bits.
// inputs: 0 x f32 NHWC [N, H, W, C]; 1 g f32 [N, C, 1, 1]; 2 up f32 NHWC or ""; 3 m [C] or "";
// 4... the Resize's inputs after its data (roi, scales, sizes) when 2 is given.
// params: i[3] N, i[4] H, i[5] W, i[6] C, i[7] Cs, i[8] h, i[9] w, i[10] residual, i[11] zero,
// i[12..14] output index of q8 / f32_nhwc / f32 (-1: none); f[2] scale; v: H row taps, W column taps
enum { sN = 3, sH, sW, sC, sCs, sUh, sUw, sRes, sZero, sOutQ, sOutF, sOutN };

lb_status se_infer(OpCtx& c) {
  const Tensor* x = c.in[0];
  OpParams& p = *c.p;
  if (x->dtype != DType::F32 || x->shape.size() != 4) {
    c.err = "input 0 must be a 4-D f32 NHWC value, got " + shape_str(x->shape);
    return LB_ERR_SHAPE;
  }
  const int64_t N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
  const Tensor* g = c.in.size() > 1 ? c.in[1] : nullptr;
  if (!g || g->dtype != DType::F32 || g->numel() != N * C) {
    c.err = "input 1 (the gate) must be f32 [N, C, 1, 1] = [" + std::to_string(N) + ", " + std::to_string(C) +
            ", 1, 1], got " + (g ? shape_str(g->shape) : std::string("nothing"));
    return LB_ERR_SHAPE;
  }
  p.i[sN] = N, p.i[sH] = H, p.i[sW] = W, p.i[sC] = C, p.i[sCs] = nhwc_cstride(C);
  p.i[sRes] = attr_int(*c.attrs, "residual", 0);
  if (p.i[sRes] != 0 && p.i[sRes] != 1) {
    c.err = "attr residual must be 0 (x * g) or 1 (x + x * g)";
    return LB_ERR_UNSUPPORTED;
  }
  const Tensor* up = c.in.size() > 2 ? c.in[2] : nullptr;
  p.v.clear();
  p.i[sUh] = p.i[sUw] = 0;
  if (up) {
    if (up->dtype != DType::F32 || up->shape.size() != 4 || up->shape[0] != N || up->shape[3] != C) {
      c.err = "input 2 (the value to upsample and add) must be f32 NHWC [" + std::to_string(N) + ", h, w, " +
              std::to_string(C) + "], got " + shape_str(up->shape);
      return LB_ERR_SHAPE;
    }
    Tensor view, vout;  // resize_f32's own shape inference on the NCHW view of the value
    view.dtype = DType::F32;
    view.shape = {N, C, up->shape[1], up->shape[2]};
    OpParams rp;
    OpCtx sub;
    sub.attrs = c.attrs;
    sub.in = {&view};
    for (size_t k = 4; k < c.in.size(); ++k) sub.in.push_back(c.in[k]);
    sub.out = {&vout};
    sub.p = &rp;
    const lb_status st = find_op("resize_f32")->infer(sub);
    if (st != LB_OK) {
      c.err = "the upsampling: " + sub.err;
      return st;
    }
    if (rp.i[0] != 0) {
      c.err = "the upsampling is nearest only";
      return LB_ERR_UNSUPPORTED;
    }
    if (vout.shape[2] != H || vout.shape[3] != W) {
      c.err = "the upsampled input 2 is " + shape_str(vout.shape) + ", input 0 has " + std::to_string(H) + "x" +
              std::to_string(W) + " pixels";
      return LB_ERR_SHAPE;
    }
    p.i[sUh] = up->shape[1], p.i[sUw] = up->shape[2];
    p.v.resize(size_t(H + W));
    for (int64_t oy = 0; oy < H; ++oy) p.v[size_t(oy)] = resize_tap(rp, oy, rp.f[0], p.i[sUh], H).i0;
    for (int64_t ox = 0; ox < W; ++ox) p.v[size_t(H + ox)] = resize_tap(rp, ox, rp.f[1], p.i[sUw], W).i0;
  }
  const Tensor* m = c.in.size() > 3 ? c.in[3] : nullptr;
  if (m && (!m->data || m->dtype != DType::F32 || m->numel() != C)) {
    c.err = "input 3 (smoothing multipliers) must be " + std::to_string(C) + " constant f32 values";
    return LB_ERR_SHAPE;
  }
  std::vector<std::string> outs;
  if (c.attrs->has("outs"))
    for (const Json& s : (*c.attrs)["outs"].elems()) outs.push_back(s.str());
  if (outs.empty() || outs.size() != c.out.size()) {
    c.err = "attr outs must name each output (q8, f32_nhwc, f32)";
    return LB_ERR_SHAPE;
  }
  p.i[sOutQ] = p.i[sOutF] = p.i[sOutN] = -1;
  for (size_t k = 0; k < outs.size(); ++k) {
    int64_t* slot = outs[k] == "q8" ? &p.i[sOutQ] : outs[k] == "f32_nhwc" ? &p.i[sOutF] : outs[k] == "f32" ? &p.i[sOutN] : nullptr;
    if (!slot || *slot >= 0) {
      c.err = "attr outs: unknown or repeated kind '" + outs[k] + "' (q8, f32_nhwc, f32)";
      return LB_ERR_UNSUPPORTED;
    }
    *slot = int64_t(k);
    if (outs[k] == "q8") {
      p.f[2] = attr_float(*c.attrs, "scale", 0.f);
      p.i[sZero] = attr_int(*c.attrs, "zero", 0);
      if (!(p.f[2] > 0.f) || !std::isfinite(p.f[2]) || p.i[sZero] < -128 || p.i[sZero] > 127) {
        c.err = "a q8 output needs scale > 0 and zero in [-128, 127]";
        return LB_ERR_UNSUPPORTED;
      }
      c.out[k]->dtype = DType::I8;
      c.out[k]->shape = {N, H, W, p.i[sCs]};
    } else {
      c.out[k]->dtype = DType::F32;
      c.out[k]->shape = outs[k] == "f32" ? std::vector<int64_t>{N, C, H, W} : std::vector<int64_t>{N, H, W, C};
    }
  }
  if (p.i[sOutQ] < 0 && m) {
    c.err = "input 3 (smoothing multipliers) is for a q8 output, which attr outs does not name";
    return LB_ERR_SHAPE;
  }
  c.scratch_bytes = 2 * al64(size_t(C) * 4) * size_t(op_threads(c));
  c.flops = uint64_t(x->numel()) * 4;
  return LB_OK;
}

// one row of C channels: t = x * g, (x + t), (t + u): separate roundings, scalar and AVX2
void se_row_scalar(const float* x, const float* g, const float* u, bool res, int64_t C, float* t) {
  for (int64_t k = 0; k < C; ++k) {
    float v = x[k] * g[k];
    if (res) v = x[k] + v;
    if (u) v = v + u[k];
    t[k] = v;
  }
}
#if defined(__x86_64__)
__attribute__((target("avx2"))) void se_row_avx2(const float* x, const float* g, const float* u, bool res, int64_t C,
                                                 float* t) {
  int64_t k = 0;
  for (; k + 8 <= C; k += 8) {
    const __m256 xv = _mm256_loadu_ps(x + k);
    __m256 v = _mm256_mul_ps(xv, _mm256_loadu_ps(g + k));
    if (res) v = _mm256_add_ps(xv, v);
    if (u) v = _mm256_add_ps(v, _mm256_loadu_ps(u + k));
    _mm256_storeu_ps(t + k, v);
  }
  se_row_scalar(x + k, g + k, u ? u + k : nullptr, res, C - k, t + k);
}
#endif

void se_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const int64_t H = p.i[sH], W = p.i[sW], C = p.i[sC], Cs = p.i[sCs], uh = p.i[sUh], uw = p.i[sUw];
  const bool res = p.i[sRes] != 0;
  const float* x = c.in[0]->f32();
  const float* g = c.in[1]->f32();
  const float* up = c.in.size() > 2 && c.in[2] ? c.in[2]->f32() : nullptr;
  const float* m = c.in.size() > 3 && c.in[3] ? c.in[3]->f32() : nullptr;
  int8_t* yq = p.i[sOutQ] >= 0 ? static_cast<int8_t*>(c.out[size_t(p.i[sOutQ])]->data) : nullptr;
  float* yf = p.i[sOutF] >= 0 ? c.out[size_t(p.i[sOutF])]->f32() : nullptr;
  float* yn = p.i[sOutN] >= 0 ? c.out[size_t(p.i[sOutN])]->f32() : nullptr;
  const float inv = yq ? 1.0f / p.f[2] : 0.f, zf = float(p.i[sZero]);
  RequantFn rq = requant_row_scalar;
  auto row = se_row_scalar;
#if defined(__x86_64__)
  if (vmath::use_avx2()) rq = requant_row_avx2, row = se_row_avx2;
#endif
  c.isa = rq == requant_row_scalar ? "scalar" : "avx2";
  const int64_t* ty = p.v.data();
  const int64_t* tx = p.v.data() + H;
  char* base = static_cast<char*>(c.scratch);
  for_ranges(c, p.i[sN] * H, W * C, [&](int tid, int64_t r0, int64_t r1) {
    float* tmp = reinterpret_cast<float*>(base + size_t(tid) * 2 * al64(size_t(C) * 4));
    float* tm = tmp + al64(size_t(C) * 4) / 4;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / H, yy = r % H;
      const float* gn = g + n * C;
      const float* urow = up ? up + (n * uh + ty[yy]) * uw * C : nullptr;
      for (int64_t xx = 0; xx < W; ++xx) {
        const int64_t pix = r * W + xx;
        float* t = yf ? yf + pix * C : tmp;
        row(x + pix * C, gn, urow ? urow + tx[xx] * C : nullptr, res, C, t);
        if (yn)
          for (int64_t k = 0; k < C; ++k) yn[((n * C + k) * H + yy) * W + xx] = t[k];
        if (yq) {
          const float* v = t;
          if (m) {  // x * m[c] first, then the quantizer: quantize_nhwc_q8's order
            for (int64_t k = 0; k < C; ++k) tm[k] = t[k] * m[k];
            v = tm;
          }
          rq(v, C, Cs, inv, zf, yq + pix * Cs);
        }
      }
    }
  });
}

}  // namespace

void register_ops_qnhwc_graph(std::vector<OpDef>& r) {
  r.push_back(OpDef{"resize_nearest_nhwc_q8", resize_q8_infer, resize_q8_run, false});
  r.push_back(OpDef{"concat_nhwc_q8", concat_q8_infer, concat_q8_run, false});
  r.push_back(OpDef{"quantize_f32nhwc_q8", quant_nhwc_infer, quant_nhwc_run, false});
  r.push_back(OpDef{"conv_transpose_nhwc_q8", convt_infer, convt_run, false});
  r.push_back(OpDef{"global_avg_pool_nhwc_f32", gap_nhwc_infer, gap_nhwc_run, false});
  r.push_back(OpDef{"se_gate_nhwc_q8", se_infer, se_run, false});
}

}  // namespace lb
