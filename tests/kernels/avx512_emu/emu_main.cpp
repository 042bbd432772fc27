// Checks the AVX-512 VNNI kernels against the scalar references on a CPU without AVX-512: the
// kernel sources are compiled against SIMDe's portable intrinsics (immintrin.h in this folder)
// and plugged into a copy of the AVX2 table; the families' self-checks then run as usual.
#include <cstdio>

#include "check_util.h"
#include "dispatch.h"

#define LB_KERNEL(fam, isa, sym) lb_##fam##_t sym;
#include "kernels.inc"
#undef LB_KERNEL

namespace lb {
#define LB_FAMILY(fam) void lb_check_##fam(const KernelTable& t, const KernelTable& ref, check::Report& rep);
#include "families.inc"
#undef LB_FAMILY
}  // namespace lb

int main() {
  const lb::KernelTable* base = lb::kernels_for(LB_ISA_AVX2);
  const lb::KernelTable* ref = lb::kernels_for(LB_ISA_SCALAR);
  if (!base) base = ref;
  lb::KernelTable t = *base;
  int replaced = 0;
#define LB_KERNEL(fam, isa, sym) \
  if ((isa) == LB_ISA_AVX512VNNI) t.fam = lb::KernelRef<lb_##fam##_t>{&sym, #sym, LB_ISA_AVX512VNNI}, ++replaced;
#include "kernels.inc"
#undef LB_KERNEL
  lb::check::Report rep;
#define LB_FAMILY(fam) lb::lb_check_##fam(t, *ref, rep);
#include "families.inc"
#undef LB_FAMILY
  std::printf("%s", rep.text.c_str());
  std::printf("avx512vnni (emulated): %d kernels, %d checks, %d failed\n", replaced, rep.checks, rep.failures);
  return rep.failures ? 1 : 0;
}
