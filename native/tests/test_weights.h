// A packed weight of random codes for the native kernel tests (test_kernels_qlinear.cpp,
// test_kernels_gemv_isa.cpp): codes in the format's range, per-group scales in [scale_lo, scale_hi),
// minimums (int4_asym) fixed at min_fixed or, when min_fixed > 0, random in [-0.4, 0), the 16-entry
// codebook i / 7.5 - 1; packed with pack_weight and viewed with packed_weight_init.
#pragma once
#include <cstdint>
#include <vector>

#include "check_util.h"
#include "pack.h"
#include "qlinear.h"

namespace lb {
namespace test {

struct TestWeight {
  std::vector<int8_t> q;
  std::vector<float> scale, minimum, codebook;
  std::vector<uint8_t> bytes;
  PackedWeight w;
};

inline bool make_test_weight(TestWeight& p, lb_wfmt fmt, int64_t n, int64_t k, int32_t group, uint64_t seed,
                             float scale_lo, float scale_hi, float min_lo,
                             float min_hi) {
  check::Rng rng(seed);
  const int32_t g = fmt == LB_WFMT_Q8 ? int32_t(k) : group;
  p.q.resize(size_t(n * k));
  p.scale.resize(size_t(n * (k / g)));
  int lo = -8, hi = 7;
  if (fmt == LB_WFMT_Q8) lo = -127, hi = 127;
  if (fmt == LB_WFMT_Q4A || fmt == LB_WFMT_C4) lo = 0, hi = 15;
  if (fmt == LB_WFMT_T2) lo = -1, hi = 1;
  for (auto& v : p.q) v = rng.i8(lo, hi);
  for (auto& v : p.scale) v = rng.f32(scale_lo, scale_hi);
  p.minimum.resize(p.scale.size());
  for (auto& v : p.minimum) v = rng.f32(min_lo, min_hi);
  p.codebook.resize(16);
  for (int i = 0; i < 16; ++i) p.codebook[size_t(i)] = float(i) / 7.5f - 1.f;
  QuantWeightView v;
  v.fmt = fmt;
  v.n = n;
  v.k = k;
  v.group = g;
  v.q = p.q.data();
  v.scale = p.scale.data();
  v.minimum = p.minimum.data();    // read for int4_asym only
  v.codebook = p.codebook.data();  // read for the codebook format only
  p.bytes.resize(size_t(lb_wfmt_packed_bytes(fmt, n, k, g)));
  return pack_weight(v, p.bytes.data(), p.bytes.size()) == LB_OK &&
         packed_weight_init(fmt, n, k, g, p.bytes.data(), p.bytes.size(), &p.w) == LB_OK;
}

}  // namespace test
}  // namespace lb
