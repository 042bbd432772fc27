// qlinear on the active ISA path (the suite runs once per path, under qemu and the sanitizers):
// every format and activation mode against the scalar table within tolerance, outputs bitwise
// identical for 1, 2 and 3 threads, and errors that name the problem.
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "check_util.h"
#include "dispatch.h"
#include "pack.h"
#include "qlinear.h"
#include "test.h"
#include "test_weights.h"

namespace {

// The weights of these tests: lb::test::make_test_weight (test_weights.h), scales in [0.01, 0.03),
// int4_asym minimums -0.1.
using Packed = lb::test::TestWeight;
bool make(Packed& p, lb_wfmt fmt, int64_t n, int64_t k, int32_t group, uint64_t seed) {
  return lb::test::make_test_weight(p, fmt, n, k, group, seed, 0.01f, 0.03f, -0.1f, -0.1f);
}

struct Case {
  lb_wfmt fmt;
  int32_t group;
  lb::lb_act_mode act;
};

const Case kCases[] = {
    {LB_WFMT_Q8, 0, lb::LB_ACT_DYNAMIC},  {LB_WFMT_Q8, 0, lb::LB_ACT_STATIC},
    {LB_WFMT_Q4, 32, lb::LB_ACT_DYNAMIC}, {LB_WFMT_Q4, 128, lb::LB_ACT_DYNAMIC_ROW},
    {LB_WFMT_Q4A, 64, lb::LB_ACT_DYNAMIC}, {LB_WFMT_C4, 32, lb::LB_ACT_DYNAMIC},
    {LB_WFMT_T2, 64, lb::LB_ACT_DYNAMIC}, {LB_WFMT_Q4, 32, lb::LB_ACT_FLOAT},
    {LB_WFMT_Q4A, 128, lb::LB_ACT_FLOAT},
};

}  // namespace

LB_TEST(qlinear_all_formats_match_scalar_and_any_thread_count) {
  const lb::KernelTable* scalar = lb::kernels_for(LB_ISA_SCALAR);
  LB_EXPECT(scalar != nullptr);
  if (lb::dispatch_status() != LB_OK || !scalar) return;
  lb::ThreadPool pool2(2), pool3(3);
  for (const Case& c : kCases)
    for (int64_t m : {1, 5, 37, 100}) {  // 100: the row split on 2 and 3 threads (qlinear.cpp)
      const int64_t n = 45, k = c.fmt == LB_WFMT_Q8 ? 200 : 256;
      Packed p;
      LB_EXPECT_MSG(make(p, c.fmt, n, k, c.group, uint64_t(m) * 31 + uint64_t(c.fmt)), lb_last_error());
      if (!p.w.data) continue;
      lb::check::Rng rng(static_cast<uint64_t>(m) + 1);
      std::vector<float> x(static_cast<size_t>(m * k)), bias(static_cast<size_t>(n));
      for (auto& v : x) v = rng.f32(-1.f, 1.f);
      for (auto& v : bias) v = rng.f32(-1.f, 1.f);
      lb::QLinearOpts o;
      o.act = c.act;
      o.act_scale = 0.01f;
      o.act_zero = 3;
      std::vector<uint8_t> scratch(lb::qlinear_scratch_bytes(p.w, m, o));
      std::vector<float> y1(size_t(m * n)), y2(y1.size()), y3(y1.size()), yr(y1.size());
      lb::QLinearInfo info;
      LB_EXPECT(lb::qlinear(p.w, x.data(), m, bias.data(), y1.data(), o, nullptr, scratch.data(), scratch.size(), &info) == LB_OK);
      LB_EXPECT(lb::qlinear(p.w, x.data(), m, bias.data(), y2.data(), o, &pool2, scratch.data(), scratch.size()) == LB_OK);
      LB_EXPECT(lb::qlinear(p.w, x.data(), m, bias.data(), y3.data(), o, &pool3, scratch.data(), scratch.size()) == LB_OK);
      LB_EXPECT(lb::qlinear_with(*scalar, p.w, x.data(), m, bias.data(), yr.data(), o, nullptr, scratch.data(),
                                 scratch.size()) == LB_OK);
      LB_EXPECT_MSG(std::memcmp(y1.data(), y2.data(), y1.size() * 4) == 0, std::string("2 threads differ: ") + info.kernel);
      LB_EXPECT_MSG(std::memcmp(y1.data(), y3.data(), y1.size() * 4) == 0, std::string("3 threads differ: ") + info.kernel);
      LB_EXPECT_MSG(std::strstr(info.kernel, m == 1 ? "gemv" : "gemm") != nullptr, info.kernel);
      float worst = 0.f;
      for (size_t i = 0; i < y1.size(); ++i) worst = std::fmax(worst, std::fabs(y1[i] - yr[i]));
      LB_EXPECT_MSG(worst <= 1e-3f, std::string("vs scalar: ") + info.kernel + " max err " + std::to_string(worst));
    }
}

