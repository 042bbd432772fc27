// Data-movement ops (any dtype): Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Slice,
// Gather, Split, Expand, Shape, ConstantOfShape, Pad, Resize (f32). Shape arguments must be known
// at plan time (constants, or values the executor folds from Shape/Gather/Concat arithmetic).
#pragma GCC optimize("O3")
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops.h"

namespace lb {
namespace {

int64_t norm_axis(int64_t a, int64_t r) { return a < 0 ? a + r : a; }

bool const_ints(OpCtx& c, size_t idx, const char* attr, std::vector<int64_t>* out, bool* present = nullptr) {
  if (present) *present = true;
  if (attr && attr_ints(*c.attrs, attr, out)) return true;
  if (c.in.size() > idx && c.in[idx]) {
    if (read_ints(c.in[idx], out)) return true;
    c.err = "input " + std::to_string(idx) + " must be known at plan time (a constant or shape arithmetic)";
    return false;
  }
  if (present) *present = false;
  out->clear();
  return true;
}

void copy_run(OpCtx& c) {
  if (c.out[0]->data != c.in[0]->data) std::memcpy(c.out[0]->data, c.in[0]->data, c.in[0]->nbytes());
}

lb_status reshape_infer(OpCtx& c) {
  std::vector<int64_t> shape;
  if (!const_ints(c, 1, "shape", &shape)) return LB_ERR_UNSUPPORTED;
  const auto& in = c.in[0]->shape;
  const bool allowzero = attr_int(*c.attrs, "allowzero", 0) != 0;
  int64_t known = 1, neg = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allowzero) {
      if (i >= in.size()) {
        c.err = "shape has 0 at a dimension the input lacks";
        return LB_ERR_SHAPE;
      }
      shape[i] = in[i];
    }
    if (shape[i] == -1) {
      if (neg >= 0) {
        c.err = "more than one -1 in the target shape";
        return LB_ERR_SHAPE;
      }
      neg = int64_t(i);
    } else {
      known *= shape[i];
    }
  }
  const int64_t n = c.in[0]->numel();
  if (neg >= 0) shape[size_t(neg)] = known ? n / known : 0;
  int64_t total = 1;
  for (int64_t d : shape) total *= d;
  if (total != n) {
    c.err = "cannot reshape " + shape_str(in) + " into " + shape_str(shape);
    return LB_ERR_SHAPE;
  }
  c.out[0]->dtype = c.in[0]->dtype;
  c.out[0]->shape = shape;
  return LB_OK;
}

lb_status flatten_infer(OpCtx& c) {
  const auto& s = c.in[0]->shape;
  const int64_t axis = norm_axis(attr_int(*c.attrs, "axis", 1), int64_t(s.size()));
  int64_t a = 1, b = 1;
  for (int64_t d = 0; d < int64_t(s.size()); ++d) (d < axis ? a : b) *= s[d];
  c.out[0]->dtype = c.in[0]->dtype;
  c.out[0]->shape = {a, b};
  return LB_OK;
}

lb_status squeeze_infer(OpCtx& c) {
  std::vector<int64_t> axes;
  if (!const_ints(c, 1, "axes", &axes)) return LB_ERR_UNSUPPORTED;
  const auto& s = c.in[0]->shape;
  const int64_t r = int64_t(s.size());
  for (auto& a : axes) a = norm_axis(a, r);
  std::vector<int64_t> o;
  for (int64_t d = 0; d < r; ++d) {
    const bool listed = std::find(axes.begin(), axes.end(), d) != axes.end();
    if (listed && s[d] != 1) {
      c.err = "cannot squeeze dimension " + std::to_string(d) + " of " + shape_str(s);
      return LB_ERR_SHAPE;
    }
    if ((axes.empty() && s[d] == 1) || listed) continue;
    o.push_back(s[d]);
  }
  c.out[0]->dtype = c.in[0]->dtype;
  c.out[0]->shape = o;
  return LB_OK;
}

