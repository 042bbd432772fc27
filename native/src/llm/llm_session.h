// One decoding sequence over a loaded model: KV cache, scratch buffers sized at open (nothing is
// allocated while tokens are processed), the thread pool, the sampler state and timing counters.
#pragma once
#include <memory>
#include <vector>

#include "llm/llm_kv.h"
#include "llm/llm_model.h"
#include "llm/llm_parallel.h"
#include "llm/llm_profile.h"
#include "llm/llm_sampler.h"
#include "lowbit/lowbit_llm.h"

namespace lb {
namespace llm {

class Session {
 public:
  static lb_status open(const char* path, const lb_llm_options& opt, std::unique_ptr<Session>* out);

  const Model& model() const { return *model_; }
  const KvCache& kv() const { return kv_; }
  int position() const { return pos_; }
  const lb_llm_stats& stats() const { return stats_; }
  void reset();
  Profiler& profiler() { return prof_; }
  const Profiler& profiler() const { return prof_; }

  /// Appends tokens; logits: nullptr, the last token's [vocab] (all=false) or every token's
  /// [n * vocab] (all=true). Checks ids and the context first: on error nothing changed.
  lb_status eval(const int32_t* tokens, int n, float* logits, bool all);
  lb_status sample(const float* logits, const lb_llm_sampling& s, const int32_t* history, int n_history,
                   int32_t* token);
  lb_status generate(const int32_t* prompt, int n_prompt, int max_new, const lb_llm_sampling& s,
                     const int32_t* stop, int n_stop, lb_llm_token_cb cb, void* user, int32_t* out, int* n_out);
  /// Best of `repeats` timed reads of the bytes decode streams per token, on the session's
  /// threads (each reads a contiguous share): GB/s, the decode roofline of this session.
  lb_status measure_weight_read(int repeats, double* gbps);

 private:
  lb_status check_tokens(const int32_t* tokens, int n, const char* what) const;
  lb_status check_room(int n) const;
  lb_status forward_chunk(const int32_t* tokens, int t, float* logits, bool all);

  std::unique_ptr<Model> model_;
  lb_llm_options opt_{};
  std::unique_ptr<Parallel> par_;
  KvCache kv_;
  const VecOps* ops_ = nullptr;
  int pos_ = 0;
  int chunk_ = 128;
  Rng rng_;
  lb_llm_stats stats_{};
  Profiler prof_;
  // scratch, sized for one chunk
  std::vector<float> x_, h_, qkv_, attn_, tmp_, gu_, act_, scores_;
  std::vector<float> rope_cs_, rope_sn_;  // [chunk row][head_dim / 2] cos / sin of the row's position
  LinearScratch lin_;
  std::vector<float> work_;
  std::vector<uint64_t> keys_;  // sampler candidates
  std::vector<int32_t> hist_;
  std::vector<float> logits_;
};

}  // namespace llm
}  // namespace lb