LB_TEST(qlinear_post_runs_once_per_row_on_any_split) {
  // QLinearOpts::post: every output row exactly once, after the row is final, for the GEMV, the
  // column split (large weight: not here) and the row split (m >= 48 on 2 threads), any thread count.
  lb::ThreadPool pool2(2), pool3(3);
  for (int64_t m : {1, 7, 60, 131, 1100}) {  // 1100: 4 row tasks on 2 threads
    const int64_t n = 40, k = 96;
    Packed p;
    LB_EXPECT_MSG(make(p, LB_WFMT_Q8, n, k, k, uint64_t(m)), lb_last_error());
    if (!p.w.data) continue;
    lb::check::Rng rng(static_cast<uint64_t>(m) + 7);
    std::vector<float> x(static_cast<size_t>(m * k));
    for (auto& v : x) v = rng.f32(-1.f, 1.f);
    lb::QLinearOpts o;
    o.act = lb::LB_ACT_DYNAMIC_ROW;
    std::vector<uint8_t> scratch(lb::qlinear_scratch_bytes(p.w, m, o));
    std::vector<float> plain(size_t(m * n));
    LB_EXPECT(lb::qlinear(p.w, x.data(), m, nullptr, plain.data(), o, nullptr, scratch.data(), scratch.size()) == LB_OK);
    std::vector<std::atomic<int>> seen(static_cast<size_t>(m));
    o.post_ctx = &seen;
    o.post = [](void* ctx, float* y, int64_t ldy, int64_t nn, int64_t r0, int64_t r1) {
      auto& s = *static_cast<std::vector<std::atomic<int>>*>(ctx);
      for (int64_t r = r0; r < r1; ++r) {
        s[size_t(r)].fetch_add(1);
        for (int64_t j = 0; j < nn; ++j) y[r * ldy + j] = 2.f * y[r * ldy + j] + 1.f;
      }
    };
    for (lb::ThreadPool* pool : {static_cast<lb::ThreadPool*>(nullptr), &pool2, &pool3}) {
      for (auto& v : seen) v.store(0);
      std::vector<float> y(size_t(m * n));
      LB_EXPECT(lb::qlinear(p.w, x.data(), m, nullptr, y.data(), o, pool, scratch.data(), scratch.size()) == LB_OK);
      for (int64_t r = 0; r < m; ++r) LB_EXPECT_MSG(seen[size_t(r)].load() == 1, "row " + std::to_string(r));
      bool same = true;
      for (size_t i = 0; i < y.size(); ++i) same = same && y[i] == 2.f * plain[i] + 1.f;
      LB_EXPECT_MSG(same, "m " + std::to_string(m) + " threads " + std::to_string(pool ? pool->size() : 1));
    }
  }
}

LB_TEST(qlinear_rejects_bad_input) {
  Packed p;
  LB_EXPECT(make(p, LB_WFMT_Q4, 16, 64, 32, 1));
  lb::PackedWeight w;
  LB_EXPECT(lb::packed_weight_init(LB_WFMT_Q4, 16, 64, 32, p.bytes.data(), p.bytes.size() - 1, &w) == LB_ERR_FORMAT);
  LB_EXPECT(lb::packed_weight_init(LB_WFMT_Q4, 16, 64, 48, p.bytes.data(), p.bytes.size(), &w) == LB_ERR_INVALID_ARG);
  std::vector<float> x(64), y(16);
  lb::QLinearOpts o;
  std::vector<uint8_t> scratch(lb::qlinear_scratch_bytes(p.w, 1, o));
  LB_EXPECT(lb::qlinear(p.w, x.data(), 1, nullptr, y.data(), o, nullptr, scratch.data(), 8) == LB_ERR_INVALID_ARG);
  LB_EXPECT(std::strstr(lb_last_error(), "scratch") != nullptr);
  o.act = lb::LB_ACT_STATIC;
  o.act_scale = 1.f;
  LB_EXPECT(lb::qlinear(p.w, x.data(), 1, nullptr, y.data(), o, nullptr, scratch.data(), scratch.size()) == LB_ERR_UNSUPPORTED);
}

LB_TEST(threadpool_runs_every_task_once) {
  for (int threads : {1, 2, 4}) {
    lb::ThreadPool pool(threads);
    LB_EXPECT(pool.size() == threads);
    for (int rep = 0; rep < 50; ++rep) {
      std::vector<int> hits(97, 0);
      pool.parallel_for(97, [&](int64_t t, int th) {
        LB_EXPECT(th >= 0 && th < threads);
        ++hits[size_t(t)];
      });
      for (int h : hits) LB_EXPECT(h == 1);
    }
  }
}
