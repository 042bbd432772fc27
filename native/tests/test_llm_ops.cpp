// Native tests of the LLM runtime's pieces that need no package: vector ops (SIMD vs scalar),
// fp16 conversion, fused attention over fp32/fp16/int8 caches against a naive computation, H2O
// eviction, and the sampler.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "llm/llm_kv.h"
#include "llm/llm_ops.h"
#include "llm/llm_sampler.h"
#include "test.h"

using namespace lb::llm;

namespace {
constexpr float kVecOpsRelErr = 1e-5f;     // SIMD vs scalar: summation order only
constexpr float kAttnF16RelErr = 2e-3f;    // fp16 cache vs fp32 math
constexpr float kAttnI8RelErr = 3e-2f;     // int8 (group 32) cache vs fp32 math

std::vector<float> randv(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

float max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0, r = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::fmax(m, std::fabs(b[i]));
    r = std::fmax(r, std::fabs(a[i] - b[i]));
  }
  return m > 0 ? r / m : r;
}
}  // namespace

LB_TEST(llm_f16_roundtrip_and_rounding) {
  LB_EXPECT(f32_to_f16_scalar(1.0f) == 0x3c00);
  LB_EXPECT(f32_to_f16_scalar(-2.0f) == 0xc000);
  LB_EXPECT(f32_to_f16_scalar(65504.f) == 0x7bff);
  LB_EXPECT(f32_to_f16_scalar(1e6f) == 0x7c00);
  LB_EXPECT(f32_to_f16_scalar(5.9604645e-8f) == 0x0001);  // smallest subnormal
  LB_EXPECT(f32_to_f16_scalar(1.0f + 1.0f / 2048) == 0x3c00);  // tie -> even
  for (uint32_t h = 0; h < 0x7c00; h += 7) LB_EXPECT(f32_to_f16_scalar(f16_to_f32_scalar(uint16_t(h))) == h);
  const VecOps& ops = vec_ops();
  auto x = randv(77, 1, 3.f);
  std::vector<uint16_t> a(77), b(77);
  ops.f32_to_f16(x.data(), a.data(), 77);
  vec_ops_scalar().f32_to_f16(x.data(), b.data(), 77);
  LB_EXPECT_MSG(a == b, std::string("f32->f16 differs on ") + ops.isa);
}

LB_TEST(llm_vec_ops_match_scalar) {
  const VecOps& v = vec_ops();
  const VecOps& s = vec_ops_scalar();
  for (int n : {1, 7, 8, 16, 31, 64, 100}) {
    auto a = randv(n, 10 + n), b = randv(n, 20 + n);
    std::vector<uint16_t> h(n);
    std::vector<int8_t> q(n);
    for (int i = 0; i < n; ++i) {
      h[i] = f32_to_f16_scalar(b[i]);
      q[i] = int8_t(int(b[i] * 40) % 127);
    }
    auto close = [&](float x, float y) { return std::fabs(x - y) <= kVecOpsRelErr * (1 + std::fabs(y)) * n; };
    LB_EXPECT_MSG(close(v.dot_f32(a.data(), b.data(), n), s.dot_f32(a.data(), b.data(), n)), "dot_f32 n=" + std::to_string(n));
    LB_EXPECT_MSG(close(v.dot_f16(a.data(), h.data(), n), s.dot_f16(a.data(), h.data(), n)), "dot_f16 n=" + std::to_string(n));
    LB_EXPECT_MSG(close(v.dot_i8(a.data(), q.data(), n), s.dot_i8(a.data(), q.data(), n)), "dot_i8 n=" + std::to_string(n));
    std::vector<float> y1(n, 0.5f), y2(n, 0.5f);
    v.axpy_f16(0.3f, h.data(), y1.data(), n);
    s.axpy_f16(0.3f, h.data(), y2.data(), n);
    LB_EXPECT_MSG(max_rel(y1, y2) <= kVecOpsRelErr, "axpy_f16 n=" + std::to_string(n));
    v.axpy_i8(0.3f, q.data(), y1.data(), n);
    s.axpy_i8(0.3f, q.data(), y2.data(), n);
    LB_EXPECT_MSG(max_rel(y1, y2) <= kVecOpsRelErr, "axpy_i8 n=" + std::to_string(n));
  }
}

