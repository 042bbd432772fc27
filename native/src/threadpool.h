// A persistent thread pool owned by the runtime (kernels never start threads). parallel_for hands
// out task indices; a task's result must not depend on which thread runs it, so the outputs of
// lowbit's ops are bitwise identical for any thread count.
//
// Behaviour on a loaded machine (a shared 2-core box is the test case): a worker spins for a
// bounded time (LOWBIT_SPIN_US, default 50 us) after a job, then sleeps on a condition
// variable; the caller wakes sleepers only when there are any. The caller runs tasks itself and
// never waits for a worker that has not joined the job: once every task is handed out the job is
// closed, so a descheduled worker costs nothing. The caller waits (spin, then block) only for
// workers that are inside the job, whose tasks it cannot take over.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace lb {

class ThreadPool {
 public:
  /// A pool of `threads` threads in total: the caller of parallel_for plus threads-1 workers.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Wakes sleeping workers ahead of a job the caller is about to open (they spin for it, up to
  /// LOWBIT_SPIN_US): the wake-up then overlaps the caller's work before that job. No-op when no
  /// worker sleeps or a job is running. On this VM the wake-up system call takes the caller 14-20 us
  /// and the worker's first task starts 30-40 us after it began (docs/kernels.md, session 14).
  void wake();

  /// Threads that run tasks (including the caller).
  int size() const { return int(workers_.size()) + 1; }

  /// Runs fn(task, thread) for task in [0, tasks) and returns when all are done. `thread` is in
  /// [0, size()): an index for per-thread scratch. Not reentrant: one parallel_for at a time
  /// per pool (a nested call runs serially on the calling thread).
  template <class F>
  void parallel_for(int64_t tasks, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    auto tramp = [](void* ctx, int64_t task, int thread) { (*static_cast<Fn*>(ctx))(task, thread); };
    run(tasks, tramp, const_cast<void*>(static_cast<const void*>(&fn)), false);
  }

  /// The same with an affinity: thread j first runs the tasks [tasks * j / size(), tasks * (j + 1)
  /// / size()) in order, then helps with the other threads' ranges (from their fronts). Task i of
  /// a job and task i of the next job of the same size land on the same thread whenever both
  /// threads are running, so the rows one op wrote are read by the same core in the next op (on a
  /// VM whose vCPUs may not share an L3, reading another core's fresh rows costs ~2x: session 10).
  /// Which thread runs a task still never changes a result.
  template <class F>
  void parallel_for_affine(int64_t tasks, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    auto tramp = [](void* ctx, int64_t task, int thread) { (*static_cast<Fn*>(ctx))(task, thread); };
    run(tasks, tramp, const_cast<void*>(static_cast<const void*>(&fn)), true);
  }

 private:
  using TaskFn = void (*)(void* ctx, int64_t task, int thread);
  void run(int64_t tasks, TaskFn fn, void* ctx, bool affine);
  void worker(int index);
  void drain(int thread);
  bool drain_range(int owner, int thread);

  // Affine jobs: thread j's range [ranges_[j].next, ranges_[j].end), taken from the front by its
  // owner and by helpers alike (fetch_add: each task handed out once).
  struct alignas(64) Range {
    std::atomic<int64_t> next{0};
    int64_t end = 0;
  };
  std::unique_ptr<Range[]> ranges_;
  bool affine_ = false;

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_cv_;
  int64_t spin_ns_ = 50000;            // bounded spin before blocking (LOWBIT_SPIN_US)
  // The current job (written under mu_ before it is opened and the generation bumped). A worker
  // joins a job only while it is open; the caller closes it when every task is handed out and
  // then waits for the workers that joined, never for one that has not run yet (on a loaded
  // machine a worker can stay descheduled for a whole time slice).
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  std::atomic<int64_t> tasks_{0};
  std::atomic<int64_t> next_{0};       // next task index to hand out
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> open_{false};      // workers may join the current job
  std::atomic<int> active_{0};         // workers inside the current job
  std::atomic<int> sleepers_{0};       // workers blocked on wake_ (changed under mu_)
  std::atomic<bool> caller_waiting_{false};  // the caller blocks on done_cv_
  std::atomic<bool> in_job_{false};
  std::atomic<bool> stop_{false};

