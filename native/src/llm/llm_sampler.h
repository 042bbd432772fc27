// Token sampling: greedy, temperature, top-k, top-p, repetition penalty, with a seeded generator
// so that the same seed gives the same tokens on every machine and thread count.
#pragma once
#include <cstdint>
#include <vector>

#include "lowbit/lowbit_llm.h"

namespace lb {
namespace llm {

/// splitmix64: tiny, portable, and the same sequence everywhere.
struct Rng {
  uint64_t state = 0x9e3779b97f4a7c15ull;
  void seed(uint64_t s) { state = s ^ 0x9e3779b97f4a7c15ull; }
  uint64_t next();
  float uniform();  ///< [0, 1) with 24 random bits
};

/// LB_ERR_INVALID_ARG with a message naming the bad parameter, else LB_OK.
lb_status check_sampling(const lb_llm_sampling& s);

/// Picks a token from logits[vocab]. history may be null. work and keys are reused scratch
/// (grown once to vocab entries; no allocation per token after that).
int32_t sample_token(const float* logits, int vocab, const lb_llm_sampling& s, const int32_t* history,
                     int n_history, Rng& rng, std::vector<float>& work, std::vector<uint64_t>& keys);

/// The profiler's name for the sampler a parameter set runs ("greedy", "top_k", "top_p", "temperature").
const char* sampler_name(const lb_llm_sampling& s);

}  // namespace llm
}  // namespace lb
