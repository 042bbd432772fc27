// KV cache storage, int8 group quantization, H2O eviction and the fused attention loop.
#include "llm/llm_kv.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <numeric>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace lb {
namespace llm {

const char* kv_store_name(lb_llm_kv_type t) {
  return t == LB_LLM_KV_F32 ? "kv_store_f32" : t == LB_LLM_KV_F16 ? "kv_store_f16" : t == LB_LLM_KV_I8 ? "kv_store_i8"
                                                                                               : "kv_store_bfp";
}
const char* kv_attend_name(lb_llm_kv_type t) {
  return t == LB_LLM_KV_F32 ? "attend_f32" : t == LB_LLM_KV_F16 ? "attend_f16" : t == LB_LLM_KV_I8 ? "attend_i8"
                                                                                         : "attend_bfp";
}

namespace {
constexpr int kBfpBlock = 16;  // channels sharing one exponent
// Scratch of the bfp attention (attend runs on several threads at once).
thread_local std::vector<float> t_q, t_out, t_scales;
// 2^e for the exponents e in [-127, 127] (index e + 127): a table instead of ldexp in the loops.
struct Pow2Table {
  float v[255];
  Pow2Table() {
    for (int e = -127; e <= 127; ++e) v[e + 127] = std::ldexp(1.f, e);
  }
};
const Pow2Table kPow2;
inline float pow2(int e) { return kPow2.v[e + 127]; }
}  // namespace

void KvBytes::release() {
#if defined(__linux__)
  if (map_) munmap(map_, map_len_);
#endif
  map_ = nullptr;
  map_len_ = 0;
  std::vector<uint8_t>().swap(vec_);
  p_ = nullptr;
  n_ = 0;
}

void KvBytes::assign(size_t n) {
  release();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr size_t kHuge = size_t(2) << 20;
  if (n >= kHuge / 2) {  // at least half a huge page: smaller caches stay on the heap
    const size_t len = (n + kHuge - 1) / kHuge * kHuge + kHuge;  // room to align the start
    void* b = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b != MAP_FAILED) {
      uint8_t* a = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(b) + kHuge - 1) & ~uintptr_t(kHuge - 1));
      madvise(a, len - size_t(a - static_cast<uint8_t*>(b)), MADV_HUGEPAGE);  // advisory: failure is fine
      std::memset(a, 0, n);  // fault it in now (at open, as the heap block was), not during the first tokens
      map_ = b;
      map_len_ = len;
      p_ = a;
      n_ = n;
      return;
    }
  }
#endif
  vec_.assign(n, 0);
  p_ = vec_.data();
  n_ = n;
}

void KvCache::init(int layers, int kv_heads, int head_dim, int cap, lb_llm_kv_type type, int h2o_budget,
                   int h2o_recent) {
  layers_ = layers;
  kv_heads_ = kv_heads;
  d_ = head_dim;
  cap_ = cap;
  type_ = type;
  h2o_budget_ = h2o_budget;
  h2o_recent_ = h2o_recent;
  elt_ = type == LB_LLM_KV_F32 ? 4 : type == LB_LLM_KV_F16 ? 2 : 1;
  bfp_ = type == LB_LLM_KV_BFP || type == LB_LLM_KV_BFP_NOREORDER;
  reorder_ = type == LB_LLM_KV_BFP;
  group_ = bfp_ ? (head_dim % kBfpBlock == 0 ? kBfpBlock : head_dim) : head_dim % 32 == 0 ? 32 : head_dim;
  ngroups_ = head_dim / group_;
  const size_t rows = size_t(layers) * kv_heads * cap;
  k_.assign(rows * head_dim * elt_);
  v_.assign(rows * head_dim * elt_);
  if (type == LB_LLM_KV_I8) {
    ks_.assign(rows * ngroups_, 0.f);
    vs_.assign(rows * ngroups_, 0.f);
  } else {
    ks_.clear();
    vs_.clear();
  }
  if (bfp_) {
    ke_.assign(rows * ngroups_, 0);
    ve_.assign(rows * ngroups_, 0);
    kperm_.resize(size_t(layers) * kv_heads * head_dim);
    for (size_t i = 0; i < kperm_.size(); ++i) kperm_[i] = int32_t(i % head_dim);
    vperm_ = kperm_;
    row_tmp_.assign(head_dim, 0.f);
  } else {
    ke_.clear();
    ve_.clear();
    kperm_.clear();
    vperm_.clear();
  }
  ordered_.assign(layers, 0);
  fixed_order_ = false;
  n_.assign(layers, 0);
  pos_.assign(size_t(layers) * cap, 0);
  if (h2o_budget > 0) acc_.assign(rows, 0.f);
}

