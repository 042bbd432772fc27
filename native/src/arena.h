// Static memory plan: every intermediate value gets an offset in one arena, reusing the bytes
// of values whose lifetimes (first write .. last read, in op order) do not overlap.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lb {

struct ArenaRequest {
  size_t bytes;   ///< size of the value
  int first;      ///< index of the op that writes it
  int last;       ///< index of the last op that reads it (or the end, for graph outputs)
};

/// Assigns offsets (64-byte aligned); two values alive at the same op never share a byte. Greedy first
/// fit (each value at the lowest offset that does not collide with an already placed value alive at the
/// same time) in three orders, the smallest plan kept (the first order on ties): (0) by size (TFLite's
/// greedy-by-size; so never larger than that plan), (1) by lifetime (ops alive), then size, (2) by size x
/// lifetime. Deterministic (ties broken by request index). Returns the arena size; `offsets` gets one
/// entry per request.
size_t plan_arena(const std::vector<ArenaRequest>& req, std::vector<size_t>* offsets);

}  // namespace lb
