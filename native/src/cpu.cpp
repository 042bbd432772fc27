// CPU feature detection. x86: CPUID leaves 1 and 7, and XGETBV to check that the OS saves
// YMM (AVX) and ZMM/opmask (AVX-512) state. ARM/Linux: getauxval(AT_HWCAP/AT_HWCAP2).
#include "cpu.h"

#include <cstdio>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#  define LB_X86 1
#  include <cpuid.h>
#elif defined(__aarch64__)
#  define LB_ARM64 1
#  if defined(__linux__)
#    include <sys/auxv.h>
#  endif
#endif

namespace lb {
namespace {

#if LB_X86
uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

uint64_t detect() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  const bool osxsave = (c >> 27) & 1;
  const bool avx = (c >> 28) & 1;
  const bool fma = (c >> 12) & 1;
  const bool f16c = (c >> 29) & 1;
  if (!osxsave || !avx) return 0;
  const uint64_t xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;            // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;          // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!os_ymm) return 0;
  uint64_t f = 0;
  if (fma) f |= LB_CPU_FMA;
  if (f16c) f |= LB_CPU_F16C;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  if ((b >> 5) & 1) f |= LB_CPU_AVX2;
  if (os_zmm) {
    if ((b >> 16) & 1) f |= LB_CPU_AVX512F;
    if ((b >> 17) & 1) f |= LB_CPU_AVX512DQ;
    if ((b >> 30) & 1) f |= LB_CPU_AVX512BW;
    if ((b >> 31) & 1) f |= LB_CPU_AVX512VL;
    if ((c >> 1) & 1) f |= LB_CPU_AVX512VBMI;
    if ((c >> 11) & 1) f |= LB_CPU_AVX512VNNI;
  }
  unsigned a1, b1, c1, d1;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  if ((a1 >> 4) & 1) f |= LB_CPU_AVXVNNI;
  if (os_zmm && ((a1 >> 5) & 1)) f |= LB_CPU_AVX512BF16;
  return f;
}

void model(char* out, size_t cap) {
  unsigned regs[12];
  unsigned max_ext = __get_cpuid_max(0x80000000u, nullptr);
  if (max_ext < 0x80000004u) { std::snprintf(out, cap, "unknown x86-64"); return; }
  for (unsigned i = 0; i < 3; ++i)
    __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
  char raw[49];
  std::memcpy(raw, regs, 48);
  raw[48] = '\0';
  const char* s = raw;
  while (*s == ' ') ++s;
  std::snprintf(out, cap, "%s", s);
  for (size_t n = std::strlen(out); n > 0 && out[n - 1] == ' '; --n) out[n - 1] = '\0';
}

#elif LB_ARM64
uint64_t detect() {
  uint64_t f = LB_CPU_ASIMD;  // baseline of AArch64
#  if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP);
  const unsigned long hw2 = getauxval(AT_HWCAP2);
  if (hw & (1ul << 20)) f |= LB_CPU_DOTPROD;   // HWCAP_ASIMDDP
  if (hw & (1ul << 22)) f |= LB_CPU_SVE;       // HWCAP_SVE
  if (hw & (1ul << 10)) f |= LB_CPU_FP16;      // HWCAP_ASIMDHP
  if (hw2 & (1ul << 13)) f |= LB_CPU_I8MM;     // HWCAP2_I8MM
  if (hw2 & (1ul << 14)) f |= LB_CPU_BF16;     // HWCAP2_BF16
#  endif
  return f;
}

void model(char* out, size_t cap) {
  std::snprintf(out, cap, "aarch64");
#  if defined(__linux__)
  if (FILE* fp = std::fopen("/proc/cpuinfo", "r")) {
    char line[256];
    unsigned impl = 0, part = 0;
    while (std::fgets(line, sizeof line, fp)) {
      std::sscanf(line, "CPU implementer : %x", &impl);
      std::sscanf(line, "CPU part : %x", &part);
    }
    std::fclose(fp);
    if (impl) std::snprintf(out, cap, "aarch64 implementer 0x%02x part 0x%03x", impl, part);
  }
#  endif
}
#else
uint64_t detect() { return 0; }
void model(char* out, size_t cap) { std::snprintf(out, cap, "generic"); }
#endif

}  // namespace

uint64_t cpu_features() {
  static const uint64_t f = detect();
  return f;
}

const char* cpu_model() {
  static char buf[128] = "";
  static const bool once = (model(buf, sizeof buf), true);
  (void)once;
  return buf;
}

bool isa_supported(lb_isa isa) {
  const uint64_t f = cpu_features();
  switch (isa) {
    case LB_ISA_SCALAR: return true;
#if LB_X86
    case LB_ISA_AVX2: {
      const uint64_t need = LB_CPU_AVX2 | LB_CPU_FMA | LB_CPU_F16C;
      return (f & need) == need;
    }
    case LB_ISA_AVX512VNNI: {
      const uint64_t need = LB_CPU_AVX2 | LB_CPU_FMA | LB_CPU_F16C | LB_CPU_AVX512F | LB_CPU_AVX512BW |
                            LB_CPU_AVX512VL | LB_CPU_AVX512DQ | LB_CPU_AVX512VNNI;
      return (f & need) == need;
    }
#endif
#if LB_ARM64
    case LB_ISA_NEON: return (f & LB_CPU_ASIMD) != 0;
    case LB_ISA_DOTPROD: return (f & LB_CPU_DOTPROD) != 0;
    case LB_ISA_I8MM: return (f & (LB_CPU_DOTPROD | LB_CPU_I8MM)) == (LB_CPU_DOTPROD | LB_CPU_I8MM);
#endif
    default: return false;
  }
}

}  // namespace lb

extern "C" LB_API uint64_t lb_cpu_features(void) { return lb::cpu_features(); }

extern "C" LB_API const char* lb_cpu_model(void) { return lb::cpu_model(); }

extern "C" LB_API const char* lb_cpu_feature_name(uint64_t bit) {
  switch (bit) {
    case LB_CPU_AVX2: return "avx2";
    case LB_CPU_FMA: return "fma";
    case LB_CPU_F16C: return "f16c";
    case LB_CPU_AVX512F: return "avx512f";
    case LB_CPU_AVX512BW: return "avx512bw";
    case LB_CPU_AVX512VL: return "avx512vl";
    case LB_CPU_AVX512DQ: return "avx512dq";
    case LB_CPU_AVX512VNNI: return "avx512vnni";
    case LB_CPU_AVX512BF16: return "avx512bf16";
    case LB_CPU_AVX512VBMI: return "avx512vbmi";
    case LB_CPU_AVXVNNI: return "avxvnni";
    case LB_CPU_ASIMD: return "asimd";
    case LB_CPU_DOTPROD: return "dotprod";
    case LB_CPU_I8MM: return "i8mm";
    case LB_CPU_SVE: return "sve";
    case LB_CPU_FP16: return "fp16";
    case LB_CPU_BF16: return "bf16";
    default: return nullptr;
  }
}
