// Linear layers (see llm_linear.h): the fp32 reference path here; quantized weights call the
// kernels' qlinear.
#include "llm/llm_linear.h"

#include <algorithm>

#include "llm/llm_ops.h"

namespace lb {
namespace llm {

namespace {
constexpr int kRowsPerTask = 16;

void linear_f32(const Linear& L, const float* x, int m, float* y, Parallel& par) {
  const VecOps& ops = vec_ops();
  const int tasks = (L.n + kRowsPerTask - 1) / kRowsPerTask;
  par.run(tasks, [&](int t, int) {
    const int n0 = t * kRowsPerTask, n1 = std::min(L.n, n0 + kRowsPerTask);
    for (int r = 0; r < m; ++r) {
      const float* xr = x + size_t(r) * L.k;
      float* yr = y + size_t(r) * L.n;
      for (int j = n0; j < n1; ++j) yr[j] = ops.dot_f32(xr, L.w + size_t(j) * L.k, L.k) + (L.bias ? L.bias[j] : 0.f);
    }
  });
}
}  // namespace

size_t linear_scratch_bytes(const Linear& L, int m) {
  return L.kind == Linear::Quant ? qlinear_scratch_bytes(L.pw, m) : 0;
}

lb_status linear_forward(const Linear& L, const float* x, int m, float* y, LinearScratch& scratch, Parallel& par) {
  if (L.kind == Linear::F32) {
    linear_f32(L, x, m, y, par);
    return LB_OK;
  }
  return qlinear(L.pw, x, m, L.bias, y, QLinearOpts(), par.pool(), scratch.buf.data(), scratch.buf.size(),
                 &scratch.last);
}

}  // namespace llm
}  // namespace lb
