// The arena planner (plan_arena) on random lifetimes and sizes: values alive at the same op never share a
// byte, every offset is 64-byte aligned, the arena holds the largest live set, it is never larger than the
// greedy-by-size plan (the planner before session 16), and the same requests always give the same plan.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "arena.h"
#include "test.h"

namespace {

uint64_t next(uint64_t* s) {  // splitmix64
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

size_t al64(size_t b) { return (b + 63) / 64 * 64; }

// The planner before session 16: first fit, largest values first.
size_t greedy_by_size(const std::vector<lb::ArenaRequest>& req) {
  std::vector<size_t> order(req.size()), off(req.size()), placed;
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return req[a].bytes > req[b].bytes; });
  size_t total = 0;
  for (size_t i : order) {
    std::vector<std::pair<size_t, size_t>> busy;
    for (size_t j : placed)
      if (req[j].first <= req[i].last && req[i].first <= req[j].last) busy.emplace_back(off[j], off[j] + al64(req[j].bytes));
    std::sort(busy.begin(), busy.end());
    size_t o = 0;
    for (const auto& b : busy) {
      if (o + al64(req[i].bytes) <= b.first) break;
      o = std::max(o, b.second);
    }
    off[i] = o;
    total = std::max(total, o + al64(req[i].bytes));
    placed.push_back(i);
  }
  return total;
}

// A random graph of n_ops ops, each writing 1-2 values read up to `span` ops later (some to the end, as
// graph outputs), sizes from 1 byte to ~1 MB, in shuffled order.
std::vector<lb::ArenaRequest> random_requests(uint64_t* s, int n_ops, int span) {
  std::vector<lb::ArenaRequest> req;
  for (int k = 0; k < n_ops; ++k) {
    const int outs = 1 + int(next(s) % 2);
    for (int o = 0; o < outs; ++o) {
      size_t bytes = 1 + next(s) % 4096;
      if (next(s) % 4 == 0) bytes *= 1 + next(s) % 256;
      int last = k + int(next(s) % uint64_t(span + 1));
      if (next(s) % 16 == 0 || last > n_ops) last = n_ops;
      req.push_back({bytes, k, last});
    }
  }
  for (size_t i = req.size(); i > 1; --i) std::swap(req[i - 1], req[size_t(next(s) % i)]);
  return req;
}

}  // namespace

LB_TEST(runtime_arena_random_plans) {
  uint64_t s = 16;
  int smaller = 0;
  for (int round = 0; round < 400; ++round) {
    const int n_ops = 1 + int(next(&s) % 120);
    const auto req = random_requests(&s, n_ops, 1 + int(next(&s) % 12));
    std::vector<size_t> off;
    const size_t total = lb::plan_arena(req, &off);
    LB_EXPECT(off.size() == req.size());
    size_t lower = 0;  // the largest live set
    for (int k = 0; k <= n_ops; ++k) {
      size_t live = 0;
      for (const auto& r : req)
        if (r.first <= k && k <= r.last) live += al64(r.bytes);
      lower = std::max(lower, live);
    }
    LB_EXPECT_MSG(total >= lower, std::to_string(total) + " < " + std::to_string(lower));
    for (size_t i = 0; i < req.size(); ++i) {
      LB_EXPECT(off[i] % 64 == 0);
      LB_EXPECT(off[i] + al64(req[i].bytes) <= total);
      for (size_t j = i + 1; j < req.size(); ++j) {
        const bool live_together = req[i].first <= req[j].last && req[j].first <= req[i].last;
        const bool overlap = off[i] < off[j] + al64(req[j].bytes) && off[j] < off[i] + al64(req[i].bytes);
        LB_EXPECT_MSG(!(live_together && overlap),
                      "round " + std::to_string(round) + ": values " + std::to_string(i) + " and " + std::to_string(j) + " share bytes");
      }
    }
    const size_t old = greedy_by_size(req);
    LB_EXPECT_MSG(total <= old, std::to_string(total) + " > greedy by size " + std::to_string(old));
    smaller += total < old;
    std::vector<size_t> again;
    LB_EXPECT(lb::plan_arena(req, &again) == total && again == off);
  }
  LB_EXPECT_MSG(smaller >= 40, std::to_string(smaller) + " of 400 plans smaller than greedy by size");
}

LB_TEST(runtime_arena_edge_cases) {
  std::vector<size_t> off;
  LB_EXPECT(lb::plan_arena({}, &off) == 0 && off.empty());
  // zero-byte and 1-byte values at one op: the nonzero ones in distinct 64-byte slots
  LB_EXPECT(lb::plan_arena({{0, 0, 0}, {1, 0, 0}, {65, 0, 0}}, &off) == 192);
  LB_EXPECT(off[1] % 64 == 0 && off[2] % 64 == 0 && off[1] != off[2]);
  // a chain: each value dies at the next op, two buffers alternate
  LB_EXPECT(lb::plan_arena({{1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}, {1000, 3, 4}}, &off) == 2 * 1024);
  LB_EXPECT(off[0] == off[2] && off[1] == off[3] && off[0] != off[1]);
}
