// Single-precision GEMM for Conv (im2col / 1x1), MatMul and Gemm: B is packed per thread into
// K x 16 panels, and a 6x16 register tile (AVX2+FMA, one zmm per row on the AVX-512 path, or a
// portable version) runs over all rows.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "gemm_prepacked.h"
#include "ops.h"
#include "vmath.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace lb {
namespace {

constexpr int64_t NR = 16;   // panel width (columns of C per tile)
constexpr int64_t MR = 6;    // rows of C per tile
constexpr int64_t kGroup = 8;  // AVX2 path: B panels packed per group (8 x KC x 16 floats = 192 KiB, in L2)
constexpr int64_t KC = 384;  // K block (packed panel: KC x 16 floats = 24 KiB, stays in L1)

// Packs B[k0:k0+kc, n0:n0+nr] (zero-padded to 16 columns) into dst[kc][16].
void pack_b(const GemmArgs& g, int64_t k0, int64_t kc, int64_t n0, int64_t nr, float* dst) {
  if (g.pack) {
    g.pack(g.pack_ctx, k0, kc, n0, nr, dst);
  } else if (!g.b_trans && nr == NR) {
    for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * NR, g.B + (k0 + k) * g.ldb + n0, NR * sizeof(float));
  } else if (!g.b_trans) {
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = g.B + (k0 + k) * g.ldb + n0;
      float* d = dst + k * NR;
      int64_t j = 0;
      for (; j < nr; ++j) d[j] = src[j];
      for (; j < NR; ++j) d[j] = 0.f;
    }
  } else {
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t j = 0; j < NR; ++j) dst[k * NR + j] = j < nr ? g.B[(n0 + j) * g.ldb + k0 + k] : 0.f;
  }
}

