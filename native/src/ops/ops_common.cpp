// Op registry and helpers shared by the ops (attribute decoding, broadcasting, activations).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "vmath.h"

#include "ops.h"

namespace lb {
namespace {
std::vector<OpDef> build_registry() {
  std::vector<OpDef> r;
  register_ops_conv(r);
  register_ops_elementwise(r);
  register_ops_nn(r);
  register_ops_shape(r);
  register_ops_qlinear(r);
  register_ops_qconv(r);
  register_ops_qnhwc(r);
  register_ops_qnhwc_graph(r);
  return r;
}
const std::vector<OpDef>& registry() {
  static const std::vector<OpDef> r = build_registry();
  return r;
}
}  // namespace

const OpDef* find_op(const std::string& kernel) {
  for (const OpDef& d : registry())
    if (kernel == d.kernel) return &d;
  return nullptr;
}

std::vector<std::string> op_kernel_names() {
  std::vector<std::string> out;
  for (const OpDef& d : registry()) out.emplace_back(d.kernel);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {
const char* json_type_name(const Json& v) {
  switch (v.type()) {
    case Json::Null: return "null";
    case Json::Bool: return "a boolean";
    case Json::Number: return "a number";
    case Json::String: return "a string";
    case Json::Array: return "a list";
    case Json::Object: return "an object";
  }
  return "?";
}
[[noreturn]] void attr_type_error(const char* key, const char* want, const Json& got) {
  throw AttrError(std::string("attribute '") + key + "' must be " + want + ", got " + json_type_name(got) +
                  " (the manifest was not written by lowbit's exporter, or was edited: re-export the model)");
}
// An integer-valued number (or a boolean, which ONNX attributes store as ints).
bool json_int(const Json& v, int64_t* out) {
  if (v.type() == Json::Bool) {
    *out = v.boolean() ? 1 : 0;
    return true;
  }
  if (!v.is_number() || double(v.i64()) != v.num()) return false;
  *out = v.i64();
  return true;
}
}  // namespace

bool attr_ints(const Json& attrs, const char* key, std::vector<int64_t>* out) {
  const Json& v = attrs[key];
  out->clear();
  if (v.is_null()) return false;
  if (!v.is_array()) attr_type_error(key, "a list of integers", v);
  for (const Json& e : v.elems()) {
    int64_t x = 0;
    if (!json_int(e, &x)) attr_type_error(key, "a list of integers (an element is not)", e);
    out->push_back(x);
  }
  return true;
}
int64_t attr_int(const Json& attrs, const char* key, int64_t def) {
  const Json& v = attrs[key];
  if (v.is_null()) return def;
  int64_t x = 0;
  if (!json_int(v, &x)) attr_type_error(key, "an integer", v);
  return x;
}
float attr_float(const Json& attrs, const char* key, float def) {
  const Json& v = attrs[key];
  if (v.is_null()) return def;
  if (!v.is_number()) attr_type_error(key, "a number", v);
  return float(v.num());
}
std::string attr_str(const Json& attrs, const char* key, const char* def) {
  const Json& v = attrs[key];
  if (v.is_null()) return std::string(def);
  if (!v.is_string()) attr_type_error(key, "a string", v);
  return v.str();
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) o += ", ";
    o += std::to_string(s[i]);
  }
  return o + "]";
}

bool read_ints(const Tensor* t, std::vector<int64_t>* out) {
  out->clear();
  if (!t || !t->data) return false;
  const int64_t n = t->numel();
  if (t->dtype == DType::I64) {
    const int64_t* p = static_cast<const int64_t*>(t->data);
    out->assign(p, p + n);
  } else if (t->dtype == DType::I32) {
    const int32_t* p = static_cast<const int32_t*>(t->data);
    for (int64_t i = 0; i < n; ++i) out->push_back(p[i]);
  } else {
    return false;
  }
  return true;
}

bool broadcast_shapes(const std::vector<int64_t>& a, const std::vector<int64_t>& b, std::vector<int64_t>* out) {
  const size_t n = std::max(a.size(), b.size());
  std::vector<int64_t> o(n, 1);  // (out may alias a or b)
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) return false;
    o[i] = da == 1 ? db : da;
  }
  *out = std::move(o);
  return true;
}

bool parse_act(const Json& attrs, OpParams* p, int slot_code, int slot_f) {
  const std::string a = attr_str(attrs, "act", "");
  p->f[slot_f] = -INFINITY;
  p->f[slot_f + 1] = INFINITY;
  if (a.empty()) p->i[slot_code] = ACT_NONE;
  else if (a == "relu") p->i[slot_code] = ACT_RELU;
  else if (a == "clip") {
    p->i[slot_code] = ACT_CLIP;
    p->f[slot_f] = attr_float(attrs, "act_min", -INFINITY);
    p->f[slot_f + 1] = attr_float(attrs, "act_max", INFINITY);
  } else if (a == "hardswish") p->i[slot_code] = ACT_HARDSWISH;
  else if (a == "hardsigmoid") {
    p->i[slot_code] = ACT_HARDSIGMOID;
    p->f[slot_f] = attr_float(attrs, "act_alpha", 0.2f);
    p->f[slot_f + 1] = attr_float(attrs, "act_beta", 0.5f);
  } else if (a == "sigmoid") p->i[slot_code] = ACT_SIGMOID;
  else if (a == "hardswish_affine") {
    p->i[slot_code] = ACT_HARDSWISH_AFFINE;
    p->f[slot_f] = attr_float(attrs, "act_scale", 1.f);
    p->f[slot_f + 1] = attr_float(attrs, "act_shift", 0.f);
  }
  else return false;
  return true;
}

