// Arena planner: greedy first fit in three orders, the smallest plan kept (see arena.h).
#include "arena.h"

#include <algorithm>
#include <utility>

namespace lb {

namespace {

size_t al64(size_t b) { return (b + 63) / 64 * 64; }

// First fit in `order`; returns the arena size, or stops early once it reaches `limit` (the result is then
// >= limit and `offsets` partial).
size_t place(const std::vector<ArenaRequest>& req, const std::vector<size_t>& order, size_t limit,
             std::vector<size_t>* offsets, std::vector<size_t>* placed, std::vector<std::pair<size_t, size_t>>* busy) {
  placed->clear();
  size_t total = 0;
  for (size_t idx : order) {
    const ArenaRequest& r = req[idx];
    const size_t sz = al64(r.bytes);
    busy->clear();
    for (size_t j : *placed) {
      const ArenaRequest& q = req[j];
      if (q.first <= r.last && r.first <= q.last) busy->emplace_back((*offsets)[j], (*offsets)[j] + al64(q.bytes));
    }
    std::sort(busy->begin(), busy->end());
    size_t off = 0;
    for (const auto& b : *busy) {
      if (off + sz <= b.first) break;
      off = std::max(off, b.second);
    }
    (*offsets)[idx] = off;
    total = std::max(total, off + sz);
    if (total >= limit) return total;
    placed->push_back(idx);
  }
  return total;
}

}  // namespace

size_t plan_arena(const std::vector<ArenaRequest>& req, std::vector<size_t>* offsets) {
  const size_t n = req.size();
  offsets->assign(n, 0);
  std::vector<size_t> order(n), offs(n), placed;
  std::vector<std::pair<size_t, size_t>> busy;
  placed.reserve(n);
  const auto life = [&](size_t i) { return size_t(req[i].last - req[i].first + 1); };
  size_t best = ~size_t(0);
  for (int o = 0; o < 3; ++o) {
    for (size_t i = 0; i < n; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const size_t sa = req[a].bytes, sb = req[b].bytes;  // (order 0 is exactly the greedy-by-size plan)
      if (o == 0) return sa > sb;
      if (o == 1) return life(a) != life(b) ? life(a) > life(b) : sa > sb;
      return sa * life(a) > sb * life(b);
    });
    const size_t total = place(req, order, best, &offs, &placed, &busy);
    if (total < best) {
      best = total;
      offsets->swap(offs);
      offs.assign(n, 0);
    }
  }
  return best;
}

}  // namespace lb
