// Persistent worker threads for one session (see executor_workers.h).
#include "executor_workers.h"

namespace lb {

Workers::Workers(int threads) : threads_(threads < 1 ? 1 : threads) {
  for (int i = 1; i < threads_; ++i) pool_.emplace_back([this, i] { loop(i); });
}

Workers::~Workers() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    ++generation_;
  }
  cv_.notify_all();
  for (auto& t : pool_) t.join();
}

void Workers::dispatch(Fn fn, void* ctx, int64_t n, int t) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    active_ = t;
    pending_.store(t - 1);
    ++generation_;
  }
  cv_.notify_all();
  fn(ctx, 0, 0, n / t);  // the caller takes share 0
  std::unique_lock<std::mutex> lk(mu_);
  done_cv_.wait(lk, [this] { return pending_.load() == 0; });
}

void Workers::loop(int tid) {
  uint64_t seen = 0;
  while (true) {
    Fn fn;
    void* ctx;
    int64_t n;
    int t;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return generation_ != seen; });
      seen = generation_;
      if (stop_) return;
      fn = fn_;
      ctx = ctx_;
      n = n_;
      t = active_;
    }
    if (tid < t) {
      fn(ctx, tid, n * tid / t, n * (tid + 1) / t);
      if (pending_.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_all();
      }
    }
  }
}

}  // namespace lb
