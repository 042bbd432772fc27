// The C++ weight packer: lowbit.ir.QuantWeight codes -> the bytes of lowbit_blocks.h. The Python
// packer (sdk/lowbit/packing.py) must produce the same bytes; the tests compare them.
#pragma once
#include <cstddef>
#include <cstdint>

#include "lowbit/lowbit.h"
#include "lowbit/lowbit_blocks.h"

namespace lb {

/// A quantized weight as lowbit.ir.QuantWeight holds it (row-major [n, k] codes, one per element).
struct QuantWeightView {
  lb_wfmt fmt = LB_WFMT_Q8;        ///< target format
  int64_t n = 0;                   ///< output channels
  int64_t k = 0;                   ///< reduction length
  int32_t group = 0;               ///< group size along K (Q8: k)
  const int8_t* q = nullptr;       ///< [n, k] codes: Q8 [-127,127], Q4 [-8,7], Q4A [0,15], C4 0..15, T2 {-1,0,1}
  const float* scale = nullptr;    ///< [n, k / group]
  const float* zero = nullptr;     ///< Q4A: integer zero points [n, k / group] (or null)
  const float* minimum = nullptr;  ///< Q4A: minimums [n, k / group] (or null; one of zero/minimum)
  const float* codebook = nullptr; ///< C4: [16]
};

/// Packs `w` into `out` (exactly lb_wfmt_packed_bytes(...) bytes, which `bytes` must equal).
/// Fails with LB_ERR_INVALID_ARG (message says what) on a bad shape, group or code.
lb_status pack_weight(const QuantWeightView& w, uint8_t* out, size_t bytes);

/// The codebook rule shared with lowbit.packing: if 2^e * codebook is integral and within
/// [-127, 127] for some e in 0..7 (smallest such e), lut = 2^e * codebook exactly and
/// lut_scale = 2^-e; otherwise lut = rint(codebook * (127 / amax)) and lut_scale = amax / 127.
void codebook_to_lut(const float* codebook, int8_t lut[16], float* lut_scale);

}  // namespace lb