// acc[MR][NR] (+)= A[m0: m0+mr, k0:k0+kc] * panel
void tile_portable(const float* A, int64_t lda, const float* panel, int64_t kc, int64_t mr, float* acc) {
  for (int64_t r = 0; r < mr; ++r) {
    float* c = acc + r * NR;
    const float* a = A + r * lda;
    for (int64_t k = 0; k < kc; ++k) {
      const float av = a[k];
      const float* b = panel + k * NR;
      for (int64_t j = 0; j < NR; ++j) c[j] += av * b[j];
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void tile_avx2(const float* A, int64_t lda, const float* panel, int64_t kc,
                                                    int64_t mr, float* acc) {
  if (mr == MR) {
    __m256 c00 = _mm256_loadu_ps(acc + 0), c01 = _mm256_loadu_ps(acc + 8);
    __m256 c10 = _mm256_loadu_ps(acc + 16), c11 = _mm256_loadu_ps(acc + 24);
    __m256 c20 = _mm256_loadu_ps(acc + 32), c21 = _mm256_loadu_ps(acc + 40);
    __m256 c30 = _mm256_loadu_ps(acc + 48), c31 = _mm256_loadu_ps(acc + 56);
    __m256 c40 = _mm256_loadu_ps(acc + 64), c41 = _mm256_loadu_ps(acc + 72);
    __m256 c50 = _mm256_loadu_ps(acc + 80), c51 = _mm256_loadu_ps(acc + 88);
    const float *a0 = A, *a1 = A + lda, *a2 = A + 2 * lda, *a3 = A + 3 * lda, *a4 = A + 4 * lda, *a5 = A + 5 * lda;
    for (int64_t k = 0; k < kc; ++k) {
      const __m256 b0 = _mm256_loadu_ps(panel + k * NR), b1 = _mm256_loadu_ps(panel + k * NR + 8);
      __m256 a = _mm256_broadcast_ss(a0 + k);
      c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01);
      a = _mm256_broadcast_ss(a1 + k);
      c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11);
      a = _mm256_broadcast_ss(a2 + k);
      c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21);
      a = _mm256_broadcast_ss(a3 + k);
      c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31);
      a = _mm256_broadcast_ss(a4 + k);
      c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41);
      a = _mm256_broadcast_ss(a5 + k);
      c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    _mm256_storeu_ps(acc + 0, c00); _mm256_storeu_ps(acc + 8, c01);
    _mm256_storeu_ps(acc + 16, c10); _mm256_storeu_ps(acc + 24, c11);
    _mm256_storeu_ps(acc + 32, c20); _mm256_storeu_ps(acc + 40, c21);
    _mm256_storeu_ps(acc + 48, c30); _mm256_storeu_ps(acc + 56, c31);
    _mm256_storeu_ps(acc + 64, c40); _mm256_storeu_ps(acc + 72, c41);
    _mm256_storeu_ps(acc + 80, c50); _mm256_storeu_ps(acc + 88, c51);
    return;
  }
  for (int64_t r = 0; r < mr; ++r) {
    __m256 c0 = _mm256_loadu_ps(acc + r * NR), c1 = _mm256_loadu_ps(acc + r * NR + 8);
    const float* a = A + r * lda;
    for (int64_t k = 0; k < kc; ++k) {
      const __m256 av = _mm256_broadcast_ss(a + k);
      c0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(panel + k * NR), c0);
      c1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(panel + k * NR + 8), c1);
    }
    _mm256_storeu_ps(acc + r * NR, c0);
    _mm256_storeu_ps(acc + r * NR + 8, c1);
  }
}
// Register-tiled R x 16 block of C = A[R, kc] . panel[kc, 16]: accumulators stay in registers;
// the first K block starts from the bias, later ones from C; the last one applies Relu/Clip/
// HardSigmoid/HardSwish in registers (Sigmoid after the store). C is written directly (through
// a small buffer for a partial panel).
template <int R, bool H = false>
__attribute__((target("avx2,fma"))) void kern_avx2(const GemmArgs& g, const float* A, const float* panel, int64_t kc,
                                                   int64_t m0, int64_t n0, int64_t nr, bool first, bool last,
                                                   const float* colbias) {
  __m256 c0[R], c1[R];
  alignas(32) float tmp[16];
  const bool full = nr == NR;
  if (first) {
    const __m256 z = _mm256_setzero_ps();
    const __m256 cb0 = g.bias_mode == 2 ? _mm256_loadu_ps(colbias) : z;
    const __m256 cb1 = g.bias_mode == 2 ? _mm256_loadu_ps(colbias + 8) : z;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      if (g.bias_mode == 1) {
        c0[r] = c1[r] = _mm256_set1_ps(g.bias[m0 + r]);
      } else {
        c0[r] = cb0;
        c1[r] = cb1;
      }
    }
  } else {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const float* cr = g.C + (m0 + r) * g.ldc + n0;
      if (full) {
        c0[r] = _mm256_loadu_ps(cr);
        c1[r] = _mm256_loadu_ps(cr + 8);
      } else {
        for (int j = 0; j < 16; ++j) tmp[j] = j < nr ? cr[j] : 0.f;
        c0[r] = _mm256_load_ps(tmp);
        c1[r] = _mm256_load_ps(tmp + 8);
      }
    }
  }
  const int64_t lda = g.lda;
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(panel + k * NR), b1 = H ? b0 : _mm256_loadu_ps(panel + k * NR + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
      c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
      if (!H) c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
    }
  }
  const bool act_in_reg = last && g.act != ACT_NONE && g.act != ACT_SIGMOID;
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    __m256 v0 = c0[r], v1 = c1[r];
    if (act_in_reg) {
      v0 = vmath::act8(v0, g.act, g.lo, g.hi);
      v1 = vmath::act8(v1, g.act, g.lo, g.hi);
    }
    float* cr = g.C + (m0 + r) * g.ldc + n0;
    if (full) {
      _mm256_storeu_ps(cr, v0);
      _mm256_storeu_ps(cr + 8, v1);
    } else {
      _mm256_store_ps(tmp, v0);
      _mm256_store_ps(tmp + 8, v1);
      std::memcpy(cr, tmp, size_t(nr) * sizeof(float));
    }
  }
  if (last && g.act == ACT_SIGMOID)
    for (int r = 0; r < R; ++r) apply_act(g.C + (m0 + r) * g.ldc + n0, nr, g.act, g.lo, g.hi);
}

