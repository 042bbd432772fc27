// NN ops: MatMul, Gemm, pooling, reductions, Softmax, LayerNormalization, BatchNormalization.
#pragma GCC optimize("O3")
#include <algorithm>
#include <cmath>
#include <cstring>

#include "gelu_fast.h"
#include "gemm_prepacked.h"
#include "ops.h"
#include "vmath.h"

namespace lb {
namespace {

bool need_f32(OpCtx& c, size_t n) {
  for (size_t k = 0; k < n && k < c.in.size(); ++k)
    if (c.in[k] && c.in[k]->dtype != DType::F32) {
      c.err = "input " + std::to_string(k) + " must be f32, got " + dtype_name(c.in[k]->dtype);
      return false;
    }
  return true;
}

// ---- MatMul: [..., M, K] x [..., K, N] with numpy broadcasting of the batch dims ----------
// i[0] M, i[1] N, i[2] K, i[3] batch, i[4] a batch-broadcast (0/1), i[5] b broadcast, i[6] act,
// i[7] flat (B is 2-D: one GEMM over all rows of A), i[8] post GELU (attr "post": "gelu", gelu_fast.h),
// i[9] B in panels (attr "b_panels");
// optional input 2: bias [N]
lb_status matmul_infer(OpCtx& c) {
  if (c.in.size() < 2 || !c.in[1]) {
    c.err = "needs inputs A and B";
    return LB_ERR_FORMAT;
  }
  if (!need_f32(c, 2)) return LB_ERR_DTYPE;
  std::vector<int64_t> a = c.in[0]->shape, b = c.in[1]->shape;
  // attr "b_panels" = N: the exporter stored a constant B [K, N] as panels [ceil(N/16), K, 16] (gemm_prepacked.h)
  const int64_t bpn = attr_int(*c.attrs, "b_panels", 0);
  if (bpn > 0) {
    if (b.size() != 3 || b[0] != (bpn + 15) / 16 || b[2] != 16 || !c.in[1]->data) {
      c.err = "b_panels=" + std::to_string(bpn) + " needs a constant B of shape [" + std::to_string((bpn + 15) / 16) +
              ", K, 16], got " + shape_str(b);
      return LB_ERR_SHAPE;
    }
    b = {b[1], bpn};
  }
  c.p->i[9] = bpn > 0;
  if (a.empty() || b.empty()) {
    c.err = "scalar operands";
    return LB_ERR_SHAPE;
  }
  const bool a1 = a.size() == 1, b1 = b.size() == 1;
  if (a1) a.insert(a.begin(), 1);
  if (b1) b.push_back(1);
  const int64_t M = a[a.size() - 2], K = a.back(), N = b.back();
  if (b[b.size() - 2] != K) {
    c.err = "inner dimensions differ: " + shape_str(c.in[0]->shape) + " x " + shape_str(c.in[1]->shape);
    return LB_ERR_SHAPE;
  }
  std::vector<int64_t> ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2), bo;
  if (!broadcast_shapes(ba, bb, &bo)) {
    c.err = "batch dimensions do not broadcast: " + shape_str(c.in[0]->shape) + " x " + shape_str(c.in[1]->shape);
    return LB_ERR_SHAPE;
  }
  int64_t batch = 1, na = 1, nb = 1;
  for (int64_t d : bo) batch *= d;
  for (int64_t d : ba) na *= d;
  for (int64_t d : bb) nb *= d;
  if ((na != batch && na != 1) || (nb != batch && nb != 1)) {
    c.err = "partial batch broadcasting is not supported: " + shape_str(c.in[0]->shape) + " x " + shape_str(c.in[1]->shape);
    return LB_ERR_UNSUPPORTED;
  }
  OpParams& p = *c.p;
  p.i[0] = M; p.i[1] = N; p.i[2] = K; p.i[3] = batch; p.i[4] = na == 1 && batch > 1; p.i[5] = nb == 1 && batch > 1;
  p.i[7] = nb == 1;  // B shared by every batch: one GEMM with batch*M rows when A is contiguous
  if (!parse_act(*c.attrs, &p, 6, 0)) {
    c.err = "unknown fused activation";
    return LB_ERR_UNSUPPORTED;
  }
  if (c.in.size() > 2 && c.in[2] && (c.in[2]->dtype != DType::F32 || c.in[2]->numel() != N)) {
    c.err = "bias (input 2) must be N=" + std::to_string(N) + " f32 values, got " + shape_str(c.in[2]->shape);
    return LB_ERR_SHAPE;
  }
  const std::string post = attr_str(*c.attrs, "post", "");
  if (!post.empty() && post != "gelu") {
    c.err = "unknown post op '" + post + "' (this build has: gelu)";
    return LB_ERR_UNSUPPORTED;
  }
  p.i[8] = post == "gelu";
  std::vector<int64_t> out = bo;
  if (!a1) out.push_back(M);
  if (!b1) out.push_back(N);
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = out;
  c.scratch_bytes = gemm_scratch_per_thread() * op_threads(c);
  c.flops = uint64_t(2) * batch * M * N * K;
  return LB_OK;
}

void matmul_gemms(OpCtx& c) {
  const OpParams& p = *c.p;
  const int64_t M = p.i[0], N = p.i[1], K = p.i[2], batch = p.i[3];
  const float* A = c.in[0]->f32();
  const float* B = c.in[1]->f32();
  const float* bias = c.in.size() > 2 && c.in[2] ? c.in[2]->f32() : nullptr;
  float* C = c.out[0]->f32();
  if (p.i[7] && !p.i[4]) {
    GemmArgs g{batch * M, N, K, A, K, B, N, false, C, N, bias, bias ? 2 : 0, p.i[6], p.f[0], p.f[1]};
    c.isa = p.i[9] ? gemm_prepacked(g, B, c.pool, c.scratch, c.scratch_bytes) : gemm(g, c.pool, c.scratch, c.scratch_bytes);
    return;
  }
  auto one = [&](int64_t bi, ThreadPool* pool, void* scratch, size_t bytes) {
    GemmArgs g{M, N, K, A + (p.i[4] ? 0 : bi * M * K), K, B + (p.i[5] ? 0 : bi * K * N), N, false, C + bi * M * N, N,
               bias, bias ? 2 : 0, p.i[6], p.f[0], p.f[1]};
    return gemm(g, pool, scratch, bytes);
  };
  const size_t per = gemm_scratch_per_thread();
  if (c.pool && batch > 1 && c.scratch_bytes >= per * size_t(op_threads(c))) {
    // Batched (attention): whole GEMMs per thread, one parallel job instead of one per batch entry
    // (each GEMM alone has only N/16 panels to split). The same code runs each GEMM, so the
    // result is the same for any thread count.
    const char* isa[kMaxThreads] = {nullptr};
    for_ranges(c, batch, M * N * K, [&](int tid, int64_t b0, int64_t b1) {
      for (int64_t bi = b0; bi < b1; ++bi) isa[tid] = one(bi, nullptr, static_cast<char*>(c.scratch) + size_t(tid) * per, per);
    });
    for (const char* s : isa)
      if (s) c.isa = s;
    return;
  }
  for (int64_t bi = 0; bi < batch; ++bi) c.isa = one(bi, c.pool, c.scratch, c.scratch_bytes);
}

void matmul_run(OpCtx& c) {
  matmul_gemms(c);
  if (c.p->i[8]) {
    const int64_t rows = c.p->i[3] * c.p->i[0], N = c.p->i[1];
    float* C = c.out[0]->f32();
    for_ranges(c, rows, N * 8, [&](int, int64_t r0, int64_t r1) { gelu::apply(C + r0 * N, (r1 - r0) * N); });
  }
}

// ---- Gemm: Y = alpha * A' B' + beta * C (A' = A or A^T, B' = B or B^T) --------------------
// i[0] M, i[1] N, i[2] K, i[3] transA, i[4] transB, i[5] bias kind (0 none, 2 per column, 3 general), i[6] act
lb_status gemm_infer(OpCtx& c) {
  if (c.in.size() < 2 || !c.in[1]) {
    c.err = "needs inputs A and B";
    return LB_ERR_FORMAT;
  }
  if (!need_f32(c, 3)) return LB_ERR_DTYPE;
  const Tensor* a = c.in[0];
  const Tensor* b = c.in[1];
  if (a->shape.size() != 2 || b->shape.size() != 2) {
    c.err = "Gemm needs 2-D A and B, got " + shape_str(a->shape) + " and " + shape_str(b->shape);
    return LB_ERR_SHAPE;
  }
  OpParams& p = *c.p;
  p.i[3] = attr_int(*c.attrs, "transA", 0);
  p.i[4] = attr_int(*c.attrs, "transB", 0);
  p.f[2] = attr_float(*c.attrs, "alpha", 1.f);
  p.f[3] = attr_float(*c.attrs, "beta", 1.f);
  const int64_t M = p.i[3] ? a->shape[1] : a->shape[0], K = p.i[3] ? a->shape[0] : a->shape[1];
  const int64_t N = p.i[4] ? b->shape[0] : b->shape[1], Kb = p.i[4] ? b->shape[1] : b->shape[0];
  if (K != Kb) {
    c.err = "inner dimensions differ: " + shape_str(a->shape) + " x " + shape_str(b->shape);
    return LB_ERR_SHAPE;
  }
  if (p.i[3]) {
    c.err = "transA=1 is not supported";
    return LB_ERR_UNSUPPORTED;
  }
  p.i[0] = M; p.i[1] = N; p.i[2] = K;
  p.i[5] = 0;
  if (c.in.size() > 2 && c.in[2]) {
    std::vector<int64_t> o;
    if (!broadcast_shapes(c.in[2]->shape, {M, N}, &o) || o != std::vector<int64_t>{M, N}) {
      c.err = "bias " + shape_str(c.in[2]->shape) + " does not broadcast to [M, N]";
      return LB_ERR_SHAPE;
    }
    p.i[5] = (c.in[2]->numel() == N && p.f[3] == 1.f && p.f[2] == 1.f) ? 2 : 3;
    p.v = c.in[2]->shape;
  }
  if (!parse_act(*c.attrs, &p, 6, 0)) {
    c.err = "unknown fused activation";
    return LB_ERR_UNSUPPORTED;
  }
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = {M, N};
  c.scratch_bytes = gemm_scratch_per_thread() * op_threads(c);
  c.flops = uint64_t(2) * M * N * K;
  return LB_OK;
}

void gemm_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const int64_t M = p.i[0], N = p.i[1], K = p.i[2];
  const bool general = p.i[5] == 3 || p.f[2] != 1.f;
  float* Y = c.out[0]->f32();
  GemmArgs g{M, N, K, c.in[0]->f32(), K, c.in[1]->f32(), p.i[4] ? K : N, p.i[4] != 0, Y, N,
             p.i[5] == 2 ? c.in[2]->f32() : nullptr, p.i[5] == 2 ? 2 : 0, general ? ACT_NONE : p.i[6], p.f[0], p.f[1]};
  c.isa = gemm(g, c.pool, c.scratch, c.scratch_bytes);
  if (general) {
    const float alpha = p.f[2], beta = p.f[3];
    const Tensor* bt = p.i[5] == 3 ? c.in[2] : nullptr;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        float v = alpha * Y[m * N + n];
        if (bt) {
          const int64_t r = bt->shape.size() == 2 && bt->shape[0] != 1 ? m : 0;
          const int64_t col = bt->shape.empty() || bt->shape.back() == 1 ? 0 : n;
          const int64_t ld = bt->shape.empty() ? 0 : bt->shape.back();
          v += beta * bt->f32()[r * ld + col];
        }
        Y[m * N + n] = v;
      }
    for (int64_t m = 0; m < M; ++m) apply_act(Y + m * N, N, p.i[6], p.f[0], p.f[1]);
  }
}

