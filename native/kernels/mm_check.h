// Shared self-check machinery of the quantized matmul families: random quantized weights packed
// by the C++ packer, activations quantized by the reference quantizer, then one variant against
// the scalar reference on shapes with tails, sub-ranges and guard bands.
#pragma once
#include "check_util.h"
#include "kernel_types.h"

namespace lb {
struct KernelTable;
namespace check {

/// Float outputs of a variant against the reference: |got - want| <= kMmMaxRelErr * sum_k |w x|
/// (+ |bias|), the scale of rounding errors when the reduction order differs. Integer-valued cases
/// must match exactly instead.
constexpr float kMmMaxRelErr = 5e-5f;

/// Checks matmul kernel `fn` (named `name`) of a family against `ref_fn` for weight format
/// `fmt`; `gemm` picks GEMM shapes (m >= 2) instead of GEMV (m == 1); `float_act` for w4a16.
/// Q8 weight codes are drawn from [-q8_max, q8_max] (LB_Q8_W7_MAX for the 7-bit family).
void check_mm_family(const char* name, lb_mm_t* fn, lb_mm_t* ref_fn, lb_quant_q8_t* quant, lb_wfmt fmt,
                     bool gemm, bool float_act, Report& rep, int q8_max = 127);

}  // namespace check
}  // namespace lb
