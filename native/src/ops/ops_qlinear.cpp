// Quantized linear (MatMul/Gemm with a packed int8/int4/codebook/ternary weight) through the
// kernels' op-level entry point lb::qlinear (qlinear.h): x[..., K] -> y[..., N].
// Inputs: x (f32), the packed weight (u8 bytes, manifest attrs wfmt/n/k/group), optional bias [N],
// optional act_mul [K] (1 / smoothing divisors, applied to x before it is quantized). Attribute
// "post": "gelu" applies GELU to the output (gelu_fast.h; the exporter fuses a following GELU).
#include <cstring>
#include <new>

#include "../qlinear.h"
#include "gelu_fast.h"
#include "ops.h"

namespace lb {
namespace {

// p.i[0] rows m, p.i[1] act mode, p.i[2] act zero, p.i[3] post (1: GELU); p.f[0] act scale; PackedWeight kept in p.i[8..]
constexpr int kPwSlot = 8;
static_assert(sizeof(PackedWeight) <= sizeof(int64_t) * (48 - kPwSlot), "PackedWeight must fit in OpParams");

PackedWeight& packed(OpParams& p) { return *reinterpret_cast<PackedWeight*>(&p.i[kPwSlot]); }
const PackedWeight& packed(const OpParams& p) { return *reinterpret_cast<const PackedWeight*>(&p.i[kPwSlot]); }

QLinearOpts opts_of(const OpParams& p) {
  QLinearOpts o;
  o.act = static_cast<lb_act_mode>(p.i[1]);
  o.act_zero = int32_t(p.i[2]);
  o.act_scale = p.f[0];
  return o;
}

lb_status qlinear_infer(OpCtx& c) {
  const Tensor* x = c.in[0];
  const Tensor* w = c.in.size() > 1 ? c.in[1] : nullptr;
  if (x->dtype != DType::F32 || !w || !w->data) {
    c.err = "expects an f32 input and a constant packed weight";
    return LB_ERR_UNSUPPORTED;
  }
  OpParams& p = *c.p;
  const Json& a = *c.attrs;
  const int64_t n = attr_int(a, "n", 0), k = attr_int(a, "k", 0);
  PackedWeight pw;
  const lb_status st = packed_weight_init(static_cast<lb_wfmt>(attr_int(a, "wfmt", 0)), n, k,
                                          int32_t(attr_int(a, "group", 0)), w->data, w->nbytes(), &pw);
  if (st != LB_OK) {
    c.err = std::string("packed weight does not match its format: ") + lb_last_error();
    return st;
  }
  new (&packed(p)) PackedWeight(pw);
  if (x->shape.empty() || x->shape.back() != k) {
    c.err = "input " + shape_str(x->shape) + " must end in K=" + std::to_string(k);
    return LB_ERR_SHAPE;
  }
  const std::string act = attr_str(a, "act", "dynamic");
  p.i[1] = act == "static" ? LB_ACT_STATIC : act == "dynamic_row" ? LB_ACT_DYNAMIC_ROW : act == "float" ? LB_ACT_FLOAT
                                                                                                         : LB_ACT_DYNAMIC;
  p.f[0] = attr_float(a, "act_scale", 0.f);
  p.i[2] = attr_int(a, "act_zero", 0);
  p.i[0] = x->numel() / k;
  const std::string post = attr_str(a, "post", "");
  if (!post.empty() && post != "gelu") {
    c.err = "unknown post op '" + post + "' (this build has: gelu)";
    return LB_ERR_UNSUPPORTED;
  }
  p.i[3] = post == "gelu";
  const Tensor* mul = c.in.size() > 3 ? c.in[3] : nullptr;  // optional [K] multipliers (1 / --smooth divisors)
  if (mul && (mul->dtype != DType::F32 || mul->numel() != k || p.i[1] == LB_ACT_FLOAT)) {
    c.err = "act_mul (input 3) must be K=" + std::to_string(k) + " f32 values, with int8 activations";
    return LB_ERR_SHAPE;
  }
  if (c.in.size() > 2 && c.in[2] && c.in[2]->numel() != n) {
    c.err = "bias must have N=" + std::to_string(n) + " values";
    return LB_ERR_SHAPE;
  }
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = x->shape;
  c.out[0]->shape.back() = n;
  c.scratch_bytes = qlinear_scratch_bytes(packed(p), p.i[0], opts_of(p));
  c.flops = uint64_t(2) * p.i[0] * n * k;
  return LB_OK;
}

void qlinear_run(OpCtx& c) {
  const OpParams& p = *c.p;
  QLinearInfo info;
  const float* bias = c.in.size() > 2 && c.in[2] ? c.in[2]->f32() : nullptr;
  QLinearOpts o = opts_of(p);
  o.act_mul = c.in.size() > 3 && c.in[3] ? c.in[3]->f32() : nullptr;
  float* y = c.out[0]->f32();
  if (p.i[3])  // GELU on each task's finished rows, inside the GEMM's job (qlinear.h QLinearOpts::post)
    o.post = [](void*, float* yr, int64_t ldy, int64_t n, int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) gelu::apply(yr + r * ldy, n);
    };
  qlinear(packed(p), c.in[0]->f32(), p.i[0], bias, y, o, c.pool, c.scratch, c.scratch_bytes, &info);
  c.isa = lb_isa_name(info.isa);
}

}  // namespace

void register_ops_qlinear(std::vector<OpDef>& r) { r.push_back(OpDef{"qlinear_f32", qlinear_infer, qlinear_run, false}); }

}  // namespace lb