lb_status unsqueeze_infer(OpCtx& c) {
  std::vector<int64_t> axes;
  if (!const_ints(c, 1, "axes", &axes)) return LB_ERR_UNSUPPORTED;
  const auto& s = c.in[0]->shape;
  const int64_t r = int64_t(s.size() + axes.size());
  for (auto& a : axes) a = norm_axis(a, r);
  std::vector<int64_t> o;
  size_t k = 0;
  for (int64_t d = 0; d < r; ++d) {
    if (std::find(axes.begin(), axes.end(), d) != axes.end()) o.push_back(1);
    else if (k < s.size()) o.push_back(s[k++]);
    else {
      c.err = "bad unsqueeze axes";
      return LB_ERR_SHAPE;
    }
  }
  c.out[0]->dtype = c.in[0]->dtype;
  c.out[0]->shape = o;
  return LB_OK;
}

// ---- Transpose: v = perm; generic strided copy with the innermost loop on the last out dim
lb_status transpose_infer(OpCtx& c) {
  const auto& s = c.in[0]->shape;
  std::vector<int64_t> perm;
  if (!attr_ints(*c.attrs, "perm", &perm))
    for (int64_t d = int64_t(s.size()) - 1; d >= 0; --d) perm.push_back(d);
  if (perm.size() != s.size()) {
    c.err = "perm " + shape_str(perm) + " does not match " + shape_str(s);
    return LB_ERR_SHAPE;
  }
  std::vector<int64_t> o;
  for (int64_t d : perm) {
    if (d < 0 || d >= int64_t(s.size())) {
      c.err = "bad perm";
      return LB_ERR_SHAPE;
    }
    o.push_back(s[size_t(d)]);
  }
  c.p->v = perm;
  c.out[0]->dtype = c.in[0]->dtype;
  c.out[0]->shape = o;
  return LB_OK;
}

template <class T>
void transpose_typed(const Tensor& x, Tensor& y, const std::vector<int64_t>& perm, ThreadPool* pool) {
  const int64_t r = int64_t(perm.size());
  std::vector<int64_t> in_strides(size_t(r), 1);
  for (int64_t d = r - 2; d >= 0; --d) in_strides[size_t(d)] = in_strides[size_t(d + 1)] * x.shape[size_t(d + 1)];
  int64_t st[8], dims[8];
  for (int64_t d = 0; d < r; ++d) {
    st[d] = in_strides[size_t(perm[size_t(d)])];
    dims[d] = y.shape[size_t(d)];
  }
  const T* src = static_cast<const T*>(x.data);
  T* dst = static_cast<T*>(y.data);
  const int64_t L = r ? dims[r - 1] : 1, ls = r ? st[r - 1] : 0;
  const int64_t rows = L ? y.numel() / L : 0;
  auto body = [&](int, int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      int64_t rem = row, off = 0;
      for (int64_t d = r - 2; d >= 0; --d) {
        off += (rem % dims[d]) * st[d];
        rem /= dims[d];
      }
      T* o = dst + row * L;
      for (int64_t i = 0; i < L; ++i) o[i] = src[off + i * ls];
    }
  };
  parallel_ranges(pool, rows, L >= (1 << 15) ? 1 : (1 << 15) / (L ? L : 1), body);
}

void transpose_run(OpCtx& c) {
  const size_t es = dtype_size(c.in[0]->dtype);
  if (c.p->v.size() > 8) return;
  switch (es) {
    case 1: transpose_typed<uint8_t>(*c.in[0], *c.out[0], c.p->v, c.pool); break;
    case 2: transpose_typed<uint16_t>(*c.in[0], *c.out[0], c.p->v, c.pool); break;
    case 4: transpose_typed<uint32_t>(*c.in[0], *c.out[0], c.p->v, c.pool); break;
    default: transpose_typed<uint64_t>(*c.in[0], *c.out[0], c.p->v, c.pool); break;
  }
}