void KvCache::reset() {
  std::fill(n_.begin(), n_.end(), 0);
  std::fill(acc_.begin(), acc_.end(), 0.f);
  if (!fixed_order_) std::fill(ordered_.begin(), ordered_.end(), 0);
}

void KvCache::set_fixed_order(const int32_t* order) {
  if (!reorder_) return;
  for (int l = 0; l < layers_; ++l)
    for (int h = 0; h < kv_heads_; ++h) {
      const int32_t* src = order + (size_t(l) * kv_heads_ + h) * 2 * d_;
      const size_t ph = (size_t(l) * kv_heads_ + h) * d_;
      std::copy(src, src + d_, &kperm_[ph]);
      std::copy(src + d_, src + 2 * d_, &vperm_[ph]);
    }
  std::fill(ordered_.begin(), ordered_.end(), 1);
  fixed_order_ = true;
}

void KvCache::set_order(int layer, const float* k, const float* v, int stride, int t) {
  std::vector<float> mk(d_), mv(d_);
  const int half = d_ / 2;
  for (int h = 0; h < kv_heads_; ++h) {
    std::fill(mk.begin(), mk.end(), 0.f);
    std::fill(mv.begin(), mv.end(), 0.f);
    for (int r = 0; r < t; ++r) {
      const float* kr = k + size_t(r) * stride + size_t(h) * d_;
      const float* vr = v + size_t(r) * stride + size_t(h) * d_;
      for (int i = 0; i < d_; ++i) {
        // RoPE rotates channel i with i +- d/2: their shared magnitude is what persists across positions.
        const float a = kr[i], b = d_ % 2 == 0 ? kr[i < half ? i + half : i - half] : 0.f;
        mk[i] = std::max(mk[i], std::sqrt(a * a + b * b));
        mv[i] = std::max(mv[i], std::fabs(vr[i]));
      }
    }
    int32_t* kp = &kperm_[(size_t(layer) * kv_heads_ + h) * d_];
    int32_t* vp = &vperm_[(size_t(layer) * kv_heads_ + h) * d_];
    std::iota(kp, kp + d_, 0);
    std::iota(vp, vp + d_, 0);
    std::stable_sort(kp, kp + d_, [&](int32_t a, int32_t b) { return mk[a] > mk[b]; });
    std::stable_sort(vp, vp + d_, [&](int32_t a, int32_t b) { return mv[a] > mv[b]; });
  }
  ordered_[layer] = 1;
}

int64_t KvCache::bytes() const {
  return int64_t(k_.size() + v_.size()) + int64_t(ks_.size() + vs_.size()) * 4 + int64_t(ke_.size() + ve_.size()) +
         int64_t(kperm_.size() + vperm_.size()) * 4 + int64_t(acc_.size()) * 4 +
         int64_t(pos_.size()) * 4;
}

void KvCache::store_row(uint8_t* base, float* scales, int8_t* exps, const int32_t* perm, size_t r, const float* x,
                        const VecOps& ops) {
  switch (type_) {
    case LB_LLM_KV_F32:
      std::memcpy(base + r * d_ * 4, x, size_t(d_) * 4);
      break;
    case LB_LLM_KV_F16:
      ops.f32_to_f16(x, reinterpret_cast<uint16_t*>(base) + r * d_, d_);
      break;
    case LB_LLM_KV_I8: {
      int8_t* q = reinterpret_cast<int8_t*>(base) + r * d_;
      for (int g = 0; g < ngroups_; ++g) {
        const float* xg = x + g * group_;
        float amax = 0;
        for (int i = 0; i < group_; ++i) amax = std::max(amax, std::fabs(xg[i]));
        const float s = amax / 127.f;
        const float inv = s > 0 ? 1.f / s : 0.f;
        for (int i = 0; i < group_; ++i) q[g * group_ + i] = int8_t(std::lrint(xg[i] * inv));
        scales[r * ngroups_ + g] = s;
      }
      break;
    }
    case LB_LLM_KV_BFP:
    case LB_LLM_KV_BFP_NOREORDER: {
      int8_t* q = reinterpret_cast<int8_t*>(base) + r * d_;
      float* xp = row_tmp_.data();
      for (int i = 0; i < d_; ++i) xp[i] = x[perm[i]];
      for (int g = 0; g < ngroups_; ++g) {
        const float* xg = xp + g * group_;
        float amax = 0;
        for (int i = 0; i < group_; ++i) amax = std::max(amax, std::fabs(xg[i]));
        // Smallest power of two 2^e with amax / 2^e <= 127 (frexp: amax/127 = m * 2^e, m in [0.5, 1)).
        int e = -127;
        if (amax > 0) std::frexp(amax / 127.f, &e);
        e = std::min(127, std::max(-127, e));
        const float inv = pow2(-e);
        for (int i = 0; i < group_; ++i) {
          const long m = std::lrint(xg[i] * inv);
          q[g * group_ + i] = int8_t(std::min(127L, std::max(-127L, m)));
        }
        exps[r * ngroups_ + g] = int8_t(e);
      }
      break;
    }
  }
}

