// A persistent thread pool owned by the runtime (kernels never start threads). parallel_for hands
// out task indices; a task's result must not depend on which thread runs it, so the outputs of
// lowbit's ops are bitwise identical for any thread count.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
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

  /// Threads that run tasks (including the caller).
  int size() const { return int(workers_.size()) + 1; }

  /// Runs fn(task, thread) for task in [0, tasks) and returns when all are done. `thread` is in
  /// [0, size()): an index for per-thread scratch. Not reentrant: one parallel_for at a time
  /// per pool (a nested call runs serially on the calling thread).
  template <class F>
  void parallel_for(int64_t tasks, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    auto tramp = [](void* ctx, int64_t task, int thread) { (*static_cast<Fn*>(ctx))(task, thread); };
    run(tasks, tramp, const_cast<void*>(static_cast<const void*>(&fn)));
  }

 private:
  using TaskFn = void (*)(void* ctx, int64_t task, int thread);
  void run(int64_t tasks, TaskFn fn, void* ctx);
  void worker(int index);
  void drain(int thread);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_cv_;
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
  std::atomic<bool> in_job_{false};
  std::atomic<bool> stop_{false};
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

}  // namespace lb
