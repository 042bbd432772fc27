/// lowbit_blocks.h — the packed weight and activation formats of lowbit's kernels.
///
/// One portable layout per weight format: the same bytes are read by the scalar reference and
/// by every SIMD path (AVX2, AVX-512 VNNI, NEON, dotprod, i8mm), so one package gives bitwise
/// identical integer accumulators on x86 and ARM. The Python packer (lowbit.packing) writes these
/// bytes and is tested byte-for-byte against the C++ packer (native/src/packing.cpp).
///
/// Geometry shared by every weight format (docs/block-formats.md has pictures):
///  * Rows (output channels, N) are grouped in panels of LB_PANEL_ROWS = 8; N is padded up to a
///    multiple of 8 with all-zero rows (scale 0), which kernels compute but never store.
///  * Inside a panel, K advances in "quads" of 4: 32 bytes hold 4 consecutive k for each of the
///    8 rows, row-major ([row][k%4]). That is one AVX2 register of 8 int32 lanes (vpmaddubsw +
///    vpmaddwd, vpdpbusd), two NEON registers (sdot by lane), or half of an AVX-512 register.
///  * 4-bit codes sit in nibble pairs: one 32-byte "chunk" covers 8 k; the low nibble of byte
///    (row*4 + j) is k = 8c + j and its high nibble k = 8c + 4 + j. One mask gives quad 2c, one
///    shift and mask gives quad 2c+1. Codes are stored pre-offset as unsigned 0..15.
///  * 2-bit ternary codes: one 32-byte chunk covers 16 k; bits 2p..2p+1 of byte (row*4 + j) hold
///    k = 16c + 4p + j, stored as t + 1 in {0, 1, 2}.
///  * Group formats store, per (panel, group), a header of 8 fp16 scales (and 8 fp16 minimums
///    for the asymmetric format) followed by the group's codes: a weight stream that GEMV reads
///    strictly sequentially.
///
/// Activations (int8, quantized at run time) are row-major int8 codes padded with zeros to a
/// multiple of 32 along K, plus one lb_q8_meta (scale, code sum) per block of `act_block` codes.
#ifndef LOWBIT_BLOCKS_H_
#define LOWBIT_BLOCKS_H_

#include <stdint.h>

