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

/// Assigns offsets (64-byte aligned): largest values first, each at the lowest offset that does
/// not collide with an already placed value alive at the same time (the greedy-by-size plan of
/// TFLite's arena planner). Returns the arena size; `offsets` gets one entry per request.
size_t plan_arena(const std::vector<ArenaRequest>& req, std::vector<size_t>* offsets);

}  // namespace lb
