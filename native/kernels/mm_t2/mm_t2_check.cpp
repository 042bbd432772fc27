// Self-check of t2a8 (ternary T2): the GEMV and GEMM variants of a dispatch table against the scalar
// references (exact on integer-valued data, kMmMaxRelErr otherwise; tails, sub-ranges, guards).
#include "dispatch.h"
#include "mm_check.h"

namespace lb {

void lb_check_gemv_t2(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemv_t2.name, t.gemv_t2.fn, ref.gemv_t2.fn, ref.quant_q8.fn, LB_WFMT_T2, false, false, rep);
}

void lb_check_gemm_t2(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemm_t2.name, t.gemm_t2.fn, ref.gemm_t2.fn, ref.quant_q8.fn, LB_WFMT_T2, true, false, rep);
}

}  // namespace lb
