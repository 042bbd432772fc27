// Self-check for q8_gemv: every variant in `t` against the scalar reference, bit-exact, with
// guard bands, on shapes with tails (N not a multiple of 4, K not a multiple of 16/32/64).
#include "check_util.h"
#include "dispatch.h"

namespace lb {

void lb_check_q8_gemv(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  static const int64_t kShapes[][2] = {{1, 1}, {3, 7}, {4, 32}, {5, 64}, {17, 100}, {64, 256}, {33, 4096}, {8, 1000}};
  check::Rng rng(42);
  for (const auto& s : kShapes) {
    const int64_t n = s[0], k = s[1];
    std::vector<int8_t> w(static_cast<size_t>(n * k)), x(static_cast<size_t>(k));
    for (auto& v : w) v = rng.i8(-127, 127);
    for (auto& v : x) v = rng.i8(-128, 127);
    x[0] = -128;  // the activation extreme must be exact too
    check::Guarded<int32_t> got(static_cast<size_t>(n)), want(static_cast<size_t>(n));
    ref.q8_gemv.fn(w.data(), x.data(), want.data(), n, k);
    t.q8_gemv.fn(w.data(), x.data(), got.data(), n, k);
    ++rep.checks;
    if (!got.guards_intact()) {
      rep.fail("%s: write outside the output (n=%lld k=%lld)", t.q8_gemv.name, (long long)n, (long long)k);
      continue;
    }
    for (int64_t i = 0; i < n; ++i) {
      if (got.data()[i] != want.data()[i]) {
        rep.fail("%s: y[%lld]=%d, reference %d (n=%lld k=%lld)", t.q8_gemv.name, (long long)i, got.data()[i],
                 want.data()[i], (long long)n, (long long)k);
        break;
      }
    }
  }
}

}  // namespace lb