#ifdef __cplusplus
#define LB_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
extern "C" {
#else
#define LB_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#define LB_PANEL_ROWS 8  ///< rows (output channels) interleaved in one panel
#define LB_QUAD 4        ///< consecutive k per row in one 32-byte unit
#define LB_KBLOCK 32     ///< K granularity of activations and int8 weights (zero padded)

/// Weight formats (the values are part of the .lbpk format: never renumber).
typedef enum lb_wfmt {
  LB_WFMT_Q8 = 1,   ///< int8 per output channel, symmetric, fp32 row scale (w8a8)
  LB_WFMT_Q4 = 2,   ///< int4 groups of 32/64/128, symmetric: w = d * (u - 8), u in 0..15
  LB_WFMT_Q4A = 3,  ///< int4 groups, asymmetric: w = d * u + m (an IR zero point z gives m = -d*z)
  LB_WFMT_C4 = 4,   ///< 4-bit codebook groups: w = d * lut[u] (NF4, FP4 E2M1, learned k-means)
  LB_WFMT_T2 = 5,   ///< ternary groups: w = d * (u - 1), u in {0, 1, 2}, 2 bits per weight
} lb_wfmt;

/// One fp16 value as stored (IEEE binary16 bits, little endian).
typedef uint16_t lb_fp16;

/// Q8: one 32-byte quad unit of a panel: 4 consecutive k of 8 rows, [row][k%4].
/// A Q8 weight is NP = ceil(N/8) panels of K32/4 units (K32 = K rounded up to 32, zero padded),
/// then float row_scale[8*NP] (0 for padding rows), then int32 row_sum[8*NP] (sum over k of the
/// codes, which folds an activation zero point: sum_k w*(q - z) = dot - z*row_sum).
typedef struct lb_q8_quad {
  int8_t q[LB_PANEL_ROWS * LB_QUAD];  ///< codes in [-127, 127]
} lb_q8_quad;
LB_STATIC_ASSERT(sizeof(lb_q8_quad) == 32, "lb_q8_quad is 32 bytes");

/// 7-bit Q8: a Q8 weight whose codes all lie in [-LB_Q8_W7_MAX, LB_Q8_W7_MAX]. Same bytes, same
/// results; a property of the codes, not a separate format (an older reader runs it as Q8). The
/// quantizer writes it for targets without int8 dot-product instructions (x86 without VNNI,
/// ARM without dotprod): there activations can enter vpmaddubsw unsigned (x + 128 <= 255) and
/// no int16 pair sum 2 * 255 * 64 = 32640 saturates, so the AVX2 GEMM is exact at the u8 x s8
/// rate. The runtime recognises it when a weight is loaded (lb::packed_weight_init scans the
/// codes) and then runs the gemm_q7 kernel family.
#define LB_Q8_W7_MAX 64
LB_STATIC_ASSERT(2 * 255 * LB_Q8_W7_MAX <= 32767, "7-bit Q8 pair sums of vpmaddubsw must fit int16");

/// 4-bit chunk: 8 k of 8 rows, two codes per byte (see the geometry above).
typedef struct lb_nib_chunk {
  uint8_t qs[32];  ///< low nibble: quad 2c, high nibble: quad 2c+1
} lb_nib_chunk;
LB_STATIC_ASSERT(sizeof(lb_nib_chunk) == 32, "lb_nib_chunk is 32 bytes");

/// 2-bit chunk: 16 k of 8 rows, four codes per byte.
typedef struct lb_t2_chunk {
  uint8_t qs[32];  ///< bits 2p..2p+1: quad 4c+p
} lb_t2_chunk;
LB_STATIC_ASSERT(sizeof(lb_t2_chunk) == 32, "lb_t2_chunk is 32 bytes");

/// Q4 / C4 block of one panel and one group of G = 32, 64 or 128 k: 8 scales, then G/8 chunks.
/// For C4 the scale already includes the codebook's lut_scale (w = d * lut[u]).
#define LB_DEFINE_Q4_BLOCK(G)                                                        \
  typedef struct lb_q4_g##G {                                                        \
    lb_fp16 d[LB_PANEL_ROWS];        /* per-row scale of this group */               \
    lb_nib_chunk qs[(G) / 8];        /* codes */                                     \
  } lb_q4_g##G;                                                                      \
  LB_STATIC_ASSERT(sizeof(lb_q4_g##G) == 16 + 4 * (G), "lb_q4_g" #G " size");
LB_DEFINE_Q4_BLOCK(32)
LB_DEFINE_Q4_BLOCK(64)
LB_DEFINE_Q4_BLOCK(128)

/// Q4A block: 8 scales, 8 minimums, then G/8 chunks.
#define LB_DEFINE_Q4A_BLOCK(G)                                                       \
  typedef struct lb_q4a_g##G {                                                       \
    lb_fp16 d[LB_PANEL_ROWS];        /* per-row scale of this group */               \
    lb_fp16 m[LB_PANEL_ROWS];        /* per-row minimum (value of code 0) */         \
    lb_nib_chunk qs[(G) / 8];        /* codes */                                     \
  } lb_q4a_g##G;                                                                     \
  LB_STATIC_ASSERT(sizeof(lb_q4a_g##G) == 32 + 4 * (G), "lb_q4a_g" #G " size");
LB_DEFINE_Q4A_BLOCK(32)
LB_DEFINE_Q4A_BLOCK(64)
LB_DEFINE_Q4A_BLOCK(128)

/// T2 block: 8 scales, then G/16 chunks.
#define LB_DEFINE_T2_BLOCK(G)                                                        \
  typedef struct lb_t2_g##G {                                                        \
    lb_fp16 d[LB_PANEL_ROWS];        /* per-row scale of this group */               \
    lb_t2_chunk qs[(G) / 16];        /* codes */                                     \
  } lb_t2_g##G;                                                                      \
  LB_STATIC_ASSERT(sizeof(lb_t2_g##G) == 16 + 2 * (G), "lb_t2_g" #G " size");
LB_DEFINE_T2_BLOCK(32)
LB_DEFINE_T2_BLOCK(64)
LB_DEFINE_T2_BLOCK(128)

/// The tail of a C4 weight (after its blocks): the codebook as int8 and the float that maps it
/// back (codebook[i] ~= lut_scale * lut[i]; lut_scale is folded into every block scale).
typedef struct lb_c4_lut {
  int8_t lut[16];     ///< codebook in int8, max |lut| = 127 (or exact small integers, e.g. FP4)
  float lut_scale;    ///< informative: already folded into the block scales
  uint8_t pad[12];    ///< zero
} lb_c4_lut;
LB_STATIC_ASSERT(sizeof(lb_c4_lut) == 32, "lb_c4_lut is 32 bytes");

/// Per-block metadata of quantized activations: x ~= d * q over the block.
typedef struct lb_q8_meta {
  float d;      ///< scale (0 when the block is all zeros)
  int32_t s;    ///< sum of the block's int8 codes (folds weight offsets and minimums)
} lb_q8_meta;
LB_STATIC_ASSERT(sizeof(lb_q8_meta) == 8, "lb_q8_meta is 8 bytes");

/// Bytes of one (panel, group) block of a group format (0 for Q8 or a bad group size).
static inline uint32_t lb_wfmt_block_bytes(lb_wfmt fmt, int32_t group) {
  if (group != 32 && group != 64 && group != 128) return 0;
  switch (fmt) {
    case LB_WFMT_Q4: case LB_WFMT_C4: return 16u + 4u * (uint32_t)group;
    case LB_WFMT_Q4A: return 32u + 4u * (uint32_t)group;
    case LB_WFMT_T2: return 16u + 2u * (uint32_t)group;
    default: return 0;
  }
}

/// Total packed bytes of an [n, k] weight (0 if the shape/group is invalid for the format).
static inline uint64_t lb_wfmt_packed_bytes(lb_wfmt fmt, int64_t n, int64_t k, int32_t group) {
  if (n <= 0 || k <= 0) return 0;
  const uint64_t np = (uint64_t)((n + LB_PANEL_ROWS - 1) / LB_PANEL_ROWS);
  if (fmt == LB_WFMT_Q8) {
    const uint64_t k32 = (uint64_t)((k + LB_KBLOCK - 1) / LB_KBLOCK) * LB_KBLOCK;
    return np * LB_PANEL_ROWS * (k32 + 8);
  }
  const uint32_t bb = lb_wfmt_block_bytes(fmt, group);
  if (!bb || k % group) return 0;
  return np * (uint64_t)(k / group) * bb + (fmt == LB_WFMT_C4 ? sizeof(lb_c4_lut) : 0);
}

/// fp16 bits -> float (exact; subnormals, infinities and NaN included).
static inline float lb_fp16_to_f32(lb_fp16 h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    uint32_t e = 113;
    while (!(mant & 0x400u)) { mant <<= 1; --e; }
    bits = sign | (e << 23) | ((mant & 0x3FFu) << 13);
  }
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

/// float -> fp16 bits, round to nearest even (what numpy's astype(float16) and F16C do).
static inline lb_fp16 lb_f32_to_fp16(float f) {
  uint32_t x;
  __builtin_memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) return (lb_fp16)(sign | 0x7C00u | (ax > 0x7F800000u ? 0x200u : 0u));
  if (ax >= 0x477FF000u) return (lb_fp16)(sign | 0x7C00u);  // rounds to >= 65520: infinity
  if (ax < 0x38800000u) {                                     // result is subnormal or zero
    if (ax < 0x33000000u) return (lb_fp16)sign;               // < 2^-25 rounds to zero
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126u - e;                          // 14..24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return (lb_fp16)(sign | r);
  }
  uint32_t r = ((ax >> 13) - (112u << 10));
  const uint32_t rem = ax & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return (lb_fp16)(sign | r);
}

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // LOWBIT_BLOCKS_H_
