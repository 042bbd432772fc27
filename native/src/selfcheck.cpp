// lb_selfcheck: runs every kernel family's check on every ISA path this CPU can run.
#include <cstring>
#include <string>

#include "check_util.h"
#include "dispatch.h"
#include "error.h"

namespace lb {
#define LB_FAMILY(fam) void lb_check_##fam(const KernelTable& t, const KernelTable& ref, check::Report& rep);
#include "families.inc"
#undef LB_FAMILY
}  // namespace lb

extern "C" LB_API lb_status lb_selfcheck(char* report, size_t cap, int* failures) {
  using namespace lb;
  if (!failures) return set_error(LB_ERR_INVALID_ARG, "lb_selfcheck: failures is NULL");
  const KernelTable* ref = kernels_for(LB_ISA_SCALAR);
  check::Report rep;
  for (int i = 0; i < LB_ISA_COUNT; ++i) {
    const KernelTable* t = kernels_for(static_cast<lb_isa>(i));
    if (!t) continue;
    const int before_fail = rep.failures, before_checks = rep.checks;
#define LB_FAMILY(fam) lb_check_##fam(*t, *ref, rep);
#include "families.inc"
#undef LB_FAMILY
    rep.note("%-10s %3d checks, %d failed", lb_isa_name(static_cast<lb_isa>(i)), rep.checks - before_checks,
             rep.failures - before_fail);
  }
  *failures = rep.failures;
  if (report && cap) {
    std::strncpy(report, rep.text.c_str(), cap - 1);
    report[cap - 1] = '\0';
  }
  return LB_OK;
}
