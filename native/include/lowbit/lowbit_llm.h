/// lowbit_llm.h — C API of lowbit's decoder-LLM runtime (Llama, Qwen2, Mistral families).
///
/// Token ids in, token ids (or logits) out: a session owns one sequence and its KV cache.
/// Like lowbit.h: opaque handles, an lb_status from every call, outputs last, lb_last_error()
/// says why a call failed. A failed call leaves the session as it was.
#ifndef LOWBIT_LLM_H_
#define LOWBIT_LLM_H_

#include "lowbit/lowbit.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lb_llm* lb_llm_t;

/// KV cache element types.
typedef enum lb_llm_kv_type {
  LB_LLM_KV_F16 = 0,  ///< fp16 keys and values (default)
  LB_LLM_KV_I8 = 1,   ///< int8 with one fp32 scale per (position, head, group of 32 channels)
  LB_LLM_KV_F32 = 2,  ///< fp32 (reference; twice the memory of fp16)
  LB_LLM_KV_BFP = 3,  ///< block floating point: int8 mantissas, one shared power-of-two exponent (int8) per
                      ///< (position, head, block of 16 channels); channels reordered by magnitude (docs/llm.md)
  LB_LLM_KV_BFP_NOREORDER = 4,  ///< LB_LLM_KV_BFP in the natural channel order (the ablation of the reordering)
} lb_llm_kv_type;

/// Options for lb_llm_open. Fill with lb_llm_options_default first.
typedef struct lb_llm_options {
  int32_t threads;          ///< worker threads; 0 = lb_default_threads()
  int32_t kv_type;          ///< lb_llm_kv_type
  int32_t max_context;      ///< KV cache capacity in tokens; 0 = the model's context length
  int32_t prefill_chunk;    ///< prompt tokens per GEMM pass (memory vs speed); 0 = 128
  int32_t h2o_budget;       ///< 0 = off; else keep at most this many cached tokens per layer,
                            ///< evicting the ones with the least accumulated attention (H2O)
  int32_t h2o_recent;       ///< with H2O: the most recent tokens are never evicted; 0 = budget/4
  int32_t verify;           ///< 1 = hash the whole package at open (default), 0 = lazily
  int32_t copy_weights;     ///< 1 = put the linears' weights in 2 MB pages at open (default; Linux;
                            ///< faster decode, same results): the package mapping itself when the
                            ///< page cache can hold it in 2 MB folios, else a copy into anonymous
                            ///< huge-page memory (the package pages released as they are copied);
                            ///< 0 = read them from the package's file mapping as it is
} lb_llm_options;

/// Sampling parameters. temperature 0 = greedy (argmax).
typedef struct lb_llm_sampling {
  float temperature;         ///< >= 0
  int32_t top_k;             ///< 0 = off
  float top_p;               ///< (0, 1]; 1 = off
  float repetition_penalty;  ///< > 0; 1 = off (CTRL / transformers rule over prompt + output)
  uint64_t seed;             ///< same seed, same tokens
} lb_llm_sampling;

/// Model facts read from the package.
typedef struct lb_llm_info {
  int32_t vocab_size;
  int32_t context_length;    ///< longest sequence the model accepts
  int32_t kv_capacity;       ///< tokens the session's KV cache holds
  int32_t num_layers;
  int32_t hidden_size;
  int32_t num_heads;
  int32_t num_kv_heads;
  int32_t head_dim;
  int32_t bos_token_id;      ///< -1 if none
  int32_t n_eos;             ///< number of valid entries in eos_token_ids
  int32_t eos_token_ids[8];
  int64_t weight_bytes;      ///< bytes of weights read per decoded token
  int64_t kv_bytes;          ///< bytes of the KV cache allocation
  int64_t copied_bytes;      ///< bytes of weights copied into huge-page memory at open (0 = mapped)
} lb_llm_info;

/// Timing counters since open or the last reset.
typedef struct lb_llm_stats {
  int64_t prefill_tokens;
  double prefill_seconds;
  int64_t decode_tokens;
  double decode_seconds;
} lb_llm_stats;

/// Called once per generated token; return non-zero to stop generating.
typedef int (*lb_llm_token_cb)(int32_t token, void* user);

LB_API void lb_llm_options_default(lb_llm_options* opts);
LB_API void lb_llm_sampling_default(lb_llm_sampling* s);