// ---- Concat: i[0] axis, i[1] outer, i[2] inner bytes per unit of axis
lb_status concat_infer(OpCtx& c) {
  const auto& s0 = c.in[0]->shape;
  const int64_t r = int64_t(s0.size());
  const int64_t axis = norm_axis(attr_int(*c.attrs, "axis", 0), r);
  if (axis < 0 || axis >= r) {
    c.err = "axis out of range for " + shape_str(s0);
    return LB_ERR_SHAPE;
  }
  std::vector<int64_t> o = s0;
  o[size_t(axis)] = 0;
  for (const Tensor* t : c.in) {
    if (!t) continue;
    if (t->dtype != c.in[0]->dtype || int64_t(t->shape.size()) != r) {
      c.err = "inputs differ in dtype or rank";
      return LB_ERR_SHAPE;
    }
    for (int64_t d = 0; d < r; ++d)
      if (d != axis && t->shape[size_t(d)] != s0[size_t(d)]) {
        c.err = "cannot concatenate " + shape_str(s0) + " and " + shape_str(t->shape) + " on axis " + std::to_string(axis);
        return LB_ERR_SHAPE;
      }
    o[size_t(axis)] += t->shape[size_t(axis)];
  }
  c.p->i[0] = axis;
  c.out[0]->dtype = c.in[0]->dtype;
  c.out[0]->shape = o;
  return LB_OK;
}

void concat_run(OpCtx& c) {
  const int64_t axis = c.p->i[0];
  const auto& o = c.out[0]->shape;
  int64_t outer = 1, inner = int64_t(dtype_size(c.out[0]->dtype));
  for (int64_t d = 0; d < axis; ++d) outer *= o[size_t(d)];
  for (size_t d = size_t(axis) + 1; d < o.size(); ++d) inner *= o[d];
  char* dst = static_cast<char*>(c.out[0]->data);
  const int64_t out_row = o[size_t(axis)] * inner;
  int64_t col = 0;
  for (const Tensor* t : c.in) {
    if (!t) continue;
    const int64_t row = t->shape[size_t(axis)] * inner;
    const char* src = static_cast<const char*>(t->data);
    for (int64_t i = 0; i < outer; ++i) std::memcpy(dst + i * out_row + col, src + i * row, size_t(row));
    col += row;
  }
}

// ---- Slice: v = [r, start..., step..., outdims...]
lb_status slice_infer(OpCtx& c) {
  std::vector<int64_t> starts, ends, axes, steps;
  bool has_axes = false, has_steps = false;
  if (!const_ints(c, 1, "starts", &starts) || !const_ints(c, 2, "ends", &ends) ||
      !const_ints(c, 3, "axes", &axes, &has_axes) || !const_ints(c, 4, "steps", &steps, &has_steps))
    return LB_ERR_UNSUPPORTED;
  const auto& s = c.in[0]->shape;
  const int64_t r = int64_t(s.size());
  if (!has_axes || axes.empty()) {
    axes.clear();
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(int64_t(i));
  }
  if (!has_steps || steps.empty()) steps.assign(starts.size(), 1);
  if (starts.size() != ends.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
    c.err = "starts/ends/axes/steps lengths differ";
    return LB_ERR_SHAPE;
  }
  std::vector<int64_t> st(size_t(r), 0), sp(size_t(r), 1), o = s;
  for (size_t k = 0; k < axes.size(); ++k) {
    const int64_t a = norm_axis(axes[k], r);
    if (a < 0 || a >= r || steps[k] == 0) {
      c.err = "bad slice axis or step";
      return LB_ERR_SHAPE;
    }
    const int64_t d = s[size_t(a)], step = steps[k];
    int64_t b = starts[k], e = ends[k];
    if (b < 0) b += d;
    if (e < 0) e += d;
    if (step > 0) {
      b = std::min(std::max<int64_t>(b, 0), d);
      e = std::min(std::max<int64_t>(e, 0), d);
      o[size_t(a)] = e > b ? (e - b + step - 1) / step : 0;
    } else {
      b = std::min(std::max<int64_t>(b, -1), d - 1);
      e = std::min(std::max<int64_t>(e, -1), d - 1);
      o[size_t(a)] = b > e ? (b - e - step - 1) / (-step) : 0;
    }
    st[size_t(a)] = b;
    sp[size_t(a)] = step;
  }
  c.p->v.clear();
  c.p->v.push_back(r);
  c.p->v.insert(c.p->v.end(), st.begin(), st.end());
  c.p->v.insert(c.p->v.end(), sp.begin(), sp.end());
  c.out[0]->dtype = c.in[0]->dtype;
  c.out[0]->shape = o;
  return LB_OK;
}

