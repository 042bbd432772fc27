// Fills the per-ISA kernel tables once and selects the active one (LOWBIT_ISA override).
#include "dispatch.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "cpu.h"
#include "error.h"

// Declarations of every kernel symbol, from the same list that fills the tables.
#define LB_KERNEL(fam, isa, sym) lb_##fam##_t sym;
#include "kernels.inc"
#undef LB_KERNEL

namespace lb {
namespace {

const char* const kIsaNames[LB_ISA_COUNT] = {"scalar", "avx2", "avx512vnni", "neon", "dotprod", "i8mm"};

// The chain of ISA levels that leads to `isa` on its architecture, scalar first.
int isa_chain(lb_isa isa, lb_isa* chain) {
  int n = 0;
  chain[n++] = LB_ISA_SCALAR;
  switch (isa) {
    case LB_ISA_AVX512VNNI: chain[n++] = LB_ISA_AVX2; chain[n++] = LB_ISA_AVX512VNNI; break;
    case LB_ISA_AVX2: chain[n++] = LB_ISA_AVX2; break;
    case LB_ISA_I8MM: chain[n++] = LB_ISA_NEON; chain[n++] = LB_ISA_DOTPROD; chain[n++] = LB_ISA_I8MM; break;
    case LB_ISA_DOTPROD: chain[n++] = LB_ISA_NEON; chain[n++] = LB_ISA_DOTPROD; break;
    case LB_ISA_NEON: chain[n++] = LB_ISA_NEON; break;
    default: break;
  }
  return n;
}

bool compiled(lb_isa isa) {
  switch (isa) {
    case LB_ISA_SCALAR: return true;
#if LB_HAVE_AVX2
    case LB_ISA_AVX2: return true;
#endif
#if LB_HAVE_AVX512VNNI
    case LB_ISA_AVX512VNNI: return true;
#endif
#if LB_HAVE_NEON
    case LB_ISA_NEON: return true;
#endif
#if LB_HAVE_NEON_DOTPROD
    case LB_ISA_DOTPROD: return true;
#endif
#if LB_HAVE_NEON_I8MM
    case LB_ISA_I8MM: return true;
#endif
    default: return false;
  }
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && v[0] == '1' && v[1] == '\0';
}

KernelTable fill(lb_isa isa) {
  KernelTable t;
  t.isa = isa;
  lb_isa chain[4];
  const int n = isa_chain(isa, chain);
  for (int level = 0; level < n; ++level) {
#define LB_KERNEL(fam, kisa, sym) \
  if ((kisa) == chain[level]) t.fam = KernelRef<lb_##fam##_t>{&sym, #sym, kisa};
#include "kernels.inc"
#undef LB_KERNEL
  }
  // Sessions 4-9 kept the AVX2 ternary GEMV on the avx512vnni path (the zmm one timed slower on
  // the lent Xeon). Since session 10 the AVX-512 GEMVs are ymm EVEX code reading one stream, and
  // on the Zen 4 VM the ternary one beats the AVX2 one (docs/kernels.md), so it is dispatched;
  // LOWBIT_AVX2_T2_GEMV=1 puts the AVX2 one back (to re-measure on other AVX-512 parts).
  if (isa == LB_ISA_AVX512VNNI && env_flag("LOWBIT_AVX2_T2_GEMV")) t.gemv_t2 = fill(LB_ISA_AVX2).gemv_t2;
  return t;
}

struct State {
  KernelTable tables[LB_ISA_COUNT];
  bool usable[LB_ISA_COUNT] = {};
  std::atomic<int> active{LB_ISA_SCALAR};
  lb_status env_status = LB_OK;
  std::string env_error;
};

std::string supported_list(const State& s) {
  std::string out;
  for (int i = 0; i < LB_ISA_COUNT; ++i)
    if (s.usable[i]) out += (out.empty() ? "" : ", ") + std::string(kIsaNames[i]);
  return out;
}

State& state() {
  static State* s = [] {
    auto* st = new State();
    lb_isa best = LB_ISA_SCALAR;
    for (int i = 0; i < LB_ISA_COUNT; ++i) {
      const lb_isa isa = static_cast<lb_isa>(i);
      st->usable[i] = compiled(isa) && isa_supported(isa);
      if (st->usable[i]) {
        st->tables[i] = fill(isa);
        best = isa;  // enum order is dispatch order within an architecture
      }
    }
    st->active.store(best);
    const char* env = std::getenv("LOWBIT_ISA");
    if (env && *env && std::strcmp(env, "auto") != 0) {
      lb_isa forced;
      if (!parse_isa(env, &forced)) {
        st->env_status = LB_ERR_ISA;
        st->env_error = std::string("LOWBIT_ISA=") + env +
                        " is not an ISA path; use one of scalar, avx2, avx512vnni, neon, dotprod, i8mm, auto";
      } else if (!st->usable[forced]) {
        st->env_status = LB_ERR_ISA;
        st->env_error = std::string("LOWBIT_ISA=") + env + " cannot run here: " +
                        (compiled(forced) ? "this CPU lacks the instructions" : "this build has no such kernels") +
                        " (usable paths: " + supported_list(*st) + "). Unset LOWBIT_ISA or pick a usable path.";
      } else {
        st->active.store(forced);
      }
      if (st->env_status != LB_OK) st->active.store(LB_ISA_SCALAR);
    }
    return st;
  }();
  return *s;
}

}  // namespace

bool parse_isa(const char* name, lb_isa* out) {
  if (!name) return false;
  for (int i = 0; i < LB_ISA_COUNT; ++i)
    if (std::strcmp(name, kIsaNames[i]) == 0) { *out = static_cast<lb_isa>(i); return true; }
  if (std::strcmp(name, "neon_dotprod") == 0) { *out = LB_ISA_DOTPROD; return true; }
  if (std::strcmp(name, "neon_i8mm") == 0) { *out = LB_ISA_I8MM; return true; }
  return false;
}

const KernelTable& kernels() {
  State& s = state();
  return s.tables[s.active.load(std::memory_order_relaxed)];
}

const KernelTable* kernels_for(lb_isa isa) {
  if (isa < 0 || isa >= LB_ISA_COUNT) return nullptr;
  State& s = state();
  return s.usable[isa] ? &s.tables[isa] : nullptr;
}

lb_status dispatch_status() {
  State& s = state();
  if (s.env_status != LB_OK) return set_error(s.env_status, "%s", s.env_error.c_str());
  return LB_OK;
}

}  // namespace lb

