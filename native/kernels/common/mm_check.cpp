// Shared self-check of the quantized matmul families (see mm_check.h).
#include "mm_check.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "mm_layout.h"
#include "pack.h"

namespace lb {
namespace check {
namespace {

/// A random quantized weight in `fmt`, packed. `exact`: integer-valued scales (results exact).
struct Weight {
  std::vector<int8_t> q;
  std::vector<float> scale, zero, minimum, codebook;
  std::vector<uint8_t> packed;
  QuantWeightView view;
};

const float kNf4[16] = {-1.0f, -0.6961928f, -0.52507305f, -0.3949175f, -0.28444138f, -0.18477343f, -0.09105004f, 0.0f,
                        0.0795803f, 0.1609302f, 0.2461123f, 0.33791524f, 0.44070983f, 0.562617f, 0.72295684f, 1.0f};
const float kFp4[16] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f, -0.f, -0.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};

bool make_weight(Weight& w, lb_wfmt fmt, int64_t n, int64_t k, int32_t group, bool exact, int q8_max, Rng& rng,
                 Report& rep) {
  const int64_t ng = k / group;
  w.q.resize(size_t(n * k));
  w.scale.resize(size_t(n * ng));
  int lo = 0, hi = 0;
  switch (fmt) {
    case LB_WFMT_Q8: lo = -q8_max, hi = q8_max; break;
    case LB_WFMT_Q4: lo = -8, hi = 7; break;
    case LB_WFMT_Q4A: case LB_WFMT_C4: lo = 0, hi = 15; break;
    case LB_WFMT_T2: lo = -1, hi = 1; break;
  }
  for (auto& v : w.q) v = rng.i8(lo, hi);
  for (auto& s : w.scale) s = exact ? 1.0f : rng.f32(0.001f, 0.05f);
  w.view = QuantWeightView{};
  if (fmt == LB_WFMT_Q4A) {
    if (rng.next() & 1) {
      w.zero.resize(w.scale.size());
      for (auto& z : w.zero) z = float(rng.i8(0, 15));
      w.view.zero = w.zero.data();
    } else {
      w.minimum.resize(w.scale.size());
      for (auto& mn : w.minimum) mn = exact ? float(rng.i8(-12, 0)) : rng.f32(-0.4f, 0.0f);
      w.view.minimum = w.minimum.data();
    }
  }
  if (fmt == LB_WFMT_C4) {
    w.codebook.assign(exact ? kFp4 : kNf4, (exact ? kFp4 : kNf4) + 16);
    w.view.codebook = w.codebook.data();
  }
  w.view.fmt = fmt;
  w.view.n = n;
  w.view.k = k;
  w.view.group = group;
  w.view.q = w.q.data();
  w.view.scale = w.scale.data();
  w.packed.assign(size_t(lb_wfmt_packed_bytes(fmt, n, k, group)) + 64, 0);
  if (pack_weight(w.view, w.packed.data(), w.packed.size() - 64) != LB_OK) {
    rep.fail("pack_weight failed: fmt %d n=%lld k=%lld g=%d", int(fmt), (long long)n, (long long)k, group);
    return false;
  }
  return true;
}

/// sum_k |w[n, k] * x[m, k]| + |bias[n]|: the scale of the float rounding error of output (m, n).
float magnitude(const Weight& w, const std::vector<float>& x, const std::vector<float>& bias, int64_t m, int64_t n) {
  const QuantWeightView& v = w.view;
  const int64_t ng = v.k / v.group;
  double s = std::fabs(bias[size_t(n)]);
  for (int64_t k = 0; k < v.k; ++k) {
    const int64_t g = n * ng + k / v.group;
    double wv = v.q[n * v.k + k];
    if (v.fmt == LB_WFMT_C4) wv = v.codebook[int(wv)];
    wv *= v.scale[g];
    if (v.fmt == LB_WFMT_Q4A) wv += v.minimum ? v.minimum[g] : -v.scale[g] * v.zero[g];
    s += std::fabs(wv * x[size_t(m * v.k + k)]);
  }
  return float(s);
}

struct Case {
  int64_t m, n, k;
  int32_t group;
  bool exact;
  int64_t n0;  // first column of the call (a panel boundary); the call covers [n0, n)
  bool static_act = false;  // Q8: static scale and zero point (codes reach -128)
};

void run_case(const char* name, lb_mm_t* fn, lb_mm_t* ref_fn, lb_quant_q8_t* quant, lb_wfmt fmt, bool float_act,
              int q8_max, const Case& c, Rng& rng, Report& rep) {
  Weight w;
  const int32_t group = fmt == LB_WFMT_Q8 ? int32_t(c.k) : c.group;
  if (!make_weight(w, fmt, c.n, c.k, group, c.exact, q8_max, rng, rep)) return;
  const int64_t kp = fmt == LB_WFMT_Q8 ? layout::round_up(c.k, LB_KBLOCK) : c.k;
  const int32_t ablock = fmt == LB_WFMT_Q8 ? int32_t(kp) : group;
  const int64_t nb = kp / ablock, npad = layout::panels(c.n) * layout::kRows;

  // Activations: integers with a +-127 in every block when exact (scale 1), else random floats.
  std::vector<float> x(size_t(c.m * c.k));
  for (int64_t i = 0; i < c.m * c.k; ++i) x[i] = c.exact ? float(rng.i8(-127, 127)) : rng.f32(-2.f, 2.f);
  if (c.exact)
    for (int64_t r = 0; r < c.m; ++r)
      for (int64_t b = 0; b * ablock < c.k; ++b) x[r * c.k + b * ablock] = (rng.next() & 1) ? 127.f : -127.f;
  std::vector<float> bias(size_t(c.n));
  for (auto& b : bias) b = c.exact ? float(rng.i8(-50, 50)) : rng.f32(-1.f, 1.f);

  std::vector<int8_t> xq(size_t(c.m * kp));
  std::vector<lb_q8_meta> xm(size_t(c.m * nb));
  std::vector<float> xs(size_t(c.m * (c.k / group)));
  lb_mm_args a{};
  a.w = w.packed.data();
  a.fmt = fmt;
  a.group = fmt == LB_WFMT_Q8 ? int32_t(kp) : group;
  a.n = c.n;
  a.k = c.k;
  a.kp = kp;
  if (fmt == LB_WFMT_Q8) {
    a.row_scale = reinterpret_cast<const float*>(w.packed.data() + npad * kp);
    a.row_sum = reinterpret_cast<const int32_t*>(w.packed.data() + npad * kp + npad * 4);
  }
  if (fmt == LB_WFMT_C4)
    a.lut = reinterpret_cast<const int8_t*>(w.packed.data() + w.packed.size() - 64 - sizeof(lb_c4_lut));
  if (float_act) {
    for (int64_t r = 0; r < c.m; ++r)
      for (int64_t g = 0; g < c.k / group; ++g) {
        float s = 0.f;
        for (int32_t j = 0; j < group; ++j) s += x[r * c.k + g * group + j];
        xs[r * (c.k / group) + g] = s;
      }
    a.xf = x.data();
    a.xs = xs.data();
  } else {
    for (int64_t r = 0; r < c.m; ++r) {
      lb_quant_args qa{};
      qa.x = x.data() + r * c.k;
      qa.k = c.k;
      qa.kp = kp;
      qa.block = ablock;
      qa.per_row = fmt == LB_WFMT_Q8;
      qa.is_static = c.static_act;
      qa.static_scale = c.exact ? 1.f : 0.01f;  // exact: codes = x + zero, clamped
      qa.static_zero = -7;
      quant(&qa, xq.data() + r * kp, xm.data() + r * nb);
    }
    a.xq = xq.data();
    a.xm = xm.data();
    a.act_zero = c.static_act ? -7 : 0;
  }
  a.bias = bias.data();
  const int64_t ldy = c.n + 3;  // a gap between rows that must stay untouched
  a.ldy = ldy;
  Guarded<float> got(size_t(c.m * ldy)), want(size_t(c.m * ldy));
  a.y = want.data();
  ref_fn(&a, 0, c.m, c.n0, c.n);
  a.y = got.data();
  fn(&a, 0, c.m, c.n0, c.n);
  ++rep.checks;
  if (!got.guards_intact()) {
    rep.fail("%s: write outside the output (m=%lld n=%lld k=%lld g=%d)", name, (long long)c.m, (long long)c.n,
             (long long)c.k, group);
    return;
  }
  for (int64_t r = 0; r < c.m; ++r) {
    for (int64_t j = 0; j < ldy; ++j) {
      const float gv = got.data()[r * ldy + j], wv = want.data()[r * ldy + j];
      const bool inside = j >= c.n0 && j < c.n;
      uint32_t gb;
      std::memcpy(&gb, &gv, 4);
      if (!inside) {
        if (gb != 0xA5A5A5A5u) {
          rep.fail("%s: wrote y[%lld][%lld] outside columns [%lld, %lld) (m=%lld n=%lld k=%lld g=%d)", name,
                   (long long)r, (long long)j, (long long)c.n0, (long long)c.n, (long long)c.m, (long long)c.n,
                   (long long)c.k, group);
          return;
        }
        continue;
      }
      const bool ok = c.exact ? gv == wv : std::fabs(gv - wv) <= kMmMaxRelErr * magnitude(w, x, bias, r, j);
      if (!ok) {
        rep.fail("%s: y[%lld][%lld] = %.9g, reference %.9g (%s; m=%lld n=%lld k=%lld g=%d)", name, (long long)r,
                 (long long)j, double(gv), double(wv), c.exact ? "exact" : "tolerance", (long long)c.m,
                 (long long)c.n, (long long)c.k, group);
        return;
      }
    }
  }
}

}  // namespace

void check_mm_family(const char* name, lb_mm_t* fn, lb_mm_t* ref_fn, lb_quant_q8_t* quant, lb_wfmt fmt, bool gemm,
                     bool float_act, Report& rep, int q8_max) {
  Rng rng(uint64_t(fmt) * 1000 + (gemm ? 7 : 3) + (float_act ? 11 : 0) + uint64_t(q8_max) * 100000);
  static const int64_t kGemvN[] = {1, 7, 8, 13, 40};
  static const int64_t kGemmM[] = {2, 3, 4, 5, 7, 8, 13};
  const int32_t groups[] = {32, 64, 128};
  for (bool exact : {true, false}) {
    if (fmt == LB_WFMT_Q8) {
      static const int64_t kK[] = {1, 5, 31, 32, 33, 100, 256, 512};
      for (int64_t k : kK)
        for (int64_t n : kGemvN) {
          const int64_t m = gemm ? kGemmM[(k + n) % 7] : 1;
          run_case(name, fn, ref_fn, quant, fmt, float_act, q8_max, Case{m, n, k, 0, exact, 0}, rng, rep);
        }
      // several K chunks and L2 panel blocks of the AVX2 int16 GEMM (kp 1120 > 2 x 512, 25 panels)
      run_case(name, fn, ref_fn, quant, fmt, float_act, q8_max, Case{gemm ? 11 : 1, 200, 1100, 0, exact, 0}, rng, rep);
      if (gemm) run_case(name, fn, ref_fn, quant, fmt, float_act, q8_max, Case{13, 37, 96, 0, exact, 16}, rng, rep);
      else run_case(name, fn, ref_fn, quant, fmt, float_act, q8_max, Case{1, 37, 96, 0, exact, 16}, rng, rep);
      for (int64_t n : {5, 24}) {  // static activations, with codes clamped at -128 and 127
        Case st{gemm ? 6 : 1, n, 200, 0, exact, 0};
        st.static_act = true;
        run_case(name, fn, ref_fn, quant, fmt, float_act, q8_max, st, rng, rep);
      }
      continue;
    }
    for (int32_t g : groups)
      for (int64_t mult : {1, 2, 3}) {
        const int64_t k = g * mult;
        for (int64_t n : kGemvN) {
          const int64_t m = gemm ? kGemmM[(mult * 3 + n) % 7] : 1;
          run_case(name, fn, ref_fn, quant, fmt, float_act, q8_max, Case{m, n, k, g, exact, 0}, rng, rep);
        }
      }
    run_case(name, fn, ref_fn, quant, fmt, float_act, q8_max, Case{gemm ? 13 : 1, 37, 256, 64, exact, 16}, rng, rep);
    run_case(name, fn, ref_fn, quant, fmt, float_act, q8_max, Case{gemm ? 9 : 1, 24, 2048, 128, exact, 8}, rng, rep);
  }
}

}  // namespace check
}  // namespace lb
