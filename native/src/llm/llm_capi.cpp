// The lb_llm_* C API (lowbit_llm.h): argument checks and exception barriers around llm::Session.
#include <cstring>
#include <memory>
#include <new>

#include "error.h"
#include "llm/llm_session.h"
#include "lowbit/lowbit_llm.h"

struct lb_llm {
  std::unique_ptr<lb::llm::Session> s;
};

using lb::set_error;

namespace {
template <typename F>
lb_status guarded(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return set_error(LB_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
  } catch (...) {
    return set_error(LB_ERR_INTERNAL, "%s: unexpected internal error", what);
  }
}
#define LB_LLM_CHECK(llm, what) \
  if (!(llm) || !(llm)->s) return set_error(LB_ERR_INVALID_ARG, what ": NULL session")
}  // namespace

extern "C" {

LB_API void lb_llm_options_default(lb_llm_options* o) {
  if (!o) return;
  std::memset(o, 0, sizeof(*o));
  o->kv_type = LB_LLM_KV_F16;
  o->verify = 1;
  o->copy_weights = 1;
}

LB_API void lb_llm_sampling_default(lb_llm_sampling* s) {
  if (!s) return;
  std::memset(s, 0, sizeof(*s));
  s->temperature = 0.f;
  s->top_p = 1.f;
  s->repetition_penalty = 1.f;
}

LB_API lb_status lb_llm_open(const char* path, const lb_llm_options* opts, lb_llm_t* out) {
  if (!path || !out) return set_error(LB_ERR_INVALID_ARG, "lb_llm_open: NULL path or output");
  *out = nullptr;
  lb_llm_options o;
  lb_llm_options_default(&o);
  if (opts) o = *opts;
  return guarded("lb_llm_open", [&] {
    std::unique_ptr<lb_llm> h(new lb_llm());
    lb_status st = lb::llm::Session::open(path, o, &h->s);
    if (st != LB_OK) return st;
    *out = h.release();
    lb::clear_error();
    return LB_OK;
  });
}

LB_API void lb_llm_free(lb_llm_t llm) { delete llm; }

LB_API lb_status lb_llm_get_info(lb_llm_t llm, lb_llm_info* out) {
  LB_LLM_CHECK(llm, "lb_llm_get_info");
  if (!out) return set_error(LB_ERR_INVALID_ARG, "lb_llm_get_info: NULL output");
  const auto& m = llm->s->model();
  const auto& c = m.cfg;
  std::memset(out, 0, sizeof(*out));
  out->vocab_size = c.vocab;
  out->context_length = c.context;
  out->kv_capacity = llm->s->kv().capacity();
  out->num_layers = c.layers;
  out->hidden_size = c.hidden;
  out->num_heads = c.heads;
  out->num_kv_heads = c.kv_heads;
  out->head_dim = c.head_dim;
  out->bos_token_id = c.bos;
  out->n_eos = int32_t(std::min<size_t>(c.eos.size(), 8));
  for (int i = 0; i < out->n_eos; ++i) out->eos_token_ids[i] = c.eos[i];
  out->weight_bytes = m.weight_bytes;
  out->kv_bytes = llm->s->kv().bytes();
  out->copied_bytes = int64_t(m.arena.bytes);
  return LB_OK;
}

LB_API const char* lb_llm_manifest(lb_llm_t llm) {
  if (!llm || !llm->s) return "";
  return llm->s->model().pkg->manifest_text().c_str();
}

LB_API lb_status lb_llm_reset(lb_llm_t llm) {
  LB_LLM_CHECK(llm, "lb_llm_reset");
  llm->s->reset();
  return LB_OK;
}

LB_API int32_t lb_llm_position(lb_llm_t llm) { return llm && llm->s ? llm->s->position() : 0; }

LB_API lb_status lb_llm_prefill(lb_llm_t llm, const int32_t* tokens, int32_t n, float* logits) {
  LB_LLM_CHECK(llm, "lb_llm_prefill");
  return guarded("lb_llm_prefill", [&] { return llm->s->eval(tokens, n, logits, false); });
}

LB_API lb_status lb_llm_eval_all(lb_llm_t llm, const int32_t* tokens, int32_t n, float* logits) {
  LB_LLM_CHECK(llm, "lb_llm_eval_all");
  if (!logits) return set_error(LB_ERR_INVALID_ARG, "lb_llm_eval_all: NULL logits");
  return guarded("lb_llm_eval_all", [&] { return llm->s->eval(tokens, n, logits, true); });
}

LB_API lb_status lb_llm_decode(lb_llm_t llm, int32_t token, float* logits) {
  LB_LLM_CHECK(llm, "lb_llm_decode");
  return guarded("lb_llm_decode", [&] { return llm->s->eval(&token, 1, logits, false); });
}

LB_API lb_status lb_llm_sample(lb_llm_t llm, const float* logits, const lb_llm_sampling* s, const int32_t* history,
                               int32_t n_history, int32_t* token) {
  LB_LLM_CHECK(llm, "lb_llm_sample");
  if (!s) return set_error(LB_ERR_INVALID_ARG, "lb_llm_sample: NULL sampling parameters");
  return guarded("lb_llm_sample", [&] { return llm->s->sample(logits, *s, history, n_history, token); });
}

LB_API lb_status lb_llm_generate(lb_llm_t llm, const int32_t* prompt, int32_t n_prompt, int32_t max_new,
                                 const lb_llm_sampling* s, const int32_t* stop, int32_t n_stop, lb_llm_token_cb cb,
                                 void* user, int32_t* out_tokens, int32_t* n_out) {
  LB_LLM_CHECK(llm, "lb_llm_generate");
  lb_llm_sampling def;
  lb_llm_sampling_default(&def);
  return guarded("lb_llm_generate", [&] {
    int n = 0;
    lb_status st = llm->s->generate(prompt, n_prompt, max_new, s ? *s : def, stop, n_stop, cb, user, out_tokens, &n);
    if (n_out) *n_out = n;
    return st;
  });
}

LB_API lb_status lb_llm_get_stats(lb_llm_t llm, lb_llm_stats* out) {
  LB_LLM_CHECK(llm, "lb_llm_get_stats");
  if (!out) return set_error(LB_ERR_INVALID_ARG, "lb_llm_get_stats: NULL output");
  *out = llm->s->stats();
  return LB_OK;
}

LB_API lb_status lb_llm_measure_read(lb_llm_t llm, int32_t repeats, double* gbps) {
  LB_LLM_CHECK(llm, "lb_llm_measure_read");
  return guarded("lb_llm_measure_read", [&] { return llm->s->measure_weight_read(repeats, gbps); });
}

LB_API lb_status lb_llm_profile_enable(lb_llm_t llm, int32_t on) {
  LB_LLM_CHECK(llm, "lb_llm_profile_enable");
  llm->s->profiler().enable(on != 0);
  return LB_OK;
}

LB_API lb_status lb_llm_profile_get(lb_llm_t llm, lb_llm_prof_entry* out, int32_t cap, int32_t* n) {
  LB_LLM_CHECK(llm, "lb_llm_profile_get");
  if (!n || cap < 0 || (cap > 0 && !out))
    return set_error(LB_ERR_INVALID_ARG, "lb_llm_profile_get: NULL count, or NULL output with cap > 0");
  using lb::llm::Phase;
  const lb::llm::Profiler& p = llm->s->profiler();
  int32_t k = 0;
  for (int ph = 0; ph < 2; ++ph)
    for (int layer = -1; layer < p.layers(); ++layer)
      for (int op = 0; op < lb::llm::kOpCount; ++op) {
        const auto& sl = p.slot(Phase(ph), layer, op);
        if (!sl.calls) continue;
        if (k < cap) {
          lb_llm_prof_entry& e = out[k];
          e.phase = ph;
          e.layer = layer;
          e.op = lb::llm::prof_op_name(op);
          e.kernel = sl.kernel;
          e.isa = sl.isa;
          e.calls = sl.calls;
          e.ns = sl.ns;
          e.weight_bytes = sl.bytes;
        }
        ++k;
      }
  *n = k;
  return LB_OK;
}

}  // extern "C"
