// ThreadPool (see threadpool.h): bounded spin, then block; the caller never waits for a worker
// that has not joined the job.
#include "threadpool.h"

#include <chrono>
#include <cstdlib>
#if defined(__linux__)
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace lb {

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
// Spins until pred() or `budget_ns` passed (the clock is read every 32 pauses); returns pred().
template <class P>
bool spin_until(P pred, int64_t budget_ns) {
  if (pred()) return true;
  if (budget_ns <= 0) return false;
  const int64_t end = now_ns() + budget_ns;
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      cpu_relax();
      if (pred()) return true;
    }
    if (now_ns() >= end) return pred();
  }
}
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (const char* s = std::getenv("LOWBIT_SPIN_US")) {
    char* end = nullptr;
    const long v = std::strtol(s, &end, 10);
    if (end != s && v >= 0 && v <= 100000) spin_ns_ = int64_t(v) * 1000;
  }
  ranges_.reset(new Range[threads > 1 ? threads : 1]);
  tids_.reset(new std::atomic<int>[threads > 1 ? threads : 1]);
  for (int i = 0; i < (threads > 1 ? threads : 1); ++i) tids_[i].store(0, std::memory_order_relaxed);
#if defined(__linux__)
  cpu_set_t set;
  if (threads > 1 && sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 1)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) base_cpus_.push_back(c);
#endif
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

// Runs what is left of `owner`'s range; false when it was already empty.
bool ThreadPool::drain_range(int owner, int thread) {
  Range& r = ranges_[owner];
  bool ran = false;
  for (;;) {
    const int64_t t = r.next.fetch_add(1, std::memory_order_relaxed);
    if (t >= r.end) return ran;
    fn_(ctx_, t, thread);
    ran = true;
  }
}

void ThreadPool::drain(int thread) {
  if (affine_) {  // own range first, then help the others (the caller ends with every range empty)
    const int n = size();
    drain_range(thread, thread);
    for (int i = 1; i < n; ++i) drain_range((thread + i) % n, thread);
    return;
  }
  const int64_t tasks = tasks_.load(std::memory_order_acquire);
  for (;;) {
    const int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= tasks) break;
    fn_(ctx_, t, thread);
  }
}

void ThreadPool::run(int64_t tasks, TaskFn fn, void* ctx, bool affine) {
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
    affine_ = affine;
    if (affine) {
      const int n = size();
      for (int j = 0; j < n; ++j) {
        ranges_[j].next.store(tasks * j / n, std::memory_order_relaxed);
        ranges_[j].end = tasks * (j + 1) / n;
      }
    }
    open_.store(true, std::memory_order_seq_cst);
    generation_.fetch_add(1, std::memory_order_seq_cst);
  }
  // A sleeper raised sleepers_ under mu_ before it checked the generation, so it is counted here
  // (no lost wake-up); spinning workers need no system call.
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    keep_off_caller_cpu();
    wake_.notify_all();
  }
  drain(0);
  // Every task is handed out: close the job, then wait for the workers that joined it (their
  // last tasks may still run). Dekker-style: close (seq_cst) before reading active_, and
  // workers raise active_ (seq_cst) before reading open_.
  open_.store(false, std::memory_order_seq_cst);
  auto idle = [this] { return active_.load(std::memory_order_seq_cst) == 0; };
  if (!spin_until(idle, spin_ns_ < 20000 ? spin_ns_ : 20000)) {
    // A joined worker is still in a task (or was preempted inside one): block until the last
    // one leaves. It sees caller_waiting_ (or we see active_ == 0): Dekker again.
    // While the caller sleeps its CPU is free: let a worker that was preempted there move to it
    // (the next wake-up keeps the workers off the caller's CPU again).
    allow_all_cpus();
    std::unique_lock<std::mutex> lk(mu_);
    caller_waiting_.store(true, std::memory_order_seq_cst);
    done_cv_.wait(lk, idle);
    caller_waiting_.store(false, std::memory_order_relaxed);
  }
  in_job_.store(false, std::memory_order_release);
}

void ThreadPool::wake() {
  if (workers_.empty() || sleepers_.load(std::memory_order_seq_cst) == 0 || in_job_.load(std::memory_order_acquire))
    return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    generation_.fetch_add(1, std::memory_order_seq_cst);  // no job is open: a woken worker spins for the next one
  }
  keep_off_caller_cpu();
  wake_.notify_all();
}

void ThreadPool::keep_off_caller_cpu() {
#if defined(__linux__)
  if (base_cpus_.empty()) return;
  const int cpu = sched_getcpu();
  if (cpu < 0 || cpu == off_cpu_) return;
  if (set_worker_cpus(cpu)) off_cpu_ = cpu;  // a caller outside the pool's CPUs leaves the workers all of them
#endif
}

void ThreadPool::allow_all_cpus() {
#if defined(__linux__)
  if (base_cpus_.empty() || off_cpu_ < 0) return;
  set_worker_cpus(-1);
  off_cpu_ = -1;
#endif
}

bool ThreadPool::set_worker_cpus(int except) {
  bool all = true;  // every worker has started (else: try again at the next wake-up)
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : base_cpus_)
    if (c != except) CPU_SET(c, &set);
  for (size_t i = 1; i <= workers_.size(); ++i) {
    const int tid = tids_[i].load(std::memory_order_acquire);
    if (tid > 0) sched_setaffinity(tid, sizeof set, &set);  // a failure only leaves the worker where it was
    else all = false;
  }
#else
  (void)except;
#endif
  return all;
}

void ThreadPool::worker(int index) {
#if defined(__linux__)
  tids_[index].store(int(syscall(SYS_gettid)), std::memory_order_release);
#endif
  uint64_t seen = 0;
  for (;;) {
    auto fresh = [&] { return generation_.load(std::memory_order_acquire) != seen; };
    if (!spin_until(fresh, spin_ns_)) {
      std::unique_lock<std::mutex> lk(mu_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      wake_.wait(lk, fresh);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    active_.fetch_add(1, std::memory_order_seq_cst);
    if (open_.load(std::memory_order_seq_cst)) drain(index);  // else: the job is over, do not touch it
    if (active_.fetch_sub(1, std::memory_order_seq_cst) == 1 && caller_waiting_.load(std::memory_order_seq_cst)) {
      std::lock_guard<std::mutex> lk(mu_);  // the caller is inside wait() or before its predicate check
      done_cv_.notify_one();
    }
  }
}

}  // namespace lb