void slice_run(OpCtx& c) {
  const auto& v = c.p->v;
  const int64_t r = v[0];
  const int64_t* st = &v[1];
  const int64_t* sp = st + r;
  const auto& s = c.in[0]->shape;
  const auto& o = c.out[0]->shape;
  const size_t es = dtype_size(c.in[0]->dtype);
  std::vector<int64_t> in_str(size_t(r), 1);
  for (int64_t d = r - 2; d >= 0; --d) in_str[size_t(d)] = in_str[size_t(d + 1)] * s[size_t(d + 1)];
  const char* src = static_cast<const char*>(c.in[0]->data);
  char* dst = static_cast<char*>(c.out[0]->data);
  const int64_t n = c.out[0]->numel();
  const int64_t L = r ? o[size_t(r - 1)] : 1;
  for (int64_t row = 0; L && row < n / L; ++row) {
    int64_t rem = row, off = 0;
    for (int64_t d = r - 2; d >= 0; --d) {
      off += (st[d] + (rem % o[size_t(d)]) * sp[d]) * in_str[size_t(d)];
      rem /= o[size_t(d)];
    }
    const int64_t l0 = r ? st[r - 1] : 0, ls = r ? sp[r - 1] : 1;
    if (ls == 1) {
      std::memcpy(dst + row * L * int64_t(es), src + (off + l0) * int64_t(es), size_t(L) * es);
    } else {
      for (int64_t i = 0; i < L; ++i) std::memcpy(dst + (row * L + i) * int64_t(es), src + (off + l0 + i * ls) * int64_t(es), es);
    }
  }
}

// ---- Gather(data, indices, axis)
lb_status gather_infer(OpCtx& c) {
  if (c.in.size() < 2 || !c.in[1]) {
    c.err = "needs inputs data and indices";
    return LB_ERR_FORMAT;
  }
  const auto& s = c.in[0]->shape;
  const int64_t r = int64_t(s.size());
  const int64_t axis = norm_axis(attr_int(*c.attrs, "axis", 0), r);
  if (axis < 0 || axis >= r) {
    c.err = "axis out of range for " + shape_str(s);
    return LB_ERR_SHAPE;
  }
  if (c.in[1]->dtype != DType::I64 && c.in[1]->dtype != DType::I32) {
    c.err = std::string("indices must be i64 or i32, got ") + dtype_name(c.in[1]->dtype);
    return LB_ERR_DTYPE;
  }
  std::vector<int64_t> o(s.begin(), s.begin() + axis);
  o.insert(o.end(), c.in[1]->shape.begin(), c.in[1]->shape.end());
  o.insert(o.end(), s.begin() + axis + 1, s.end());
  c.p->i[0] = axis;
  c.out[0]->dtype = c.in[0]->dtype;
  c.out[0]->shape = o;
  return LB_OK;
}

void gather_run(OpCtx& c) {
  const int64_t axis = c.p->i[0];
  const auto& s = c.in[0]->shape;
  int64_t outer = 1, inner = int64_t(dtype_size(c.in[0]->dtype));
  for (int64_t d = 0; d < axis; ++d) outer *= s[size_t(d)];
  for (size_t d = size_t(axis) + 1; d < s.size(); ++d) inner *= s[d];
  const int64_t dim = s[size_t(axis)], ni = c.in[1]->numel();
  const char* src = static_cast<const char*>(c.in[0]->data);
  char* dst = static_cast<char*>(c.out[0]->data);
  const bool i64 = c.in[1]->dtype == DType::I64;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < ni; ++k) {
      int64_t idx = i64 ? static_cast<const int64_t*>(c.in[1]->data)[k] : static_cast<const int32_t*>(c.in[1]->data)[k];
      if (idx < 0) idx += dim;
      char* d = dst + (o * ni + k) * inner;
      if (idx < 0 || idx >= dim) std::memset(d, 0, size_t(inner));  // out of range: zeros, never a wild read
      else std::memcpy(d, src + (o * dim + idx) * inner, size_t(inner));
    }
}

// ---- Shape(x) -> i64 [r] (start/end attributes)
lb_status shape_infer(OpCtx& c) {
  const int64_t r = int64_t(c.in[0]->shape.size());
  int64_t b = attr_int(*c.attrs, "start", 0), e = attr_int(*c.attrs, "end", r);
  if (b < 0) b += r;
  if (e < 0) e += r;
  b = std::min(std::max<int64_t>(b, 0), r);
  e = std::min(std::max<int64_t>(e, b), r);
  c.p->v.assign(c.in[0]->shape.begin() + b, c.in[0]->shape.begin() + e);
  c.out[0]->dtype = DType::I64;
  c.out[0]->shape = {e - b};
  return LB_OK;
}
void shape_run(OpCtx& c) { std::memcpy(c.out[0]->data, c.p->v.data(), c.p->v.size() * 8); }

