// The decoder forward pass (chunked prefill = GEMM passes, decode = GEMV passes), context checks,
// and generation with sampling, stop tokens and a per-token callback.
#include "llm/llm_session.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>

#include "dispatch.h"
#include "error.h"

namespace lb {
namespace llm {

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

lb_status Session::open(const char* path, const lb_llm_options& opt, std::unique_ptr<Session>* out) {
  if (opt.threads < 0 || opt.max_context < 0 || opt.prefill_chunk < 0 || opt.h2o_budget < 0 || opt.h2o_recent < 0)
    return set_error(LB_ERR_INVALID_ARG, "lb_llm_open: negative option value");
  if (opt.kv_type < LB_LLM_KV_F16 || opt.kv_type > LB_LLM_KV_BFP_NOREORDER)
    return set_error(LB_ERR_INVALID_ARG,
                     "lb_llm_open: unknown kv_type %d (0 f16, 1 int8, 2 f32, 3 bfp, 4 bfp without reordering)",
                     opt.kv_type);
  if (dispatch_status() != LB_OK) return set_error(LB_ERR_ISA, "lb_llm_open: LOWBIT_ISA names an ISA path this CPU or build cannot run");
  std::unique_ptr<Session> s(new (std::nothrow) Session());
  if (!s) return set_error(LB_ERR_OUT_OF_MEMORY, "out of memory");
  lb_status st = load_model(path, opt.verify != 0, &s->model_);
  if (st != LB_OK) return st;

  const Config& c = s->model_->cfg;
  s->opt_ = opt;
  int cap = opt.max_context > 0 ? std::min(opt.max_context, c.context) : c.context;
  int recent = 0;
  if (opt.h2o_budget > 0) {
    if (opt.h2o_budget < 8)
      return set_error(LB_ERR_INVALID_ARG, "lb_llm_open: h2o_budget %d is too small (at least 8)", opt.h2o_budget);
    cap = std::min(opt.h2o_budget, c.context);
    recent = opt.h2o_recent > 0 ? std::min(opt.h2o_recent, cap - 1) : cap / 4;
  }
  s->chunk_ = opt.prefill_chunk > 0 ? opt.prefill_chunk : 128;
  if (opt.h2o_budget > 0) s->chunk_ = std::max(1, std::min(s->chunk_, cap - recent));
  s->chunk_ = std::min(s->chunk_, cap);
  const int threads = opt.threads > 0 ? opt.threads : lb_default_threads();
  try {
    s->par_.reset(new Parallel(std::max(1, threads)));
    s->kv_.init(c.layers, c.kv_heads, c.head_dim, cap, lb_llm_kv_type(opt.kv_type), opt.h2o_budget, recent);
    if (s->model_->kv_order) s->kv_.set_fixed_order(s->model_->kv_order);
    const size_t t = size_t(s->chunk_);
    s->x_.resize(t * c.hidden);
    s->h_.resize(t * c.hidden);
    s->qkv_.resize(t * (c.q_dim() + 2 * c.kv_dim()));
    s->attn_.resize(t * c.q_dim());
    s->tmp_.resize(t * c.hidden);
    s->gu_.resize(t * 2 * c.inter);
    s->act_.resize(t * c.inter);
    s->rope_cs_.resize(t * size_t(c.head_dim / 2));
    s->rope_sn_.resize(t * size_t(c.head_dim / 2));
    s->scores_.resize(size_t(s->par_->threads()) * (c.heads / c.kv_heads) * cap);
    s->logits_.resize(c.vocab);
    size_t lin = 0;
    for (const Layer& L : s->model_->layers)
      for (const Linear* li : {&L.qkv, &L.o, &L.gate_up, &L.down})
        lin = std::max({lin, linear_scratch_bytes(*li, s->chunk_), linear_scratch_bytes(*li, 1)});
    lin = std::max({lin, linear_scratch_bytes(s->model_->head, s->chunk_), linear_scratch_bytes(s->model_->head, 1)});
    s->lin_.buf.resize(lin + 64);
    s->work_.reserve(size_t(2) * c.vocab);
    s->keys_.reserve(c.vocab);
    s->hist_.reserve(cap);
  } catch (const std::bad_alloc&) {
    return set_error(LB_ERR_OUT_OF_MEMORY, "lb_llm_open: out of memory for a KV cache of %d tokens", cap);
  }
  if (opt.copy_weights) {
    bool copied = false;
    if ((st = copy_weights_huge(s->model_.get(), s->par_->pool(), &copied)) != LB_OK) return st;
  }
  s->ops_ = &vec_ops();
  s->prof_.init(c.layers);
  *out = std::move(s);
  return LB_OK;
}

lb_status Session::measure_weight_read(int repeats, double* gbps) {
  if (!gbps || repeats < 0) return set_error(LB_ERR_INVALID_ARG, "lb_llm_measure_read: NULL output or negative repeats");
  if (repeats == 0) repeats = 5;
  const auto ranges = linear_weight_ranges(*model_);
  size_t total = 0;
  for (const auto& r : ranges) total += r.second;
  if (total == 0) return set_error(LB_ERR_INVALID_ARG, "lb_llm_measure_read: the model has no linear weights");
  const int T = par_->threads();
  std::vector<uint64_t> sink(size_t(T) * 8, 0);  // one cache line per task
  double best = 0.0;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = now_s();
    par_->run(T, [&](int t, int) {
      const size_t b0 = total / T * size_t(t) / 64 * 64, b1 = t + 1 == T ? total : total / T * size_t(t + 1) / 64 * 64;
      sink[size_t(t) * 8] ^= read_ranges(ranges, b0, b1);
    });
    const double s = now_s() - t0;
    if (s > 0) best = std::max(best, double(total) / s / 1e9);
  }
  volatile uint64_t keep = sink[0];
  (void)keep;
  *gbps = best;
  return LB_OK;
}

void Session::reset() {
  pos_ = 0;
  kv_.reset();
  stats_ = lb_llm_stats{};
}

lb_status Session::check_tokens(const int32_t* tokens, int n, const char* what) const {
  if (n < 0 || (n > 0 && !tokens)) return set_error(LB_ERR_INVALID_ARG, "%s: NULL tokens or negative count", what);
  const int vocab = model_->cfg.vocab;
  for (int i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      return set_error(LB_ERR_INVALID_ARG, "%s: token id %d at index %d is out of range [0, %d)", what, tokens[i], i,
                       vocab);
  return LB_OK;
}

lb_status Session::check_room(int n) const {
  const int ctx = model_->cfg.context;
  if (pos_ + n > ctx)
    return set_error(LB_ERR_CONTEXT, "sequence of %d tokens (%d already + %d new) exceeds the model's context length %d",
                     pos_ + n, pos_, n, ctx);
  if (!kv_.h2o() && pos_ + n > kv_.capacity())
    return set_error(LB_ERR_CONTEXT, "sequence of %d tokens (%d already + %d new) exceeds the KV cache capacity %d "
                     "(max_context option)", pos_ + n, pos_, n, kv_.capacity());
  return LB_OK;
}

lb_status Session::eval(const int32_t* tokens, int n, float* logits, bool all) {
  lb_status st = check_tokens(tokens, n, n == 1 && !all ? "lb_llm_decode" : "lb_llm_prefill");
  if (st != LB_OK) return st;
  if (n == 0) return set_error(LB_ERR_INVALID_ARG, "lb_llm_prefill: no tokens");
  if ((st = check_room(n)) != LB_OK) return st;
  const double t0 = now_s();
  const int vocab = model_->cfg.vocab;
  for (int i = 0; i < n; i += chunk_) {
    const int t = std::min(chunk_, n - i);
    const bool last = i + t == n;
    float* lg = nullptr;
    if (all) lg = logits + size_t(i) * vocab;
    else if (last) lg = logits;
    if ((st = forward_chunk(tokens + i, t, lg, all)) != LB_OK) {
      reset();  // a half-processed chunk leaves the cache inconsistent: start over
      return st;
    }
  }
  const double dt = now_s() - t0;
  if (n == 1 && !all) {
    stats_.decode_tokens += 1;
    stats_.decode_seconds += dt;
  } else {
    stats_.prefill_tokens += n;
    stats_.prefill_seconds += dt;
  }
  return LB_OK;
}

lb_status Session::forward_chunk(const int32_t* tokens, int t, float* logits, bool all) {
  const Model& m = *model_;
  const Config& c = m.cfg;
  const int H = c.hidden, Q = c.q_dim(), KV = c.kv_dim(), QKV = Q + 2 * KV, I = c.inter, d = c.head_dim;
  const int g = c.heads / c.kv_heads;
  Parallel& par = *par_;
  const VecOps& ops = *ops_;
  Profiler& pf = prof_;
  const Phase ph = t == 1 && !all ? Phase::Decode : Phase::Prefill;
  const char* visa = ops.isa;
  pf.start();
  for (int r = 0; r < t; ++r) m.embed.row(tokens[r], H, &x_[size_t(r) * H]);
  kv_.make_room(t);
  pf.mark(ph, -1, kOpEmbed, m.embed.i8 ? "embed_i8" : "embed_f32", "scalar");
  // The per-row float ops of a prefill chunk (norms, RoPE, SwiGLU) split over the threads in
  // blocks of rows; one row (decode) runs on the caller. Each row is computed whole by one task.
  auto each_row = [&](auto&& fn) {
    constexpr int kRowsPerTask = 8;
    if (t < 2 * kRowsPerTask || par.threads() == 1) {
      for (int r = 0; r < t; ++r) fn(r);
      return;
    }
    par.run((t + kRowsPerTask - 1) / kRowsPerTask, [&](int task, int) {
      for (int r = task * kRowsPerTask, e = std::min(t, r + kRowsPerTask); r < e; ++r) fn(r);
    });
  };
  auto lin = [&](const Linear& L, const float* in, float* out, int rows, int layer, int op) {
    lb_status st = linear_forward(L, in, rows, out, lin_, par);
    if (pf.on()) {
      const bool q = L.kind == Linear::Quant;
      pf.mark(ph, layer, op, q ? lin_.last.kernel : "linear_f32", q ? lb_isa_name(lin_.last.isa) : visa, L.bytes());
    }
    return st;
  };
  // RoPE's cos / sin depend on the position only: one table per row, shared by every layer.
  const int half = d / 2;
  for (int r = 0; r < t; ++r)
    rope_table(pos_ + r, d, m.inv_freq, c.rope_scale, &rope_cs_[size_t(r) * half], &rope_sn_[size_t(r) * half]);
  // The residual add of a block's last linear (tmp_) is fused into the next RMSNorm (add_rms_norm):
  // `pending` says tmp_ holds one that x_ has not received yet.
  bool pending = false;
  for (int l = 0; l < c.layers; ++l) {
    const Layer& L = m.layers[l];
    each_row([&](int r) {
      ops.add_rms_norm(&x_[size_t(r) * H], pending ? &tmp_[size_t(r) * H] : nullptr, L.attn_norm, c.eps, H,
                       &h_[size_t(r) * H]);
    });
    pf.mark(ph, l, kOpAttnNorm, pending ? "add_rms_norm" : "rms_norm", visa);
    lb_status st;
    if ((st = lin(L.qkv, h_.data(), qkv_.data(), t, l, kOpQkv)) != LB_OK) return st;
    each_row([&](int r) {
      float* row = &qkv_[size_t(r) * QKV];
      const float* cs = &rope_cs_[size_t(r) * half];
      const float* sn = &rope_sn_[size_t(r) * half];
      ops.rope(row, c.heads, d, cs, sn);
      ops.rope(row + Q, c.kv_heads, d, cs, sn);
    });
    pf.mark(ph, l, kOpRope, "rope", visa);
    if (kv_.needs_order(l)) kv_.set_order(l, &qkv_[Q], &qkv_[Q + KV], QKV, t);
    for (int r = 0; r < t; ++r) {
      const float* row = &qkv_[size_t(r) * QKV];
      kv_.append(l, pos_ + r, row + Q, row + Q + KV, ops);
    }
    pf.mark(ph, l, kOpKvStore, kv_store_name(kv_.type()), visa);
    const int cap = kv_.capacity();
    par.run(t * c.kv_heads, [&](int task, int thread) {
      const int r = task / c.kv_heads, kvh = task % c.kv_heads;
      const float* q = &qkv_[size_t(r) * QKV + size_t(kvh) * g * d];
      float* out = &attn_[size_t(r) * Q + size_t(kvh) * g * d];
      kv_.attend(l, kvh, q, g, pos_ + r, c.sliding_window, &scores_[size_t(thread) * g * cap], out, ops);
    });
    pf.mark(ph, l, kOpAttention, kv_attend_name(kv_.type()), visa);
    if ((st = lin(L.o, attn_.data(), tmp_.data(), t, l, kOpOProj)) != LB_OK) return st;
    each_row([&](int r) {
      ops.add_rms_norm(&x_[size_t(r) * H], &tmp_[size_t(r) * H], L.ffn_norm, c.eps, H, &h_[size_t(r) * H]);
    });
    pf.mark(ph, l, kOpFfnNorm, "add_rms_norm", visa);
    if ((st = lin(L.gate_up, h_.data(), gu_.data(), t, l, kOpGateUp)) != LB_OK) return st;
    each_row([&](int r) { ops.swiglu(&gu_[size_t(r) * 2 * I], &gu_[size_t(r) * 2 * I + I], I, &act_[size_t(r) * I]); });
    pf.mark(ph, l, kOpSwiglu, "swiglu", visa);
    if ((st = lin(L.down, act_.data(), tmp_.data(), t, l, kOpDown)) != LB_OK) return st;
    pending = true;
  }
  pos_ += t;
  if (!logits) return LB_OK;
  const char* fname = pending ? "add_rms_norm" : "rms_norm";
  if (all) {
    each_row([&](int r) {
      ops.add_rms_norm(&x_[size_t(r) * H], pending ? &tmp_[size_t(r) * H] : nullptr, m.norm, c.eps, H,
                       &h_[size_t(r) * H]);
    });
    pf.mark(ph, -1, kOpFinalNorm, fname, visa);
    // the head in row blocks of the chunk, straight into the caller's buffer
    return lin(m.head, h_.data(), logits, t, -1, kOpLmHead);
  }
  // only the last row's logits: only its residual and norm
  ops.add_rms_norm(&x_[size_t(t - 1) * H], pending ? &tmp_[size_t(t - 1) * H] : nullptr, m.norm, c.eps, H, h_.data());
  pf.mark(ph, -1, kOpFinalNorm, fname, visa);
  return lin(m.head, h_.data(), logits, 1, -1, kOpLmHead);
}

lb_status Session::sample(const float* logits, const lb_llm_sampling& s, const int32_t* history, int n_history,
                          int32_t* token) {
  lb_status st = check_sampling(s);
  if (st != LB_OK) return st;
  if (!logits || !token || n_history < 0) return set_error(LB_ERR_INVALID_ARG, "lb_llm_sample: NULL argument");
  prof_.start();
  *token = sample_token(logits, model_->cfg.vocab, s, history, n_history, rng_, work_, keys_);
  prof_.mark(Phase::Decode, -1, kOpSampling, sampler_name(s), "scalar");
  return LB_OK;
}

lb_status Session::generate(const int32_t* prompt, int n_prompt, int max_new, const lb_llm_sampling& s,
                            const int32_t* stop, int n_stop, lb_llm_token_cb cb, void* user, int32_t* out,
                            int* n_out) {
  lb_status st = check_sampling(s);
  if (st != LB_OK) return st;
  if (n_prompt <= 0) return set_error(LB_ERR_INVALID_ARG, "lb_llm_generate: the prompt needs at least one token");
  if (max_new < 0 || (max_new > 0 && !out) || !n_out)
    return set_error(LB_ERR_INVALID_ARG, "lb_llm_generate: negative max_new or NULL output");
  if (n_stop < 0 || (n_stop > 0 && !stop)) return set_error(LB_ERR_INVALID_ARG, "lb_llm_generate: bad stop list");
  if ((st = check_tokens(prompt, n_prompt, "lb_llm_generate")) != LB_OK) return st;
  const int ctx = model_->cfg.context;
  // The last generated token is never fed back, so the sequence reaches n_prompt + max_new - 1.
  const int need = n_prompt + std::max(0, max_new - 1);
  const int room = kv_.h2o() ? ctx : std::min(ctx, kv_.capacity());
  if (need > room)
    return set_error(LB_ERR_CONTEXT, "prompt of %d tokens + %d new tokens exceeds the context length %d%s", n_prompt,
                     max_new, room, room < ctx ? " (KV cache capacity, max_context option)" : "");
  reset();
  rng_.seed(s.seed);
  *n_out = 0;
  if ((st = eval(prompt, n_prompt, logits_.data(), false)) != LB_OK) return st;
  hist_.assign(prompt, prompt + n_prompt);
  for (int i = 0; i < max_new; ++i) {
    prof_.start();
    const int32_t tok = sample_token(logits_.data(), model_->cfg.vocab, s, hist_.data(), int(hist_.size()), rng_,
                                     work_, keys_);
    prof_.mark(Phase::Decode, -1, kOpSampling, sampler_name(s), "scalar");
    out[i] = tok;
    *n_out = i + 1;
    hist_.push_back(tok);
    bool halt = cb && cb(tok, user) != 0;
    for (int k = 0; k < n_stop && !halt; ++k) halt = stop[k] == tok;
    if (halt || i + 1 == max_new) break;
    if ((st = eval(&tok, 1, logits_.data(), false)) != LB_OK) return st;
  }
  return LB_OK;
}

}  // namespace llm
}  // namespace lb
