// AVX-512 VNNI building blocks (included only by *_avx512vnni.cpp files).
//
// Two panels side by side fill one zmm of 16 int32 lanes (lane = row): the 32-byte quad units of
// panel p and p+1 go to the low and high halves. vpdpbusd multiplies unsigned bytes by signed
// bytes and accumulates in int32 with no int16 stage, so unsigned 4-bit / 2-bit codes times int8
// activations take one instruction per 64 multiply-adds, and int8 weights take activations
// offset to unsigned (x + 128) with the stored row sums removing the offset exactly.
//
// The group formats' GEMM (ugemm: w4a8 Q4 / Q4A, t2a8 T2, codebook C4; session 16): 8 activation
// rows x 16 outputs over k blocks of 512. The rows are laid out per call in tiles of 8 (one
// sequential stream per tile, signed as quantized) with per-group metadata beside them, and each
// vpdpbusd takes its 4 activation bytes as an embedded broadcast; the codes are decoded per 32-byte
// chunk pair in the tile (and / shift, C4 one vpshufb to w + 128) and the offset (off * s, off =
// layout::group_tile_offset of the format) is the int32 dot's start value. What remains per row,
// group and 16 outputs besides the G / 4 vpdpbusd is the epilogue's multiply (d * dx) and FMA,
// both on the FMA pipes: at G = 32 each takes 8 of every 80 of their slots (a ceiling of ~80% of
// the int8 peak; measured 75-78%). docs/kernels.md, "Session 16 (gq16)".
#pragma once
#if !defined(__AVX512VNNI__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__)
#error "mm_avx512.h needs -mavx512vnni -mavx512bw -mavx512dq"
#endif
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernel_types.h"
#include "mm_gtile.h"
#include "mm_layout.h"

namespace lb {
namespace avx512 {

/// Keeps `v` in a register here (GCC 12 otherwise copies a shared start value around every
/// vpdpbusd; mm_avx512_gemv.h's LB_GEMV_IN_REG).
#if defined(SIMDE_VERSION_MAJOR)
#define LB_AVX512_IN_REG(v) (void)(v)
#else
#define LB_AVX512_IN_REG(v) __asm__("" : "+v"(v))
#endif

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

/// Quad units of two panels (32 bytes each) as one zmm: panel a in lanes 0-7, b in 8-15.
inline __m512i load_pair(const uint8_t* a, const uint8_t* b) {
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
  const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/// 8 fp16 of panel a and 8 of panel b as 16 floats.
inline __m512 load_fp16_pair(const uint8_t* a, const uint8_t* b) {
  const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
  const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
  return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
}

/// Stores 16 outputs n .. n+15 (+ bias), only those below n1.
inline void store16(float* y, const float* bias, int64_t n, int64_t n1, __m512 v) {
  const int64_t cnt = n1 - n < 16 ? n1 - n : 16;
  const __mmask16 m = __mmask16((1u << cnt) - 1u);
  if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + n));
  _mm512_mask_storeu_ps(y + n, m, v);
}

/// Code decoders: quad i of a chunk pair as unsigned bytes (see mm_avx2.h). `tbl`: table(a), for
/// the codebook only.
struct Nib {
  static constexpr int kQuads = 2;
  static inline __m512i extract(__m512i v, int i) {
    return _mm512_and_si512(i ? _mm512_srli_epi16(v, 4) : v, _mm512_set1_epi8(0x0F));
  }
  static inline __m512i table(const lb_mm_args*) { return _mm512_setzero_si512(); }
  static inline __m512i bytes(__m512i v, int i, __m512i) { return extract(v, i); }
};
struct Ter {
  static constexpr int kQuads = 4;
  static inline __m512i extract(__m512i v, int i) {
    return _mm512_and_si512(i ? _mm512_srli_epi16(v, 2 * i) : v, _mm512_set1_epi8(0x03));
  }
  static inline __m512i table(const lb_mm_args*) { return _mm512_setzero_si512(); }
  static inline __m512i bytes(__m512i v, int i, __m512i) { return extract(v, i); }
};
/// Codebook (C4): the 4-bit code's int8 table value w as the unsigned byte w + 128 (one vpshufb
/// of the table + 128 repeated in every 128-bit lane); with the offset 128 the group's dot
/// sum (w + 128) x - 128 s is exactly sum w x.
struct Cb {
  static constexpr int kQuads = 2;
  static inline __m512i table(const lb_mm_args* a) {
    uint8_t t[64];
    for (int i = 0; i < 64; ++i) t[i] = uint8_t(int(a->lut[i % 16]) + 128);
    return _mm512_loadu_si512(t);
  }
  static inline __m512i bytes(__m512i v, int i, __m512i tbl) { return _mm512_shuffle_epi8(tbl, Nib::extract(v, i)); }
};

/// A group format of the GEMM: its code decoder and whether it has minimums (Q4A). The constant its
/// dot removes per group (off * s) is layout::group_tile_offset(fmt), the one value qlinear's
/// pre-laid tiles use too.
template <class U, bool Asym>
struct UFmt {
  using Unpack = U;
  static constexpr bool kAsym = Asym;
};

/// acc += a (u8) . the 4 int8 at p broadcast to every lane, the broadcast folded into the vpdpbusd
/// as an EVEX embedded broadcast (m32{1to16}; GCC 12 does not fold _mm512_set1_epi32 of a load).
/// Same result as _mm512_dpbusd_epi32(acc, a, bcast4(p)).
inline __m512i dpbusd_bcast4(__m512i acc, __m512i a, const int8_t* p) {
#if defined(SIMDE_VERSION_MAJOR)
  return _mm512_dpbusd_epi32(acc, a, bcast4(p));
#else
  typedef int32_t i32_alias __attribute__((may_alias));
  __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(a), "m"(*reinterpret_cast<const i32_alias*>(p)));
  return acc;
#endif
}

