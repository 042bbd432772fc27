// ThreadPool under stress: every task runs exactly once, jobs back to back and after the workers
// went to sleep, nested calls run serially, a pool is destroyed while its workers sleep or spin,
// and parallel_ranges cuts [0, n) the same way for any pool size.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "test.h"
#include "threadpool.h"

LB_TEST(runtime_threadpool_every_task_once) {
  for (int threads : {2, 3, 5}) {
    lb::ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(997);
    for (int round = 0; round < 300; ++round) {
      const int64_t tasks = 1 + (round * 37) % 997;
      for (int64_t t = 0; t < tasks; ++t) hits[size_t(t)].store(0);
      std::atomic<int> bad_thread{0};
      pool.parallel_for(tasks, [&](int64_t t, int th) {
        if (th < 0 || th >= pool.size()) bad_thread.fetch_add(1);
        hits[size_t(t)].fetch_add(1);
      });
      LB_EXPECT(bad_thread.load() == 0);
      for (int64_t t = 0; t < tasks; ++t) LB_EXPECT_MSG(hits[size_t(t)].load() == 1, "task " + std::to_string(t));
      if (round % 100 == 99) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // workers go to sleep
    }
  }
}

LB_TEST(runtime_threadpool_nested_runs_serially) {
  lb::ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  pool.parallel_for(8, [&](int64_t t, int) {
    pool.parallel_for(4, [&](int64_t u, int th) {
      LB_EXPECT(th == 0);
      sum.fetch_add(t * 4 + u);
    });
  });
  LB_EXPECT(sum.load() == 31 * 32 / 2);
}

LB_TEST(runtime_threadpool_slow_task_and_no_spin) {
  // A worker stuck in a long task: the caller blocks until it leaves (no spin budget at all).
  setenv("LOWBIT_SPIN_US", "0", 1);
  {
    lb::ThreadPool pool(2);
    for (int round = 0; round < 50; ++round) {
      std::atomic<int> done{0};
      pool.parallel_for(2, [&](int64_t t, int) {
        if (t == 1) std::this_thread::sleep_for(std::chrono::microseconds(300));
        done.fetch_add(1);
      });
      LB_EXPECT(done.load() == 2);
    }
  }
  unsetenv("LOWBIT_SPIN_US");
  for (int k = 0; k < 20; ++k) {  // destroyed right after a job, while workers spin
    lb::ThreadPool pool(4);
    std::atomic<int> n{0};
    pool.parallel_for(16, [&](int64_t, int) { n.fetch_add(1); });
    LB_EXPECT(n.load() == 16);
  }
}

LB_TEST(runtime_threadpool_ranges_do_not_depend_on_threads) {
  auto cuts = [](lb::ThreadPool* pool, int64_t n, int64_t grain) {
    std::vector<int64_t> begin_of(size_t(n) + 1, -1);
    lb::parallel_ranges(pool, n, grain, [&](int, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) begin_of[size_t(i)] = b;
    });
    return begin_of;
  };
  lb::ThreadPool p2(2), p4(4);
  for (int64_t n : {1, 7, 64, 1000, 100000})
    for (int64_t grain : {1, 3, 4096}) {
      const auto ref = cuts(nullptr, n, grain);
      for (int64_t i = 0; i < n; ++i) LB_EXPECT(ref[size_t(i)] >= 0);
      LB_EXPECT(cuts(&p2, n, grain) == ref);
      LB_EXPECT(cuts(&p4, n, grain) == ref);
    }
}