// kern_avx2 on P (1 or 2) neighbouring full 16-column panels with AVX-512 (session 15): one zmm
// accumulator per row and panel, which Zen 4 runs as two 256-bit halves (the same FMAs in fewer
// instructions: per k, P loads + R broadcasts + P*R FMAs instead of 2P + PR + 2PR; two panels share each
// broadcast of A). Panel 2 starts pstride floats after panel 1, its bias at colbias + 16; row k of a
// panel starts kstride floats after row k - 1 (16 in a packed panel, ldb when B is read in place). Each lane
// does kern_avx2's fused multiply-adds in the same order (bias, then k in order; a K block's partial
// sum goes through C), so the results are the same bits.
template <int R, int P>
__attribute__((target("avx2,fma,avx512f,avx512dq"))) void kern_avx512(const GemmArgs& g, const float* A,
                                                                     const float* panel, int64_t pstride, int64_t kstride,
                                                                     int64_t kc,
                                                                     int64_t m0, int64_t n0, bool first, bool last,
                                                                     const float* colbias) {
  __m512 c[P][R];
#pragma GCC unroll 2
  for (int j = 0; j < P; ++j) {
    if (first) {
      const __m512 cb = g.bias_mode == 2 ? _mm512_loadu_ps(colbias + 16 * j) : _mm512_setzero_ps();
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) c[j][r] = g.bias_mode == 1 ? _mm512_set1_ps(g.bias[m0 + r]) : cb;
    } else {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) c[j][r] = _mm512_loadu_ps(g.C + (m0 + r) * g.ldc + n0 + 16 * j);
    }
  }
  const int64_t lda = g.lda;
  for (int64_t k = 0; k < kc; ++k) {
    __m512 b[P];
#pragma GCC unroll 2
    for (int j = 0; j < P; ++j) b[j] = _mm512_loadu_ps(panel + j * pstride + k * kstride);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * lda + k]);
#pragma GCC unroll 2
      for (int j = 0; j < P; ++j) c[j][r] = _mm512_fmadd_ps(a, b[j], c[j][r]);
    }
  }
  const bool act_in_reg = last && g.act != ACT_NONE && g.act != ACT_SIGMOID;
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* cr = g.C + (m0 + r) * g.ldc + n0;
#pragma GCC unroll 2
    for (int j = 0; j < P; ++j) {
      if (act_in_reg) {  // vmath's 8-lane activation on each half
        _mm256_storeu_ps(cr + 16 * j, vmath::act8(_mm512_castps512_ps256(c[j][r]), g.act, g.lo, g.hi));
        _mm256_storeu_ps(cr + 16 * j + 8, vmath::act8(_mm512_extractf32x8_ps(c[j][r], 1), g.act, g.lo, g.hi));
      } else {
        _mm512_storeu_ps(cr + 16 * j, c[j][r]);
      }
    }
  }
  if (last && g.act == ACT_SIGMOID)
    for (int r = 0; r < R; ++r) apply_act(g.C + (m0 + r) * g.ldc + n0, 16 * P, g.act, g.lo, g.hi);
}

using KernFn = void (*)(const GemmArgs&, const float*, const float*, int64_t, int64_t, int64_t, int64_t, bool, bool,
                        const float*);
const KernFn kKernAvx2[MR + 1] = {nullptr, kern_avx2<1>, kern_avx2<2>, kern_avx2<3>, kern_avx2<4>, kern_avx2<5>, kern_avx2<6>};
using Kern512Fn = void (*)(const GemmArgs&, const float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool,
                           const float*);
// [panels - 1][rows]
const Kern512Fn kKern512[2][MR + 1] = {
    {nullptr, kern_avx512<1, 1>, kern_avx512<2, 1>, kern_avx512<3, 1>, kern_avx512<4, 1>, kern_avx512<5, 1>,
     kern_avx512<6, 1>},
    {nullptr, kern_avx512<1, 2>, kern_avx512<2, 2>, kern_avx512<3, 2>, kern_avx512<4, 2>, kern_avx512<5, 2>,
     kern_avx512<6, 2>}};
// A panel with at most 8 columns (the edge of N = 49, 196, ...): half the FMAs, same sums.
const KernFn kKern8Avx2[MR + 1] = {nullptr,          kern_avx2<1, true>, kern_avx2<2, true>, kern_avx2<3, true>,
                                   kern_avx2<4, true>, kern_avx2<5, true>, kern_avx2<6, true>};