// ---- pooling -------------------------------------------------------------------------------
lb_status gap_infer(OpCtx& c) {
  if (!need_f32(c, 1)) return LB_ERR_DTYPE;
  const auto& s = c.in[0]->shape;
  if (s.size() < 3) {
    c.err = "GlobalAveragePool needs [N, C, ...], got " + shape_str(s);
    return LB_ERR_SHAPE;
  }
  std::vector<int64_t> o(s.size(), 1);
  o[0] = s[0];
  o[1] = s[1];
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = o;
  c.flops = uint64_t(c.in[0]->numel());
  return LB_OK;
}

void gap_run(OpCtx& c) {
  const auto& s = c.in[0]->shape;
  const int64_t nc = s[0] * s[1];
  int64_t hw = 1;
  for (size_t d = 2; d < s.size(); ++d) hw *= s[d];
  const float* x = c.in[0]->f32();
  float* y = c.out[0]->f32();
  for_ranges(c, nc, hw, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      // 32 independent partial sums (vectorizable; one serial chain was latency-bound), then a
      // fixed pairwise reduction: the same order on every ISA and for any thread count. Maps of
      // fewer than 64 values (EfficientNet's 7x7 head) use 8 partial sums: the 32-wide reduction
      // and tail were most of the work there.
      const float* r = x + i * hw;
      if (hw < 64) {
        float part[8] = {0.f};
        int64_t j = 0;
        for (; j + 8 <= hw; j += 8)
          for (int l = 0; l < 8; ++l) part[l] += r[j + l];
        for (int l = 0; j < hw; ++j, ++l) part[l] += r[j];
        for (int l = 0; l < 4; ++l) part[l] += part[l + 4];
        y[i] = ((part[0] + part[2]) + (part[1] + part[3])) / float(hw);
        continue;
      }
      float part[32] = {0.f};
      int64_t j = 0;
      for (; j + 32 <= hw; j += 32)
        for (int l = 0; l < 32; ++l) part[l] += r[j + l];
      for (int l = 0; j < hw; ++j, ++l) part[l] += r[j];
      for (int w = 16; w >= 1; w /= 2)
        for (int l = 0; l < w; ++l) part[l] += part[l + w];
      y[i] = part[0] / float(hw);
    }
  });
}

