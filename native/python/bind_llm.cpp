// Bindings of the lb_llm_* C API (lowbit_llm.h) as lowbit._native.LlmRuntime: no logic here.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "bindings.h"
#include "lowbit/lowbit_llm.h"

namespace py = pybind11;

namespace {

using I32Array = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

class LlmRuntime {
 public:
  LlmRuntime(const std::string& path, int threads, int kv_type, int max_context, int prefill_chunk, int h2o_budget,
             int h2o_recent, bool verify, bool copy_weights) {
    lb_llm_options o;
    lb_llm_options_default(&o);
    o.threads = threads;
    o.kv_type = kv_type;
    o.max_context = max_context;
    o.prefill_chunk = prefill_chunk;
    o.h2o_budget = h2o_budget;
    o.h2o_recent = h2o_recent;
    o.verify = verify ? 1 : 0;
    o.copy_weights = copy_weights ? 1 : 0;
    lb_status st;
    {
      py::gil_scoped_release rel;
      st = lb_llm_open(path.c_str(), &o, &h_);
    }
    lbpy::check(st);
    lbpy::check(lb_llm_get_info(h_, &info_));
  }
  ~LlmRuntime() { lb_llm_free(h_); }

  py::dict info() const {
    py::dict d;
    d["vocab_size"] = info_.vocab_size;
    d["context_length"] = info_.context_length;
    d["kv_capacity"] = info_.kv_capacity;
    d["num_layers"] = info_.num_layers;
    d["hidden_size"] = info_.hidden_size;
    d["num_heads"] = info_.num_heads;
    d["num_kv_heads"] = info_.num_kv_heads;
    d["head_dim"] = info_.head_dim;
    d["bos_token_id"] = info_.bos_token_id;
    d["eos_token_ids"] = std::vector<int32_t>(info_.eos_token_ids, info_.eos_token_ids + info_.n_eos);
    d["weight_bytes"] = info_.weight_bytes;
    d["kv_bytes"] = info_.kv_bytes;
    d["copied_bytes"] = info_.copied_bytes;
    return d;
  }
  std::string manifest() const { return lb_llm_manifest(h_); }
  void reset() { lbpy::check(lb_llm_reset(h_)); }
  int position() const { return lb_llm_position(h_); }

  py::array_t<float> prefill(I32Array tokens) {
    py::array_t<float> logits(info_.vocab_size);
    lb_status st;
    {
      py::gil_scoped_release rel;
      st = lb_llm_prefill(h_, tokens.data(), int32_t(tokens.size()), logits.mutable_data());
    }
    lbpy::check(st);
    return logits;
  }
  py::array_t<float> eval_all(I32Array tokens) {
    py::array_t<float> logits({py::ssize_t(tokens.size()), py::ssize_t(info_.vocab_size)});
    lb_status st;
    {
      py::gil_scoped_release rel;
      st = lb_llm_eval_all(h_, tokens.data(), int32_t(tokens.size()), logits.mutable_data());
    }
    lbpy::check(st);
    return logits;
  }
  py::array_t<float> decode(int32_t token) {
    py::array_t<float> logits(info_.vocab_size);
    lb_status st;
    {
      py::gil_scoped_release rel;
      st = lb_llm_decode(h_, token, logits.mutable_data());
    }
    lbpy::check(st);
    return logits;
  }
  /// decode + the runtime's greedy sampler in one call: the logits stay in a buffer this object reuses
  /// (hot in cache for the argmax) and no array goes back to Python. What an app's greedy loop costs.
  int32_t decode_greedy(int32_t token) {
    logits_.resize(size_t(info_.vocab_size));
    lb_llm_sampling greedy;
    lb_llm_sampling_default(&greedy);
    greedy.temperature = 0.f;
    int32_t tok = -1;
    lb_status st;
    {
      py::gil_scoped_release rel;
      st = lb_llm_decode(h_, token, logits_.data());
      if (st == LB_OK) st = lb_llm_sample(h_, logits_.data(), &greedy, nullptr, 0, &tok);
    }
    lbpy::check(st);
    return tok;
  }
  int32_t sample(F32Array logits, float temperature, int top_k, float top_p, float rep, I32Array history) {
    if (logits.size() != info_.vocab_size) throw py::value_error("sample: logits must have vocab_size entries");
    lb_llm_sampling s{temperature, top_k, top_p, rep, 0};
    int32_t tok = -1;
    lbpy::check(lb_llm_sample(h_, logits.data(), &s, history.data(), int32_t(history.size()), &tok));
    return tok;
  }

  struct CbState {
    py::object fn;
    bool failed = false;
    std::unique_ptr<py::error_already_set> err;
  };
  static int trampoline(int32_t tok, void* user) {
    auto* st = static_cast<CbState*>(user);
    py::gil_scoped_acquire gil;
    try {
      py::object r = st->fn(tok);
      return (!r.is_none() && r.cast<bool>() == false) ? 1 : 0;  // returning False stops
    } catch (py::error_already_set& e) {
      st->failed = true;
      st->err.reset(new py::error_already_set(std::move(e)));
      return 1;
    }
  }

