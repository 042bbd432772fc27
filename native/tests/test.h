// A tiny self-registering test framework for the native tests (no dependency to install,
// runs the same under qemu-aarch64 and the sanitizers). Prints "N passed, N failed".
#pragma once
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace lbtest {

struct Case {
  const char* name;
  std::function<void()> fn;
};

std::vector<Case>& registry();
void fail(const char* file, int line, const std::string& what);
int current_failures();

struct Register {
  Register(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

}  // namespace lbtest

#define LB_TEST(name)                                              \
  static void lbtest_##name();                                     \
  static lbtest::Register lbtest_reg_##name(#name, lbtest_##name); \
  static void lbtest_##name()

#define LB_EXPECT(cond)                                                     \
  do {                                                                      \
    if (!(cond)) lbtest::fail(__FILE__, __LINE__, "expected: " #cond);      \
  } while (0)

#define LB_EXPECT_MSG(cond, msg)                                            \
  do {                                                                      \
    if (!(cond)) lbtest::fail(__FILE__, __LINE__, std::string(#cond ": ") + (msg)); \
  } while (0)
