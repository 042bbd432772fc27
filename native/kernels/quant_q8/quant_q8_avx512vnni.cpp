// Activation quantizer for AVX-512. Dynamic blocks of 32 (per block or one scale per row), 16 blocks at a time: the
// blocks' |x| maxima in 16 registers, one transposing reduction to a vector of 16 amax, one division each for
// the 16 inverses and scales, codes by vcvtps2dq (round to nearest even) and saturating packs, the code sums
// by vpdpbusd against ones and a second transposing reduction, the metadata in two stores. Session 12: ~0.39
// -> ~0.20 ns per element at K = 2048..5632 (the per-block chain was an amax reduce, a scalar divide and a
// sum reduce per 32 elements). Static scales and other block sizes: 32 floats per step as two zmm through
// quant_q8_blocks.h. The same float operations per element as the reference (and the AVX2 quantizer), so the
// same codes and metadata. On Zen 4 a zmm op is two 256-bit halves: the gain is fewer instructions.
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__)
#error "quant_q8_avx512vnni.cpp must be compiled with -mavx512vnni -mavx512bw (the avx512vnni path)"
#endif
#include <immintrin.h>

#include "kernel_types.h"
#include "quant_q8_blocks.h"

namespace {

/// 16 floats of x (times mul) from [i, k); zeros past k.
inline __m512 load_x(const float* x, const float* mul, int64_t i, int64_t k) {
  if (i + 16 <= k) {
    const __m512 v = _mm512_loadu_ps(x + i);
    return mul ? _mm512_mul_ps(v, _mm512_loadu_ps(mul + i)) : v;
  }
  const int64_t n = k - i;
  const __mmask16 m = n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
  const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
  return mul ? _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, mul + i)) : v;
}

float amax_range(const float* x, const float* mul, int64_t lo, int64_t hi, int64_t k) {
  __m512 m = _mm512_setzero_ps();
  // |x| first: vmaxps returns its second operand when either is NaN, so a NaN input is skipped (as in the reference)
  for (int64_t i = lo; i < hi && i < k; i += 16) m = _mm512_max_ps(_mm512_abs_ps(load_x(x, mul, i, k)), m);
  const __m256 top = _mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(m), 1));
  __m256 h = _mm256_max_ps(_mm512_castps512_ps256(m), top);
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/// 16 codes of x[lo, lo+16) (zeros past k) with `inv`, plus `zero`, clamped to [qmin, qmax].
inline __m512i codes16(const float* x, const float* mul, int64_t lo, int64_t k, __m512 inv, __m512 zero, __m512 qmin,
                       __m512 qmax) {
  // roundscale 0x08: round to nearest even, no scaling, no precision exception (nearbyint)
  __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(load_x(x, mul, lo, k), inv), 0x08);
  v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, zero), qmin), qmax);
  // v is an integer in [-128, 127]: + 1.5 * 2^23 puts it in the low mantissa bits exactly, so the
  // bits minus those of 1.5 * 2^23 are the int32 (what cvttps gives; SIMDe 0.7 has no 512-bit cvt)
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  return _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(v, magic)), _mm512_castps_si512(magic));
}

struct Isa {
  using V = __m512;
  static V splat(float v) { return _mm512_set1_ps(v); }
  static float amax_range(const float* x, const float* mul, int64_t lo, int64_t hi, int64_t k) {
    return ::amax_range(x, mul, lo, hi, k);
  }
  static int32_t quant32(const float* x, const float* mul, int64_t lo, int64_t k, V inv, V zero, V qmin, V qmax,
                         int8_t* q) {
    const __m512i a = codes16(x, mul, lo, k, inv, zero, qmin, qmax);
    const __m512i b = codes16(x, mul, lo + 16, k, inv, zero, qmin, qmax);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtsepi32_epi8(a));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtsepi32_epi8(b));
    return _mm512_reduce_add_epi32(_mm512_add_epi32(a, b));
  }
};

/// vshufi32x4 on floats (SIMDe 0.7 has no _mm512_shuffle_f32x4): 128-bit chunks imm[1:0], imm[3:2] of a,
/// imm[5:4], imm[7:6] of b.
template <int imm>
inline __m512 chunks(__m512 a, __m512 b) {
  return _mm512_castsi512_ps(_mm512_shuffle_i32x4(_mm512_castps_si512(a), _mm512_castps_si512(b), imm));
}

