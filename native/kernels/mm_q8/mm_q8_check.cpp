// Self-check of w8a8 (Q8, and the GEMM for 7-bit Q8 weights): the GEMV and GEMM variants of a dispatch table against the scalar
// references (exact on integer-valued data, kMmMaxRelErr otherwise; tails, sub-ranges, guards). gemm_q7 runs
// twice: without and with lb_mm_args::xu (the activations pre-flipped to u8, as qlinear passes them); gemm_q8
// likewise without and with lb_mm_args::xt (the activations in row tiles).
#include <vector>

#include "dispatch.h"
#include "mm_check.h"
#include "mm_layout.h"

namespace lb {
namespace {

thread_local lb_mm_t* t_q7 = nullptr;
thread_local lb_mm_t* t_q8 = nullptr;

/// gemm_q7 called as qlinear calls it: lb_mm_args::xu holds the activations flipped to u8
/// (xq ^ 0x80) for rows [0, m1), so the AVX2 kernel reads them in place (its direct path).
void q7_with_xu(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  std::vector<uint8_t> xu(size_t(m1 * a->kp));
  for (size_t i = 0; i < xu.size(); ++i) xu[i] = uint8_t(a->xq[i]) ^ 0x80u;
  lb_mm_args b = *a;
  b.xu = xu.data();
  t_q7(&b, m0, m1, n0, n1);
}

/// gemm_q8 called as qlinear calls it: lb_mm_args::xt holds rows [0, m1) in row tiles (the AVX-512 VNNI kernel
/// reads them in place where m0 is a multiple of the tile's rows).
void q8_with_xt(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  std::vector<uint8_t> xt(size_t(layout::round_up(m1, layout::kQ8TileRows) * a->kp));
  for (int64_t r = 0; r < m1; ++r) layout::q8_tile_row(a->xq + r * a->kp, r, a->kp, xt.data());
  lb_mm_args b = *a;
  b.xt = xt.data();
  t_q8(&b, m0, m1, n0, n1);
}

}  // namespace

void lb_check_gemv_q8(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemv_q8.name, t.gemv_q8.fn, ref.gemv_q8.fn, ref.quant_q8.fn, LB_WFMT_Q8, false, false, rep);
}

void lb_check_gemm_q8(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemm_q8.name, t.gemm_q8.fn, ref.gemm_q8.fn, ref.quant_q8.fn, LB_WFMT_Q8, true, false, rep);
  t_q8 = t.gemm_q8.fn;  // again with xt set (kernels other than the AVX-512 VNNI one ignore it)
  check::check_mm_family(t.gemm_q8.name, q8_with_xt, ref.gemm_q8.fn, ref.quant_q8.fn, LB_WFMT_Q8, true, false, rep);
}

void lb_check_gemm_q7(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemm_q7.name, t.gemm_q7.fn, ref.gemm_q7.fn, ref.quant_q8.fn, LB_WFMT_Q8, true, false, rep,
                         LB_Q8_W7_MAX);
  t_q7 = t.gemm_q7.fn;  // again with xu set (kernels other than the AVX2 one ignore it)
  check::check_mm_family(t.gemm_q7.name, q7_with_xu, ref.gemm_q7.fn, ref.quant_q8.fn, LB_WFMT_Q8, true, false, rep,
                         LB_Q8_W7_MAX);
}

}  // namespace lb
