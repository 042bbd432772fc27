// ThreadPool: workers spin briefly on the job generation (GEMV calls are short, and waking a
// sleeping thread costs tens of microseconds), then sleep on a condition variable.
#include "threadpool.h"

namespace lb {

namespace {
constexpr int kSpinIters = 20000;
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain(int thread) {
  const int64_t tasks = tasks_.load(std::memory_order_acquire);
  for (;;) {
    const int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= tasks) break;
    fn_(ctx_, t, thread);
  }
}

void ThreadPool::run(int64_t tasks, TaskFn fn, void* ctx) {
  if (tasks <= 0) return;
  bool expected = false;
  if (workers_.empty() || tasks == 1 || !in_job_.compare_exchange_strong(expected, true)) {
    for (int64_t t = 0; t < tasks; ++t) fn(ctx, t, 0);  // serial, or nested inside a task
    return;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    fn_ = fn;
    ctx_ = ctx;
    tasks_.store(tasks, std::memory_order_relaxed);
    next_.store(0, std::memory_order_relaxed);
    open_.store(true, std::memory_order_seq_cst);
    generation_.fetch_add(1, std::memory_order_seq_cst);
  }
  wake_.notify_all();
  drain(0);
  // Every task is handed out: close the job, then wait for the workers that joined it (their
  // last tasks may still run). Dekker-style: close (seq_cst) before reading active_, and
  // workers raise active_ (seq_cst) before reading open_.
  open_.store(false, std::memory_order_seq_cst);
  for (int spin = 0; active_.load(std::memory_order_seq_cst) != 0; ++spin) {
    if (spin < kSpinIters) {
      cpu_relax();
    } else {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait_for(lk, std::chrono::microseconds(200));
    }
  }
  in_job_.store(false, std::memory_order_release);
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIters; ++spin) {
      cpu_relax();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lk(mu_);
      wake_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load(std::memory_order_acquire)) return;
    active_.fetch_add(1, std::memory_order_seq_cst);
    if (open_.load(std::memory_order_seq_cst)) drain(index);  // else: the job is over, do not touch it
    active_.fetch_sub(1, std::memory_order_seq_cst);
    done_cv_.notify_one();
  }
}

}  // namespace lb