// Rows of the next tile when `rem` rows are left: 6, but the last 7 or 8 rows run as 4 + 3 / 4 + 4
// (M = 128: 20 x 6 + 2 x 4 instead of 21 x 6 + 2). A tile of R rows keeps 2R accumulators: R <= 3
// is bound by the FMA latency (4 cycles per k, as R = 4), so 6 + 2 cost 10 cycles per k, 4 + 4 cost 8.
// Same per-element sums (k in order) whatever the tile height.
inline int64_t edge_rows(int64_t rem) { return rem == 7 || rem == 8 ? 4 : std::min(MR, rem); }

// Panels [p0, p1) of the blocked GEMM (B packed per K block into `panel`).
// bp: B already in panels (gemm_prepacked): read in place, nothing packed.
// z512: full 16-column panels run kern_avx512, two at a time; a row-major B (no packer, not transposed)
// is read in place there (rows ldb apart), only the partial edge panel is packed (session 15, mf15b:
// packing B was 15 % of a 1-thread run of GEMMs whose weights are not in panels; MLAS packs such
// weights once at load).
__attribute__((target("avx2,fma"))) void panels_avx2(const GemmArgs& g, int64_t p0, int64_t p1, int64_t mb, int64_t me,
                                                     float* panel, const float* bp, bool z512) {
  alignas(32) float colbias[kGroup][16];
  // Pack up to kGroup neighbouring panels of the K block (in L2) and run each 6-row tile of A over
  // all of them: the A tile stays in L1, the B panels stream sequentially from L2, and each row of
  // C is written in up to 8 x 64 contiguous bytes.
  const int64_t group = kGroup;
  const bool inplace = z512 && !bp && !g.pack && !g.b_trans;
  for (int64_t pg = p0; pg < p1; pg += group) {
    const int64_t np = std::min(group, p1 - pg);
    for (int64_t k0 = 0; k0 < g.K || k0 == 0; k0 += KC) {
      const int64_t kc = std::max<int64_t>(0, std::min(KC, g.K - k0));
      for (int64_t q = 0; q < np; ++q) {
        const int64_t n0 = (pg + q) * NR, nr = std::min(NR, g.N - n0);
        if (kc > 0 && !bp && !(inplace && nr == NR)) pack_b(g, k0, kc, n0, nr, panel + q * kc * NR);
        if (k0 == 0 && g.bias_mode == 2)
          for (int64_t j = 0; j < NR; ++j) colbias[q][j] = j < nr ? g.bias[n0 + j] : 0.f;
      }
      const bool first = k0 == 0, last = k0 + KC >= g.K;
      for (int64_t m0 = mb; m0 < me; m0 += edge_rows(me - m0)) {
        const int64_t mr = edge_rows(me - m0);
        const float* a = g.A + m0 * g.lda + k0;
        const int64_t pstride = bp ? g.K * NR : kc * NR;  // from one panel to the next
        for (int64_t q = 0; q < np;) {
          const int64_t n0 = (pg + q) * NR, nr = std::min(NR, g.N - n0);
          const float* pq = bp ? bp + ((pg + q) * g.K + k0) * NR : panel + q * kc * NR;
          if (z512 && nr == NR) {
            const int64_t two = q + 1 < np && n0 + 2 * NR <= g.N;
            if (inplace)
              kKern512[two][mr](g, a, g.B + k0 * g.ldb + n0, NR, g.ldb, kc, m0, n0, first, last, colbias[q]);
            else
              kKern512[two][mr](g, a, pq, pstride, NR, kc, m0, n0, first, last, colbias[q]);
            q += 1 + two;
          } else {
            (nr <= 8 ? kKern8Avx2 : kKernAvx2)[mr](g, a, pq, kc, m0, n0, nr, first, last, colbias[q]);
            ++q;
          }
        }
      }
      if (kc <= 0) break;
    }
  }
}

