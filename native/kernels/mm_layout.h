// Addressing helpers for the packed layouts of lowbit_blocks.h, shared by the scalar
// references, the packer and the self-checks (SIMD kernels walk the same bytes with pointers).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernel_types.h"

namespace lb {
namespace layout {

constexpr int kRows = LB_PANEL_ROWS;

inline int64_t panels(int64_t n) { return (n + kRows - 1) / kRows; }
inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/// Q8: byte offset of code (n, k) in a weight with padded reduction length kp.
inline size_t q8_offset(int64_t n, int64_t k, int64_t kp) {
  return size_t((n / kRows) * kRows * kp + (k / 4) * 32 + (n % kRows) * 4 + (k % 4));
}

/// Rows per tile of the w8a8 GEMM's activation layout (lb_mm_args::xt): the AVX-512 VNNI kernel's register tile.
constexpr int64_t kQ8TileRows = 12;

/// lb_mm_args::xt: row r of xq [m][kp] as u8 (x ^ 0x80) in its tile of kQ8TileRows rows, in chunks of 32 codes
/// (the tile's rows side by side): code k of row r at xt + (r / 12) * 12 kp + 12 (k & ~31) + 32 (r % 12) + (k & 31).
/// kp is a multiple of 32 (Q8). A plain loop (qlinear and the self-check run it; compilers vectorize it).
inline void q8_tile_row(const int8_t* q, int64_t r, int64_t kp, uint8_t* xt) {
  uint8_t* dst = xt + (r / kQ8TileRows) * kQ8TileRows * kp + 32 * (r % kQ8TileRows);
  for (int64_t k = 0; k < kp; k += 32)
    for (int j = 0; j < 32; ++j) dst[kQ8TileRows * k + j] = uint8_t(q[k + j]) ^ 0x80u;
}

/// Header bytes before the codes of one group block (scales, and minimums for Q4A).
inline int header_bytes(int32_t fmt) { return fmt == LB_WFMT_Q4A ? 32 : 16; }

/// Start of the (panel, group) block of a group format.
inline const uint8_t* block(const uint8_t* w, int32_t fmt, int64_t k, int32_t group, int64_t panel, int64_t g) {
  return w + size_t(panel * (k / group) + g) * lb_wfmt_block_bytes(static_cast<lb_wfmt>(fmt), group);
}

/// 4-bit code of row r (0..7), position j (0..group-1) inside a block's codes.
inline int nib_code(const uint8_t* codes, int r, int64_t j) {
  const uint8_t b = codes[(j / 8) * 32 + r * 4 + (j % 4)];
  return (j % 8) < 4 ? (b & 15) : (b >> 4);
}
/// Offset (byte index, shift) of a 4-bit code, for the packer.
inline void nib_pos(int r, int64_t j, size_t* byte, int* shift) {
  *byte = size_t((j / 8) * 32 + r * 4 + (j % 4));
  *shift = (j % 8) < 4 ? 0 : 4;
}

/// 2-bit code of row r, position j inside a T2 block's codes.
inline int t2_code(const uint8_t* codes, int r, int64_t j) {
  const int64_t c = j / 16, p = (j % 16) / 4;
  return (codes[c * 32 + r * 4 + (j % 4)] >> (2 * p)) & 3;
}
inline void t2_pos(int r, int64_t j, size_t* byte, int* shift) {
  *byte = size_t((j / 16) * 32 + r * 4 + (j % 4));
  *shift = int(2 * ((j % 16) / 4));
}

/// fp16 scale (or minimum) `idx` of a block header.
inline float hdr(const uint8_t* blk, int idx) {
  lb_fp16 h;
  __builtin_memcpy(&h, blk + 2 * idx, 2);
  return lb_fp16_to_f32(h);
}

}  // namespace layout
}  // namespace lb
