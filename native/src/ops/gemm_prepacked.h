// The fp32 GEMM on a B stored in its panel layout (the exporter writes constant MatMul weights this
// way, attr "b_panels": see exporters/lbpk_attn.py): panel p (columns 16p .. 16p+15, zero-padded past N)
// is K x 16 floats at panels + p * K * 16. The kernels read the panels in place (no per-call packing,
// no second copy of the weight in memory); the sums are the same as gemm()'s, bit for bit.
#pragma once
#include "ops.h"

namespace lb {

/// gemm() with B given as panels [ceil(N / 16)][K][16] (g.B, g.ldb and g.b_trans are ignored).
const char* gemm_prepacked(const GemmArgs& g, const float* panels, ThreadPool* pool, void* scratch,
                           size_t scratch_bytes);

/// Floats of the panel layout of a K x N matrix.
inline int64_t gemm_panels_size(int64_t K, int64_t N) { return (N + 15) / 16 * K * 16; }

}  // namespace lb
