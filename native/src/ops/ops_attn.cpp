// Fused multi-head attention (the transformer exporter pass exporters/lbpk_attn.py lowers the
// MatMul/Mul/Add/Softmax/MatMul chain and its Reshape/Transpose copies into it):
//   out[b, i, h*D:(h+1)*D] = softmax_j(scale * q_bh[i] . k_bh[j] + mask[b, h, i, j]) . v_bh
// (the mask f32, or bool with attrs mask_true / mask_false = the values a true / false entry adds: the
// exporter folds a Where(cond, a, b) that only feeds attention ops into them; each op converts it once per run)
// with q [B, S, H*D], k and v [B, Sk, H*D] read in place (head h is a column block of width D, so
// no Transpose/Reshape copies) and the output written straight into its [B, S, H*D] layout.
// Per (batch, head): scores = Q.K^T through the fp32 GEMM (strided A, transposed B), one pass per
// row of scale + mask + max, vector exp, sum, normalise, then P.V through the GEMM into the output
// columns. (batch, head) pairs are split over the pool; each pair is computed whole by one thread
// in a fixed order, so results are bitwise identical for any thread count.
#pragma GCC optimize("O3")
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops.h"
#include "transpose8.h"
#include "vmath.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace lb {
namespace {

// p.i[0] B, i[1] S, i[2] Sk, i[3] H, i[4] D, i[5] has mask, i[6..9] mask strides (b, h, i, j) in
// elements (0 where broadcast), i[10..12] the column offsets of q, k, v in their rows, i[13..15] their
// row strides, i[16] 1 when the mask is bool (attrs mask_true / mask_false: the additive value of a true /
// false entry, p.f[1] / p.f[2]; the exporter folds Where(cond, a, b) into them), i[17] the mask's elements;
// p.f[0] scale.
constexpr int kMs = 6, kCol = 10, kLd = 13, kMaskBool = 16, kMaskN = 17;

// Row softmax of s[0:n] after s = s * scale + mask (mask may be null; mstride its element step).
void softmax_row_portable(float* s, int64_t n, float scale, const float* mask, int64_t mstride) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    const float v = s[j] * scale + (mask ? mask[j * mstride] : 0.f);
    s[j] = v;
    mx = std::max(mx, v);
  }
  float sum = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    const float e = std::exp(s[j] - mx);
    s[j] = e;
    sum += e;
  }
  const float inv = 1.f / sum;
  for (int64_t j = 0; j < n; ++j) s[j] *= inv;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) float hsum8(__m256 v) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

// exp(x) for x <= 0 (scores minus their row maximum): x clamped below at -87.3, 2^n by adding 1.5 * 2^23 (the
// integer lands in the low mantissa bits: no round / convert), exp(r) on |r| <= ln2 / 2 by Taylor to degree 6
// (truncation 1.2e-7 relative). Cheaper than vmath::exp8 (no upper clamp, one degree less, no cvtps).
__attribute__((target("avx2,fma"), always_inline)) inline __m256 exp_neg8(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
  const __m256 magic = _mm256_set1_ps(12582912.f);
  const __m256 kf = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), magic);
  const __m256 n = _mm256_sub_ps(kf, magic);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.f / 720.f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(kf), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

template <bool FastExp>
__attribute__((target("avx2,fma"), always_inline)) inline __m256 softmax_exp8(__m256 x) {
  if constexpr (FastExp) return exp_neg8(x);
  else return vmath::exp8(x);
}

