// Runner for the native tests: `lowbit-tests [filter]` runs every registered case whose name
// contains `filter`.
#include <cstring>

#include "lowbit/lowbit.h"
#include "test.h"

namespace lbtest {
namespace {
int g_case_failures = 0;
}
std::vector<Case>& registry() {
  static std::vector<Case> r;
  return r;
}
void fail(const char* file, int line, const std::string& what) {
  ++g_case_failures;
  std::printf("    %s:%d: %s\n", file, line, what.c_str());
}
int current_failures() { return g_case_failures; }
}  // namespace lbtest

int main(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : "";
  std::printf("lowbit %s native tests, ISA path %s\n", lb_version(), lb_isa_name(lb_isa_active()));
  int passed = 0, failed = 0;
  for (auto& c : lbtest::registry()) {
    if (*filter && !std::strstr(c.name, filter)) continue;
    const int before = lbtest::current_failures();
    c.fn();
    const bool ok = lbtest::current_failures() == before;
    std::printf("[%s] %s\n", ok ? "PASS" : "FAIL", c.name);
    (ok ? passed : failed)++;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
