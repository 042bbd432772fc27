// How the LLM runtime splits work across threads: the runtime's persistent lb::ThreadPool (the
// same pool the quantized linears run on), behind a small interface.
#pragma once
#include <memory>

#include "threadpool.h"

namespace lb {
namespace llm {

class Parallel {
 public:
  explicit Parallel(int threads) : pool_(threads > 1 ? new ThreadPool(threads) : nullptr) {}
  int threads() const { return pool_ ? pool_->size() : 1; }
  /// The pool for qlinear (null = run on the caller).
  ThreadPool* pool() { return pool_.get(); }
  /// Runs fn(task, thread) for every task; a task's result must not depend on its thread.
  /// A template (no std::function): the pool calls fn through one trampoline per region.
  template <class F>
  void run(int n_tasks, F&& fn) {
    parallel_for(pool_.get(), n_tasks, [&fn](int64_t t, int th) { fn(int(t), th); });
  }

 private:
  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace llm
}  // namespace lb
