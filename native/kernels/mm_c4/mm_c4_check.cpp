// Self-check of codebook (C4): the GEMV and GEMM variants of a dispatch table against the scalar
// references (exact on integer-valued data, kMmMaxRelErr otherwise; tails, sub-ranges, guards).
#include "dispatch.h"
#include "mm_check.h"

namespace lb {

void lb_check_gemv_c4(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemv_c4.name, t.gemv_c4.fn, ref.gemv_c4.fn, ref.quant_q8.fn, LB_WFMT_C4, false, false, rep);
}

void lb_check_gemm_c4(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  check::check_mm_family(t.gemm_c4.name, t.gemm_c4.fn, ref.gemm_c4.fn, ref.quant_q8.fn, LB_WFMT_C4, true, false, rep);
}

}  // namespace lb
