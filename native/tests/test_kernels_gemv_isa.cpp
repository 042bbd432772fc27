// The x86 GEMVs (M = 1) agree bit for bit across ISA paths: the AVX-512 VNNI GEMVs (ymm, one panel
// per pass, mm_avx512_gemv.h) compute the reference's integer dots and then the AVX2 GEMVs' float
// operations in the same order, so every output equals the AVX2 one exactly (not only within the
// self-check's tolerance), for every format, group size, column tail and sub-range, with and
// without bias. Skipped where the CPU lacks AVX-512 VNNI (the SIMDe test covers the kernels there).
#include <cstring>
#include <vector>

#include "check_util.h"
#include "cpu.h"
#include "dispatch.h"
#include "pack.h"
#include "qlinear.h"
#include "test.h"
#include "test_weights.h"

namespace {

// The weights of these tests: lb::test::make_test_weight (test_weights.h), scales in [0.001, 0.05),
// int4_asym minimums in [-0.4, 0).
bool make_weight(lb::test::TestWeight& p, lb_wfmt fmt, int64_t n, int64_t k, int32_t group, uint64_t seed) {
  return lb::test::make_test_weight(p, fmt, n, k, group, seed, 0.001f, 0.05f, -0.4f, 0.f);
}

const lb::KernelRef<lb_mm_t>& gemv_of(const lb::KernelTable& t, lb_wfmt fmt) {
  switch (fmt) {
    case LB_WFMT_Q8: return t.gemv_q8;
    case LB_WFMT_C4: return t.gemv_c4;
    case LB_WFMT_T2: return t.gemv_t2;
    default: return t.gemv_q4;
  }
}

}  // namespace

LB_TEST(kernels_gemv_avx512_bitwise_equals_avx2) {
  const lb::KernelTable* a2 = lb::kernels_for(LB_ISA_AVX2);
  const lb::KernelTable* a5 = lb::kernels_for(LB_ISA_AVX512VNNI);
  if (!a2 || !a5 || !lb::isa_supported(LB_ISA_AVX512VNNI)) {
    std::printf("  (skipped: no AVX-512 VNNI here)\n");
    return;
  }
  struct Fmt {
    lb_wfmt fmt;
    int32_t group;
  };
  const Fmt fmts[] = {{LB_WFMT_Q4, 32},  {LB_WFMT_Q4, 64},  {LB_WFMT_Q4, 128}, {LB_WFMT_Q4A, 32}, {LB_WFMT_Q4A, 128},
                      {LB_WFMT_T2, 32},  {LB_WFMT_T2, 64},  {LB_WFMT_T2, 128}, {LB_WFMT_C4, 32},  {LB_WFMT_C4, 64},
                      {LB_WFMT_C4, 128}, {LB_WFMT_Q8, 0}};
  struct Shape {
    int64_t n, k, n0;  // the call covers columns [n0, n)
    bool static_act;
  };
  const Shape shapes[] = {{1, 128, 0, false},  {13, 256, 0, false}, {40, 384, 8, false},
                          {37, 512, 16, true}, {64, 4096, 0, false}, {27, 1152, 24, false},
                          {19, 8192, 8, false}};  // K >= 4096: the long-row activation prefetch (every format)
  lb::check::Rng rng(77);
  int checked = 0;
  for (const Fmt& f : fmts)
    for (const Shape& s : shapes) {
      const int32_t g = f.fmt == LB_WFMT_Q8 ? int32_t(s.k) : f.group;
      if (s.k % g) continue;
      if (s.static_act && f.fmt != LB_WFMT_Q8) continue;
      lb::test::TestWeight w;
      LB_EXPECT(make_weight(w, f.fmt, s.n, s.k, f.group, 1000 + uint64_t(checked)));
      std::vector<float> x(size_t(s.k)), bias(size_t(s.n));
      for (auto& v : x) v = rng.f32(-2.f, 2.f);
      for (auto& v : bias) v = rng.f32(-1.f, 1.f);
      const int64_t kp = w.w.kp, ablock = f.fmt == LB_WFMT_Q8 ? kp : g;
      std::vector<int8_t> xq(static_cast<size_t>(kp));
      std::vector<lb_q8_meta> xm(size_t(kp / ablock));
      lb_quant_args qa{};
      qa.x = x.data();
      qa.k = s.k;
      qa.kp = kp;
      qa.block = int32_t(ablock);
      qa.per_row = f.fmt == LB_WFMT_Q8;
      qa.is_static = s.static_act;
      qa.static_scale = 0.01f;
      qa.static_zero = -7;
      lb::kernels_for(LB_ISA_SCALAR)->quant_q8.fn(&qa, xq.data(), xm.data());
      for (bool with_bias : {false, true}) {
        lb_mm_args a = lb::mm_args(w.w);
        a.xq = xq.data();
        a.xm = xm.data();
        a.act_zero = s.static_act ? -7 : 0;
        a.bias = with_bias ? bias.data() : nullptr;
        a.ldy = s.n;
        std::vector<float> y2(size_t(s.n), -7.f), y5(size_t(s.n), -7.f);
        a.y = y2.data();
        gemv_of(*a2, f.fmt).fn(&a, 0, 1, s.n0, s.n);
        a.y = y5.data();
        gemv_of(*a5, f.fmt).fn(&a, 0, 1, s.n0, s.n);
        const bool same = std::memcmp(y2.data(), y5.data(), y2.size() * sizeof(float)) == 0;
        LB_EXPECT_MSG(same, std::string(gemv_of(*a5, f.fmt).name) + " vs " + gemv_of(*a2, f.fmt).name + ": fmt " +
                                std::to_string(int(f.fmt)) + " g " + std::to_string(g) + " n " + std::to_string(s.n) +
                                " k " + std::to_string(s.k) + " n0 " + std::to_string(s.n0));
        ++checked;
      }
    }
  LB_EXPECT(checked > 100);
}