/// The lane-wise reduction of 16 vectors in one: lane b of the result is `op` over the 16 lanes of v[b].
/// Each step pairs inputs and halves the lanes per block (128-bit chunks, then within chunks); `op` is
/// exact and order-free here (max of non-NaN floats, int32 sums), so any tree gives the reference's result.
/// With `paired`, v holds 8 vectors whose lower / upper 256 bits hold blocks 2i / 2i + 1 (the first step's
/// output).
template <class Op>
inline __m512 reduce16(__m512* v, bool paired) {
  if (!paired)
    for (int i = 0; i < 8; ++i)
      v[i] = Op::f(chunks<0x44>(v[2 * i], v[2 * i + 1]), chunks<0xEE>(v[2 * i], v[2 * i + 1]));
  // v[i]: block 2i in chunks 0-1, 2i + 1 in chunks 2-3
  for (int i = 0; i < 4; ++i)
    v[i] = Op::f(chunks<0x88>(v[2 * i], v[2 * i + 1]), chunks<0xDD>(v[2 * i], v[2 * i + 1]));
  // v[i]: chunk c holds block 4i + c
  for (int i = 0; i < 2; ++i)
    v[i] = Op::f(_mm512_shuffle_ps(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_ps(v[2 * i], v[2 * i + 1], 0xEE));
  // v[i]: chunk c lanes 0-1 hold block 8i + c, lanes 2-3 block 8i + 4 + c
  const __m512 r = Op::f(_mm512_shuffle_ps(v[0], v[1], 0x88), _mm512_shuffle_ps(v[0], v[1], 0xDD));
  // lane 4c + t holds block c + 4t: transpose the 4x4
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
}
struct MaxOp {
  static __m512 f(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
};
struct AddOp {
  static __m512 f(__m512 a, __m512 b) {
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
  }
};

/// 16 int32 codes of x[lo, lo+16) * inv, rounded to nearest even; NaN and below-range values come out
/// below -127 (int32 indefinite), above-range ones are clamped here to 127 (min returns v when it is NaN).
inline __m512i codes16_dyn(const float* x, const float* mul, int64_t lo, int64_t k, __m512 inv) {
  const __m512 v = _mm512_min_ps(_mm512_set1_ps(127.f), _mm512_mul_ps(load_x(x, mul, lo, k), inv));
  return _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

/// Dynamic codes and metadata of the n <= 16 blocks of 32 starting at element e0 (row_amax >= 0 for one
/// scale per row, < 0 for one per block). Every block's amax, scale and code sum in vectors: one
/// transposing reduction per 16 blocks instead of a horizontal one per block, one division for all.
inline void quant_group16(const float* x, const float* mul, int64_t e0, int n, int64_t k, float row_amax, int8_t* q,
                          lb_q8_meta* meta) {
  __m512 v[16];
  __m512 amax;
  if (row_amax < 0.f) {
    const __m512 zero = _mm512_setzero_ps();
    for (int b = 0; b < 16; ++b) {
      if (b >= n) {
        v[b] = zero;
        continue;
      }
      const __m512 m = _mm512_max_ps(_mm512_abs_ps(load_x(x, mul, e0 + 32 * b, k)), zero);  // NaN skipped
      v[b] = _mm512_max_ps(_mm512_abs_ps(load_x(x, mul, e0 + 32 * b + 16, k)), m);
    }
    amax = reduce16<MaxOp>(v, false);
  } else {
    amax = _mm512_set1_ps(row_amax);
  }
  const __m512 c127 = _mm512_set1_ps(127.f);
  alignas(64) float inv[16];
  _mm512_store_ps(inv, _mm512_maskz_div_ps(_mm512_cmp_ps_mask(amax, _mm512_setzero_ps(), _CMP_GT_OQ), c127, amax));
  const __m512 d = _mm512_div_ps(amax, c127);

  const __m512i fix = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m512i lo127 = _mm512_set1_epi8(-127), ones = _mm512_set1_epi8(1);
  const int pairs = (n + 1) / 2;
  for (int j = 0; j < 8; ++j) {
    if (j >= pairs) {
      v[j] = _mm512_setzero_ps();
      continue;
    }
    const int64_t i0 = e0 + 64 * j;
    const __m512 ia = _mm512_set1_ps(inv[2 * j]), ib = _mm512_set1_ps(inv[2 * j + 1]);
    const __m512i a0 = codes16_dyn(x, mul, i0, k, ia), a1 = codes16_dyn(x, mul, i0 + 16, k, ia);
    const __m512i b0 = codes16_dyn(x, mul, i0 + 32, k, ib), b1 = codes16_dyn(x, mul, i0 + 48, k, ib);
    // saturating packs: dword 4c + s of the result holds elements 4c..4c+3 of {a0, a1, b0, b1}[s]
    __m512i c = _mm512_packs_epi16(_mm512_packs_epi32(a0, a1), _mm512_packs_epi32(b0, b1));
    c = _mm512_max_epi8(_mm512_permutexvar_epi32(fix, c), lo127);
    if (i0 + 64 > k) {  // padding codes are 0 (x * inv may be NaN there when inv is inf)
      const int64_t valid = k - i0;  // < 64
      c = _mm512_maskz_mov_epi8(valid <= 0 ? __mmask64(0) : __mmask64((1ull << valid) - 1u), c);
    }
    if (2 * j + 1 < n)
      _mm512_storeu_si512(q + (i0 - e0), c);
    else
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + (i0 - e0)), _mm512_castsi512_si256(c));
    v[j] = _mm512_castsi512_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, c));  // blocks 2j | 2j + 1
  }
  const __m512 s = reduce16<AddOp>(v, true);
  // meta[b] = {d[b], s[b]}: interleave, then order the 128-bit chunks
  const __m512 lo = _mm512_unpacklo_ps(d, s), hi = _mm512_unpackhi_ps(d, s);
  const __m512i m0 = _mm512_permutex2var_epi64(_mm512_castps_si512(lo), _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11),
                                               _mm512_castps_si512(hi));
  const __m512i m1 = _mm512_permutex2var_epi64(_mm512_castps_si512(lo), _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15),
                                               _mm512_castps_si512(hi));
  _mm512_mask_storeu_epi64(meta, __mmask8(n >= 8 ? 0xFF : (1u << n) - 1u), m0);
  if (n > 8) _mm512_mask_storeu_epi64(meta + 8, __mmask8(n >= 16 ? 0xFF : (1u << (n - 8)) - 1u), m1);
}

}  // namespace

void lb_quant_q8d_f32_32__avx512vnni(const lb_quant_args* a, int8_t* q, lb_q8_meta* meta) {
  if (a->is_static || a->block != 32) return lb::quant_q8_blocks<Isa>(a, q, meta);
  const float row_amax = a->per_row ? amax_range(a->x, a->mul, 0, a->k, a->k) : -1.f;
  const int64_t nb = a->kp / 32;
  for (int64_t b = 0; b < nb; b += 16)
    quant_group16(a->x, a->mul, 32 * b, int(nb - b < 16 ? nb - b : 16), a->k, row_amax, q + 32 * b, meta + b);
}
