// Every kernel of every usable ISA path against its scalar reference (through lb_selfcheck).
#include <vector>

#include "lowbit/lowbit.h"
#include "test.h"

LB_TEST(kernels_selfcheck_all_paths) {
  std::vector<char> report(1 << 16);
  int failures = -1;
  LB_EXPECT(lb_selfcheck(report.data(), report.size(), &failures) == LB_OK);
  if (failures != 0) std::printf("%s", report.data());
  LB_EXPECT(failures == 0);
}

LB_TEST(kernels_selfcheck_rejects_null) {
  LB_EXPECT(lb_selfcheck(nullptr, 0, nullptr) == LB_ERR_INVALID_ARG);
}