/// The group GEMMs' activations (ugemm): rows per register tile, and per tile and group the rows'
/// scales and int32 start values side by side (mm_gtile.h: layout::group_tiles).
constexpr int kGemmRows = layout::kGroupTileRows;
using TileMeta = layout::GroupTileMeta;

/// Bytes of activations and metadata per row chunk of the group GEMMs (about; whole tiles).
constexpr int64_t kGemmChunkBytes = 640 * 1024;

/// The group GEMMs' per-thread scratch (one buffer for every format and group: grown to the
/// largest request seen on the thread, 64-byte aligned).
inline uint8_t* gemm_scratch(size_t bytes) {
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < bytes + 64) buf.resize(bytes + 64);
  return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
}

/// Rows m0..m1 in row chunks (<= about kGemmChunkBytes of tiles and metadata, or one tile), then
/// cols(xi, xt, fs, ms, me) per chunk (the column loop outside the chunk's row tiles; fs: 16 floats
/// per row of the chunk for the tiles' sums, in the per-thread scratch). The chunk's tiles are the
/// caller's (lb_mm_args::xg / xgm, rows [0, m1) laid out once per call) where given and m0 is on a
/// tile boundary, else laid out here by layout::group_tiles into the per-thread scratch: the same
/// tiles either way.
template <class Cols>
void gemm_row_chunks(const lb_mm_args* a, int64_t m0, int64_t m1, Cols&& cols) {
  const int64_t kp = a->kp, ng = a->k / a->group;
  const int off = layout::group_tile_offset(a->fmt);
  const int64_t tb = kGemmRows * kp, mb = ng * int64_t(sizeof(TileMeta));  // bytes per tile
  const int64_t fb = kGemmRows * 16 * int64_t(sizeof(float));
  const int64_t tiles = (m1 - m0 + kGemmRows - 1) / kGemmRows;
  const int64_t per = kGemmChunkBytes / (tb + mb) > 1 ? kGemmChunkBytes / (tb + mb) : 1;
  const int64_t chunks = (tiles + per - 1) / per, ct = (tiles + chunks - 1) / chunks;  // tiles per chunk
  if (a->xg && a->xgm && m0 % kGemmRows == 0) {
    float* fs = reinterpret_cast<float*>(gemm_scratch(size_t(ct * fb)));
    for (int64_t ms = m0; ms < m1; ms += ct * kGemmRows) {
      const int64_t me = m1 - ms < ct * kGemmRows ? m1 : ms + ct * kGemmRows;
      cols(a->xg + ms * kp, static_cast<const TileMeta*>(a->xgm) + ms / kGemmRows * ng, fs, ms, me);
    }
    return;
  }
  const int64_t fo = (ct * (tb + mb) + 63) / 64 * 64;  // the float sums' offset (64-byte aligned)
  int8_t* xi = reinterpret_cast<int8_t*>(gemm_scratch(size_t(fo + ct * fb)));
  TileMeta* xt = reinterpret_cast<TileMeta*>(xi + ct * tb);
  float* fs = reinterpret_cast<float*>(xi + fo);
  for (int64_t ms = m0; ms < m1; ms += ct * kGemmRows) {
    const int64_t me = m1 - ms < ct * kGemmRows ? m1 : ms + ct * kGemmRows;
    layout::group_tiles(a->xq, a->xm, kp, ng, off, ms, me, xi, xt);
    cols(xi, xt, fs, ms, me);
  }
}

