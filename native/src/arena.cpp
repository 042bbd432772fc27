// Greedy-by-size arena planner (see arena.h).
#include "arena.h"

#include <algorithm>

namespace lb {

size_t plan_arena(const std::vector<ArenaRequest>& req, std::vector<size_t>* offsets) {
  const size_t n = req.size();
  offsets->assign(n, 0);
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return req[a].bytes > req[b].bytes; });
  std::vector<size_t> placed;
  size_t total = 0;
  std::vector<std::pair<size_t, size_t>> busy;  // [begin, end) of live placed values
  for (size_t idx : order) {
    const ArenaRequest& r = req[idx];
    const size_t sz = (r.bytes + 63) / 64 * 64;
    busy.clear();
    for (size_t j : placed) {
      const ArenaRequest& q = req[j];
      if (q.first <= r.last && r.first <= q.last) busy.emplace_back((*offsets)[j], (*offsets)[j] + (q.bytes + 63) / 64 * 64);
    }
    std::sort(busy.begin(), busy.end());
    size_t off = 0;
    for (const auto& b : busy) {
      if (off + sz <= b.first) break;
      off = std::max(off, b.second);
    }
    (*offsets)[idx] = off;
    total = std::max(total, off + sz);
    placed.push_back(idx);
  }
  return total;
}

}  // namespace lb