// ---- Expand(x, shape)
lb_status expand_infer(OpCtx& c) {
  std::vector<int64_t> shape, o;
  if (!const_ints(c, 1, nullptr, &shape)) return LB_ERR_UNSUPPORTED;
  if (!broadcast_shapes(c.in[0]->shape, shape, &o)) {
    c.err = "cannot expand " + shape_str(c.in[0]->shape) + " to " + shape_str(shape);
    return LB_ERR_SHAPE;
  }
  // v: the output shape, then the input's element stride along each output axis (0: broadcast), so a
  // run allocates nothing
  const auto& s = c.in[0]->shape;
  const int64_t r = int64_t(o.size()), off = r - int64_t(s.size());
  std::vector<int64_t> st(size_t(r), 0);
  int64_t acc = 1;
  for (int64_t d = r - 1; d >= off; --d) {
    st[size_t(d)] = s[size_t(d - off)] == 1 ? 0 : acc;
    acc *= s[size_t(d - off)];
  }
  c.p->v = o;
  c.p->v.insert(c.p->v.end(), st.begin(), st.end());
  c.out[0]->dtype = c.in[0]->dtype;
  c.out[0]->shape = o;
  return LB_OK;
}
void expand_run(OpCtx& c) {
  const auto& o = c.out[0]->shape;
  const int64_t r = int64_t(o.size());
  const size_t es = dtype_size(c.in[0]->dtype);
  const int64_t* st = c.p->v.data() + r;
  const char* src = static_cast<const char*>(c.in[0]->data);
  char* dst = static_cast<char*>(c.out[0]->data);
  const int64_t n = c.out[0]->numel();
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, so = 0;
    for (int64_t d = r - 1; d >= 0; --d) {
      so += (rem % o[size_t(d)]) * st[d];
      rem /= o[size_t(d)];
    }
    std::memcpy(dst + i * int64_t(es), src + so * int64_t(es), es);
  }
}

// ---- ConstantOfShape(shape) with attr value (f32 default 0) and dtype
lb_status cos_infer(OpCtx& c) {
  std::vector<int64_t> shape;
  if (!const_ints(c, 0, nullptr, &shape)) return LB_ERR_UNSUPPORTED;
  DType t = DType::F32;
  parse_dtype(attr_str(*c.attrs, "dtype", "f32"), &t);
  c.p->f[0] = attr_float(*c.attrs, "value", 0.f);
  c.out[0]->dtype = t;
  c.out[0]->shape = shape;
  return LB_OK;
}
void cos_run(OpCtx& c) {
  const int64_t n = c.out[0]->numel();
  const float v = c.p->f[0];
  for (int64_t i = 0; i < n; ++i) {
    switch (c.out[0]->dtype) {
      case DType::F32: c.out[0]->f32()[i] = v; break;
      case DType::I64: static_cast<int64_t*>(c.out[0]->data)[i] = int64_t(v); break;
      case DType::I32: static_cast<int32_t*>(c.out[0]->data)[i] = int32_t(v); break;
      default: static_cast<uint8_t*>(c.out[0]->data)[i] = uint8_t(v); break;
    }
  }
}

