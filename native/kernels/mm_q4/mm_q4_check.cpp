// Self-check of w4a8 (Q4 and Q4A): the GEMV and GEMM variants of a dispatch table against the scalar
// references (exact on integer-valued data, kMmMaxRelErr otherwise; tails, sub-ranges, guards).
#include "dispatch.h"
#include "mm_check.h"

namespace lb {

void lb_check_gemv_q4(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemv_q4.name, t.gemv_q4.fn, ref.gemv_q4.fn, ref.quant_q8.fn, LB_WFMT_Q4, false, false, rep);
  check::check_mm_family(t.gemv_q4.name, t.gemv_q4.fn, ref.gemv_q4.fn, ref.quant_q8.fn, LB_WFMT_Q4A, false, false, rep);
}

void lb_check_gemm_q4(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemm_q4.name, t.gemm_q4.fn, ref.gemm_q4.fn, ref.quant_q8.fn, LB_WFMT_Q4, true, false, rep);
  check::check_mm_family(t.gemm_q4.name, t.gemm_q4.fn, ref.gemm_q4.fn, ref.quant_q8.fn, LB_WFMT_Q4A, true, false, rep);
}

}  // namespace lb
