// Element-wise ops: unary activations/math, Cast, and broadcasting binary ops (f32 and i64;
// i64 mostly for shape arithmetic that the executor folds at plan time).
#pragma GCC optimize("O3")
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops.h"
#include "vmath.h"

namespace lb {
namespace {


// ---- unary ---------------------------------------------------------------------------
enum Unary { U_RELU, U_CLIP, U_SIGMOID, U_HSIG, U_HSWISH, U_TANH, U_ERF, U_GELU, U_GELU_TANH, U_SQRT, U_EXP, U_NEG,
             U_RECIP, U_ABS, U_LOG, U_IDENTITY, U_FLOOR, U_CEIL, U_NOT };

template <int U>
lb_status unary_infer(OpCtx& c) {
  const Tensor* x = c.in[0];
  if (U != U_IDENTITY && U != U_NOT && x->dtype != DType::F32) {
    c.err = std::string("expects f32 input, got ") + dtype_name(x->dtype);
    return LB_ERR_DTYPE;
  }
  c.out[0]->dtype = x->dtype;
  c.out[0]->shape = x->shape;
  OpParams& p = *c.p;
  if (U == U_CLIP) {
    p.f[0] = attr_float(*c.attrs, "min", -INFINITY);
    p.f[1] = attr_float(*c.attrs, "max", INFINITY);
    for (int k = 1; k <= 2; ++k)
      if (c.in.size() > size_t(k) && c.in[k]) {
        if (!c.in[k]->data || c.in[k]->dtype != DType::F32) {
          c.err = "Clip bounds must be constant f32";
          return LB_ERR_UNSUPPORTED;
        }
        p.f[k - 1] = c.in[k]->f32()[0];
      }
  }
  if (U == U_HSIG) {
    p.f[0] = attr_float(*c.attrs, "alpha", 0.2f);
    p.f[1] = attr_float(*c.attrs, "beta", 0.5f);
  }
  c.flops = uint64_t(x->numel());
  return LB_OK;
}

template <int U>
inline float unary_f(float v, float f0, float f1) {
  switch (U) {
    case U_RELU: return v > 0.f ? v : 0.f;
    case U_CLIP: return std::min(std::max(v, f0), f1);
    case U_SIGMOID: return 1.f / (1.f + std::exp(-v));
    case U_HSIG: return std::min(std::max(f0 * v + f1, 0.f), 1.f);
    case U_HSWISH: return v * std::min(std::max(v * (1.f / 6.f) + 0.5f, 0.f), 1.f);
    case U_TANH: return std::tanh(v);
    case U_ERF: return std::erf(v);
    case U_GELU: return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f));
    case U_GELU_TANH: return 0.5f * v * (1.f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    case U_SQRT: return std::sqrt(v);
    case U_EXP: return std::exp(v);
    case U_NEG: return -v;
    case U_RECIP: return 1.f / v;
    case U_ABS: return std::fabs(v);
    case U_LOG: return std::log(v);
    case U_FLOOR: return std::floor(v);
    case U_CEIL: return std::ceil(v);
    default: return v;
  }
}

template <int U>
void unary_run(OpCtx& c) {
  const Tensor* x = c.in[0];
  Tensor* y = c.out[0];
  const int64_t n = x->numel();
  if (U == U_IDENTITY) {
    if (y->data != x->data) std::memcpy(y->data, x->data, x->nbytes());
    return;
  }
  if (U == U_NOT) {
    const uint8_t* a = static_cast<const uint8_t*>(x->data);
    uint8_t* o = static_cast<uint8_t*>(y->data);
    for (int64_t i = 0; i < n; ++i) o[i] = !a[i];
    return;
  }
  const float* a = x->f32();
  float* o = y->f32();
  const OpParams& p = *c.p;
  constexpr int vfn = U == U_EXP ? vmath::EXP : U == U_ERF ? vmath::ERF : U == U_GELU ? vmath::GELU
                    : U == U_SIGMOID ? vmath::SIGMOID : -1;
  if (vfn >= 0) {
    c.isa = vmath::use_avx2() ? "avx2" : "scalar";
    for_ranges(c, n, 8, [&](int, int64_t b, int64_t e) { vmath::map<vfn < 0 ? 0 : vfn>(a + b, o + b, e - b); });
    return;
  }
  const float f0 = p.f[0], f1 = p.f[1];  // locals: stores to o cannot alias them (the loop vectorizes)
  auto body = [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) o[i] = unary_f<U>(a[i], f0, f1);
  };
  for_ranges(c, n, 1, body);
}