// ---- Split(x, split) along axis into the outputs
lb_status split_infer(OpCtx& c) {
  const auto& s = c.in[0]->shape;
  const int64_t r = int64_t(s.size());
  const int64_t axis = norm_axis(attr_int(*c.attrs, "axis", 0), r);
  std::vector<int64_t> sizes;
  if (!const_ints(c, 1, "split", &sizes)) return LB_ERR_UNSUPPORTED;
  const int64_t n = int64_t(c.out.size());
  if (sizes.empty()) sizes.assign(size_t(n), (s[size_t(axis)] + n - 1) / n);
  int64_t tot = 0;
  for (size_t k = 0; k < sizes.size() && k < c.out.size(); ++k) {
    sizes[k] = std::min(sizes[k], s[size_t(axis)] - tot);
    tot += sizes[k];
    c.out[k]->dtype = c.in[0]->dtype;
    c.out[k]->shape = s;
    c.out[k]->shape[size_t(axis)] = sizes[k];
  }
  if (tot != s[size_t(axis)] || sizes.size() != c.out.size()) {
    c.err = "split sizes do not add up to " + std::to_string(s[size_t(axis)]);
    return LB_ERR_SHAPE;
  }
  c.p->i[0] = axis;
  return LB_OK;
}
void split_run(OpCtx& c) {
  const int64_t axis = c.p->i[0];
  const auto& s = c.in[0]->shape;
  int64_t outer = 1, inner = int64_t(dtype_size(c.in[0]->dtype));
  for (int64_t d = 0; d < axis; ++d) outer *= s[size_t(d)];
  for (size_t d = size_t(axis) + 1; d < s.size(); ++d) inner *= s[d];
  const char* src = static_cast<const char*>(c.in[0]->data);
  const int64_t in_row = s[size_t(axis)] * inner;
  int64_t col = 0;
  for (Tensor* t : c.out) {
    const int64_t row = t->shape[size_t(axis)] * inner;
    for (int64_t i = 0; i < outer; ++i) std::memcpy(static_cast<char*>(t->data) + i * row, src + i * in_row + col, size_t(row));
    col += row;
  }
}

// ---- Pad (constant mode): pads from attr or input 1, value from input 2
lb_status pad_infer(OpCtx& c) {
  std::vector<int64_t> pads;
  if (!const_ints(c, 1, "pads", &pads)) return LB_ERR_UNSUPPORTED;
  const auto& s = c.in[0]->shape;
  const size_t r = s.size();
  if (pads.size() != 2 * r) {
    c.err = "pads must have " + std::to_string(2 * r) + " values";
    return LB_ERR_SHAPE;
  }
  if (attr_str(*c.attrs, "mode", "constant") != "constant") {
    c.err = "only constant padding is supported";
    return LB_ERR_UNSUPPORTED;
  }
  std::vector<int64_t> o = s;
  for (size_t d = 0; d < r; ++d) {
    o[d] += pads[d] + pads[d + r];
    if (pads[d] < 0 || pads[d + r] < 0) {
      c.err = "negative pads are not supported";
      return LB_ERR_UNSUPPORTED;
    }
  }
  c.p->v = pads;
  c.p->f[0] = attr_float(*c.attrs, "value", 0.f);
  if (c.in.size() > 2 && c.in[2] && c.in[2]->data && c.in[2]->dtype == DType::F32) c.p->f[0] = c.in[2]->f32()[0];
  c.out[0]->dtype = c.in[0]->dtype;
  c.out[0]->shape = o;
  return LB_OK;
}
void pad_run(OpCtx& c) {
  const auto& s = c.in[0]->shape;
  const auto& o = c.out[0]->shape;
  const int64_t r = int64_t(s.size());
  const size_t es = dtype_size(c.in[0]->dtype);
  char* dst = static_cast<char*>(c.out[0]->data);
  const int64_t n = c.out[0]->numel();
  if (c.out[0]->dtype == DType::F32) for (int64_t i = 0; i < n; ++i) c.out[0]->f32()[i] = c.p->f[0];
  else std::memset(dst, 0, size_t(n) * es);
  const int64_t L = r ? s[size_t(r - 1)] : 1;
  const int64_t rows = L ? c.in[0]->numel() / L : 0;
  for (int64_t row = 0; row < rows; ++row) {
    int64_t rem = row, off = 0, mul = o[size_t(r - 1)];
    off = c.p->v[size_t(r - 1)];
    for (int64_t d = r - 2; d >= 0; --d) {
      off += ((rem % s[size_t(d)]) + c.p->v[size_t(d)]) * mul;
      rem /= s[size_t(d)];
      mul *= o[size_t(d)];
    }
    std::memcpy(dst + off * int64_t(es), static_cast<const char*>(c.in[0]->data) + row * L * int64_t(es), size_t(L) * es);
  }
}