void KvCache::append(int layer, int pos, const float* k, const float* v, const VecOps& ops) {
  const int slot = n_[layer]++;
  pos_[size_t(layer) * cap_ + slot] = pos;
  for (int h = 0; h < kv_heads_; ++h) {
    const size_t r = row(layer, h, slot);
    const size_t ph = (size_t(layer) * kv_heads_ + h) * d_;
    store_row(k_.data(), ks_.data(), ke_.data(), bfp_ ? &kperm_[ph] : nullptr, r, k + size_t(h) * d_, ops);
    store_row(v_.data(), vs_.data(), ve_.data(), bfp_ ? &vperm_[ph] : nullptr, r, v + size_t(h) * d_, ops);
    if (!acc_.empty()) acc_[r] = 0.f;
  }
}

void KvCache::evict_one(int layer) {
  const int n = n_[layer];
  const int32_t* pos = pos_.data() + size_t(layer) * cap_;
  int32_t newest = 0;
  for (int j = 0; j < n; ++j) newest = std::max(newest, pos[j]);
  int victim = -1;
  float best = std::numeric_limits<float>::infinity();
  int oldest = 0;
  for (int j = 0; j < n; ++j) {
    if (pos[j] < pos[oldest]) oldest = j;
    if (pos[j] > newest - h2o_recent_) continue;  // the recent window is never evicted
    float s = 0;
    for (int h = 0; h < kv_heads_; ++h) s += acc_[row(layer, h, j)];
    if (s < best) {
      best = s;
      victim = j;
    }
  }
  if (victim < 0) victim = oldest;
  const int last = n - 1;
  if (victim != last) {  // move the last slot into the hole
    for (int h = 0; h < kv_heads_; ++h) {
      const size_t dst = row(layer, h, victim), src = row(layer, h, last);
      std::memcpy(&k_[dst * d_ * elt_], &k_[src * d_ * elt_], d_ * elt_);
      std::memcpy(&v_[dst * d_ * elt_], &v_[src * d_ * elt_], d_ * elt_);
      if (!ks_.empty()) {
        std::memcpy(&ks_[dst * ngroups_], &ks_[src * ngroups_], ngroups_ * 4);
        std::memcpy(&vs_[dst * ngroups_], &vs_[src * ngroups_], ngroups_ * 4);
      }
      if (!ke_.empty()) {
        std::memcpy(&ke_[dst * ngroups_], &ke_[src * ngroups_], ngroups_);
        std::memcpy(&ve_[dst * ngroups_], &ve_[src * ngroups_], ngroups_);
      }
      acc_[dst] = acc_[src];
    }
    pos_[size_t(layer) * cap_ + victim] = pos_[size_t(layer) * cap_ + last];
  }
  n_[layer] = last;
}

void KvCache::make_room(int incoming) {
  if (!h2o()) return;
  for (int l = 0; l < layers_; ++l)
    while (n_[l] > 0 && n_[l] + incoming > cap_) evict_one(l);
}

namespace {
constexpr int kMaxGroup = 64;  // query heads per KV head on the fast path (stack array of sums)
constexpr int kPrefetchRows = 4;  // cache rows per block of the scores (see attend_rows)
inline void prefetch_bytes(const char* p, size_t n) {
#if defined(__GNUC__) || defined(__clang__)
  for (size_t o = 0; o < n; o += 64) __builtin_prefetch(p + o, 0, 3);
#else
  (void)p;
  (void)n;
#endif
}
}  // namespace

const float* KvCache::bfp_scales(const std::vector<int8_t>& e, size_t r, int cnt) const {
  const size_t n = size_t(cnt) * ngroups_;
  if (t_scales.size() < n) t_scales.resize(n);
  const int8_t* src = &e[r * ngroups_];
  for (size_t i = 0; i < n; ++i) t_scales[i] = pow2(src[i]);
  return t_scales.data();
}