// ---- Cast ----------------------------------------------------------------------------
lb_status cast_infer(OpCtx& c) {
  const std::string to = attr_str(*c.attrs, "to", "f32");
  DType t;
  if (!parse_dtype(to, &t)) {
    c.err = "Cast to unknown dtype '" + to + "'";
    return LB_ERR_UNSUPPORTED;
  }
  c.out[0]->dtype = t;
  c.out[0]->shape = c.in[0]->shape;
  return LB_OK;
}

template <class T>
double load_as(const void* p, int64_t i) { return double(static_cast<const T*>(p)[i]); }

void cast_run(OpCtx& c) {
  const Tensor* x = c.in[0];
  Tensor* y = c.out[0];
  const int64_t n = x->numel();
  for (int64_t i = 0; i < n; ++i) {
    double v = 0;
    switch (x->dtype) {
      case DType::F32: v = load_as<float>(x->data, i); break;
      case DType::I64: v = load_as<int64_t>(x->data, i); break;
      case DType::I32: v = load_as<int32_t>(x->data, i); break;
      case DType::I8: v = load_as<int8_t>(x->data, i); break;
      case DType::U8: case DType::Bool: v = load_as<uint8_t>(x->data, i); break;
      case DType::I16: v = load_as<int16_t>(x->data, i); break;
      default: break;
    }
    switch (y->dtype) {
      case DType::F32: static_cast<float*>(y->data)[i] = float(v); break;
      case DType::I64: static_cast<int64_t*>(y->data)[i] = int64_t(v); break;
      case DType::I32: static_cast<int32_t*>(y->data)[i] = int32_t(v); break;
      case DType::I8: static_cast<int8_t*>(y->data)[i] = int8_t(v); break;
      case DType::U8: static_cast<uint8_t*>(y->data)[i] = uint8_t(v); break;
      case DType::Bool: static_cast<uint8_t*>(y->data)[i] = v != 0; break;
      case DType::I16: static_cast<int16_t*>(y->data)[i] = int16_t(v); break;
      default: break;
    }
  }
}

// ---- binary with broadcasting ---------------------------------------------------------
enum Binary { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, B_EQUAL, B_LESS, B_GREATER, B_AND, B_WHERE };

// v layout: [rank, out dims..., a strides..., b strides..., (c strides...)]
void make_strides(const std::vector<int64_t>& in, const std::vector<int64_t>& out, std::vector<int64_t>* v) {
  const size_t r = out.size(), off = r - in.size();
  std::vector<int64_t> st(r, 0);
  int64_t s = 1;
  for (size_t i = r; i-- > off;) {
    const int64_t d = in[i - off];
    st[i] = d == 1 ? 0 : s;
    s *= d;
  }
  v->insert(v->end(), st.begin(), st.end());
}