  std::vector<int32_t> generate(I32Array prompt, int max_new, float temperature, int top_k, float top_p, float rep,
                                uint64_t seed, std::vector<int32_t> stop, py::object callback) {
    lb_llm_sampling s{temperature, top_k, top_p, rep, seed};
    std::vector<int32_t> out(size_t(std::max(max_new, 0)) + 1);
    int32_t n = 0;
    CbState cb{callback, false, nullptr};
    lb_status st;
    {
      py::gil_scoped_release rel;
      st = lb_llm_generate(h_, prompt.data(), int32_t(prompt.size()), max_new, &s, stop.data(), int32_t(stop.size()),
                           callback.is_none() ? nullptr : &LlmRuntime::trampoline, &cb, out.data(), &n);
    }
    if (cb.failed) throw std::move(*cb.err);
    lbpy::check(st);
    out.resize(size_t(n));
    return out;
  }
  py::dict stats() const {
    lb_llm_stats s;
    lbpy::check(lb_llm_get_stats(h_, &s));
    py::dict d;
    d["prefill_tokens"] = s.prefill_tokens;
    d["prefill_seconds"] = s.prefill_seconds;
    d["decode_tokens"] = s.decode_tokens;
    d["decode_seconds"] = s.decode_seconds;
    return d;
  }
  void profile_enable(bool on) { lbpy::check(lb_llm_profile_enable(h_, on ? 1 : 0)); }
  double measure_read(int repeats) {
    double g = 0.0;
    lb_status st;
    {
      py::gil_scoped_release rel;
      st = lb_llm_measure_read(h_, repeats, &g);
    }
    lbpy::check(st);
    return g;
  }
  py::list profile() const {
    int32_t n = 0;
    lbpy::check(lb_llm_profile_get(h_, nullptr, 0, &n));
    std::vector<lb_llm_prof_entry> e(size_t(n) + 1);
    lbpy::check(lb_llm_profile_get(h_, e.data(), n, &n));
    py::list out;
    for (int32_t i = 0; i < n; ++i) {
      py::dict d;
      d["phase"] = e[i].phase == 0 ? "prefill" : "decode";
      d["layer"] = e[i].layer;
      d["op"] = e[i].op;
      d["kernel"] = e[i].kernel;
      d["isa"] = e[i].isa;
      d["calls"] = e[i].calls;
      d["ns"] = e[i].ns;
      d["weight_bytes"] = e[i].weight_bytes;
      out.append(d);
    }
    return out;
  }

 private:
  lb_llm_t h_ = nullptr;
  lb_llm_info info_{};
  std::vector<float> logits_;  // decode_greedy's logits
};

void bind_llm(py::module_& m) {
  py::class_<LlmRuntime>(m, "LlmRuntime", "native decoder-LLM session (lb_llm_*)")
      .def(py::init<const std::string&, int, int, int, int, int, int, bool, bool>(), py::arg("path"),
           py::arg("threads") = 0, py::arg("kv_type") = 0, py::arg("max_context") = 0, py::arg("prefill_chunk") = 0,
           py::arg("h2o_budget") = 0, py::arg("h2o_recent") = 0, py::arg("verify") = true,
           py::arg("copy_weights") = true)
      .def("info", &LlmRuntime::info)
      .def("manifest", &LlmRuntime::manifest)
      .def("reset", &LlmRuntime::reset)
      .def_property_readonly("position", &LlmRuntime::position)
      .def("prefill", &LlmRuntime::prefill, py::arg("tokens"))
      .def("eval_all", &LlmRuntime::eval_all, py::arg("tokens"))
      .def("decode", &LlmRuntime::decode, py::arg("token"))
      .def("decode_greedy", &LlmRuntime::decode_greedy, py::arg("token"))
      .def("sample", &LlmRuntime::sample, py::arg("logits"), py::arg("temperature") = 0.f, py::arg("top_k") = 0,
           py::arg("top_p") = 1.f, py::arg("repetition_penalty") = 1.f, py::arg("history") = I32Array(0))
      .def("generate", &LlmRuntime::generate, py::arg("prompt"), py::arg("max_new_tokens"),
           py::arg("temperature") = 0.f, py::arg("top_k") = 0, py::arg("top_p") = 1.f,
           py::arg("repetition_penalty") = 1.f, py::arg("seed") = 0, py::arg("stop") = std::vector<int32_t>(),
           py::arg("callback") = py::none())
      .def("stats", &LlmRuntime::stats)
      .def("profile_enable", &LlmRuntime::profile_enable, py::arg("on"))
      .def("measure_read", &LlmRuntime::measure_read, py::arg("repeats") = 5)
      .def("profile", &LlmRuntime::profile);
}

}  // namespace

LB_PYBIND_REGISTER(llm, bind_llm);