// Few rows (M <= 4): no packing; B is streamed once. Row-major B: 64 columns (8 accumulators)
// per step, k in order. Transposed B: one dot product per output (8 lanes, fixed order).
__attribute__((target("avx2,fma"))) void small_m_avx2(const GemmArgs& g, int64_t c0, int64_t c1) {
  for (int64_t m = 0; m < g.M; ++m) {
    const float* a = g.A + m * g.lda;
    float* cr = g.C + m * g.ldc;
    if (!g.b_trans) {
      int64_t n = c0;
      for (; n + 64 <= c1; n += 64) {
        __m256 acc[8];
        for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
        for (int64_t k = 0; k < g.K; ++k) {
          const __m256 av = _mm256_broadcast_ss(a + k);
          const float* b = g.B + k * g.ldb + n;
#pragma GCC unroll 8
          for (int j = 0; j < 8; ++j) acc[j] = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + 8 * j), acc[j]);
        }
        for (int j = 0; j < 8; ++j) _mm256_storeu_ps(cr + n + 8 * j, acc[j]);
      }
      for (; n + 8 <= c1; n += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t k = 0; k < g.K; ++k) acc = _mm256_fmadd_ps(_mm256_broadcast_ss(a + k), _mm256_loadu_ps(g.B + k * g.ldb + n), acc);
        _mm256_storeu_ps(cr + n, acc);
      }
      for (; n < c1; ++n) {
        float acc = 0.f;
        for (int64_t k = 0; k < g.K; ++k) acc = std::fma(a[k], g.B[k * g.ldb + n], acc);
        cr[n] = acc;
      }
    } else {
      for (int64_t n = c0; n < c1; ++n) {
        const float* b = g.B + n * g.ldb;
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        int64_t k = 0;
        for (; k + 16 <= g.K; k += 16) {
          s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
          s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), s1);
        }
        alignas(32) float t[8];
        _mm256_store_ps(t, _mm256_add_ps(s0, s1));
        float acc = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
        for (; k < g.K; ++k) acc = std::fma(a[k], b[k], acc);
        cr[n] = acc;
      }
    }
    for (int64_t n = c0; n < c1; ++n)
      cr[n] += g.bias_mode == 1 ? g.bias[m] : g.bias_mode == 2 ? g.bias[n] : 0.f;
    apply_act(cr + c0, c1 - c0, g.act, g.lo, g.hi);
  }
}

// The CPU's features are fixed; the active path is read per call (lb_isa_select can change it at run time).
bool have_avx2() {
  static const bool cpu = (lb_cpu_features() & (LB_CPU_AVX2 | LB_CPU_FMA)) == (LB_CPU_AVX2 | LB_CPU_FMA);
  return cpu;
}
bool use_avx512() {
  static const bool cpu = (lb_cpu_features() & (LB_CPU_AVX512F | LB_CPU_AVX512DQ)) == (LB_CPU_AVX512F | LB_CPU_AVX512DQ);
  return cpu && lb_isa_active() == LB_ISA_AVX512VNNI;
}
#endif

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float*);

TileFn pick_tile(const char** isa) {
#if defined(__x86_64__)
  if (have_avx2() && lb_isa_active() != LB_ISA_SCALAR) {
    *isa = "avx2";
    return tile_avx2;
  }
#endif
  *isa = "scalar";
  return tile_portable;
}

}  // namespace

size_t gemm_scratch_per_thread() { return size_t(kGroup * KC * NR + MR * NR) * sizeof(float) + 64; }