// AveragePool / MaxPool (2-D). i[0..3] N C H W, i[4] kh, i[5] kw, i[6] sh, i[7] sw, i[8] pt, i[9] pl,
// i[10] OH, i[11] OW, i[12] count_include_pad, i[13] is_max
template <bool MAX>
lb_status pool_infer(OpCtx& c) {
  if (!need_f32(c, 1)) return LB_ERR_DTYPE;
  const auto& s = c.in[0]->shape;
  if (s.size() != 4) {
    c.err = "pooling needs a 4-D input, got " + shape_str(s);
    return LB_ERR_SHAPE;
  }
  OpParams& p = *c.p;
  std::vector<int64_t> k, st, pads;
  attr_ints(*c.attrs, "kernel_shape", &k);
  if (k.size() != 2) {
    c.err = "kernel_shape must have 2 values";
    return LB_ERR_FORMAT;
  }
  attr_ints(*c.attrs, "strides", &st);
  attr_ints(*c.attrs, "pads", &pads);
  if (st.size() != 2) st = {1, 1};
  if (pads.size() != 4) pads = {0, 0, 0, 0};
  const bool ceil_mode = attr_int(*c.attrs, "ceil_mode", 0) != 0;
  p.i[0] = s[0]; p.i[1] = s[1]; p.i[2] = s[2]; p.i[3] = s[3];
  p.i[4] = k[0]; p.i[5] = k[1]; p.i[6] = st[0]; p.i[7] = st[1]; p.i[8] = pads[0]; p.i[9] = pads[1];
  for (int d = 0; d < 2; ++d) {
    const int64_t num = s[2 + d] + pads[d] + pads[d + 2] - k[d];
    p.i[10 + d] = (ceil_mode ? (num + st[d] - 1) / st[d] : num / st[d]) + 1;
  }
  p.i[12] = attr_int(*c.attrs, "count_include_pad", 0);
  if (p.i[10] <= 0 || p.i[11] <= 0) {
    c.err = "pool output would be empty for " + shape_str(s);
    return LB_ERR_SHAPE;
  }
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = {s[0], s[1], p.i[10], p.i[11]};
  c.flops = uint64_t(c.out[0]->numel()) * k[0] * k[1];
  return LB_OK;
}