/// Opens an LLM package (.lbpk with manifest kind "llm"). opts may be NULL for defaults.
LB_API lb_status lb_llm_open(const char* path, const lb_llm_options* opts, lb_llm_t* out);
LB_API void lb_llm_free(lb_llm_t llm);
LB_API lb_status lb_llm_get_info(lb_llm_t llm, lb_llm_info* out);
/// The package manifest (JSON text), valid while llm lives.
LB_API const char* lb_llm_manifest(lb_llm_t llm);

/// Forgets the sequence (position 0, empty cache, counters zeroed).
LB_API lb_status lb_llm_reset(lb_llm_t llm);
/// Current sequence length (tokens already in the cache, evicted ones included).
LB_API int32_t lb_llm_position(lb_llm_t llm);

/// Appends n tokens (chunked GEMM passes). logits: NULL, or [vocab] for the last token.
LB_API lb_status lb_llm_prefill(lb_llm_t llm, const int32_t* tokens, int32_t n, float* logits);
/// Like prefill but writes the logits of every token: logits [n * vocab].
LB_API lb_status lb_llm_eval_all(lb_llm_t llm, const int32_t* tokens, int32_t n, float* logits);
/// Appends one token (GEMV pass); logits [vocab] of the next position (may be NULL).
LB_API lb_status lb_llm_decode(lb_llm_t llm, int32_t token, float* logits);

/// Picks a token from logits [vocab]; history (may be NULL) feeds the repetition penalty; the
/// random draw uses and advances the session's generator (seeded by lb_llm_generate or reset).
LB_API lb_status lb_llm_sample(lb_llm_t llm, const float* logits, const lb_llm_sampling* s,
                               const int32_t* history, int32_t n_history, int32_t* token);

/// Resets, prefills the prompt, then decodes up to max_new tokens, stopping after a stop token
/// (included in the output). cb (may be NULL) sees each token as it is made. out_tokens has room
/// for max_new; *n_out receives the count. Fails with LB_ERR_CONTEXT (nothing run) when the
/// prompt plus max_new tokens do not fit the context.
LB_API lb_status lb_llm_generate(lb_llm_t llm, const int32_t* prompt, int32_t n_prompt, int32_t max_new,
                                 const lb_llm_sampling* s, const int32_t* stop, int32_t n_stop,
                                 lb_llm_token_cb cb, void* user, int32_t* out_tokens, int32_t* n_out);

LB_API lb_status lb_llm_get_stats(lb_llm_t llm, lb_llm_stats* out);

/// Decode's roofline for this session: the best of `repeats` (0 = 5) timed reads of exactly the
/// weight bytes a decoded token streams (every linear, in place: same pages, same order), on the
/// session's threads, in GB/s.
LB_API lb_status lb_llm_measure_read(lb_llm_t llm, int32_t repeats, double* gbps);

/// Per-op profile: time spent in each op of each layer, per phase, summed over calls.
/// Prefill passes and decode steps are kept apart; the ops of a pass add up to the whole pass.
typedef struct lb_llm_prof_entry {
  int32_t phase;        ///< 0 prefill (and lb_llm_eval_all), 1 decode (and sampling)
  int32_t layer;        ///< decoder block, or -1 for embed / final_norm / lm_head / sampling
  const char* op;       ///< "embed", "attn_norm", "qkv", "rope", "kv_store", "attention", "o_proj",
                        ///< "ffn_norm", "gate_up", "swiglu", "down", "final_norm", "lm_head",
                        ///< "sampling" (the residual adds are fused into the next norm: "add_rms_norm")
  const char* kernel;   ///< what ran, e.g. "lb_gemv_f32_q8d_q4g_8x32__avx2" (static string)
  const char* isa;      ///< the ISA it ran on ("avx2", "scalar", ...)
  int64_t calls;        ///< times the op ran
  int64_t ns;           ///< total nanoseconds
  int64_t weight_bytes; ///< weight bytes one call reads (linears; 0 for other ops)
} lb_llm_prof_entry;

/// Turns per-op profiling on (1) or off (0); either way the counters are cleared. Off (the
/// default) costs one branch per op and reads no clock.
LB_API lb_status lb_llm_profile_enable(lb_llm_t llm, int32_t on);
/// Copies up to cap entries (ops that ran at least once, by phase, layer, op) into out
/// (may be NULL when cap is 0); *n receives how many there are in all.
LB_API lb_status lb_llm_profile_get(lb_llm_t llm, lb_llm_prof_entry* out, int32_t cap, int32_t* n);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // LOWBIT_LLM_H_
