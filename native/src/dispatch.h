// Kernel dispatch: one table of kernel pointers per ISA path, filled once from kernels.inc,
// best path first (or the one forced by LOWBIT_ISA), scalar always present.
#pragma once
#include "kernel_types.h"
#include "lowbit/lowbit.h"

namespace lb {

/// A kernel pointer with the name and ISA of the code behind it (the profiler reports both).
template <class Fn>
struct KernelRef {
  Fn* fn = nullptr;           ///< the kernel
  const char* name = "";      ///< its full name, e.g. "lb_gemv_s32_q8_q8c_4x64__avx512vnni"
  lb_isa isa = LB_ISA_SCALAR; ///< the ISA of the chosen variant (may be below the table's path)
};

/// One entry per kernel family (families.inc).
struct KernelTable {
  lb_isa isa = LB_ISA_SCALAR;  ///< the ISA path this table was filled for
#define LB_FAMILY(fam) KernelRef<lb_##fam##_t> fam;
#include "families.inc"
#undef LB_FAMILY
};

/// The active table. If LOWBIT_ISA named a path this CPU cannot run, dispatch_status() is
/// LB_ERR_ISA and the table is the scalar one; entry points must check dispatch_status().
const KernelTable& kernels();
/// The table for one ISA path, or nullptr if this CPU/build cannot run it (tests, self-check).
const KernelTable* kernels_for(lb_isa isa);
/// LB_OK, or LB_ERR_ISA with lb_last_error() set, when LOWBIT_ISA is invalid for this CPU.
lb_status dispatch_status();
/// Parses an ISA name ("scalar", "avx2", ...); returns false for an unknown name.
bool parse_isa(const char* name, lb_isa* out);

}  // namespace lb