  // Sleeping workers wake on a CPU other than the caller's (Linux): on this project's 2-vCPU VM a
  // worker woken from sleep was often queued on the caller's own vCPU while the other one idled
  // (the guest packs tasks onto few vCPUs when it is quiet), so a 2-thread call after an idle gap
  // ran on one core (docs/kernels.md, session 13). Before a wake-up, when the caller's CPU differs
  // from the one the workers were last kept off, each worker's affinity becomes base_cpus_ (the
  // creating thread's) minus the caller's CPU: one sched_setaffinity per worker, only then.
  void keep_off_caller_cpu();
  void allow_all_cpus();                  // undoes it (the caller is about to block)
  bool set_worker_cpus(int except);        // base_cpus_ minus `except` (-1: none) for every started worker;
                                           // false if one has not started
  std::unique_ptr<std::atomic<int>[]> tids_;  // each worker's kernel thread id (0 until it started)
  std::vector<int> base_cpus_;                 // CPUs the pool may use (empty: leave affinity alone)
  int off_cpu_ = -1;                           // the CPU the workers are kept off now
};

/// Runs fn(task, 0) serially when pool is null, else pool->parallel_for.
template <class F>
void parallel_for(ThreadPool* pool, int64_t tasks, F&& fn) {
  if (!pool || pool->size() == 1 || tasks <= 1) {
    for (int64_t t = 0; t < tasks; ++t) fn(t, 0);
  } else {
    pool->parallel_for(tasks, fn);
  }
}

/// Runs fn(task, 0) serially when pool is null, else pool->parallel_for_affine.
template <class F>
void parallel_for_affine(ThreadPool* pool, int64_t tasks, F&& fn) {
  if (!pool || pool->size() == 1 || tasks <= 1) {
    for (int64_t t = 0; t < tasks; ++t) fn(t, 0);
  } else {
    pool->parallel_for_affine(tasks, fn);
  }
}

/// Range split for the graph ops: [0, n) is cut into chunks of at least `grain` items (at most
/// `max_chunks` of them) and fn(thread, begin, end) runs once per chunk, thread j taking the
/// j-th share of the chunks first (parallel_for_affine). The cut depends only on
/// n, grain and max_chunks, never on the thread count, so a result that depended on where a
/// chunk starts would still be the same for 1 or 16 threads.
template <class F>
void parallel_ranges(ThreadPool* pool, int64_t n, int64_t grain, F&& fn, int64_t max_chunks = 64) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t chunks = (n + grain - 1) / grain;
  if (chunks > max_chunks) chunks = max_chunks;
  if (chunks < 1) chunks = 1;
  auto body = [&](int64_t c, int thread) { fn(thread, n * c / chunks, n * (c + 1) / chunks); };
  parallel_for_affine(pool, chunks, body);  // contiguous chunks stay on one thread from op to op
}

/// Guided split for memory-bound work (the GEMV): [0, n) is cut in rounds of size() chunks of
/// max(grain, remaining / (2 * size())) items each, so the chunks shrink towards the end and the
/// threads reach the closing barrier together (equal chunks left a thread idle at the barrier for
/// ~4.5% of a 2-thread decode-shaped GEMV sequence, these 1.3%: docs/kernels.md, session 9).
/// fn(thread, begin, end) runs once per chunk; returns the number of chunks. The cut depends on the
/// thread count: use it only where a result does not depend on where a chunk starts.
template <class F>
int64_t parallel_guided(ThreadPool* pool, int64_t n, int64_t grain, F&& fn) {
  if (n <= 0) return 0;
  const int64_t T = pool ? pool->size() : 1;
  if (T == 1) {
    fn(0, int64_t(0), n);
    return 1;
  }
  if (grain < 1) grain = 1;
  // Round r starts at `begin` with rem = n - begin items left: chunk c, min(T, ceil(rem / c)) tasks.
  auto chunk = [&](int64_t rem) { return std::max(grain, rem / (2 * T)); };
  auto round_tasks = [&](int64_t rem, int64_t c) { return std::min(T, (rem + c - 1) / c); };
  int64_t tasks = 0;
  for (int64_t begin = 0; begin < n; begin += chunk(n - begin) * T) tasks += round_tasks(n - begin, chunk(n - begin));
  auto body = [&](int64_t t, int thread) {
    int64_t begin = 0, first = 0;
    for (;;) {
      const int64_t rem = n - begin, c = chunk(rem), k = round_tasks(rem, c);
      if (t < first + k) {
        const int64_t b = begin + (t - first) * c;
        fn(thread, b, std::min(n, b + c));
        return;
      }
      first += k;
      begin += c * T;
    }
  };
  parallel_for(pool, tasks, body);
  return tasks;
}

}  // namespace lb
