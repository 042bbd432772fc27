// lowbit-run: the native command-line tool (no Python): build info, kernel self-check, and
// running/verifying device packages.
#include <cstdio>
#include <cstring>
#include <vector>

#include "lowbit/lowbit.h"

static int usage() {
  std::fprintf(stderr,
               "usage: lowbit-run --version | --info | --selfcheck\n"
               "  --version    print the library version\n"
               "  --info       print build info, CPU features and the active ISA path (JSON)\n"
               "  --selfcheck  check every SIMD kernel against its scalar reference\n");
  return 2;
}

static int info() {
  std::printf("{\"build\": %s, \"isa_best\": \"%s\", \"isa_active\": \"%s\", \"threads\": %d, \"features\": [",
              lb_build_info(), lb_isa_name(lb_isa_best()), lb_isa_name(lb_isa_active()), lb_default_threads());
  const uint64_t f = lb_cpu_features();
  bool first = true;
  for (int b = 0; b < 64; ++b) {
    const uint64_t bit = uint64_t(1) << b;
    if ((f & bit) && lb_cpu_feature_name(bit)) {
      std::printf("%s\"%s\"", first ? "" : ", ", lb_cpu_feature_name(bit));
      first = false;
    }
  }
  std::printf("]}\n");
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  if (std::strcmp(argv[1], "--version") == 0) {
    std::printf("lowbit-run %s\n", lb_version());
    return 0;
  }
  if (std::strcmp(argv[1], "--info") == 0) return info();
  if (std::strcmp(argv[1], "--selfcheck") == 0) {
    std::vector<char> report(1 << 16);
    int failures = 0;
    if (lb_selfcheck(report.data(), report.size(), &failures) != LB_OK) {
      std::fprintf(stderr, "lowbit-run: %s\n", lb_last_error());
      return 1;
    }
    std::printf("%s%s\n", report.data(), failures ? "SELF-CHECK FAILED" : "self-check passed");
    return failures ? 1 : 0;
  }
  return usage();
}
