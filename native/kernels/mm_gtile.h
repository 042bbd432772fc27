// The activation layout of the AVX-512 VNNI group GEMM (lb::avx512::ugemm, mm_avx512.h: w4a8 Q4 / Q4A,
// t2a8 T2, codebook C4): rows in tiles of 8 with per-group metadata. Plain C++ (no intrinsics), so
// that qlinear can lay out a call's rows once for every column task (lb_mm_args::xg / xgm) and the
// kernel, given none, lays out its own rows with the same function: the same tiles either way.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernel_types.h"

namespace lb {
namespace layout {

/// Rows per tile (the GEMM's register tile).
constexpr int kGroupTileRows = 8;

/// One tile's metadata of one group: the 8 rows' scales, int32 start values and float sums side by
/// side (one embedded broadcast each in the kernel).
struct GroupTileMeta {
  float d[kGroupTileRows];    // lb_q8_meta::d
  int32_t o[kGroupTileRows];  // start of the int32 dot: -off * s (off = group_tile_offset: 0 for Q4A)
  float s[kGroupTileRows];    // float(s) (the asymmetric format's minimum term)
};

/// The constant the kernel's dot removes per group (dot starts at -off * s): the codes' offset
/// (Q4 8, T2 1), C4's + 128 (its table values as unsigned bytes), 0 for Q4A (its minimum term).
inline int group_tile_offset(int32_t fmt) {
  switch (fmt) {
    case LB_WFMT_Q4: return 8;
    case LB_WFMT_T2: return 1;
    case LB_WFMT_C4: return 128;
    default: return 0;
  }
}

/// Bytes of the tiles of rows [0, m) (xg) and of their metadata (xgm).
inline int64_t group_tile_bytes(int64_t m, int64_t kp) {
  return (m + kGroupTileRows - 1) / kGroupTileRows * kGroupTileRows * kp;
}
inline int64_t group_tile_meta_bytes(int64_t m, int64_t ng) {
  return (m + kGroupTileRows - 1) / kGroupTileRows * ng * int64_t(sizeof(GroupTileMeta));
}

/// Rows m0..m1 of xq [m][kp] (metadata from xm [m][ng]) per tile of 8 rows in chunks of 32 codes
/// (the tile's rows side by side, signed as quantized): code k of row r of tile t at
/// xi + t * 8 kp + 8 (k & ~31) + 32 r + (k & 31), so a tile reads its activations as one sequential
/// stream; a short last tile repeats its first row. xt[t * ng + g]: tile t's metadata of group g.
/// xi 32-byte aligned, kp a multiple of 32.
inline void group_tiles(const int8_t* xq, const lb_q8_meta* xm, int64_t kp, int64_t ng, int off, int64_t m0,
                        int64_t m1, int8_t* xi, GroupTileMeta* xt) {
  constexpr int R = kGroupTileRows;
  for (int64_t m = m0; m < m1; m += R, xi += R * kp, xt += ng) {
    for (int r = 0; r < R; ++r) {
      const int64_t row = m + r < m1 ? m + r : m;
      const int8_t* src = xq + row * kp;
      int8_t* dst = xi + 32 * r;
      for (int64_t k = 0; k < kp; k += 32) std::memcpy(dst + R * k, src + k, 32);
      const lb_q8_meta* g0 = xm + row * ng;
      for (int64_t g = 0; g < ng; ++g) {
        xt[g].d[r] = g0[g].d;
        xt[g].o[r] = -off * g0[g].s;
        xt[g].s[r] = float(g0[g].s);
      }
    }
  }
}

}  // namespace layout
}  // namespace lb
