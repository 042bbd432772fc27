// Self-check of w4a16 (Q4 and Q4A, float activations): the GEMV and GEMM variants of a dispatch table against the scalar
// references (exact on integer-valued data, kMmMaxRelErr otherwise; tails, sub-ranges, guards).
#include "dispatch.h"
#include "mm_check.h"

namespace lb {

void lb_check_gemv_q4f(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemv_q4f.name, t.gemv_q4f.fn, ref.gemv_q4f.fn, ref.quant_q8.fn, LB_WFMT_Q4, false, true, rep);
  check::check_mm_family(t.gemv_q4f.name, t.gemv_q4f.fn, ref.gemv_q4f.fn, ref.quant_q8.fn, LB_WFMT_Q4A, false, true, rep);
}

void lb_check_gemm_q4f(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemm_q4f.name, t.gemm_q4f.fn, ref.gemm_q4f.fn, ref.quant_q8.fn, LB_WFMT_Q4, true, true, rep);
  check::check_mm_family(t.gemm_q4f.name, t.gemm_q4f.fn, ref.gemm_q4f.fn, ref.quant_q8.fn, LB_WFMT_Q4A, true, true, rep);
}

}  // namespace lb
