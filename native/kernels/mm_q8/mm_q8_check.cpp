// Self-check of w8a8 (Q8, and the GEMM for 7-bit Q8 weights): the GEMV and GEMM variants of a dispatch table against the scalar
// references (exact on integer-valued data, kMmMaxRelErr otherwise; tails, sub-ranges, guards).
#include "dispatch.h"
#include "mm_check.h"

namespace lb {

void lb_check_gemv_q8(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemv_q8.name, t.gemv_q8.fn, ref.gemv_q8.fn, ref.quant_q8.fn, LB_WFMT_Q8, false, false, rep);
}

void lb_check_gemm_q8(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemm_q8.name, t.gemm_q8.fn, ref.gemm_q8.fn, ref.quant_q8.fn, LB_WFMT_Q8, true, false, rep);
}

void lb_check_gemm_q7(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemm_q7.name, t.gemm_q7.fn, ref.gemm_q7.fn, ref.quant_q8.fn, LB_WFMT_Q8, true, false, rep,
                         LB_Q8_W7_MAX);
}

}  // namespace lb
