// Dispatch: feature detection is consistent, every usable path has every family filled, the
// LOWBIT_ISA override and lb_isa_select refuse what the CPU cannot run.
#include <cstring>
#include <string>

#include "cpu.h"
#include "dispatch.h"
#include "test.h"

// Runs first: later cases call lb_isa_select, which replaces the environment's choice.
LB_TEST(env_override_status) {
  // The binary is run by the Python tests with LOWBIT_ISA set to each path; whatever it is,
  // either it was honoured or dispatch reports LB_ERR_ISA with a message.
  const char* env = std::getenv("LOWBIT_ISA");
  if (env && *env && std::strcmp(env, "auto") != 0) {
    lb_isa want;
    if (lb::parse_isa(env, &want) && lb::kernels_for(want)) {
      LB_EXPECT(lb::dispatch_status() == LB_OK);
    } else {
      LB_EXPECT(lb::dispatch_status() == LB_ERR_ISA);
      LB_EXPECT(std::strstr(lb_last_error(), "LOWBIT_ISA") != nullptr);
    }
  } else {
    LB_EXPECT(lb::dispatch_status() == LB_OK);
  }
}

LB_TEST(dispatch_scalar_always_usable) {
  const lb::KernelTable* t = lb::kernels_for(LB_ISA_SCALAR);
  LB_EXPECT(t != nullptr);
#define LB_FAMILY(fam) LB_EXPECT_MSG(t && t->fam.fn != nullptr, #fam " has no scalar kernel");
#include "families.inc"
#undef LB_FAMILY
}

LB_TEST(dispatch_every_usable_path_complete) {
  for (int i = 0; i < LB_ISA_COUNT; ++i) {
    const lb::KernelTable* t = lb::kernels_for(static_cast<lb_isa>(i));
    if (!t) continue;
    LB_EXPECT(t->isa == i);
#define LB_FAMILY(fam)                                                        \
  LB_EXPECT_MSG(t->fam.fn != nullptr, std::string(#fam " missing on ") + lb_isa_name(t->isa)); \
  LB_EXPECT_MSG(t->fam.isa <= t->isa, std::string(#fam " uses a higher ISA than its path"));
#include "families.inc"
#undef LB_FAMILY
  }
}

LB_TEST(dispatch_best_is_usable_and_names_roundtrip) {
  const lb_isa best = lb_isa_best();
  LB_EXPECT(lb::kernels_for(best) != nullptr);
  for (int i = 0; i < LB_ISA_COUNT; ++i) {
    lb_isa parsed;
    LB_EXPECT(lb::parse_isa(lb_isa_name(static_cast<lb_isa>(i)), &parsed) && parsed == i);
  }
  lb_isa dummy;
  LB_EXPECT(!lb::parse_isa("avx9000", &dummy));
}

LB_TEST(dispatch_select_refuses_unusable) {
  const lb_isa before = lb_isa_active();
  LB_EXPECT(lb_isa_select("not-an-isa") == LB_ERR_ISA);
  LB_EXPECT(std::strstr(lb_last_error(), "unknown ISA") != nullptr);
  for (int i = 0; i < LB_ISA_COUNT; ++i) {
    const lb_isa isa = static_cast<lb_isa>(i);
    const lb_status st = lb_isa_select(lb_isa_name(isa));
    if (lb::kernels_for(isa)) {
      LB_EXPECT(st == LB_OK);
      LB_EXPECT(lb_isa_active() == isa);
    } else {
      LB_EXPECT(st == LB_ERR_ISA);
      LB_EXPECT(std::strstr(lb_last_error(), "cannot run here") != nullptr);
    }
  }
  LB_EXPECT(lb_isa_select(lb_isa_name(before)) == LB_OK);
}

LB_TEST(cpu_features_consistent) {
  const uint64_t f = lb_cpu_features();
  if (f & LB_CPU_AVX512VNNI) LB_EXPECT(f & LB_CPU_AVX512F);
  if (f & LB_CPU_I8MM) LB_EXPECT(f & LB_CPU_ASIMD);
#if defined(__aarch64__)
  LB_EXPECT(f & LB_CPU_ASIMD);
#endif
  LB_EXPECT(std::strlen(lb::cpu_model()) > 0);
  LB_EXPECT(std::strcmp(lb_cpu_feature_name(LB_CPU_AVX2), "avx2") == 0);
}
