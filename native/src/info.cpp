// Version, build information and default thread count.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "build_info.h"
#include "lowbit/lowbit.h"

#if defined(__linux__)
#include <sched.h>
#endif

extern "C" LB_API const char* lb_version(void) { return LB_VERSION_STRING; }

extern "C" LB_API const char* lb_build_info(void) {
  static const std::string info = [] {
    char buf[1024];
    std::snprintf(buf, sizeof buf,
                  "{\"version\": \"%s\", \"compiler\": \"%s\", \"build_type\": \"%s\", \"arch\": \"%s\", "
                  "\"isa_files\": \"%s\", \"sanitize\": %s, \"cplusplus\": %ld}",
                  LB_VERSION_STRING, LB_BUILD_COMPILER, LB_BUILD_TYPE, LB_BUILD_ARCH, LB_BUILD_ISA_FILES,
                  LOWBIT_SANITIZE ? "true" : "false", (long)__cplusplus);
    return std::string(buf);
  }();
  return info.c_str();
}

extern "C" LB_API int lb_default_threads(void) {
  if (const char* env = std::getenv("LOWBIT_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned hc = std::thread::hardware_concurrency();
  return hc ? int(hc) : 1;
}