LB_TEST(llm_add_rms_norm_same_bits_as_scalar) {
  // The fused residual add + RMSNorm: the same bits on every ISA path (the sum of squares is in
  // double in a fixed order), tails included; and close to a plain double computation.
  const VecOps& v = vec_ops();
  const VecOps& s = vec_ops_scalar();
  for (int n : {1, 7, 8, 13, 64, 2048, 2051}) {
    for (bool with_res : {false, true}) {
      auto x = randv(n, 60 + n, 2.f), res = randv(n, 70 + n), w = randv(n, 80 + n);
      auto x1 = x, x2 = x;
      std::vector<float> y1(n), y2(n), y3(n);
      v.add_rms_norm(x1.data(), with_res ? res.data() : nullptr, w.data(), 1e-5f, n, y1.data());
      s.add_rms_norm(x2.data(), with_res ? res.data() : nullptr, w.data(), 1e-5f, n, y2.data());
      const std::string what = std::string(v.isa) + " n=" + std::to_string(n) + (with_res ? " +res" : "");
      LB_EXPECT_MSG(x1 == x2 && y1 == y2, "add_rms_norm differs from scalar: " + what);
      std::vector<float> want(n), xs(n);
      double ss = 0;
      for (int i = 0; i < n; ++i) {
        xs[i] = with_res ? x[i] + res[i] : x[i];
        ss += double(xs[i]) * xs[i];
      }
      const double r = 1.0 / std::sqrt(ss / n + 1e-5);
      for (int i = 0; i < n; ++i) want[i] = float(xs[i] * r * w[i]);
      LB_EXPECT_MSG(x1 == xs, "residual add wrong: " + what);
      LB_EXPECT_MSG(max_rel(y1, want) <= kVecOpsRelErr, "add_rms_norm vs double reference: " + what);
      rms_norm(x.data(), w.data(), 1e-5f, n, y3.data());
      if (!with_res) LB_EXPECT_MSG(y3 == y2, "rms_norm != add_rms_norm without residual: " + what);
    }
  }
}

LB_TEST(llm_rope_table_matches_rope_apply) {
  const VecOps& v = vec_ops();
  const VecOps& s = vec_ops_scalar();
  for (int d : {64, 48, 20, 128}) {
    const int heads = 3, half = d / 2;
    std::vector<float> inv(half);
    for (int i = 0; i < half; ++i) inv[i] = std::pow(10000.f, -2.f * i / d);
    for (int pos : {0, 1, 77, 2047}) {
      auto x = randv(size_t(heads) * d, 90 + d + pos);
      auto a = x, b = x, c = x;
      std::vector<float> cs(half), sn(half);
      rope_table(pos, d, inv.data(), 0.9f, cs.data(), sn.data());
      v.rope(a.data(), heads, d, cs.data(), sn.data());
      s.rope(b.data(), heads, d, cs.data(), sn.data());
      rope_apply(c.data(), heads, d, pos, inv.data(), 0.9f);
      const std::string what = std::string(v.isa) + " d=" + std::to_string(d) + " pos=" + std::to_string(pos);
      LB_EXPECT_MSG(b == c, "scalar rope with the table != rope_apply: " + what);
      LB_EXPECT_MSG(max_rel(a, b) <= kVecOpsRelErr, "rope vs scalar: " + what);
    }
  }
}