template <bool MAX>
void pool_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const int64_t H = p.i[2], W = p.i[3], OH = p.i[10], OW = p.i[11];
  const float* x = c.in[0]->f32();
  float* y = c.out[0]->f32();
  for_ranges(c, p.i[0] * p.i[1], OH * OW * 4, [&](int, int64_t b, int64_t e) {
    for (int64_t ch = b; ch < e; ++ch) {
      const float* in = x + ch * H * W;
      float* out = y + ch * OH * OW;
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          const int64_t y0 = oy * p.i[6] - p.i[8], x0 = ox * p.i[7] - p.i[9];
          float acc = MAX ? -INFINITY : 0.f;
          int64_t cnt = 0;
          for (int64_t ky = 0; ky < p.i[4]; ++ky)
            for (int64_t kx = 0; kx < p.i[5]; ++kx) {
              const int64_t iy = y0 + ky, ix = x0 + kx;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              const float v = in[iy * W + ix];
              acc = MAX ? std::max(acc, v) : acc + v;
              ++cnt;
            }
          if (!MAX) {
            int64_t div = cnt;
            if (p.i[12]) {
              const int64_t ye = std::min(y0 + p.i[4], H + p.i[8]), xe = std::min(x0 + p.i[5], W + p.i[9]);
              div = (ye - y0) * (xe - x0);
            }
            acc = div ? acc / float(div) : 0.f;
          }
          out[oy * OW + ox] = acc;
        }
    }
  });
}