// ---- Resize (f32, 4-D NCHW, nearest or linear over H and W)
// i[0] mode (0 nearest, 1 linear), i[1] coord (0 half_pixel, 1 asymmetric, 2 align_corners, 3 pytorch_half_pixel),
// i[2] nearest mode (0 round_prefer_floor, 1 floor, 2 ceil, 3 round_prefer_ceil); f[0], f[1] scale h, w
lb_status resize_infer(OpCtx& c) {
  if (c.in[0]->dtype != DType::F32 || c.in[0]->shape.size() != 4) {
    c.err = "Resize supports 4-D f32 inputs, got " + shape_str(c.in[0]->shape);
    return LB_ERR_UNSUPPORTED;
  }
  const auto& s = c.in[0]->shape;
  std::vector<float> scales;
  std::vector<int64_t> sizes;
  // inputs: X, roi, scales, sizes (opset 11+); the exporter puts constant scales in attrs too
  if (c.in.size() > 3 && c.in[3] && c.in[3]->numel() > 0) {
    if (!read_ints(c.in[3], &sizes)) {
      c.err = "sizes must be known at plan time";
      return LB_ERR_UNSUPPORTED;
    }
  } else if (c.in.size() > 2 && c.in[2] && c.in[2]->numel() > 0) {
    if (!c.in[2]->data || c.in[2]->dtype != DType::F32) {
      c.err = "scales must be a constant f32";
      return LB_ERR_UNSUPPORTED;
    }
    scales.assign(c.in[2]->f32(), c.in[2]->f32() + c.in[2]->numel());
  } else if (c.attrs->has("scales")) {
    for (const Json& v : (*c.attrs)["scales"].elems()) scales.push_back(float(v.num()));
  }
  std::vector<int64_t> o = s;
  OpParams& p = *c.p;
  if (sizes.size() == 4) {
    o = sizes;
    p.f[0] = float(o[2]) / float(s[2]);
    p.f[1] = float(o[3]) / float(s[3]);
  } else if (scales.size() == 4) {
    for (int d = 0; d < 4; ++d) o[size_t(d)] = int64_t(std::floor(float(s[size_t(d)]) * scales[size_t(d)]));
    p.f[0] = scales[2];
    p.f[1] = scales[3];
  } else {
    c.err = "Resize needs 4 scales or 4 sizes";
    return LB_ERR_SHAPE;
  }
  if (o[0] != s[0] || o[1] != s[1]) {
    c.err = "Resize over N or C is not supported";
    return LB_ERR_UNSUPPORTED;
  }
  const std::string mode = attr_str(*c.attrs, "mode", "nearest");
  const std::string ct = attr_str(*c.attrs, "coordinate_transformation_mode", "half_pixel");
  const std::string nm = attr_str(*c.attrs, "nearest_mode", "round_prefer_floor");
  p.i[0] = mode == "nearest" ? 0 : mode == "linear" ? 1 : -1;
  p.i[1] = ct == "half_pixel" ? 0 : ct == "asymmetric" ? 1 : ct == "align_corners" ? 2 : ct == "pytorch_half_pixel" ? 3 : -1;
  p.i[2] = nm == "round_prefer_floor" ? 0 : nm == "floor" ? 1 : nm == "ceil" ? 2 : nm == "round_prefer_ceil" ? 3 : -1;
  if (p.i[0] < 0 || p.i[1] < 0 || p.i[2] < 0) {
    c.err = "Resize mode '" + mode + "', coordinate mode '" + ct + "', nearest mode '" + nm + "' not supported";
    return LB_ERR_UNSUPPORTED;
  }
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = o;
  c.flops = uint64_t(c.out[0]->numel()) * 4;
  c.scratch_bytes = size_t(o[2] + o[3]) * sizeof(ResizeTap);  // the tap tables: no allocation per run
  return LB_OK;
}

inline float src_coord(int64_t coord, int mode, float scale, int64_t in, int64_t out) {
  switch (mode) {
    case 0: return (float(coord) + 0.5f) / scale - 0.5f;
    case 1: return float(coord) / scale;
    case 2: return out > 1 ? float(coord) * float(in - 1) / float(out - 1) : 0.f;
    default: return out > 1 ? (float(coord) + 0.5f) / scale - 0.5f : 0.f;
  }
}

}  // namespace