// Naive attention of one query head over positions [lo, hi] of k/v rows [pos][d].
static std::vector<float> naive_attn(const float* q, const std::vector<float>& k, const std::vector<float>& v, int d,
                                     int kv_heads, int h, int lo, int hi) {
  std::vector<float> s(hi - lo + 1), out(d, 0.f);
  float m = -1e30f, sum = 0;
  for (int j = lo; j <= hi; ++j) {
    float acc = 0;
    for (int i = 0; i < d; ++i) acc += q[i] * k[(size_t(j) * kv_heads + h) * d + i];
    s[j - lo] = acc / std::sqrt(float(d));
    m = std::fmax(m, s[j - lo]);
  }
  for (auto& x : s) sum += (x = std::exp(x - m));
  for (int j = lo; j <= hi; ++j)
    for (int i = 0; i < d; ++i) out[i] += s[j - lo] / sum * v[(size_t(j) * kv_heads + h) * d + i];
  return out;
}

LB_TEST(llm_attention_matches_naive_for_each_cache_type) {
  // g = 3 and 11 exercise the partial head blocks of the SIMD path, 8 the full one; d = 48 makes
  // the int8 cache's group the whole head (48 channels) instead of 32.
  const int layers = 2, kvh = 2, n = 40;
  for (int d : {64, 48})
  for (int g : {3, 8, 11}) {
    auto k = randv(size_t(n) * kvh * d, 3), v = randv(size_t(n) * kvh * d, 4), q = randv(size_t(g) * d, 5 + g);
    for (lb_llm_kv_type t : {LB_LLM_KV_F32, LB_LLM_KV_F16, LB_LLM_KV_I8}) {
      for (int window : {0, 9}) {
        KvCache kv;
        kv.init(layers, kvh, d, 64, t, 0, 0);
        for (int p = 0; p < n; ++p) kv.append(1, p, &k[size_t(p) * kvh * d], &v[size_t(p) * kvh * d], vec_ops());
        std::vector<float> scores(size_t(g) * 64), out(size_t(g) * d);
        const int pos = 31;  // causal: rows after 31 are in the cache but must be ignored
        kv.attend(1, 1, q.data(), g, pos, window, scores.data(), out.data(), vec_ops());
        const float tol = t == LB_LLM_KV_F32 ? kVecOpsRelErr * 10 : t == LB_LLM_KV_F16 ? kAttnF16RelErr : kAttnI8RelErr;
        for (int gi = 0; gi < g; ++gi) {
          auto want = naive_attn(&q[size_t(gi) * d], k, v, d, kvh, 1, window ? pos - window + 1 : 0, pos);
          std::vector<float> got(out.begin() + gi * d, out.begin() + (gi + 1) * d);
          const float e = max_rel(got, want);
          LB_EXPECT_MSG(e <= tol, "d " + std::to_string(d) + " g " + std::to_string(g) + " kv type " + std::to_string(t) + " window " +
                                      std::to_string(window) + " head " + std::to_string(gi) + " rel err " +
                                      std::to_string(e));
        }
      }
    }
  }
}

