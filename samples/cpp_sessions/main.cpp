// cpp_sessions: one model, several sessions running at once from different threads (C++17 on the
// C API with RAII wrappers). Runs the package's golden inputs in every session and checks that all
// sessions agree bit for bit with the first, and with the golden outputs.
//   cpp_sessions MODEL.lbpk [SESSIONS] [RUNS]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/lowbit.h"

namespace {

void check(lb_status st, const char* what) {
  if (st != LB_OK) throw std::runtime_error(std::string(what) + ": " + lb_status_name(st) + ": " + lb_last_error());
}

struct ModelDel { void operator()(lb_model* m) const { lb_model_free(m); } };
struct SessionDel { void operator()(lb_session* s) const { lb_session_free(s); } };
using Model = std::unique_ptr<lb_model, ModelDel>;
using Session = std::unique_ptr<lb_session, SessionDel>;

size_t bytes_of(const lb_tensor_info& t) {
  static const size_t sz[] = {4, 2, 1, 1, 4, 8, 1, 2};
  size_t n = sz[t.dtype];
  for (int d = 0; d < t.ndim; ++d) n *= size_t(t.shape[d]);
  return n;
}

// The golden tensor names are in the manifest as "golden.in.K" / "golden.out.K", in input/output order.
std::vector<float> run_once(lb_model* m, lb_session* s) {
  for (int i = 0; i < lb_model_num_inputs(m); ++i) {
    lb_tensor_info decl, gt;
    const void* data = nullptr;
    check(lb_model_input(m, i, &decl), "input");
    check(lb_model_tensor(m, ("golden.in." + std::to_string(i)).c_str(), &gt, &data), "golden input");
    check(lb_session_set_input(s, decl.name, gt.dtype, gt.shape, gt.ndim, data, bytes_of(gt)), "set_input");
  }
  check(lb_session_run(s), "run");
  lb_tensor_info decl, out;
  const void* data = nullptr;
  check(lb_model_output(m, 0, &decl), "output");
  check(lb_session_get_output(s, decl.name, &out, &data), "get_output");
  const float* f = static_cast<const float*>(data);
  return std::vector<float>(f, f + bytes_of(out) / 4);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: cpp_sessions MODEL.lbpk [SESSIONS] [RUNS]\n");
    return 2;
  }
  const int nsess = argc > 2 ? std::atoi(argv[2]) : 3, runs = argc > 3 ? std::atoi(argv[3]) : 2;
  try {
    lb_model* raw = nullptr;
    check(lb_model_load(argv[1], LB_LOAD_LAZY, &raw), "load");
    Model model(raw);
    std::vector<Session> sessions;
    for (int i = 0; i < nsess; ++i) {
      lb_session_options o{1};
      lb_session* s = nullptr;
      check(lb_session_create(model.get(), &o, &s), "session");
      sessions.emplace_back(s);
    }
    std::vector<std::vector<float>> results(static_cast<size_t>(nsess));
    std::vector<std::string> errors(static_cast<size_t>(nsess));
    std::vector<std::thread> threads;
    for (int i = 0; i < nsess; ++i)
      threads.emplace_back([&, i] {
        try {
          for (int r = 0; r < runs; ++r) results[size_t(i)] = run_once(model.get(), sessions[size_t(i)].get());
        } catch (const std::exception& e) {
          errors[size_t(i)] = e.what();
        }
      });
    for (auto& t : threads) t.join();
    for (int i = 0; i < nsess; ++i)
      if (!errors[size_t(i)].empty()) throw std::runtime_error("session " + std::to_string(i) + ": " + errors[size_t(i)]);
    for (int i = 1; i < nsess; ++i)
      if (results[size_t(i)] != results[0]) throw std::runtime_error("sessions disagree");
    lb_tensor_info gt;
    const void* gd = nullptr;
    check(lb_model_tensor(model.get(), "golden.out.0", &gt, &gd), "golden output");
    const float* g = static_cast<const float*>(gd);
    double max_err = 0;
    for (size_t k = 0; k < results[0].size(); ++k) max_err = std::fmax(max_err, std::fabs(results[0][k] - g[k]));
    std::printf("%d sessions x %d runs agree; max abs error vs golden %.3g\n", nsess, runs, max_err);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpp_sessions: %s\n", e.what());
    return 1;
  }
}
