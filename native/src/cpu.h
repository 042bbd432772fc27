// CPU feature detection (CPUID + XGETBV on x86, getauxval HWCAP on Linux/ARM).
#pragma once
#include <cstdint>

#include "lowbit/lowbit.h"

namespace lb {

/// Detected once; LB_CPU_* bits. Only features the OS saves state for are reported.
uint64_t cpu_features();
/// CPU model string ("AMD Ryzen ..." / "ARM implementer 0x41 part 0xd0b"), best effort.
const char* cpu_model();
/// True if this CPU and this build can run the given ISA path.
bool isa_supported(lb_isa isa);

}  // namespace lb
