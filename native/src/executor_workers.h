// Workers: the session's persistent threads. parallel_for splits [0, n) into one contiguous
// range per thread (static partition: the same split every run, so results never depend on
// timing). The calling thread works too. TODO(#3): switch to the kernels' threadpool.h when it lands.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace lb {

class Workers {
 public:
  explicit Workers(int threads);
  ~Workers();
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  int threads() const { return threads_; }

  /// Calls f(tid, begin, end) on each thread's share of [0, n); returns when all are done.
  template <class F>
  void parallel_for(int64_t n, F&& f) {
    if (n <= 0) return;
    const int t = int(n < threads_ ? n : threads_);
    if (t <= 1) {
      f(0, int64_t(0), n);
      return;
    }
    using Body = typename std::remove_reference<F>::type;
    auto tramp = [](void* ctx, int tid, int64_t b, int64_t e) { (*static_cast<Body*>(ctx))(tid, b, e); };
    dispatch(tramp, const_cast<void*>(static_cast<const void*>(&f)), n, t);
  }

 private:
  using Fn = void (*)(void*, int, int64_t, int64_t);
  void dispatch(Fn fn, void* ctx, int64_t n, int t);
  void loop(int tid);

  int threads_;
  std::vector<std::thread> pool_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  Fn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  int active_ = 0;
  std::atomic<int> pending_{0};
};

}  // namespace lb