void apply_act(float* x, int64_t n, int64_t code, float lo, float hi) {
  switch (code) {
    case ACT_NONE: return;
    case ACT_RELU:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > 0.f ? x[i] : 0.f;
      return;
    case ACT_CLIP:
      for (int64_t i = 0; i < n; ++i) x[i] = std::min(std::max(x[i], lo), hi);
      return;
    case ACT_HARDSWISH:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] * std::min(std::max(x[i] / 6.f + 0.5f, 0.f), 1.f);
      return;
    case ACT_HARDSIGMOID:
      for (int64_t i = 0; i < n; ++i) x[i] = std::min(std::max(lo * x[i] + hi, 0.f), 1.f);
      return;
    case ACT_HARDSWISH_AFFINE:
      for (int64_t i = 0; i < n; ++i) x[i] = lo * (x[i] * std::min(std::max(x[i] / 6.f + 0.5f, 0.f), 1.f)) + hi;
      return;
    case ACT_SIGMOID:
      vmath::map<vmath::SIGMOID>(x, x, n);
      return;
  }
}

bool parse_conv_window(const Json& a, int64_t* win, std::string* err) {
  std::vector<int64_t> v;
  win[0] = win[1] = win[2] = win[3] = 1;
  win[4] = win[5] = win[6] = win[7] = 0;
  if (attr_ints(a, "strides", &v) && v.size() == 2) { win[0] = v[0]; win[1] = v[1]; }
  if (attr_ints(a, "dilations", &v) && v.size() == 2) { win[2] = v[0]; win[3] = v[1]; }
  if (attr_ints(a, "pads", &v) && v.size() == 4) { win[4] = v[0]; win[5] = v[1]; win[6] = v[2]; win[7] = v[3]; }
  for (int j = 0; j < 4; ++j)
    if (win[j] <= 0) {
      *err = "strides and dilations must be positive";
      return false;
    }
  for (int j = 4; j < 8; ++j)
    if (win[j] < 0) {
      *err = "pads must not be negative";
      return false;
    }
  return true;
}

bool conv_output_hw(const std::string& auto_pad, const int64_t* in, const int64_t* kernel, int64_t* win, int64_t* out,
                    std::string* err) {
  const int64_t ek[2] = {(kernel[0] - 1) * win[2] + 1, (kernel[1] - 1) * win[3] + 1};
  apply_same_pads(auto_pad, in, win, ek, win + 4);
  for (int d = 0; d < 2; ++d) {
    const int64_t span = in[d] + win[4 + d] + win[6 + d];
    out[d] = span < ek[d] ? 0 : (span - ek[d]) / win[d] + 1;
    if (out[d] <= 0) {
      *err = "output would be empty: input " + std::to_string(in[0]) + "x" + std::to_string(in[1]) +
             " with pads, kernel " + std::to_string(ek[0]) + "x" + std::to_string(ek[1]) + " (dilated)";
      return false;
    }
  }
  return true;
}

lb_status conv_window_attrs(const Json& a, const int64_t* in, int64_t* kwin, int64_t* out, std::string* err) {
  std::vector<int64_t> v;
  if (!attr_ints(a, "kernel_shape", &v) || v.size() != 2 || v[0] <= 0 || v[1] <= 0) {
    *err = "needs kernel_shape [kh, kw]";
    return LB_ERR_UNSUPPORTED;
  }
  kwin[0] = v[0];
  kwin[1] = v[1];
  if (!parse_conv_window(a, kwin + 2, err) ||
      !conv_output_hw(attr_str(a, "auto_pad", "NOTSET"), in, kwin, kwin + 2, out, err))
    return LB_ERR_SHAPE;
  return LB_OK;
}

void apply_same_pads(const std::string& auto_pad, const int64_t* in, const int64_t* stride, const int64_t* eff_kernel,
                     int64_t* pads) {
  if (auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER") return;
  for (int d = 0; d < 2; ++d) {
    const int64_t out = (in[d] + stride[d] - 1) / stride[d];
    const int64_t tot = std::max<int64_t>(0, (out - 1) * stride[d] + eff_kernel[d] - in[d]);
    const int64_t lo = auto_pad == "SAME_UPPER" ? tot / 2 : tot - tot / 2;
    pads[d] = lo;
    pads[d + 2] = tot - lo;
  }
}

}  // namespace lb