template <int B>
lb_status binary_infer(OpCtx& c) {
  const int nin = B == B_WHERE ? 3 : 2;
  if (int(c.in.size()) < nin || !c.in[0] || !c.in[1] || (nin == 3 && !c.in[2])) {
    c.err = "needs " + std::to_string(nin) + " inputs, got fewer (or one omitted)";
    return LB_ERR_FORMAT;
  }
  std::vector<int64_t> out = c.in[0]->shape;
  for (int k = 1; k < nin; ++k)
    if (!broadcast_shapes(out, c.in[k]->shape, &out)) {
      c.err = "cannot broadcast " + shape_str(c.in[0]->shape) + " with " + shape_str(c.in[k]->shape);
      return LB_ERR_SHAPE;
    }
  const DType dt = c.in[B == B_WHERE ? 1 : 0]->dtype;
  if (B != B_WHERE && B != B_AND && c.in[1]->dtype != dt) {
    c.err = std::string("input dtypes differ: ") + dtype_name(dt) + " and " + dtype_name(c.in[1]->dtype);
    return LB_ERR_DTYPE;
  }
  if (B != B_AND && B != B_WHERE && dt != DType::F32 && dt != DType::I64 && dt != DType::I32) {
    c.err = std::string("unsupported dtype ") + dtype_name(dt);
    return LB_ERR_DTYPE;
  }
  if (out.size() > 8) {
    c.err = "more than 8 dimensions";
    return LB_ERR_UNSUPPORTED;
  }
  c.out[0]->dtype = (B == B_EQUAL || B == B_LESS || B == B_GREATER || B == B_AND) ? DType::Bool : dt;
  c.out[0]->shape = out;
  OpParams& p = *c.p;
  p.v.clear();
  p.v.push_back(int64_t(out.size()));
  p.v.insert(p.v.end(), out.begin(), out.end());
  for (int k = 0; k < nin; ++k) make_strides(c.in[k]->shape, out, &p.v);
  // fast path flags: i[0] = 1 if all inputs have the output's shape
  p.i[0] = 1;
  for (int k = 0; k < nin; ++k)
    if (c.in[k]->shape != out) p.i[0] = 0;
  p.i[1] = (B == B_POW && c.in[1]->data && c.in[1]->numel() == 1 && c.in[1]->dtype == DType::F32 &&
            c.in[1]->f32()[0] == 2.f);
  c.flops = uint64_t(c.out[0]->numel());
  return LB_OK;
}

template <int B, class T>
inline T bin_f(T a, T b) {
  switch (B) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_POW: return T(std::pow(double(a), double(b)));
    case B_MAX: return a > b ? a : b;
    case B_MIN: return a < b ? a : b;
    default: return a;
  }
}

template <int B, class T, class O>
void binary_rows(const OpParams& p, const T* a, const T* b, O* o, int64_t row0, int64_t row1) {
  const int64_t r = p.v[0];
  const int64_t* dims = &p.v[1];
  const int64_t* sa = dims + r;
  const int64_t* sb = sa + r;
  const int64_t L = r ? dims[r - 1] : 1;
  const int64_t la = r ? sa[r - 1] : 0, lb = r ? sb[r - 1] : 0;
  for (int64_t row = row0; row < row1; ++row) {
    int64_t rem = row, oa = 0, ob = 0;
    for (int64_t d = r - 2; d >= 0; --d) {
      const int64_t idx = rem % dims[d];
      rem /= dims[d];
      oa += idx * sa[d];
      ob += idx * sb[d];
    }
    const T* pa = a + oa;
    const T* pb = b + ob;
    O* po = o + row * L;
    if (B == B_EQUAL) for (int64_t i = 0; i < L; ++i) po[i] = pa[i * la] == pb[i * lb];
    else if (B == B_LESS) for (int64_t i = 0; i < L; ++i) po[i] = pa[i * la] < pb[i * lb];
    else if (B == B_GREATER) for (int64_t i = 0; i < L; ++i) po[i] = pa[i * la] > pb[i * lb];
    else if (B == B_AND) for (int64_t i = 0; i < L; ++i) po[i] = pa[i * la] && pb[i * lb];
    else if (la == 1 && lb == 1) for (int64_t i = 0; i < L; ++i) po[i] = bin_f<B, T>(pa[i], pb[i]);
    else if (la == 1 && lb == 0) {
      const T bv = pb[0];
      for (int64_t i = 0; i < L; ++i) po[i] = bin_f<B, T>(pa[i], bv);
    } else if (la == 0 && lb == 1) {
      const T av = pa[0];
      for (int64_t i = 0; i < L; ++i) po[i] = bin_f<B, T>(av, pb[i]);
    } else {
      for (int64_t i = 0; i < L; ++i) po[i] = bin_f<B, T>(pa[i * la], pb[i * lb]);
    }
  }
}