// ---- reductions over a set of axes: view as [outer, reduced..., inner] ------------------
// Only contiguous axis ranges are supported (what the models use: last axis, or spatial dims).
// i[0] outer, i[1] red, i[2] inner; KIND 0 mean, 1 sum, 2 max, 3 L2 norm
template <int KIND>
lb_status reduce_infer(OpCtx& c) {
  if (!need_f32(c, 1)) return LB_ERR_DTYPE;
  const auto& s = c.in[0]->shape;
  const int64_t r = int64_t(s.size());
  std::vector<int64_t> axes;
  if (!attr_ints(*c.attrs, "axes", &axes) && c.in.size() > 1 && c.in[1]) {
    if (!read_ints(c.in[1], &axes)) {
      c.err = "axes must be a constant";
      return LB_ERR_UNSUPPORTED;
    }
  }
  if (axes.empty())
    for (int64_t d = 0; d < r; ++d) axes.push_back(d);
  for (auto& a : axes) {
    if (a < 0) a += r;
    if (a < 0 || a >= r) {
      c.err = "axis out of range for " + shape_str(s);
      return LB_ERR_SHAPE;
    }
  }
  std::sort(axes.begin(), axes.end());
  for (size_t i = 1; i < axes.size(); ++i)
    if (axes[i] != axes[i - 1] + 1) {
      c.err = "non-contiguous reduction axes";
      return LB_ERR_UNSUPPORTED;
    }
  const bool keep = attr_int(*c.attrs, "keepdims", 1) != 0;
  OpParams& p = *c.p;
  p.i[0] = p.i[1] = p.i[2] = 1;
  std::vector<int64_t> o;
  for (int64_t d = 0; d < r; ++d) {
    const bool red = d >= axes.front() && d <= axes.back();
    if (d < axes.front()) p.i[0] *= s[d];
    else if (red) p.i[1] *= s[d];
    else p.i[2] *= s[d];
    if (!red) o.push_back(s[d]);
    else if (keep) o.push_back(1);
  }
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = o;
  c.flops = uint64_t(c.in[0]->numel());
  return LB_OK;
}

template <int KIND>
void reduce_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const int64_t outer = p.i[0], red = p.i[1], inner = p.i[2];
  const float* x = c.in[0]->f32();
  float* y = c.out[0]->f32();
  for_ranges(c, outer, red * inner, [&](int, int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      float* dst = y + o * inner;
      for (int64_t i = 0; i < inner; ++i) dst[i] = KIND == 2 ? -INFINITY : 0.f;
      for (int64_t r = 0; r < red; ++r) {
        const float* src = x + (o * red + r) * inner;
        if (KIND == 3)
          for (int64_t i = 0; i < inner; ++i) dst[i] += src[i] * src[i];
        else
          for (int64_t i = 0; i < inner; ++i) dst[i] = KIND == 2 ? std::max(dst[i], src[i]) : dst[i] + src[i];
      }
      if (KIND == 0)
        for (int64_t i = 0; i < inner; ++i) dst[i] /= float(red);
      if (KIND == 3)
        for (int64_t i = 0; i < inner; ++i) dst[i] = std::sqrt(dst[i]);
    }
  });
}