LB_TEST(llm_kv_in_huge_page_mapping_attends_like_heap_cache) {
  // A cache of >= 1 MB lives in a 2 MB-aligned mapping (Linux); the scores run in prefetching
  // blocks of rows. Same rows in a small (heap) and a large (mapped) cache: the same bits, for
  // row counts around the block size.
  const int kvh = 2, d = 64, g = 8;
  for (lb_llm_kv_type t : {LB_LLM_KV_F32, LB_LLM_KV_F16, LB_LLM_KV_I8, LB_LLM_KV_BFP_NOREORDER}) {
    KvCache small, big;
    small.init(1, kvh, d, 64, t, 0, 0);
    big.init(3, kvh, d, 4096, t, 0, 0);
#if defined(__linux__)
    LB_EXPECT_MSG(big.huge_pages(), "a 4096-slot cache should be a huge-page mapping");
#endif
    LB_EXPECT(!small.huge_pages());
    for (int n : {1, 3, 4, 5, 9, 37}) {
      KvCache a, b;
      a.init(1, kvh, d, 64, t, 0, 0);
      b.init(3, kvh, d, 4096, t, 0, 0);
      auto k = randv(size_t(n) * kvh * d, 100 + n), v = randv(size_t(n) * kvh * d, 200 + n), q = randv(size_t(g) * d, 300 + n);
      for (int p = 0; p < n; ++p) {
        a.append(0, p, &k[size_t(p) * kvh * d], &v[size_t(p) * kvh * d], vec_ops());
        b.append(2, p, &k[size_t(p) * kvh * d], &v[size_t(p) * kvh * d], vec_ops());
      }
      std::vector<float> sa(size_t(g) * 4096), sb(size_t(g) * 4096), oa(size_t(g) * d), ob(size_t(g) * d);
      a.attend(0, 1, q.data(), g, n - 1, 0, sa.data(), oa.data(), vec_ops());
      b.attend(2, 1, q.data(), g, n - 1, 0, sb.data(), ob.data(), vec_ops());
      LB_EXPECT_MSG(oa == ob, "kv type " + std::to_string(t) + " rows " + std::to_string(n));
    }
  }
}

LB_TEST(llm_swiglu_and_softmax_match_scalar) {
  const VecOps& v = vec_ops();
  const VecOps& s = vec_ops_scalar();
  for (int n : {1, 8, 13, 64, 301}) {
    auto gate = randv(n, 30 + n, 4.f), up = randv(n, 40 + n);
    gate[0] = -95.f;  // exp overflow side: silu -> -0
    std::vector<float> a(n), b(n);
    v.swiglu(gate.data(), up.data(), n, a.data());
    s.swiglu(gate.data(), up.data(), n, b.data());
    LB_EXPECT_MSG(max_rel(a, b) <= kVecOpsRelErr, "swiglu n=" + std::to_string(n));
  }
  for (int g : {1, 8, 16}) {
    const int cnt = 37;
    auto x = randv(size_t(cnt) * g, 50 + g, 5.f), y = x;
    std::vector<float> sa(g), sb(g);
    v.softmax_cols(x.data(), cnt, g, sa.data());
    s.softmax_cols(y.data(), cnt, g, sb.data());
    LB_EXPECT_MSG(max_rel(x, y) <= kVecOpsRelErr && max_rel(sa, sb) <= kVecOpsRelErr,
                  "softmax_cols g=" + std::to_string(g));
  }
}

LB_TEST(llm_h2o_evicts_light_slots_and_keeps_recent) {
  const int kvh = 1, d = 32, budget = 8, recent = 3;
  KvCache kv;
  kv.init(1, kvh, d, budget, LB_LLM_KV_F32, budget, recent);
  std::vector<float> q(d, 0.f), scores(budget), out(d);
  q[0] = 10.f;
  for (int p = 0; p < 20; ++p) {
    std::vector<float> row(d, 0.f);
    row[0] = (p == 2) ? 3.f : 0.f;  // position 2 is the heavy hitter
    kv.make_room(1);
    kv.append(0, p, row.data(), row.data(), vec_ops());
    kv.attend(0, 0, q.data(), 1, p, 0, scores.data(), out.data(), vec_ops());
    LB_EXPECT(kv.slots(0) <= budget);
  }
  LB_EXPECT(kv.slots(0) == budget);
  // position 2 got almost all attention: it survived, and its value dominates the output
  LB_EXPECT_MSG(out[0] > 2.5f, "heavy hitter evicted: out[0] = " + std::to_string(out[0]));
}