extern "C" LB_API const char* lb_isa_name(lb_isa isa) {
  return (isa >= 0 && isa < LB_ISA_COUNT) ? lb::kIsaNames[isa] : "unknown";
}

extern "C" LB_API lb_isa lb_isa_best(void) {
  lb::State& s = lb::state();
  lb_isa best = LB_ISA_SCALAR;
  for (int i = 0; i < LB_ISA_COUNT; ++i)
    if (s.usable[i]) best = static_cast<lb_isa>(i);
  return best;
}

extern "C" LB_API lb_isa lb_isa_active(void) { return static_cast<lb_isa>(lb::state().active.load()); }

extern "C" LB_API lb_status lb_isa_select(const char* name) {
  lb::State& s = lb::state();
  if (!name) return lb::set_error(LB_ERR_INVALID_ARG, "lb_isa_select: name is NULL");
  if (std::strcmp(name, "auto") == 0) {
    s.active.store(lb_isa_best());
    s.env_status = LB_OK;
    return LB_OK;
  }
  lb_isa isa;
  if (!lb::parse_isa(name, &isa))
    return lb::set_error(LB_ERR_ISA, "unknown ISA path '%s'; use one of scalar, avx2, avx512vnni, neon, dotprod, i8mm, auto", name);
  if (!s.usable[isa])
    return lb::set_error(LB_ERR_ISA, "ISA path '%s' cannot run here: %s (usable paths: %s)", name,
                         lb::compiled(isa) ? "this CPU lacks the instructions" : "this build has no such kernels",
                         lb::supported_list(s).c_str());
  s.active.store(isa);
  s.env_status = LB_OK;
  return LB_OK;
}