// ---- Softmax / LayerNormalization: rows of the last axes --------------------------------
// The "axis" attribute (default -1) of input 0, made non-negative; false (with ctx.err) if out of range.
bool row_axis(OpCtx& c, int64_t* axis) {
  const auto& s = c.in[0]->shape;
  const int64_t r = int64_t(s.size());
  *axis = attr_int(*c.attrs, "axis", -1);
  if (*axis < 0) *axis += r;
  if (*axis < 0 || *axis >= r) {
    c.err = "axis " + std::to_string(attr_int(*c.attrs, "axis", -1)) + " is out of range for input " + shape_str(s);
    return false;
  }
  return true;
}

// i[0] rows, i[1] row length (axis..end for legacy/2-D coercion or axis-last), i[2] inner (axis not last)
lb_status softmax_infer(OpCtx& c) {
  if (!need_f32(c, 1)) return LB_ERR_DTYPE;
  const auto& s = c.in[0]->shape;
  const int64_t r = int64_t(s.size());
  int64_t axis;
  if (!row_axis(c, &axis)) return LB_ERR_SHAPE;
  const bool legacy = attr_int(*c.attrs, "legacy_2d", 0) != 0;  // opset < 13: flatten from axis
  OpParams& p = *c.p;
  p.i[0] = 1;
  for (int64_t d = 0; d < axis; ++d) p.i[0] *= s[d];
  p.i[1] = legacy ? 1 : s[axis];
  p.i[2] = 1;
  if (legacy)
    for (int64_t d = axis; d < r; ++d) p.i[1] *= s[d];
  else
    for (int64_t d = axis + 1; d < r; ++d) p.i[2] *= s[d];
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = s;
  c.flops = uint64_t(c.in[0]->numel()) * 4;
  return LB_OK;
}

void softmax_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const int64_t rows = p.i[0], L = p.i[1], inner = p.i[2];
  const float* x = c.in[0]->f32();
  float* y = c.out[0]->f32();
  if (inner == 1) {  // rows are contiguous: vector exp, sums in a fixed order
    c.isa = vmath::use_avx2() ? "avx2" : "scalar";
    for_ranges(c, rows, L * 3, [&](int, int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const float* src = x + r * L;
        float* dst = y + r * L;
        float mx = -INFINITY;
        for (int64_t i = 0; i < L; ++i) mx = std::max(mx, src[i]);
        for (int64_t i = 0; i < L; ++i) dst[i] = src[i] - mx;
        vmath::map<vmath::EXP>(dst, dst, L);
        float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t i = 0;
        for (; i + 8 <= L; i += 8)
          for (int j = 0; j < 8; ++j) part[j] += dst[i + j];
        float sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
        for (; i < L; ++i) sum += dst[i];
        const float inv = 1.f / sum;
        for (i = 0; i < L; ++i) dst[i] *= inv;
      }
    });
    return;
  }
  for_ranges(c, rows * inner, L * 3, [&](int, int64_t b, int64_t e) {
    for (int64_t ri = b; ri < e; ++ri) {
      const int64_t r = ri / inner, in = ri % inner;
      const float* src = x + r * L * inner + in;
      float* dst = y + r * L * inner + in;
      float mx = -INFINITY;
      for (int64_t i = 0; i < L; ++i) mx = std::max(mx, src[i * inner]);
      float sum = 0.f;
      for (int64_t i = 0; i < L; ++i) {
        const float v = std::exp(src[i * inner] - mx);
        dst[i * inner] = v;
        sum += v;
      }
      const float inv = 1.f / sum;
      for (int64_t i = 0; i < L; ++i) dst[i * inner] *= inv;
    }
  });
}