template <int B, class T, class O>
void binary_typed(OpCtx& c) {
  const OpParams& p = *c.p;
  const T* a = static_cast<const T*>(c.in[0]->data);
  const T* b = static_cast<const T*>(c.in[1]->data);
  O* o = static_cast<O*>(c.out[0]->data);
  const int64_t n = c.out[0]->numel();
  if (B == B_POW && p.i[1]) {
    // x^2 over a same-shape or broadcast base (LayerNorm written out as ops)
    const int64_t r = p.v[0];
    const int64_t* sa = &p.v[1 + r];
    bool contiguous = true;
    for (int64_t d = 0; d < r; ++d) contiguous &= (sa[d] != 0 || p.v[1 + d] == 1);
    if (contiguous && c.in[0]->numel() == n) {
      for (int64_t i = 0; i < n; ++i) o[i] = O(a[i] * a[i]);
      return;
    }
  }
  if (p.i[0] && B != B_EQUAL && B != B_LESS && B != B_GREATER && B != B_AND) {
    auto body = [&](int, int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) o[i] = O(bin_f<B, T>(a[i], b[i]));
    };
    for_ranges(c, n, 1, body);
    return;
  }
  const int64_t r = p.v[0];
  const int64_t L = r ? p.v[r] : 1;
  const int64_t rows = L ? n / L : 0;
  auto body = [&](int, int64_t s, int64_t e) { binary_rows<B, T, O>(p, a, b, o, s, e); };
  for_ranges(c, rows, L, body);
}

template <int B>
void binary_run(OpCtx& c) {
  const DType dt = c.in[0]->dtype;
  constexpr bool cmp = B == B_EQUAL || B == B_LESS || B == B_GREATER;
  if (B == B_AND) return binary_typed<B, uint8_t, uint8_t>(c);
  if (dt == DType::F32) {
    if (cmp) binary_typed<B, float, uint8_t>(c);
    else binary_typed<B, float, float>(c);
  } else if (dt == DType::I64) {
    if (cmp) binary_typed<B, int64_t, uint8_t>(c);
    else binary_typed<B, int64_t, int64_t>(c);
  } else if (dt == DType::I32) {
    if (cmp) binary_typed<B, int32_t, uint8_t>(c);
    else binary_typed<B, int32_t, int32_t>(c);
  }
}

// Where(cond, x, y): general strided loop (used on masks; small).
void where_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const int64_t r = p.v[0];
  const int64_t* dims = &p.v[1];
  const int64_t* s0 = dims + r;
  const int64_t* s1 = s0 + r;
  const int64_t* s2 = s1 + r;
  const uint8_t* cond = static_cast<const uint8_t*>(c.in[0]->data);
  const size_t es = dtype_size(c.out[0]->dtype);
  const char* x = static_cast<const char*>(c.in[1]->data);
  const char* y = static_cast<const char*>(c.in[2]->data);
  char* o = static_cast<char*>(c.out[0]->data);
  const int64_t n = c.out[0]->numel();
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, o0 = 0, o1 = 0, o2 = 0;
    for (int64_t d = r - 1; d >= 0; --d) {
      const int64_t idx = rem % dims[d];
      rem /= dims[d];
      o0 += idx * s0[d];
      o1 += idx * s1[d];
      o2 += idx * s2[d];
    }
    std::memcpy(o + i * es, cond[o0] ? x + o1 * es : y + o2 * es, es);
  }
}

}  // namespace

