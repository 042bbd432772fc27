// Self-check of the activation quantizer: codes and metadata bit-exact against the reference,
// dynamic per block / per row, static, with multipliers, on lengths with tails; guard bands. The SIMD
// quantizers also on rows with NaN / inf and with scales whose inverse overflows.
#include <cmath>
#include <cstring>
#include <vector>

#include "check_util.h"
#include "dispatch.h"

namespace lb {

void lb_check_quant_q8(const KernelTable& t, const KernelTable& ref, check::Report& rep) {
  // 545 and 5632: 16-block groups of the AVX-512 quantizer, one block and a tail past them
  static const int64_t kLens[] = {1, 7, 31, 32, 33, 64, 100, 128, 545, 1000, 4096, 5632};
  check::Rng rng(7);
  const char* name = t.quant_q8.name;
  for (int64_t k : kLens)
    for (int mode = 0; mode < 7; ++mode) {
      const int64_t kp = (k + 31) / 32 * 32;
      const int32_t block = (mode == 1 || mode == 2) ? int32_t(kp) : (kp % 64 == 0 && mode == 4 ? 64 : 32);
      std::vector<float> x(static_cast<size_t>(k)), mul(static_cast<size_t>(k));
      const float range = (mode == 3) ? 3.f : rng.f32(0.01f, 50.f);
      for (auto& v : x) v = rng.f32(-range, range);
      for (auto& v : mul) v = rng.f32(0.25f, 4.f);
      if (k > 40) std::memset(x.data() + 8, 0, 32 * sizeof(float));  // an all-zero block: scale 0
      if (mode == 5)  // NaN (skipped by amax, code -127), +-inf (scale inf, codes 0 or -127 for inf * 0)
        for (int64_t i = 3; i < k; i += 29) x[size_t(i)] = i % 3 == 0 ? NAN : i % 3 == 1 ? INFINITY : -INFINITY;
      if (mode == 6)  // denormal amax: 127 / amax is inf (padding codes must stay 0, not inf * 0)
        for (auto& v : x) v *= 1e-40f;
      lb_quant_args a{};
      a.x = x.data();
      a.k = k;
      a.kp = kp;
      a.block = block;
      a.per_row = mode == 1 || mode == 4;
      a.mul = mode == 2 ? mul.data() : nullptr;
      a.is_static = mode == 3;
      a.static_scale = 0.02f;
      a.static_zero = -5;
      const size_t nb = size_t(kp / block);
      check::Guarded<int8_t> qg(static_cast<size_t>(kp)), qw(static_cast<size_t>(kp));
      check::Guarded<lb_q8_meta> mg(nb), mw(nb);
      ref.quant_q8.fn(&a, qw.data(), mw.data());
      t.quant_q8.fn(&a, qg.data(), mg.data());
      ++rep.checks;
      if (!qg.guards_intact() || !mg.guards_intact()) {
        rep.fail("%s: write outside the output (k=%lld mode=%d)", name, (long long)k, mode);
        continue;
      }
      if (std::memcmp(qg.data(), qw.data(), size_t(kp)) != 0) {
        for (int64_t i = 0; i < kp; ++i)
          if (qg.data()[i] != qw.data()[i]) {
            rep.fail("%s: q[%lld]=%d, reference %d (k=%lld block=%d mode=%d)", name, (long long)i, qg.data()[i],
                     qw.data()[i], (long long)k, block, mode);
            break;
          }
        continue;
      }
      for (size_t b = 0; b < nb; ++b)
        if (std::memcmp(&mg.data()[b], &mw.data()[b], sizeof(lb_q8_meta)) != 0) {
          rep.fail("%s: meta[%zu] = (%g, %d), reference (%g, %d) (k=%lld block=%d mode=%d)", name, b,
                   double(mg.data()[b].d), mg.data()[b].s, double(mw.data()[b].d), mw.data()[b].s, (long long)k,
                   block, mode);
          break;
        }
    }
}

}  // namespace lb