// Optional input 3 "skip" (the exporter folds a residual Add into the op): normalises x + skip.
lb_status layernorm_infer(OpCtx& c) {
  if (!need_f32(c, 4)) return LB_ERR_DTYPE;
  if (c.in.size() > 3 && c.in[3] && c.in[3]->shape != c.in[0]->shape) {
    c.err = "skip (input 3) " + shape_str(c.in[3]->shape) + " must have the input's shape " + shape_str(c.in[0]->shape);
    return LB_ERR_SHAPE;
  }
  const auto& s = c.in[0]->shape;
  const int64_t r = int64_t(s.size());
  int64_t axis;
  if (!row_axis(c, &axis)) return LB_ERR_SHAPE;
  OpParams& p = *c.p;
  p.i[0] = 1;
  p.i[1] = 1;
  for (int64_t d = 0; d < axis; ++d) p.i[0] *= s[d];
  for (int64_t d = axis; d < r; ++d) p.i[1] *= s[d];
  p.f[0] = attr_float(*c.attrs, "epsilon", 1e-5f);
  if (c.in.size() < 2 || !c.in[1] || c.in[1]->numel() != p.i[1] || (c.in.size() > 2 && c.in[2] && c.in[2]->numel() != p.i[1])) {
    c.err = "scale/bias must have " + std::to_string(p.i[1]) + " values";
    return LB_ERR_SHAPE;
  }
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = s;
  c.flops = uint64_t(c.in[0]->numel()) * 8;
  return LB_OK;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) float hsum8(__m256 v) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

// One row of LayerNormalization (L >= 8): mean and variance from 8-lane partial sums (a fixed order:
// the lanes, then the tail), then (x - mean) * inv * g + b.
__attribute__((target("avx2,fma"))) void layernorm_row_avx2(const float* src, const float* skip, float* dst, int64_t L,
                                                            const float* g, const float* bb, float eps) {
  const int64_t L8 = L & ~int64_t(7);
  __m256 s0 = _mm256_setzero_ps();
  if (skip) {  // dst = src + skip, then normalise dst in place
    for (int64_t i = 0; i < L8; i += 8) {
      const __m256 v = _mm256_add_ps(_mm256_loadu_ps(src + i), _mm256_loadu_ps(skip + i));
      _mm256_storeu_ps(dst + i, v);
      s0 = _mm256_add_ps(s0, v);
    }
    for (int64_t i = L8; i < L; ++i) dst[i] = src[i] + skip[i];
    src = dst;
  } else {
    for (int64_t i = 0; i < L8; i += 8) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(src + i));
  }
  float sum = hsum8(s0);
  for (int64_t i = L8; i < L; ++i) sum += src[i];
  const float mean = sum / float(L);
  const __m256 vm = _mm256_set1_ps(mean);
  __m256 q0 = _mm256_setzero_ps();
  for (int64_t i = 0; i < L8; i += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(src + i), vm);
    q0 = _mm256_fmadd_ps(d, d, q0);
  }
  float var = hsum8(q0);
  for (int64_t i = L8; i < L; ++i) var += (src[i] - mean) * (src[i] - mean);
  var /= float(L);
  const float inv = 1.f / std::sqrt(var + eps);
  const __m256 vi = _mm256_set1_ps(inv);
  for (int64_t i = 0; i < L8; i += 8) {
    const __m256 t = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(src + i), vm), vi), _mm256_loadu_ps(g + i));
    _mm256_storeu_ps(dst + i, bb ? _mm256_add_ps(t, _mm256_loadu_ps(bb + i)) : t);
  }
  for (int64_t i = L8; i < L; ++i) dst[i] = (src[i] - mean) * inv * g[i] + (bb ? bb[i] : 0.f);
}
#endif

void layernorm_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const int64_t rows = p.i[0], L = p.i[1];
  const float eps = p.f[0];
  const float* x = c.in[0]->f32();
  const float* g = c.in[1]->f32();
  const float* bb = c.in.size() > 2 && c.in[2] ? c.in[2]->f32() : nullptr;
  const float* sk = c.in.size() > 3 && c.in[3] ? c.in[3]->f32() : nullptr;
  float* y = c.out[0]->f32();
#if defined(__x86_64__)
  if (L >= 8 && vmath::use_avx2()) {
    c.isa = "avx2";
    for_ranges(c, rows, L * 3, [&](int, int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) layernorm_row_avx2(x + r * L, sk ? sk + r * L : nullptr, y + r * L, L, g, bb, eps);
    });
    return;
  }