LB_TEST(llm_sampler_rules) {
  std::vector<float> logits = {1.f, 3.f, 2.f, 3.f, -1.f};
  std::vector<float> work;
  std::vector<uint64_t> idx;
  Rng rng;
  lb_llm_sampling s;
  lb_llm_sampling_default(&s);
  LB_EXPECT(sample_token(logits.data(), 5, s, nullptr, 0, rng, work, idx) == 1);  // first maximum
  const int32_t hist[] = {1, 1};
  s.repetition_penalty = 2.f;  // 3 -> 1.5: token 3 wins (token 1 penalized once, not twice)
  LB_EXPECT(sample_token(logits.data(), 5, s, hist, 2, rng, work, idx) == 3);
  s.repetition_penalty = 1.f;
  s.temperature = 1.f;
  s.top_k = 2;
  int counts[5] = {0};
  rng.seed(42);
  for (int i = 0; i < 2000; ++i) counts[sample_token(logits.data(), 5, s, nullptr, 0, rng, work, idx)]++;
  LB_EXPECT(counts[0] == 0 && counts[2] == 0 && counts[4] == 0);
  LB_EXPECT(counts[1] > 800 && counts[3] > 800);
  s.top_k = 0;
  s.top_p = 0.5f;  // tokens 1 and 3 each hold ~0.40: the nucleus is both of them
  for (int i = 0; i < 500; ++i) {
    int t = sample_token(logits.data(), 5, s, nullptr, 0, rng, work, idx);
    LB_EXPECT(t == 1 || t == 3);
  }
  Rng a, b;
  a.seed(7);
  b.seed(7);
  for (int i = 0; i < 10; ++i) LB_EXPECT(a.next() == b.next());
  s.top_p = 1.5f;
  LB_EXPECT(check_sampling(s) == LB_ERR_INVALID_ARG);
  s.top_p = 1.f;
  s.temperature = NAN;
  LB_EXPECT(check_sampling(s) == LB_ERR_INVALID_ARG);
}

// The top-p sampler sorts only a growing prefix of the vocabulary; it must pick exactly what a
// full sort picks (this reference is the full-sort version).
static int32_t top_p_full_sort(const std::vector<float>& logits, float temp, float top_p, Rng& rng) {
  const int vocab = int(logits.size());
  std::vector<int32_t> idx(vocab);
  for (int i = 0; i < vocab; ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  const float m = logits[idx[0]], inv_t = 1.f / temp;
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += std::exp((logits[i] - m) * inv_t);
  std::vector<float> prob(vocab);
  for (int i = 0; i < vocab; ++i) prob[i] = float(std::exp((logits[idx[i]] - m) * inv_t) / sum);
  double c = 0;
  int n = vocab;
  for (int i = 0; i < vocab; ++i) {
    c += prob[i];
    if (c >= top_p) {
      n = i + 1;
      break;
    }
  }
  double s2 = 0;
  for (int i = 0; i < n; ++i) s2 += prob[i];
  const float u = rng.uniform();
  c = 0;
  for (int i = 0; i < n; ++i) {
    c += float(prob[i] / s2);
    if (u < c) return idx[i];
  }
  return idx[n - 1];
}

LB_TEST(llm_top_p_prefix_sort_matches_full_sort) {
  const int vocab = 3000;
  auto logits = randv(vocab, 77, 2.f);
  std::vector<float> work;
  std::vector<uint64_t> idx;
  for (float temp : {0.5f, 1.0f, 3.0f})
    for (float top_p : {0.3f, 0.9f, 0.999f}) {  // 3.0 / 0.999 needs most of the vocabulary
      lb_llm_sampling s;
      lb_llm_sampling_default(&s);
      s.temperature = temp;
      s.top_p = top_p;
      Rng a, b;
      a.seed(11);
      b.seed(11);
      int same = 0;
      for (int i = 0; i < 200; ++i) same += sample_token(logits.data(), vocab, s, nullptr, 0, a, work, idx) ==
                                            top_p_full_sort(logits, temp, top_p, b);
      LB_EXPECT_MSG(same == 200, "temperature " + std::to_string(temp) + " top_p " + std::to_string(top_p) + ": " +
                                     std::to_string(same) + "/200 equal");
    }
}
