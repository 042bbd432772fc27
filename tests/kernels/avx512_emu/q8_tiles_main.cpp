// The AVX-512 VNNI w8a8 GEMM's blocking (session 9: 12 x 32 register tiles, K blocks of 256, M
// blocks of 48 rows, N blocks of up to 128 columns) on shapes larger than the family self-check's
// (m <= 13): several M, N and K blocks, row and column tails, static activations, 7-bit codes.
// Each case is compared bit for bit with the scalar reference (the float epilogue is the same
// operations), outside-column guards included, and again when the rows and columns are cut into
// sub-ranges as threads would take them (the result must not change a bit).
#include <cstdio>
#include <vector>

#include "check_util.h"
#include "dispatch.h"
#include "mm_layout.h"
#include "pack.h"

#define LB_KERNEL(fam, isa, sym) lb_##fam##_t sym;
#include "kernels.inc"
#undef LB_KERNEL

namespace {
using namespace lb;
using check::Rng;

struct Shape {
  int64_t m, n, k;
  bool static_act;
  int wmax;  // codes in [-wmax, wmax]
};

int run(const Shape& s, Rng& rng, lb_mm_t* fn, lb_mm_t* ref, lb_quant_q8_t* quant) {
  const int64_t kp = layout::round_up(s.k, LB_KBLOCK), npad = layout::panels(s.n) * layout::kRows;
  std::vector<int8_t> q(size_t(s.n * s.k));
  for (auto& c : q) c = rng.i8(-s.wmax, s.wmax);
  std::vector<float> scale(size_t(s.n));
  for (auto& v : scale) v = rng.f32(0.001f, 0.05f);
  QuantWeightView v;
  v.fmt = LB_WFMT_Q8;
  v.n = s.n;
  v.k = s.k;
  v.group = int32_t(s.k);
  v.q = q.data();
  v.scale = scale.data();
  const size_t bytes = size_t(lb_wfmt_packed_bytes(LB_WFMT_Q8, s.n, s.k, int32_t(s.k)));
  std::vector<uint8_t> packed(bytes + 64, 0);
  if (pack_weight(v, packed.data(), bytes) != LB_OK) {
    std::printf("FAIL pack m=%lld n=%lld k=%lld\n", (long long)s.m, (long long)s.n, (long long)s.k);
    return 1;
  }
  std::vector<float> x(size_t(s.m * s.k)), bias(size_t(s.n));
  for (auto& e : x) e = rng.f32(-2.f, 2.f);
  for (auto& e : bias) e = rng.f32(-1.f, 1.f);
  std::vector<int8_t> xq(size_t(s.m * kp));
  std::vector<lb_q8_meta> xm(size_t(s.m));
  for (int64_t r = 0; r < s.m; ++r) {
    lb_quant_args qa{};
    qa.x = x.data() + r * s.k;
    qa.k = s.k;
    qa.kp = kp;
    qa.block = int32_t(kp);
    qa.per_row = 1;
    qa.is_static = s.static_act;
    qa.static_scale = 0.01f;
    qa.static_zero = -7;
    quant(&qa, xq.data() + r * kp, xm.data() + r);
  }
  lb_mm_args a{};
  a.w = packed.data();
  a.fmt = LB_WFMT_Q8;
  a.group = int32_t(kp);
  a.n = s.n;
  a.k = s.k;
  a.kp = kp;
  a.row_scale = reinterpret_cast<const float*>(packed.data() + npad * kp);
  a.row_sum = reinterpret_cast<const int32_t*>(packed.data() + npad * kp + npad * 4);
  a.xq = xq.data();
  a.xm = xm.data();
  a.act_zero = s.static_act ? -7 : 0;
  a.bias = bias.data();
  a.ldy = s.n + 5;
  const size_t ny = size_t(s.m * a.ldy);
  check::Guarded<float> want(ny), got(ny), split(ny);
  a.y = want.data();
  ref(&a, 0, s.m, 0, s.n);
  a.y = got.data();
  fn(&a, 0, s.m, 0, s.n);
  // the same output in sub-ranges: rows cut at an arbitrary row, columns at panel boundaries
  a.y = split.data();
  const int64_t mc = s.m / 3 + 1, nc = (s.n / 3 + 7) / 8 * 8;
  for (int64_t m0 = 0; m0 < s.m; m0 += mc)
    for (int64_t n0 = 0; n0 < s.n; n0 += nc) fn(&a, m0, std::min(s.m, m0 + mc), n0, std::min(s.n, n0 + nc));
  if (!got.guards_intact() || !split.guards_intact()) {
    std::printf("FAIL guard band m=%lld n=%lld k=%lld\n", (long long)s.m, (long long)s.n, (long long)s.k);
    return 1;
  }
  for (size_t i = 0; i < ny; ++i) {
    if (std::memcmp(&got.data()[i], &want.data()[i], 4) != 0 || std::memcmp(&split.data()[i], &want.data()[i], 4) != 0) {
      const int64_t r = int64_t(i) / a.ldy, c = int64_t(i) % a.ldy;
      std::printf("FAIL y[%lld][%lld] = %.9g (ranges %.9g), reference %.9g (m=%lld n=%lld k=%lld static=%d)\n",
                  (long long)r, (long long)c, double(got.data()[i]), double(split.data()[i]), double(want.data()[i]),
                  (long long)s.m, (long long)s.n, (long long)s.k, int(s.static_act));
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main() {
  const KernelTable* reft = kernels_for(LB_ISA_SCALAR);
  lb_mm_t* fn = lb_gemm_f32_q8d_q8c_8x16__avx512vnni;
  Rng rng(9);
  // m: tails of the 12-row tile and of the 48-row block; n: of the 32-column tile, the 16-column
  // half and the N block (128 columns at kp <= 4096, fewer above); k: one and several K blocks
  // of 256, with a last block shorter than 256 and kp > 4096 (N blocks of 96 columns)
  const Shape shapes[] = {
      {2, 8, 32, false, 127},    {13, 40, 300, false, 127}, {49, 137, 1100, false, 127}, {61, 300, 520, true, 127},
      {100, 24, 256, false, 127}, {97, 264, 4100, false, 64}, {12, 33, 5000, true, 127},   {50, 17, 1, false, 127},
  };
  int failed = 0, checks = 0;
  for (const Shape& s : shapes) {
    failed += run(s, rng, fn, reft->gemm_q8.fn, reft->quant_q8.fn);
    ++checks;
  }
  std::printf("q8 GEMM blocks (emulated): %d checks, %d failed\n", checks, failed);
  return failed ? 1 : 0;
}