namespace {
const char* gemm_impl(const GemmArgs& g, const float* bp, ThreadPool* pool, void* scratch, size_t scratch_bytes) {
  const char* isa = "scalar";
  const TileFn tile = pick_tile(&isa);
  const int64_t npanels = (g.N + NR - 1) / NR;
  const size_t per = gemm_scratch_per_thread();
#if defined(__x86_64__)
  if (tile == tile_avx2) {
    if (g.M <= 4 && !g.pack && !bp) {  // column ranges of 64: whole 64-column blocks whatever the thread count
      const int64_t blocks = (g.N + 63) / 64;
      parallel_ranges(pool, blocks, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, g.M * g.K * 64)),
                      [&](int, int64_t b0, int64_t b1) { small_m_avx2(g, b0 * 64, std::min(g.N, b1 * 64)); });
      return isa;
    }
    const bool z512 = use_avx512();
    if (z512 && g.N >= NR) isa = "avx512vnni";
    if (scratch_bytes < per * size_t(pool ? pool->size() : 1)) pool = nullptr;
    // Few panels (small maps: N = 49 is 4 panels) and many rows: items are (row block of kRowBlock,
    // panel), so the work still splits evenly; each row block packs its own copy of the panel
    // (~1/kRowBlock of its compute). The split depends only on the shape.
    constexpr int64_t kRowBlock = 48;
    const int64_t mblocks = npanels < 16 && g.M >= 2 * kRowBlock ? (g.M + kRowBlock - 1) / kRowBlock : 1;
    const int64_t mstep = mblocks == 1 ? g.M : kRowBlock;
    // Whole panels: chunks of ~kGroup panels (a chunk's 6-row A tile stays in L1 over its panels and
    // the next panels stream in behind; chunks of 1-2 panels re-read all of A from L2 per panel and
    // wait for each cold panel: M = 128, K = 384, N = 1536 ran ~6% slower with warm weights and ~16%
    // with cold ones in a harness at load 8), an even number of them (balanced over 2 threads).
    // MiniLM, in-model A/B (1 thread, load 6): FFN up 12.00 -> 11.78 ms, FFN down 11.76 -> 11.46 ms per run.
    const int64_t items = npanels * mblocks;
    const int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, mstep * g.K * NR));
    int64_t chunks = items;
    if (mblocks == 1 && grain == 1) {
      chunks = (npanels + kGroup - 1) / kGroup;
      if (chunks > 1) chunks += chunks & 1;
    }
    parallel_ranges(pool, items, grain,
                    [&](int tid, int64_t i0, int64_t i1) {
                      float* panel = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + tid * per + 63) & ~uintptr_t(63));
                      for (int64_t i = i0; i < i1;) {  // runs of items in one row block
                        const int64_t blk = i / npanels, p0 = i % npanels;
                        const int64_t p1 = std::min(npanels, p0 + (i1 - i));
                        panels_avx2(g, p0, p1, blk * mstep, std::min(g.M, (blk + 1) * mstep), panel, bp, z512);
                        i += p1 - p0;
                      }
                    }, std::min<int64_t>(64, chunks));
    return isa;
  }
#endif
  auto body = [&](int tid, int64_t p0, int64_t p1) {
    float* panel = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + tid * per + 63) & ~uintptr_t(63));
    float* acc = panel + KC * NR;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n0 = p * NR, nr = std::min(NR, g.N - n0);
      for (int64_t k0 = 0; k0 < g.K || k0 == 0; k0 += KC) {
        const int64_t kc = std::min(KC, g.K - k0);
        const float* pk = bp ? bp + (p * g.K + k0) * NR : panel;
        if (kc > 0 && !bp) pack_b(g, k0, kc, n0, nr, panel);
        const bool first = k0 == 0, last = k0 + KC >= g.K;
        for (int64_t m0 = 0; m0 < g.M; m0 += MR) {
          const int64_t mr = std::min(MR, g.M - m0);
          for (int64_t r = 0; r < mr; ++r) {
            float* c = g.C + (m0 + r) * g.ldc + n0;
            float* a = acc + r * NR;
            if (first) {
              const float bv = g.bias_mode == 1 ? g.bias[m0 + r] : 0.f;
              for (int64_t j = 0; j < NR; ++j) a[j] = g.bias_mode == 2 ? (j < nr ? g.bias[n0 + j] : 0.f) : bv;
            } else {
              for (int64_t j = 0; j < nr; ++j) a[j] = c[j];
            }
          }
          if (kc > 0) tile(g.A + m0 * g.lda + k0, g.lda, pk, kc, mr, acc);
          for (int64_t r = 0; r < mr; ++r) {
            float* c = g.C + (m0 + r) * g.ldc + n0;
            if (last) apply_act(acc + r * NR, nr, g.act, g.lo, g.hi);
            std::memcpy(c, acc + r * NR, size_t(nr) * sizeof(float));
          }
        }
        if (kc <= 0) break;
      }
    }
  };
  if (scratch_bytes < per * size_t(pool ? pool->size() : 1)) pool = nullptr;  // (plan always gives enough)
  parallel_ranges(pool, npanels, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, g.M * g.K * NR)), body);
  return isa;
}
}  // namespace

const char* gemm(const GemmArgs& g, ThreadPool* pool, void* scratch, size_t scratch_bytes) {
  return gemm_impl(g, nullptr, pool, scratch, scratch_bytes);
}

const char* gemm_prepacked(const GemmArgs& g, const float* panels, ThreadPool* pool, void* scratch,
                           size_t scratch_bytes) {
  return gemm_impl(g, panels, pool, scratch, scratch_bytes);
}

}  // namespace lb
