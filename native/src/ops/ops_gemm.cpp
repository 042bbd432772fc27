// Single-precision GEMM for Conv (im2col / 1x1), MatMul and Gemm: B is packed per thread into
// K x 16 panels, and a 6x16 register tile (AVX2+FMA, or a portable version) runs over all rows.
#include <algorithm>
#include <cstring>

#include "ops.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace lb {
namespace {

constexpr int64_t NR = 16;   // panel width (columns of C per tile)
constexpr int64_t MR = 6;    // rows of C per tile
constexpr int64_t KC = 256;  // K block (packed panel: KC x 16 floats = 16 KiB, stays in L1)

// Packs B[k0:k0+kc, n0:n0+nr] (zero-padded to 16 columns) into dst[kc][16].
void pack_b(const GemmArgs& g, int64_t k0, int64_t kc, int64_t n0, int64_t nr, float* dst) {
  if (!g.b_trans) {
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
bool have_avx2() { return (lb_cpu_features() & (LB_CPU_AVX2 | LB_CPU_FMA)) == (LB_CPU_AVX2 | LB_CPU_FMA); }
#endif

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float*);

TileFn pick_tile(const char** isa) {
#if defined(__x86_64__)
  static const bool avx2 = have_avx2() && lb_isa_active() != LB_ISA_SCALAR;
  if (avx2) {
    *isa = "avx2";
    return tile_avx2;
  }
#endif
  *isa = "scalar";
  return tile_portable;
}

}  // namespace

size_t gemm_scratch_per_thread() { return size_t(KC * NR + MR * NR) * sizeof(float) + 64; }

const char* gemm(const GemmArgs& g, ThreadPool* pool, void* scratch, size_t scratch_bytes) {
  const char* isa = "scalar";
  const TileFn tile = pick_tile(&isa);
  const int64_t npanels = (g.N + NR - 1) / NR;
  const size_t per = gemm_scratch_per_thread();
  auto body = [&](int tid, int64_t p0, int64_t p1) {
    float* panel = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + tid * per + 63) & ~uintptr_t(63));
    float* acc = panel + KC * NR;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n0 = p * NR, nr = std::min(NR, g.N - n0);
      for (int64_t k0 = 0; k0 < g.K || k0 == 0; k0 += KC) {
        const int64_t kc = std::min(KC, g.K - k0);
        if (kc > 0) pack_b(g, k0, kc, n0, nr, panel);
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
          if (kc > 0) tile(g.A + m0 * g.lda + k0, g.lda, panel, kc, mr, acc);
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

}  // namespace lb