#endif
  for_ranges(c, rows, L * 3, [&](int, int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* src = x + r * L;
      float* dst = y + r * L;
      if (sk) {
        for (int64_t i = 0; i < L; ++i) dst[i] = src[i] + sk[r * L + i];
        src = dst;
      }
      float mean = 0.f;
      for (int64_t i = 0; i < L; ++i) mean += src[i];
      mean /= float(L);
      float var = 0.f;
      for (int64_t i = 0; i < L; ++i) var += (src[i] - mean) * (src[i] - mean);
      var /= float(L);
      const float inv = 1.f / std::sqrt(var + eps);
      for (int64_t i = 0; i < L; ++i) dst[i] = (src[i] - mean) * inv * g[i] + (bb ? bb[i] : 0.f);
    }
  });
}

// BatchNormalization (inference): y = (x - mean) / sqrt(var + eps) * scale + B, per channel (dim 1).
lb_status bn_infer(OpCtx& c) {
  if (!need_f32(c, 5)) return LB_ERR_DTYPE;
  const auto& s = c.in[0]->shape;
  if (s.size() < 2 || c.in.size() < 5) {
    c.err = "BatchNormalization needs [N, C, ...] and 4 parameter tensors";
    return LB_ERR_SHAPE;
  }
  for (int k = 1; k < 5; ++k)
    if (!c.in[k] || c.in[k]->numel() != s[1]) {
      c.err = "parameter " + std::to_string(k) + " must have " + std::to_string(s[1]) + " values";
      return LB_ERR_SHAPE;
    }
  c.p->f[0] = attr_float(*c.attrs, "epsilon", 1e-5f);
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = s;
  c.flops = uint64_t(c.in[0]->numel()) * 2;
  return LB_OK;
}

void bn_run(OpCtx& c) {
  const auto& s = c.in[0]->shape;
  int64_t inner = 1;
  for (size_t d = 2; d < s.size(); ++d) inner *= s[d];
  const int64_t C = s[1];
  const float eps = c.p->f[0];
  const float *x = c.in[0]->f32(), *sc = c.in[1]->f32(), *bi = c.in[2]->f32(), *mu = c.in[3]->f32(), *va = c.in[4]->f32();
  float* y = c.out[0]->f32();
  for_ranges(c, s[0] * C, inner, [&](int, int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t ch = nc % C;
      const float k = sc[ch] / std::sqrt(va[ch] + eps), o = bi[ch] - mu[ch] * k;
      for (int64_t i = 0; i < inner; ++i) y[nc * inner + i] = x[nc * inner + i] * k + o;
    }
  });
}

}  // namespace

void register_ops_attn(std::vector<OpDef>& r);    // ops_attn.cpp (registered with the NN ops)
void register_ops_gather(std::vector<OpDef>& r);  // ops_gather.cpp (int8 embedding tables)

void register_ops_nn(std::vector<OpDef>& r) {
  register_ops_attn(r);
  register_ops_gather(r);
  r.push_back(OpDef{"matmul_f32", matmul_infer, matmul_run, false});
  r.push_back(OpDef{"gemm_f32", gemm_infer, gemm_run, false});
  r.push_back(OpDef{"global_avg_pool_f32", gap_infer, gap_run, false});
  r.push_back(OpDef{"avg_pool2d_f32", pool_infer<false>, pool_run<false>, false});
  r.push_back(OpDef{"max_pool2d_f32", pool_infer<true>, pool_run<true>, false});
  r.push_back(OpDef{"reduce_mean_f32", reduce_infer<0>, reduce_run<0>, false});
  r.push_back(OpDef{"reduce_sum_f32", reduce_infer<1>, reduce_run<1>, false});
  r.push_back(OpDef{"reduce_max_f32", reduce_infer<2>, reduce_run<2>, false});
  r.push_back(OpDef{"reduce_l2_f32", reduce_infer<3>, reduce_run<3>, false});
  r.push_back(OpDef{"softmax_f32", softmax_infer, softmax_run, false});
  r.push_back(OpDef{"layer_norm_f32", layernorm_infer, layernorm_run, false});
  r.push_back(OpDef{"batch_norm_f32", bn_infer, bn_run, false});
}

}  // namespace lb