// Softmax's first two passes on 8 lanes: s = s * scale + mask and the max in one pass, then
// s = exp(s - max) and its sum in the second (the tail, n % 8, padded with -inf: exp = 0, so every element
// takes the vector path); returns 1 / sum. FastExp: exp_neg8 (the small-head path) instead of vmath::exp8.
template <bool FastExp>
__attribute__((target("avx2,fma"))) float softmax_exp_avx2(float* s, int64_t n, float scale, const float* mask,
                                                           int64_t mstride) {
  const __m256 vs = _mm256_set1_ps(scale);
  __m256 vmx = _mm256_set1_ps(-INFINITY);
  const int64_t n8 = n & ~int64_t(7);
  alignas(32) float t[8];
  for (int64_t j = 0; j < n8; j += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(s + j), vs);
    if (mask) {
      __m256 m;
      if (mstride == 1) {
        m = _mm256_loadu_ps(mask + j);
      } else {
        for (int l = 0; l < 8; ++l) t[l] = mask[(j + l) * mstride];
        m = _mm256_load_ps(t);
      }
      v = _mm256_add_ps(v, m);
    }
    _mm256_storeu_ps(s + j, v);
    vmx = _mm256_max_ps(vmx, v);
  }
  float mx;
  {
    _mm256_store_ps(t, vmx);
    mx = t[0];
    for (int l = 1; l < 8; ++l) mx = std::max(mx, t[l]);
  }
  for (int64_t j = n8; j < n; ++j) {  // tail: same operations, one lane at a time
    const float v = s[j] * scale + (mask ? mask[j * mstride] : 0.f);
    s[j] = v;
    mx = std::max(mx, v);
  }
  const __m256 vm = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t j = 0; j < n8; j += 8) {
    const __m256 e = softmax_exp8<FastExp>(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
    _mm256_storeu_ps(s + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  if (n8 < n) {
    for (int l = 0; l < 8; ++l) t[l] = n8 + l < n ? s[n8 + l] - mx : -INFINITY;
    const __m256 e = softmax_exp8<FastExp>(_mm256_load_ps(t));
    acc = _mm256_add_ps(acc, e);
    _mm256_store_ps(t, e);
    std::memcpy(s + n8, t, size_t(n - n8) * sizeof(float));
  }
  return 1.f / hsum8(acc);
}

// The softmax row on 8 lanes: the two passes above, then the scaling by 1 / sum.
__attribute__((target("avx2,fma"))) void softmax_row_avx2(float* s, int64_t n, float scale, const float* mask,
                                                          int64_t mstride) {
  const float invs = softmax_exp_avx2<false>(s, n, scale, mask, mstride);
  const int64_t n8 = n & ~int64_t(7);
  const __m256 inv = _mm256_set1_ps(invs);
  for (int64_t j = 0; j < n8; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inv));
  for (int64_t j = n8; j < n; ++j) s[j] *= invs;
}

// The small-head path's softmax row: s = exp(s * scale + mask - max) with exp_neg8, unnormalised; returns
// 1 / sum: P.V scales its outputs by it (D products per row instead of Sk).
__attribute__((target("avx2,fma"))) float softmax_row_unnorm_avx2(float* s, int64_t n, float scale, const float* mask,
                                                                  int64_t mstride) {
  return softmax_exp_avx2<true>(s, n, scale, mask, mstride);
}
#endif

size_t scores_bytes(int64_t S, int64_t Sk) { return (size_t(S * Sk) * sizeof(float) + 63) & ~size_t(63); }

// ---- The small-head path (AVX2, head size D a multiple of 8, D <= kMaxD): per (batch, head) K^T is
// copied once into [D, Skp] (Skp = Sk rounded up to 16, zero columns past Sk), then per tile of up to
// kR query rows: scores [kR, Skp] in registers 6 x 16 at a time (D broadcasts of q against K^T rows),
// the softmax of each row, and P.V [kR, D] with 6 x 16 (or 6 x 8) accumulators over the Sk keys, V
// read in place. No GEMM packing per head and the [S, Sk] score matrix never leaves a 6-row tile.
constexpr int kR = 6;
constexpr int64_t kMaxD = 256;
inline int64_t round16(int64_t v) { return (v + 15) & ~int64_t(15); }
size_t small_bytes(int64_t Sk, int64_t D) { return size_t(round16(Sk) * (D + kR)) * sizeof(float); }

#if defined(__x86_64__)
bool small_head(int64_t D) { return D % 8 == 0 && D <= kMaxD && vmath::use_avx2(); }

// Six rows at a time; the accumulators are named (an array of __m256 was kept on the stack by GCC, one
// store per FMA). A tile with fewer rows repeats its last row (computed, never stored).
#define LB_ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)

// s[r, j0:j0+16] = q_r[:D] . kt[:D, j0:j0+16] for the 6 rows q_r
__attribute__((target("avx2,fma"))) inline void qk_tile6(const float* const* qr, const float* kt, int64_t skp,
                                                         int64_t D, float* s, int64_t j0) {
#define LB_Z(r) __m256 a##r = _mm256_setzero_ps(), b##r = _mm256_setzero_ps();
  LB_ROWS6(LB_Z)
#undef LB_Z
  const float *q0 = qr[0], *q1 = qr[1], *q2 = qr[2], *q3 = qr[3], *q4 = qr[4], *q5 = qr[5];
  for (int64_t d = 0; d < D; ++d) {
    const __m256 k0 = _mm256_load_ps(kt + d * skp + j0), k1 = _mm256_load_ps(kt + d * skp + j0 + 8);
#define LB_F(r)                                  \
  {                                              \
    const __m256 x = _mm256_broadcast_ss(q##r + d); \
    a##r = _mm256_fmadd_ps(x, k0, a##r);         \
    b##r = _mm256_fmadd_ps(x, k1, b##r);         \
  }
    LB_ROWS6(LB_F)
#undef LB_F
  }
#define LB_S(r)                                 \
  _mm256_store_ps(s + r * skp + j0, a##r);      \
  _mm256_store_ps(s + r * skp + j0 + 8, b##r);
  LB_ROWS6(LB_S)
#undef LB_S
}

// o[r, c0:c0+16] (TWO) or o[r, c0:c0+8] = p[r, :Sk] . v[:Sk, c0:...] for the rows r < rows of the tile
template <bool TWO>
__attribute__((target("avx2,fma"))) inline void pv_tile6(const float* p, int64_t skp, const float* v, int64_t ldv,
                                                         int64_t Sk, float* o, int64_t ldo, int64_t c0, int rows,
                                                         const float* inv) {
#define LB_Z(r) __m256 a##r = _mm256_setzero_ps(), b##r = _mm256_setzero_ps();
  LB_ROWS6(LB_Z)
#undef LB_Z
  for (int64_t j = 0; j < Sk; ++j) {
    const __m256 v0 = _mm256_loadu_ps(v + j * ldv + c0);
    const __m256 v1 = TWO ? _mm256_loadu_ps(v + j * ldv + c0 + 8) : v0;
#define LB_F(r)                                         \
  {                                                     \
    const __m256 x = _mm256_broadcast_ss(p + r * skp + j); \
    a##r = _mm256_fmadd_ps(x, v0, a##r);                \
    if (TWO) b##r = _mm256_fmadd_ps(x, v1, b##r);       \
  }
    LB_ROWS6(LB_F)
#undef LB_F
  }
#define LB_S(r)                                                                           \
  if (r < rows) {                                                                         \
    const __m256 ir = _mm256_broadcast_ss(inv + r);                                       \
    _mm256_storeu_ps(o + r * ldo + c0, _mm256_mul_ps(a##r, ir));                          \
    if (TWO) _mm256_storeu_ps(o + r * ldo + c0 + 8, _mm256_mul_ps(b##r, ir));             \
  }
  LB_ROWS6(LB_S)
#undef LB_S
}
#undef LB_ROWS6

// One (batch, head): q [S, D] (row stride ldq), k and v [Sk, D] (ldk, ldv), out [S, D] (ldo).
__attribute__((target("avx2,fma"))) void head_small(const float* q, int64_t ldq, const float* k, int64_t ldk,
                                                    const float* v, int64_t ldv, float* o, int64_t ldo, int64_t S,
                                                    int64_t Sk, int64_t D, float scale, const float* mask,
                                                    int64_t mrow, int64_t mcol, float* buf) {
  const int64_t skp = round16(Sk);
  float* kt = buf;              // [D, skp]
  float* tile = buf + D * skp;  // [kR, skp]
  const int64_t sk8 = Sk & ~int64_t(7);
  for (int64_t j = 0; j < sk8; j += 8)  // 8 x 8 blocks of K -> K^T
    for (int64_t d = 0; d < D; d += 8) {
      __m256 r[8];
      for (int u = 0; u < 8; ++u) r[u] = _mm256_loadu_ps(k + (j + u) * ldk + d);
      transpose8x8_ps(r);
      float* o0 = kt + d * skp + j;
      for (int u = 0; u < 8; ++u) _mm256_store_ps(o0 + u * skp, r[u]);
    }
  for (int64_t d = 0; d < D; ++d) {  // the last Sk % 8 keys and the zero columns up to skp
    float* row = kt + d * skp;
    for (int64_t j = sk8; j < Sk; ++j) row[j] = k[j * ldk + d];
    for (int64_t j = Sk; j < skp; ++j) row[j] = 0.f;
  }
  for (int64_t i = 0; i < S; i += kR) {
    const int rows = int(std::min<int64_t>(kR, S - i));
    const float* qr[kR];
    for (int r = 0; r < kR; ++r) qr[r] = q + (i + std::min(r, rows - 1)) * ldq;
    for (int64_t j0 = 0; j0 < skp; j0 += 16) qk_tile6(qr, kt, skp, D, tile, j0);
    alignas(32) float inv[kR];
    for (int r = 0; r < rows; ++r)
      inv[r] = softmax_row_unnorm_avx2(tile + r * skp, Sk, scale, mask ? mask + (i + r) * mrow : nullptr, mcol);
    float* oi = o + i * ldo;
    int64_t c0 = 0;
    for (; c0 + 16 <= D; c0 += 16) pv_tile6<true>(tile, skp, v, ldv, Sk, oi, ldo, c0, rows, inv);
    if (c0 < D) pv_tile6<false>(tile, skp, v, ldv, Sk, oi, ldo, c0, rows, inv);
  }
}
#endif

lb_status attn_infer(OpCtx& c) {
  for (size_t k = 0; k < c.in.size() && k < 3; ++k)  // (the mask's dtype is checked below)
    if (c.in[k] && c.in[k]->dtype != DType::F32) {
      c.err = "input " + std::to_string(k) + " must be f32, got " + dtype_name(c.in[k]->dtype);
      return LB_ERR_DTYPE;
    }
  if (c.in.size() < 3 || !c.in[0] || !c.in[1] || !c.in[2]) {
    c.err = "needs inputs q, k, v (and an optional mask)";
    return LB_ERR_SHAPE;
  }
  auto q = c.in[0]->shape, k = c.in[1]->shape, v = c.in[2]->shape;
  OpParams& p = *c.p;
  // "cols" + "width": q, k and v are column blocks [off, off + width) of wider rows (the exporter's
  // fused Q/K/V GEMM writes one [B, S, 3*H*D] tensor); the checks below then see [.., width].
  std::vector<int64_t> cols;
  const bool blocks = attr_ints(*c.attrs, "cols", &cols);
  if (blocks) {
    const int64_t w = attr_int(*c.attrs, "width", 0);
    std::vector<int64_t>* sh[3] = {&q, &k, &v};
    for (int j = 0; j < 3; ++j) {
      const int64_t last = sh[j]->size() == 3 ? (*sh[j])[2] : 0;
      if (cols.size() != 3 || w <= 0 || cols[size_t(j)] < 0 || cols[size_t(j)] + w > last) {
        c.err = "cols/width: " + std::string("qkv").substr(size_t(j), 1) + " " + shape_str(*sh[j]) +
                " has no column block of width " + std::to_string(w) + " at the given offset (cols needs 3 offsets)";
        return LB_ERR_SHAPE;
      }
      p.i[kCol + j] = cols[size_t(j)];
      p.i[kLd + j] = last;
      (*sh[j])[2] = w;
    }
  } else {
    for (int j = 0; j < 3; ++j) p.i[kLd + j] = c.in[size_t(j)]->shape.size() == 3 ? c.in[size_t(j)]->shape[2] : 0;
  }
  // heads and/or head_dim (the exporter stores the ones the model's Reshapes fix)
  const int64_t Ha = attr_int(*c.attrs, "heads", 0), Da = attr_int(*c.attrs, "head_dim", 0);
  const int64_t hd = q.size() == 3 ? q[2] : 0;
  const int64_t H = Ha > 0 ? Ha : Da > 0 && hd % Da == 0 ? hd / Da : 0;
  if (Da > 0 && H * Da != hd) {
    c.err = "head_dim " + std::to_string(Da) + " x heads " + std::to_string(H) + " != q's last dimension in " +
            shape_str(q);
    return LB_ERR_SHAPE;
  }
  if (q.size() != 3 || k.size() != 3 || v.size() != 3 || H <= 0 || q[2] % H != 0 || k[2] != q[2] || v[2] != q[2] ||
      k[0] != q[0] || v[0] != q[0] || v[1] != k[1] || q[2] == 0) {
    c.err = "expects q [B, S, H*D], k and v [B, Sk, H*D] and heads H > 0 dividing H*D; got q " + shape_str(q) +
            ", k " + shape_str(k) + ", v " + shape_str(v) + ", heads " + std::to_string(H);
    return LB_ERR_SHAPE;
  }
  p.i[0] = q[0];
  p.i[1] = q[1];
  p.i[2] = k[1];
  p.i[3] = H;
  p.i[4] = q[2] / H;
  p.f[0] = attr_float(*c.attrs, "scale", 1.f);
  // "lead": the leading [B, S] entries of the Reshape targets the exporter fused away for q, k, v
  // (0 = copy, -1 = inferred, else a fixed size, which must be this run's B or S / Sk)
  std::vector<int64_t> lead;
  if (attr_ints(*c.attrs, "lead", &lead)) {
    const int64_t want[6] = {q[0], q[1], k[0], k[1], v[0], v[1]};
    for (size_t j = 0; j < lead.size() && j < 6; ++j)
      if (lead[j] > 0 && lead[j] != want[j]) {
        c.err = "the fused Reshape of " + std::string(j < 2 ? "q" : j < 4 ? "k" : "v") + " has a fixed " +
                (j % 2 ? "sequence length " : "batch ") + std::to_string(lead[j]) + " but the input has " +
                std::to_string(want[j]) + ": re-export for this input shape";
        return LB_ERR_SHAPE;
      }
  }
  const Tensor* m = c.in.size() > 3 ? c.in[3] : nullptr;
  p.i[5] = m != nullptr;
  if (m) {  // right-aligned broadcast to [B, H, S, Sk]
    const bool sel = c.attrs->has("mask_true") || c.attrs->has("mask_false");
    if (m->dtype != (sel ? DType::Bool : DType::F32)) {
      c.err = std::string("mask (input 3) must be ") +
              (sel ? "bool (attrs mask_true / mask_false give its additive values)" : "f32 (a bool mask needs attrs "
                                                                                       "mask_true and mask_false)") +
              ", got " + dtype_name(m->dtype);
      return LB_ERR_DTYPE;
    }
    p.i[kMaskBool] = sel;
    p.i[kMaskN] = m->numel();
    p.f[1] = attr_float(*c.attrs, "mask_true", 0.f);
    p.f[2] = attr_float(*c.attrs, "mask_false", 0.f);
    const int64_t full[4] = {p.i[0], H, p.i[1], p.i[2]};
    const auto& ms = m->shape;
    if (ms.size() > 4) {
      c.err = "mask " + shape_str(ms) + " has more than 4 dimensions";
      return LB_ERR_SHAPE;
    }
    int64_t stride = 1;
    for (int d = 3; d >= 0; --d) {
      const int64_t md = d - (4 - int64_t(ms.size()));
      const int64_t dim = md >= 0 ? ms[size_t(md)] : 1;
      if (dim != 1 && dim != full[d]) {
        c.err = "mask " + shape_str(ms) + " does not broadcast to [B, H, S, Sk] = [" + std::to_string(full[0]) + ", " +
                std::to_string(full[1]) + ", " + std::to_string(full[2]) + ", " + std::to_string(full[3]) + "]";
        return LB_ERR_SHAPE;
      }
      p.i[kMs + d] = dim == 1 ? 0 : stride;
      stride *= dim;
    }
  }
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = q;
  c.scratch_bytes = (std::max(gemm_scratch_per_thread() + scores_bytes(p.i[1], p.i[2]), small_bytes(p.i[2], p.i[4])) + 64) *
                        size_t(op_threads(c)) +
                    (p.i[kMaskBool] ? size_t(p.i[kMaskN]) * sizeof(float) : 0);  // the bool mask as f32
  c.flops = uint64_t(4) * p.i[0] * H * p.i[1] * p.i[2] * p.i[4];
  return LB_OK;
}

void attn_run(OpCtx& c) {
  const OpParams& p = *c.p;
  const int64_t B = p.i[0], S = p.i[1], Sk = p.i[2], H = p.i[3], D = p.i[4], HD = H * D;
  const float scale = p.f[0];
  const float* q = c.in[0]->f32() + p.i[kCol];
  const float* k = c.in[1]->f32() + p.i[kCol + 1];
  const float* v = c.in[2]->f32() + p.i[kCol + 2];
  const int64_t ldq = p.i[kLd], ldk = p.i[kLd + 1], ldv = p.i[kLd + 2];
  const float* mask = p.i[5] && !p.i[kMaskBool] ? c.in[3]->f32() : nullptr;
  float* out = c.out[0]->f32();
  const size_t per = std::max(gemm_scratch_per_thread() + scores_bytes(S, Sk), small_bytes(Sk, D)) + 64;
  if (p.i[kMaskBool]) {  // the additive values of a bool mask, once per run (MiniLM: 16 Ki values)
    float* mf = reinterpret_cast<float*>(static_cast<char*>(c.scratch) + per * size_t(op_threads(c)));
    const uint8_t* mb = static_cast<const uint8_t*>(c.in[3]->data);  // bool: 0 / 1 bytes
    const float t = p.f[1], f = p.f[2];
    for (int64_t i = 0; i < p.i[kMaskN]; ++i) mf[i] = mb[i] ? t : f;
    mask = mf;
  }
  const bool avx2 = vmath::use_avx2();
  const char* isa[kMaxThreads] = {nullptr};
#if defined(__x86_64__)
  if (small_head(D)) {
    for_ranges(c, B * H, 2 * S * Sk * D, [&](int tid, int64_t i0, int64_t i1) {
      char* base = static_cast<char*>(c.scratch) + size_t(tid) * per;
      float* buf = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(base) + 63) & ~uintptr_t(63));
      for (int64_t bh = i0; bh < i1; ++bh) {
        const int64_t b = bh / H, h = bh % H;
        const float* mb = mask ? mask + b * p.i[kMs] + h * p.i[kMs + 1] : nullptr;
        head_small(q + b * S * ldq + h * D, ldq, k + b * Sk * ldk + h * D, ldk, v + b * Sk * ldv + h * D, ldv,
                   out + b * S * HD + h * D, HD, S, Sk, D, scale, mb, p.i[kMs + 2], p.i[kMs + 3], buf);
      }
    });
    c.isa = "avx2";
    return;
  }
#endif
  for_ranges(c, B * H, 2 * S * Sk * D, [&](int tid, int64_t i0, int64_t i1) {
    char* base = static_cast<char*>(c.scratch) + size_t(tid) * per;
    float* sc = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(base) + 63) & ~uintptr_t(63));
    void* gs = base + scores_bytes(S, Sk) + 64;
    const size_t gbytes = per - scores_bytes(S, Sk) - 64;
    for (int64_t bh = i0; bh < i1; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* qb = q + b * S * ldq + h * D;
      const float* kb = k + b * Sk * ldk + h * D;
      const float* vb = v + b * Sk * ldv + h * D;
      GemmArgs g1{S, Sk, D, qb, ldq, kb, ldk, true, sc, Sk};
      isa[tid] = gemm(g1, nullptr, gs, gbytes);
      const float* mb = mask ? mask + b * p.i[kMs] + h * p.i[kMs + 1] : nullptr;
      for (int64_t i = 0; i < S; ++i) {
        const float* mr = mb ? mb + i * p.i[kMs + 2] : nullptr;
#if defined(__x86_64__)
        if (avx2) {
          softmax_row_avx2(sc + i * Sk, Sk, scale, mr, p.i[kMs + 3]);
          continue;
        }
#endif
        softmax_row_portable(sc + i * Sk, Sk, scale, mr, p.i[kMs + 3]);
      }
      GemmArgs g2{S, D, Sk, sc, Sk, vb, ldv, false, out + b * S * HD + h * D, HD};
      gemm(g2, nullptr, gs, gbytes);
    }
  });
  for (const char* s : isa)
    if (s) c.isa = s;
  (void)avx2;
}

}  // namespace

void register_ops_attn(std::vector<OpDef>& r) { r.push_back(OpDef{"attention_f32", attn_infer, attn_run, false}); }

}  // namespace lb
