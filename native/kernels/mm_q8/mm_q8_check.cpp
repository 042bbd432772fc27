// Self-check of w8a8 (Q8, and the GEMM for 7-bit Q8 weights): the GEMV and GEMM variants of a dispatch table against the scalar
// references (exact on integer-valued data, kMmMaxRelErr otherwise; tails, sub-ranges, guards), and the GEMMs' int8
// output mode (lb_mm_args::q8) against the references' bit for bit.
#include <cmath>
#include <vector>

#include "dispatch.h"
#include "mm_check.h"
#include "mm_layout.h"
#include "pack.h"

namespace lb {
namespace {

struct OutCase {
  int64_t m, n, k, n0, pad;  // pad: columns [n, pad) written as 0
  bool clamp, mul;
  int zero;  // activation zero point
};

// Random Q8 weights (codes in [-q8_max, q8_max], float scales), static int8 activations of every code, bias,
// clamp / multipliers / output quantizer; the variant's int8 rows must equal the reference's, and nothing
// outside columns [n0, pad) of each row (stride pad + 5) may change.
void run_out_case(const char* name, lb_mm_t* fn, lb_mm_t* ref_fn, int q8_max, const OutCase& c, check::Rng& rng,
                  check::Report& rep) {
  std::vector<int8_t> wq(size_t(c.n * c.k));
  std::vector<float> ws(size_t(c.n));
  for (auto& v : wq) v = rng.i8(-q8_max, q8_max);
  for (auto& s : ws) s = rng.f32(0.002f, 0.02f);
  QuantWeightView view;
  view.fmt = LB_WFMT_Q8;
  view.n = c.n;
  view.k = c.k;
  view.group = int32_t(c.k);
  view.q = wq.data();
  view.scale = ws.data();
  std::vector<uint8_t> packed(size_t(lb_wfmt_packed_bytes(LB_WFMT_Q8, c.n, c.k, int32_t(c.k))));
  if (pack_weight(view, packed.data(), packed.size()) != LB_OK) {
    rep.fail("%s: pack_weight failed (n=%lld k=%lld)", name, (long long)c.n, (long long)c.k);
    return;
  }
  const int64_t kp = layout::round_up(c.k, LB_KBLOCK), npad = layout::panels(c.n) * layout::kRows;
  std::vector<int8_t> xq(size_t(c.m * kp), 0);
  std::vector<lb_q8_meta> xm(size_t(c.m));
  for (int64_t r = 0; r < c.m; ++r) {
    int32_t s = 0;
    for (int64_t i = 0; i < c.k; ++i) s += xq[size_t(r * kp + i)] = rng.i8(-128, 127);
    xm[size_t(r)] = lb_q8_meta{0.05f, s};
  }
  std::vector<float> bias(size_t(c.n)), mul(size_t(c.n));
  for (auto& b : bias) b = rng.f32(-2.f, 2.f);
  for (auto& v : mul) v = rng.f32(0.5f, 2.f);
  lb_mm_args a{};
  a.w = packed.data();
  a.fmt = LB_WFMT_Q8;
  a.group = int32_t(kp);
  a.n = c.n;
  a.k = c.k;
  a.kp = kp;
  a.row_scale = reinterpret_cast<const float*>(packed.data() + npad * kp);
  a.row_sum = reinterpret_cast<const int32_t*>(packed.data() + npad * kp + npad * 4);
  a.xq = xq.data();
  a.xm = xm.data();
  a.act_zero = c.zero;
  a.bias = bias.data();
  a.ldq = c.pad + 5;
  a.q_pad = c.pad;
  a.q_mul = c.mul ? mul.data() : nullptr;
  a.q_inv = 1.0f / 0.3f;  // the float results spread over a few hundred output steps: both clamps are hit
  a.q_zero = float(rng.i8(-20, 20));
  a.q_clamp = c.clamp;
  a.q_lo = -5.f;
  a.q_hi = 20.f;
  check::Guarded<int8_t> got(size_t(c.m * a.ldq)), want(size_t(c.m * a.ldq));
  a.q8 = want.data();
  ref_fn(&a, 0, c.m, c.n0, c.n);
  a.q8 = got.data();
  fn(&a, 0, c.m, c.n0, c.n);
  ++rep.checks;
  if (!got.guards_intact()) {
    rep.fail("%s: int8 output mode wrote outside its rows (m=%lld n=%lld k=%lld)", name, (long long)c.m,
             (long long)c.n, (long long)c.k);
    return;
  }
  for (int64_t r = 0; r < c.m; ++r)
    for (int64_t j = 0; j < a.ldq; ++j) {
      const int8_t g = got.data()[r * a.ldq + j], w = want.data()[r * a.ldq + j];
      const bool inside = j >= c.n0 && j < c.pad;
      if (!inside ? uint8_t(g) != check::kGuardByte : g != w || (j >= c.n && g != 0)) {
        rep.fail("%s: int8 output q[%lld][%lld] = %d, reference %d (columns [%lld, %lld), pad %lld; m=%lld n=%lld k=%lld)",
                 name, (long long)r, (long long)j, int(g), int(w), (long long)c.n0, (long long)c.n, (long long)c.pad,
                 (long long)c.m, (long long)c.n, (long long)c.k);
        return;
      }
    }
}

void check_q8_out(const char* name, lb_isa isa, lb_mm_t* fn, lb_mm_t* ref_fn, int q8_max, check::Report& rep) {
  if (!lb_mm_q8_out_isa(isa)) return;  // this variant writes floats only: the callers do not ask it for int8 rows
  check::Rng rng(uint64_t(q8_max) * 31 + 5);
  // small K (one chunk, K not a multiple of 4), padded channels, tails, sub-ranges, several K chunks of the int16 GEMM
  static const OutCase kCases[] = {
      {7, 16, 32, 0, 32, true, false, -3},  {13, 96, 16, 0, 96, true, true, 0},  {6, 24, 24, 0, 32, false, false, 5},
      {5, 37, 100, 0, 64, true, true, -128}, {11, 20, 13, 8, 32, true, false, 127}, {2, 144, 24, 16, 160, false, true, 9},
      {1, 5, 40, 0, 5, true, false, 0},     {9, 40, 600, 0, 64, true, true, -7},  {4, 56, 1100, 8, 56, false, false, 3},
  };
  for (const OutCase& c : kCases) run_out_case(name, fn, ref_fn, q8_max, c, rng, rep);
}

}  // namespace

void lb_check_gemv_q8(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemv_q8.name, t.gemv_q8.fn, ref.gemv_q8.fn, ref.quant_q8.fn, LB_WFMT_Q8, false, false, rep);
}

void lb_check_gemm_q8(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemm_q8.name, t.gemm_q8.fn, ref.gemm_q8.fn, ref.quant_q8.fn, LB_WFMT_Q8, true, false, rep);
  check_q8_out(t.gemm_q8.name, t.gemm_q8.isa, t.gemm_q8.fn, ref.gemm_q8.fn, 127, rep);
}

void lb_check_gemm_q7(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemm_q7.name, t.gemm_q7.fn, ref.gemm_q7.fn, ref.quant_q8.fn, LB_WFMT_Q8, true, false, rep,
                         LB_Q8_W7_MAX);
  check_q8_out(t.gemm_q7.name, t.gemm_q7.isa, t.gemm_q7.fn, ref.gemm_q7.fn, LB_Q8_W7_MAX, rep);
}

}  // namespace lb
