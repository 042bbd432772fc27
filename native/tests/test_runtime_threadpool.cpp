// ThreadPool under stress: every task runs exactly once, jobs back to back and after the workers
// went to sleep, nested calls run serially, a pool is destroyed while its workers sleep or spin,
// parallel_ranges cuts [0, n) the same way for any pool size, parallel_guided covers it once, a
// wake-up ahead of a job (or of none) is safe, and a worker woken from sleep is kept off the
// caller's CPU (Linux).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>
#include <thread>
#include <vector>
#if defined(__linux__)
#include <sched.h>
#endif

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

LB_TEST(runtime_threadpool_affine_every_task_once) {
  // parallel_for_affine: every task once (owners and helpers take from the same counters), on
  // jobs of fewer tasks than threads too, and mixed with plain jobs on the same pool.
  for (int threads : {2, 3, 5}) {
    lb::ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(501);
    for (int round = 0; round < 300; ++round) {
      const int64_t tasks = 1 + (round * 53) % 501;
      for (int64_t t = 0; t < tasks; ++t) hits[size_t(t)].store(0);
      std::atomic<int> bad_thread{0};
      auto fn = [&](int64_t t, int th) {
        if (th < 0 || th >= pool.size()) bad_thread.fetch_add(1);
        hits[size_t(t)].fetch_add(1);
      };
      if (round % 3 == 2) pool.parallel_for(tasks, fn);
      else pool.parallel_for_affine(tasks, fn);
      LB_EXPECT(bad_thread.load() == 0);
      for (int64_t t = 0; t < tasks; ++t) LB_EXPECT_MSG(hits[size_t(t)].load() == 1, "task " + std::to_string(t));
      if (round % 100 == 99) std::this_thread::sleep_for(std::chrono::milliseconds(2));
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

LB_TEST(runtime_threadpool_wake_before_a_job) {
  // wake() with sleeping workers, then a job (each task once), then no job at all (the woken workers
  // spin, sleep again, and the next wake-up still reaches them); a no-op inside a job (nested) and
  // on a pool without workers; a pool destroyed right after a wake-up.
  lb::ThreadPool one(1);
  one.wake();
  for (int threads : {2, 3}) {
    lb::ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(64);
    for (int round = 0; round < 40; ++round) {
      std::this_thread::sleep_for(std::chrono::microseconds(round % 4 == 0 ? 2000 : 100));  // workers asleep
      pool.wake();
      if (round % 5 == 4) continue;  // a wake-up with no job after it
      for (auto& h : hits) h.store(0);
      pool.parallel_for(64, [&](int64_t t, int) {
        if (t == 0) pool.wake();  // inside a job: nothing
        hits[size_t(t)].fetch_add(1);
        const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
        while (std::chrono::steady_clock::now() < end) {
        }
      });
      for (int64_t t = 0; t < 64; ++t) LB_EXPECT_MSG(hits[size_t(t)].load() == 1, "task " + std::to_string(t));
    }
  }
  for (int k = 0; k < 20; ++k) {
    lb::ThreadPool pool(3);
    std::this_thread::sleep_for(std::chrono::microseconds(300));
    pool.wake();
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

// parallel_guided covers [0, n) exactly once in chunks of at least `grain` (but the last), the
// chunks never grow from one task to the next, and it returns the number of chunks it ran.
LB_TEST(runtime_threadpool_guided_covers_once_and_shrinks) {
  for (int threads : {1, 2, 3, 8}) {
    lb::ThreadPool pool(threads);
    for (int64_t n : {1, 2, 3, 7, 16, 100, 256, 1408, 4000}) {
      for (int64_t grain : {1, 2, 5}) {
        std::vector<std::atomic<int>> hits(size_t(n) + 1);
        std::vector<std::pair<int64_t, int64_t>> chunks;
        std::mutex mu;
        const int64_t count = lb::parallel_guided(&pool, n, grain, [&](int th, int64_t b, int64_t e) {
          LB_EXPECT(th >= 0 && th < pool.size());
          std::lock_guard<std::mutex> lk(mu);
          chunks.emplace_back(b, e);
          for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
        });
        const std::string where = "threads " + std::to_string(threads) + " n " + std::to_string(n);
        LB_EXPECT_MSG(count == int64_t(chunks.size()), where);
        for (int64_t i = 0; i < n; ++i) LB_EXPECT_MSG(hits[size_t(i)].load() == 1, where + " item " + std::to_string(i));
        std::sort(chunks.begin(), chunks.end());
        for (size_t c = 0; c < chunks.size(); ++c) {
          const int64_t len = chunks[c].second - chunks[c].first;
          LB_EXPECT_MSG(len >= 1 && (len >= grain || chunks[c].second == n), where);
          if (c + 1 < chunks.size() && chunks[c + 1].second < n)
            LB_EXPECT_MSG(chunks[c + 1].second - chunks[c + 1].first <= len, where + " chunk grew");
        }
        if (threads > 1 && n >= 8 * threads * grain) LB_EXPECT_MSG(count > threads, where);  // not one chunk per thread
      }
    }
  }
}

#if defined(__linux__)
// A worker woken from sleep is kept off the caller's CPU: inside its task its affinity is the
// pool's CPUs minus the CPU the caller ran on when it woke it (the caller may migrate in between,
// so one clean try of several is required), and never wider than the pool's CPUs.
LB_TEST(runtime_threadpool_woken_worker_off_caller_cpu) {
  cpu_set_t base;
  LB_EXPECT(sched_getaffinity(0, sizeof base, &base) == 0);
  if (CPU_COUNT(&base) < 2) return;  // one CPU: affinity is left alone
  lb::ThreadPool pool(2);
  int clean = 0;
  for (int attempt = 0; attempt < 20 && clean == 0; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the worker blocks (spin budget 50 us)
    const int caller_cpu = sched_getcpu();
    std::atomic<bool> worker_ran{false};
    cpu_set_t seen;
    CPU_ZERO(&seen);
    pool.parallel_for(64, [&](int64_t, int th) {
      if (th != 0 && !worker_ran.exchange(true)) sched_getaffinity(0, sizeof seen, &seen);
      const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
      while (std::chrono::steady_clock::now() < end) {
      }
    });
    if (!worker_ran.load()) continue;
    cpu_set_t outside;
    CPU_XOR(&outside, &seen, &base);
    CPU_AND(&outside, &outside, &seen);
    LB_EXPECT(CPU_COUNT(&outside) == 0);  // a subset of the pool's CPUs
    LB_EXPECT(CPU_COUNT(&seen) >= 1);
    if (sched_getcpu() == caller_cpu && !CPU_ISSET(caller_cpu, &seen)) ++clean;
  }
  LB_EXPECT_MSG(clean > 0, "the woken worker's affinity never excluded the caller's CPU");
}
#endif