void register_ops_elementwise(std::vector<OpDef>& r) {
  r.push_back(OpDef{"relu_f32", unary_infer<U_RELU>, unary_run<U_RELU>, false});
  r.push_back(OpDef{"clip_f32", unary_infer<U_CLIP>, unary_run<U_CLIP>, false});
  r.push_back(OpDef{"sigmoid_f32", unary_infer<U_SIGMOID>, unary_run<U_SIGMOID>, false});
  r.push_back(OpDef{"hardsigmoid_f32", unary_infer<U_HSIG>, unary_run<U_HSIG>, false});
  r.push_back(OpDef{"hardswish_f32", unary_infer<U_HSWISH>, unary_run<U_HSWISH>, false});
  r.push_back(OpDef{"tanh_f32", unary_infer<U_TANH>, unary_run<U_TANH>, false});
  r.push_back(OpDef{"erf_f32", unary_infer<U_ERF>, unary_run<U_ERF>, false});
  r.push_back(OpDef{"gelu_f32", unary_infer<U_GELU>, unary_run<U_GELU>, false});
  r.push_back(OpDef{"gelu_tanh_f32", unary_infer<U_GELU_TANH>, unary_run<U_GELU_TANH>, false});
  r.push_back(OpDef{"sqrt_f32", unary_infer<U_SQRT>, unary_run<U_SQRT>, false});
  r.push_back(OpDef{"exp_f32", unary_infer<U_EXP>, unary_run<U_EXP>, false});
  r.push_back(OpDef{"neg_f32", unary_infer<U_NEG>, unary_run<U_NEG>, false});
  r.push_back(OpDef{"reciprocal_f32", unary_infer<U_RECIP>, unary_run<U_RECIP>, false});
  r.push_back(OpDef{"abs_f32", unary_infer<U_ABS>, unary_run<U_ABS>, false});
  r.push_back(OpDef{"log_f32", unary_infer<U_LOG>, unary_run<U_LOG>, false});
  r.push_back(OpDef{"floor_f32", unary_infer<U_FLOOR>, unary_run<U_FLOOR>, false});
  r.push_back(OpDef{"ceil_f32", unary_infer<U_CEIL>, unary_run<U_CEIL>, false});
  r.push_back(OpDef{"identity", unary_infer<U_IDENTITY>, unary_run<U_IDENTITY>, true});
  r.push_back(OpDef{"not_bool", unary_infer<U_NOT>, unary_run<U_NOT>, true});
  r.push_back(OpDef{"cast", cast_infer, cast_run, true});
  r.push_back(OpDef{"add", binary_infer<B_ADD>, binary_run<B_ADD>, true});
  r.push_back(OpDef{"sub", binary_infer<B_SUB>, binary_run<B_SUB>, true});
  r.push_back(OpDef{"mul", binary_infer<B_MUL>, binary_run<B_MUL>, true});
  r.push_back(OpDef{"div", binary_infer<B_DIV>, binary_run<B_DIV>, true});
  r.push_back(OpDef{"pow", binary_infer<B_POW>, binary_run<B_POW>, true});
  r.push_back(OpDef{"max", binary_infer<B_MAX>, binary_run<B_MAX>, true});
  r.push_back(OpDef{"min", binary_infer<B_MIN>, binary_run<B_MIN>, true});
  r.push_back(OpDef{"equal", binary_infer<B_EQUAL>, binary_run<B_EQUAL>, true});
  r.push_back(OpDef{"less", binary_infer<B_LESS>, binary_run<B_LESS>, true});
  r.push_back(OpDef{"greater", binary_infer<B_GREATER>, binary_run<B_GREATER>, true});
  r.push_back(OpDef{"and_bool", binary_infer<B_AND>, binary_run<B_AND>, true});
  r.push_back(OpDef{"where", binary_infer<B_WHERE>, where_run, true});
}

}  // namespace lb