void KvCache::attend(int layer, int kvh, const float* q, int g, int pos, int window, float* scores, float* out,
                     const VecOps& ops) {
  if (!bfp_) return attend_rows(layer, kvh, q, g, pos, window, scores, out, ops);
  // bfp: the cache holds channels in the order perm; q . k is the same in the permuted order, and the
  // weighted sum of the permuted values is scattered back to the natural order.
  const size_t ph = (size_t(layer) * kv_heads_ + kvh) * d_;
  const int32_t* kp = &kperm_[ph];
  const int32_t* vp = &vperm_[ph];
  const size_t n = size_t(g) * d_;
  if (t_q.size() < n) t_q.resize(n);
  if (t_out.size() < n) t_out.resize(n);
  for (int gi = 0; gi < g; ++gi)
    for (int i = 0; i < d_; ++i) t_q[size_t(gi) * d_ + i] = q[size_t(gi) * d_ + kp[i]];
  attend_rows(layer, kvh, t_q.data(), g, pos, window, scores, t_out.data(), ops);
  for (int gi = 0; gi < g; ++gi)
    for (int i = 0; i < d_; ++i) out[size_t(gi) * d_ + vp[i]] = t_out[size_t(gi) * d_ + i];
}

void KvCache::attend_rows(int layer, int kvh, const float* q, int g, int pos, int window, float* scores, float* out,
                          const VecOps& ops) {
  const int n = n_[layer];
  int lo = 0, hi = n;
  if (!h2o()) {  // slot == position
    hi = std::min(n, pos + 1);
    if (window > 0) lo = std::max(0, pos - window + 1);
  }
  const int cnt = hi - lo;
  const int32_t* spos = pos_.data() + size_t(layer) * cap_;
  const float inv_sqrt = 1.0f / std::sqrt(float(d_));
  const float ninf = -std::numeric_limits<float>::infinity();
  const size_t r0 = row(layer, kvh, 0);

  if (!h2o() && cnt > 0 && g <= kMaxGroup) {
    // Contiguous rows, no mask: scores for all g heads per row, column softmax, weighted sum
    // (1/sum folded into the output). scores is [cnt][g].
    float sums[kMaxGroup];
    const size_t e0 = (r0 + lo) * d_;
    // Decode finds a layer's rows in memory, not in the caches (a token's ~25 MB of weights went
    // through them since): the scores run in blocks of kPrefetchRows rows, each block prefetching
    // the next block's keys and its own values (read by the weighted sum after the softmax), so
    // the misses overlap the arithmetic instead of waiting on the hardware stream's ramp per head.
    // Every row's score is computed as without blocks: the same bits.
    const char* kbytes = reinterpret_cast<const char*>(k_.data()) + e0 * elt_;
    const char* vbytes = reinterpret_cast<const char*>(v_.data()) + e0 * elt_;
    const size_t rowb = size_t(d_) * elt_;
    const float* bfp_k = bfp_ ? bfp_scales(ke_, r0 + lo, cnt) : nullptr;
    for (int j0 = 0; j0 < cnt; j0 += kPrefetchRows) {
      const int nb = std::min(kPrefetchRows, cnt - j0);
      if (j0 + nb < cnt) prefetch_bytes(kbytes + size_t(j0 + nb) * rowb, size_t(std::min(kPrefetchRows, cnt - j0 - nb)) * rowb);
      prefetch_bytes(vbytes + size_t(j0) * rowb, size_t(nb) * rowb);
      const size_t ej = e0 + size_t(j0) * d_;
      float* sj = scores + size_t(j0) * g;
      switch (type_) {
        case LB_LLM_KV_F32:
          ops.scores_f32(q, g, reinterpret_cast<const float*>(k_.data()) + ej, nb, d_, inv_sqrt, sj);
          break;
        case LB_LLM_KV_F16:
          ops.scores_f16(q, g, reinterpret_cast<const uint16_t*>(k_.data()) + ej, nb, d_, inv_sqrt, sj);
          break;
        case LB_LLM_KV_I8:
          ops.scores_i8(q, g, reinterpret_cast<const int8_t*>(k_.data()) + ej, &ks_[(r0 + lo + j0) * ngroups_], group_,
                        nb, d_, inv_sqrt, sj);
          break;
        case LB_LLM_KV_BFP:
        case LB_LLM_KV_BFP_NOREORDER:
          ops.scores_i8(q, g, reinterpret_cast<const int8_t*>(k_.data()) + ej, bfp_k + size_t(j0) * ngroups_, group_, nb,
                        d_, inv_sqrt, sj);
          break;
      }
    }
    ops.softmax_cols(scores, cnt, g, sums);
    for (int gi = 0; gi < g; ++gi) sums[gi] = sums[gi] > 0 ? 1.f / sums[gi] : 0.f;
    switch (type_) {
      case LB_LLM_KV_F32:
        ops.wsum_f32(scores, g, reinterpret_cast<const float*>(v_.data()) + e0, cnt, d_, sums, out);
        break;
      case LB_LLM_KV_F16:
        ops.wsum_f16(scores, g, reinterpret_cast<const uint16_t*>(v_.data()) + e0, cnt, d_, sums, out);
        break;
      case LB_LLM_KV_I8:
        ops.wsum_i8(scores, g, reinterpret_cast<const int8_t*>(v_.data()) + e0, &vs_[(r0 + lo) * ngroups_], group_,
                    cnt, d_, sums, out);
        break;
      case LB_LLM_KV_BFP:
      case LB_LLM_KV_BFP_NOREORDER:
        ops.wsum_i8(scores, g, reinterpret_cast<const int8_t*>(v_.data()) + e0, bfp_scales(ve_, r0 + lo, cnt), group_,
                    cnt, d_, sums, out);
        break;
    }
    return;
  }

  // 1. scores[gi][j] = q_gi . k_j / sqrt(d)
  for (int j = 0; j < cnt; ++j) {
    const int slot = lo + j;
    bool ok = true;
    if (h2o()) ok = spos[slot] <= pos && (window <= 0 || spos[slot] > pos - window);
    const size_t r = r0 + slot;
    for (int gi = 0; gi < g; ++gi) {
      float s = ninf;
      if (ok) {
        const float* qg = q + size_t(gi) * d_;
        switch (type_) {
          case LB_LLM_KV_F32:
            s = ops.dot_f32(qg, reinterpret_cast<const float*>(k_.data()) + r * d_, d_);
            break;
          case LB_LLM_KV_F16:
            s = ops.dot_f16(qg, reinterpret_cast<const uint16_t*>(k_.data()) + r * d_, d_);
            break;
          case LB_LLM_KV_I8:
          case LB_LLM_KV_BFP:
          case LB_LLM_KV_BFP_NOREORDER: {
            const int8_t* kq = reinterpret_cast<const int8_t*>(k_.data()) + r * d_;
            s = 0;
            for (int gr = 0; gr < ngroups_; ++gr) {
              const float sc = bfp_ ? pow2(ke_[r * ngroups_ + gr]) : ks_[r * ngroups_ + gr];
              s += sc * ops.dot_i8(qg + gr * group_, kq + gr * group_, group_);
            }
            break;
          }
        }
        s *= inv_sqrt;
      }
      scores[size_t(gi) * cnt + j] = s;
    }
  }
  // 2. softmax per query head
  for (int gi = 0; gi < g; ++gi) {
    float* sc = scores + size_t(gi) * cnt;
    float m = ninf;
    for (int j = 0; j < cnt; ++j) m = std::max(m, sc[j]);
    float sum = 0;
    for (int j = 0; j < cnt; ++j) {
      const float e = sc[j] == ninf ? 0.f : std::exp(sc[j] - m);
      sc[j] = e;
      sum += e;
    }
    const float inv = sum > 0 ? 1.f / sum : 0.f;
    for (int j = 0; j < cnt; ++j) sc[j] *= inv;
    std::memset(out + size_t(gi) * d_, 0, size_t(d_) * 4);
  }
  // 3. out_gi = sum_j p_j v_j (and H2O's accumulated attention)
  for (int j = 0; j < cnt; ++j) {
    const size_t r = r0 + lo + j;
    float pacc = 0;
    for (int gi = 0; gi < g; ++gi) {
      const float p = scores[size_t(gi) * cnt + j];
      pacc += p;
      if (p == 0.f) continue;
      float* o = out + size_t(gi) * d_;
      switch (type_) {
        case LB_LLM_KV_F32:
          ops.axpy_f32(p, reinterpret_cast<const float*>(v_.data()) + r * d_, o, d_);
          break;
        case LB_LLM_KV_F16:
          ops.axpy_f16(p, reinterpret_cast<const uint16_t*>(v_.data()) + r * d_, o, d_);
          break;
        case LB_LLM_KV_I8:
        case LB_LLM_KV_BFP:
        case LB_LLM_KV_BFP_NOREORDER: {
          const int8_t* vq = reinterpret_cast<const int8_t*>(v_.data()) + r * d_;
          for (int gr = 0; gr < ngroups_; ++gr) {
            const float sc = bfp_ ? pow2(ve_[r * ngroups_ + gr]) : vs_[r * ngroups_ + gr];
            ops.axpy_i8(p * sc, vq + gr * group_, o + gr * group_, group_);
          }
          break;
        }
      }
    }
    if (!acc_.empty()) acc_[r] += pacc;
  }
}

}  // namespace llm
}  // namespace lb