/// kGemmRows rows x 16 outputs (two panels; the second repeats the first when it would lie past
/// n1, and is not stored) over ngb groups from the panels' blocks ba / bp, the codes decoded per
/// 32-byte chunk pair in the tile (tbl: F::Unpack::table). Per group the int32 dots start at
/// -off * s (the reference's dot - off * s, exact), then acc = fma(float(dot), d * dx,
/// acc) (Q4A: fma(fma(d, float(dot), mn * s), dx, acc)): the former tile's float operations in
/// the same order, so the same bits. Float sums in f (16 per row), started at 0 when `first`.
template <class F, int G>
__attribute__((noinline)) void utile(const int8_t* x, const TileMeta* xt, const uint8_t* ba, const uint8_t* bp,
                                     size_t bb, int64_t ngb, __m512i tbl, float* f, bool first) {
  constexpr int MR = kGemmRows, kQ = F::Unpack::kQuads, kChunks = G / (4 * kQ);
  constexpr int hb = F::kAsym ? 32 : 16;  // layout::header_bytes: the scales (and Q4A's minimums)
  __m512 acc[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) acc[r] = first ? _mm512_setzero_ps() : _mm512_load_ps(f + 16 * r);
  for (int64_t g = 0; g < ngb; ++g, x += G * MR, ba += bb, bp += bb) {
    const TileMeta& t = xt[g];
    __m512i dot[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      dot[r] = _mm512_set1_epi32(t.o[r]);
      LB_AVX512_IN_REG(dot[r]);
    }
#pragma GCC unroll 32
    for (int c = 0; c < kChunks; ++c) {
      const __m512i v = load_pair(ba + hb + 32 * c, bp + hb + 32 * c);
#pragma GCC unroll 4
      for (int i = 0; i < kQ; ++i) {
        const __m512i q = F::Unpack::bytes(v, i, tbl);
        const int qi = c * kQ + i;  // quad of the group: codes 4 qi .. 4 qi + 3
        const int8_t* xq = x + 32 * MR * (qi / 8) + 4 * (qi % 8);
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) dot[r] = dpbusd_bcast4(dot[r], q, xq + 32 * r);
      }
    }
    const __m512 d = load_fp16_pair(ba, bp);
    if (F::kAsym) {
      const __m512 mn = load_fp16_pair(ba + 16, bp + 16);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m512 tt = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot[r]), _mm512_mul_ps(mn, _mm512_set1_ps(t.s[r])));
        acc[r] = _mm512_fmadd_ps(tt, _mm512_set1_ps(t.d[r]), acc[r]);
      }
    } else {
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r)
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[r]), _mm512_mul_ps(d, _mm512_set1_ps(t.d[r])), acc[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) _mm512_store_ps(f + 16 * r, acc[r]);
}

/// Codes per k block of the group GEMMs: the row tiles of a chunk sweep one k block of a pair of
/// panels (w4a8-g32: 4.5 KiB of codes, in L1 for every tile but the first) before the next; float
/// sums between blocks in a per-thread buffer. 128 x 4096 x 11008 w4a8-g32 (session 16): 1.03x
/// the speed of no blocking, M = 32 1.08x; t2a8 equal.
constexpr int64_t kGemmKBlock = 512;

template <class F, int G>
void ugemm_g(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t ng = a->k / G, gb = kGemmKBlock / G > 0 ? kGemmKBlock / G : 1;
  const size_t bb = lb_wfmt_block_bytes(static_cast<lb_wfmt>(a->fmt), G);
  const __m512i tbl = F::Unpack::table(a);
  gemm_row_chunks(a, m0, m1, [&](const int8_t* xi, const TileMeta* xt, float* fs, int64_t ms, int64_t me) {
    const int64_t tiles = (me - ms + kGemmRows - 1) / kGemmRows;
    const int64_t calls = tiles * ((ng + gb - 1) / gb);
    for (int64_t n = n0; n < n1; n += 16) {
      const int64_t pa = n / 8, pb = n + 8 < n1 ? pa + 1 : pa;
      const uint8_t* ba = layout::block(a->w, a->fmt, a->k, G, pa, 0);
      const uint8_t* bp = layout::block(a->w, a->fmt, a->k, G, pb, 0);
      // the next pair's blocks (contiguous: panel-major) go to L2 a slice per tile call, so its
      // first row tile does not wait on memory
      const int64_t np = n + 16 < n1 ? (n + 24 < n1 ? 2 : 1) : 0;
      const char* pf = np ? reinterpret_cast<const char*>(layout::block(a->w, a->fmt, a->k, G, pb + 1, 0)) : nullptr;
      const size_t pfb = size_t(np * ng) * bb;
      size_t done = 0;
      int64_t call = 0;
      for (int64_t g0 = 0; g0 < ng; g0 += gb) {
        const int64_t ngb = ng - g0 < gb ? ng - g0 : gb;
        for (int64_t t = 0; t < tiles; ++t) {
          utile<F, G>(xi + t * kGemmRows * a->kp + g0 * G * kGemmRows, xt + t * ng + g0, ba + g0 * bb, bp + g0 * bb,
                      bb, ngb, tbl, fs + t * kGemmRows * 16, g0 == 0);
          for (const size_t upto = pfb * size_t(++call) / size_t(calls); done < upto; done += 64)
            _mm_prefetch(pf + done, _MM_HINT_T1);
        }
      }
      for (int64_t m = ms; m < me; ++m) store16(a->y + m * a->ldy, a->bias, n, n1, _mm512_load_ps(fs + (m - ms) * 16));
    }
  });
}

/// The group formats' GEMM (M >= 2): Q4 / Q4A / T2, and C4 through Cb.
template <class F>
void ugemm(const lb_mm_args* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  switch (a->group) {
    case 32: ugemm_g<F, 32>(a, m0, m1, n0, n1); break;
    case 64: ugemm_g<F, 64>(a, m0, m1, n0, n1); break;
    default: ugemm_g<F, 128>(a, m0, m1, n0, n1); break;
  }
}

}  // namespace avx512
}  // namespace lb
