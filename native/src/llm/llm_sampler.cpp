// Sampling (see llm_sampler.h). Order of operations follows transformers' logits processors:
// repetition penalty, temperature, top-k, top-p, then one draw from the renormalized distribution.
#include "llm/llm_sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "error.h"

namespace lb {
namespace llm {

uint64_t Rng::next() {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

float Rng::uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }

lb_status check_sampling(const lb_llm_sampling& s) {
  if (!(s.temperature >= 0.f) || !std::isfinite(s.temperature))
    return set_error(LB_ERR_INVALID_ARG, "sampling: temperature must be a finite number >= 0 (got %g)", s.temperature);
  if (s.top_k < 0) return set_error(LB_ERR_INVALID_ARG, "sampling: top_k must be >= 0 (got %d)", s.top_k);
  if (!(s.top_p > 0.f && s.top_p <= 1.f))
    return set_error(LB_ERR_INVALID_ARG, "sampling: top_p must be in (0, 1] (got %g)", s.top_p);
  if (!(s.repetition_penalty > 0.f) || !std::isfinite(s.repetition_penalty))
    return set_error(LB_ERR_INVALID_ARG, "sampling: repetition_penalty must be > 0 (got %g)", s.repetition_penalty);
  return LB_OK;
}

const char* sampler_name(const lb_llm_sampling& s) {
  if (s.temperature == 0.f) return "greedy";
  if (s.top_k > 0) return "top_k";
  if (s.top_p < 1.f) return "top_p";
  return "temperature";
}

namespace {
// Sort key of candidate i: ascending keys = decreasing logit, ties by lower id (one integer
// compare, no indirection).
inline uint64_t cand_key(float logit, int32_t i) {
  if (logit == 0.f) logit = 0.f;  // -0 ties with +0, as in a float compare
  uint32_t b;
  std::memcpy(&b, &logit, 4);
  const uint32_t up = (b & 0x80000000u) ? ~b : (b | 0x80000000u);  // increasing with the float
  return (uint64_t(~up) << 32) | uint32_t(i);
}
}  // namespace

int32_t sample_token(const float* logits, int vocab, const lb_llm_sampling& s, const int32_t* history,
                     int n_history, Rng& rng, std::vector<float>& work, std::vector<uint64_t>& keys) {
  work.resize(size_t(2) * vocab);  // [0, vocab): penalised logits; [vocab, 2 vocab): probabilities
  std::copy(logits, logits + vocab, work.begin());
  if (s.repetition_penalty != 1.f && history) {
    // Each distinct token once (transformers gathers, then scatters: duplicates are not compounded).
    for (int i = 0; i < n_history; ++i) {
      const int32_t t = history[i];
      if (t < 0 || t >= vocab) continue;
      const float orig = logits[t];
      work[t] = orig > 0 ? orig / s.repetition_penalty : orig * s.repetition_penalty;
    }
  }
  if (s.temperature == 0.f) {  // greedy: first maximum
    int best = 0;
    for (int i = 1; i < vocab; ++i)
      if (work[i] > work[best]) best = i;
    return best;
  }
  const float inv_t = 1.f / s.temperature;
  // Candidates by decreasing logit (ties: lower id first), limited to top_k.
  keys.resize(vocab);
  for (int i = 0; i < vocab; ++i) keys[i] = cand_key(work[i], i);
  auto idx = [&](int i) { return int32_t(uint32_t(keys[i])); };
  const float m = *std::max_element(work.begin(), work.begin() + vocab);
  float* prob = work.data() + vocab;
  double sum = 0;
  int n = vocab;
  if (s.top_k > 0 && s.top_k < vocab) {
    n = s.top_k;
    std::nth_element(keys.begin(), keys.begin() + n, keys.end());
    std::sort(keys.begin(), keys.begin() + n);
    for (int i = 0; i < n; ++i) {
      prob[i] = std::exp((work[idx(i)] - m) * inv_t);
      sum += prob[i];
    }
  } else {
    for (int i = 0; i < vocab; ++i) sum += std::exp((work[i] - m) * inv_t);
    if (s.top_p < 1.f) {
      // Only the prefix that reaches top_p needs to be in order: sort a growing prefix until its
      // mass (computed exactly as below) reaches top_p, instead of sorting the whole vocabulary.
      // (A flat distribution, whose nucleus is most of the vocabulary, ends in one full sort.)
      int k = std::min(vocab, 256);
      for (;;) {
        if (k < vocab) std::nth_element(keys.begin(), keys.begin() + k, keys.end());
        std::sort(keys.begin(), keys.begin() + k);
        double c = 0;
        int i = 0;
        for (; i < k; ++i) {
          c += float(std::exp((work[idx(i)] - m) * inv_t) / sum);
          if (c >= s.top_p) break;
        }
        if (i < k || k == vocab) break;
        k = 8 * k >= vocab / 2 ? vocab : 8 * k;
      }
      n = k;
    }
    for (int i = 0; i < n; ++i) prob[i] = std::exp((work[idx(i)] - m) * inv_t);
  }
  for (int i = 0; i < n; ++i) prob[i] = float(prob[i] / sum);
  if (s.top_p < 1.f) {  // smallest prefix whose mass reaches top_p (at least one token)
    double c = 0;
    int keep = n;
    for (int i = 0; i < n; ++i) {
      c += prob[i];
      if (c >= s.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
    double s2 = 0;
    for (int i = 0; i < n; ++i) s2 += prob[i];
    for (int i = 0; i < n; ++i) prob[i] = float(prob[i] / s2);
  }
  const float u = rng.uniform();
  double c = 0;
  for (int i = 0; i < n; ++i) {
    c += prob[i];
    if (u < c) return idx(i);
  }
  return idx(n - 1);
}

}  // namespace llm
}  // namespace lb