// Source index (nearest) or index pair and weight (linear) of one output coordinate (declared in
// ops.h: resize_nearest_nhwc_q8 uses the same taps); the tables are built once per run, so each
// output pixel is a gather (and a lerp).
ResizeTap resize_tap(const OpParams& p, int64_t coord, float scale, int64_t in, int64_t out) {
  const float f = src_coord(coord, int(p.i[1]), scale, in, out);
  if (p.i[0] == 0) {
    int64_t i;
    switch (p.i[2]) {
      case 1: i = int64_t(std::floor(f)); break;
      case 2: i = int64_t(std::ceil(f)); break;
      case 3: i = int64_t(std::floor(f + 0.5f)); break;
      default: i = (f - std::floor(f) == 0.5f) ? int64_t(std::floor(f)) : int64_t(std::round(f)); break;
    }
    i = std::min(std::max<int64_t>(i, 0), in - 1);
    return {i, i, 0.f};
  }
  const float cf = std::min(std::max(f, 0.f), float(in - 1));
  const int64_t i0 = int64_t(cf);
  return {i0, std::min(i0 + 1, in - 1), cf - float(i0)};
}

namespace {

void resize_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const auto& s = c.in[0]->shape;
  const auto& o = c.out[0]->shape;
  const int64_t H = s[2], W = s[3], OH = o[2], OW = o[3];
  const float* x = c.in[0]->f32();
  float* y = c.out[0]->f32();
  ResizeTap* ty = static_cast<ResizeTap*>(c.scratch);
  ResizeTap* tx = ty + OH;
  for (int64_t oy = 0; oy < OH; ++oy) ty[oy] = resize_tap(p, oy, p.f[0], H, OH);
  for (int64_t ox = 0; ox < OW; ++ox) tx[ox] = resize_tap(p, ox, p.f[1], W, OW);
  const bool nearest = p.i[0] == 0;
  for_ranges(c, s[0] * s[1], OH * OW * 4, [&](int, int64_t b, int64_t e) {
    for (int64_t ch = b; ch < e; ++ch) {
      const float* in = x + ch * H * W;
      float* out = y + ch * OH * OW;
      for (int64_t oy = 0; oy < OH; ++oy) {
        const ResizeTap& t = ty[oy];
        float* orow = out + oy * OW;
        if (oy > 0 && nearest && t.i0 == ty[oy - 1].i0) {  // same source row: copy
          std::memcpy(orow, orow - OW, size_t(OW) * sizeof(float));
          continue;
        }
        const float* r0 = in + t.i0 * W;
        if (nearest) {
          for (int64_t ox = 0; ox < OW; ++ox) orow[ox] = r0[tx[ox].i0];
          continue;
        }
        const float* r1 = in + t.i1 * W;
        const float dy = t.d;
        for (int64_t ox = 0; ox < OW; ++ox) {
          const ResizeTap& u = tx[ox];
          const float dx = u.d;
          orow[ox] = (r0[u.i0] * (1 - dx) + r0[u.i1] * dx) * (1 - dy) + (r1[u.i0] * (1 - dx) + r1[u.i1] * dx) * dy;
        }
      }
    }
  });
}

}  // namespace

void register_ops_shape(std::vector<OpDef>& r) {
  r.push_back(OpDef{"reshape", reshape_infer, copy_run, true});
  r.push_back(OpDef{"flatten", flatten_infer, copy_run, true});
  r.push_back(OpDef{"squeeze", squeeze_infer, copy_run, true});
  r.push_back(OpDef{"unsqueeze", unsqueeze_infer, copy_run, true});
  r.push_back(OpDef{"transpose", transpose_infer, transpose_run, true});
  r.push_back(OpDef{"concat", concat_infer, concat_run, true});
  r.push_back(OpDef{"slice", slice_infer, slice_run, true});
  r.push_back(OpDef{"gather", gather_infer, gather_run, true});
  r.push_back(OpDef{"shape", shape_infer, shape_run, true});
  r.push_back(OpDef{"expand", expand_infer, expand_run, true});
  r.push_back(OpDef{"constant_of_shape", cos_infer, cos_run, true});
  r.push_back(OpDef{"split", split_infer, split_run, true});
  r.push_back(OpDef{"pad", pad_infer, pad_run, true});
  r.push_back(OpDef{"resize_f32", resize_infer, resize_run, false});
}

}  // namespace lb
