// SHA-256 (FIPS 180-4): a portable version and, on x86-64 CPUs with the SHA extensions, the
// SHA-NI version. One SHA-256 stream is bound by the latency of `sha256rnds2` (each of a block's
// 32 rnds2 needs the previous one's result); its throughput is 3-4x higher (AMD Zen 3: ~1.3 ns
// latency, ~0.35 ns per instruction with 4 independent chains). So `sha256_many` hashes two
// independent messages at once in one thread, their instructions interleaved (multi-buffer):
// two streams give ~2x one stream's bytes per second (three or four spill the 16 xmm registers and
// gain nothing). The digests are plain SHA-256: only the order of the work changes.
#include "package_sha256.h"

#include <cstring>

#include "dispatch.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define LB_SHA_X86 1
#endif

namespace lb {
namespace {

alignas(16) const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr uint32_t kInit[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

void blocks_portable(uint32_t st[8], const uint8_t* p, size_t nblocks) {
  for (size_t b = 0; b < nblocks; ++b, p += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = st[0], bb = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const uint32_t ch = (e & f) ^ (~e & g);
      const uint32_t t1 = h + S1 + ch + K[i] + w[i];
      const uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const uint32_t mj = (a & bb) ^ (a & c) ^ (bb & c);
      const uint32_t t2 = S0 + mj;
      h = g; g = f; f = e; e = d + t1; d = c; c = bb; bb = a; a = t1 + t2;
    }
    st[0] += a; st[1] += bb; st[2] += c; st[3] += d; st[4] += e; st[5] += f; st[6] += g; st[7] += h;
  }
}

// The padded last block(s) of a message of `n` bytes whose first `rem` (< 64) trailing bytes are at `p`.
size_t make_tail(uint8_t tail[128], const uint8_t* p, size_t rem, uint64_t n) {
  std::memset(tail, 0, 128);
  if (rem) std::memcpy(tail, p, rem);
  tail[rem] = 0x80;
  const size_t blocks = rem + 9 > 64 ? 2 : 1;
  const uint64_t bits = n * 8;
  for (int i = 0; i < 8; ++i) tail[blocks * 64 - 1 - i] = uint8_t(bits >> (8 * i));
  return blocks;
}

void put_digest(const uint32_t st[8], uint8_t out[32]) {
  for (int i = 0; i < 8; ++i) {
    out[4 * i] = uint8_t(st[i] >> 24);
    out[4 * i + 1] = uint8_t(st[i] >> 16);
    out[4 * i + 2] = uint8_t(st[i] >> 8);
    out[4 * i + 3] = uint8_t(st[i]);
  }
}

void sha256_with(void (*fn)(uint32_t*, const uint8_t*, size_t), const void* data, size_t n, uint8_t out[32]) {
  uint32_t st[8];
  std::memcpy(st, kInit, sizeof st);
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const size_t full = n / 64;
  fn(st, p, full);
  uint8_t tail[128];
  fn(st, tail, make_tail(tail, p + full * 64, n - full * 64, n));
  put_digest(st, out);
}

#if LB_SHA_X86
#define LB_SHA_TARGET __attribute__((target("sha,sse4.1,ssse3")))

// L independent streams, their rounds interleaved. State in SHA-NI's ABEF / CDGH form, kept in
// locals: the message loads go through byte pointers, which may alias anything, so a state held
// in memory would be stored and reloaded around every load (a store-forwarding delay on the
// rnds2 chain).
template <int L>
LB_SHA_TARGET inline void rounds_shani(__m128i* abef_io, __m128i* cdgh_io, const uint8_t* const* src, size_t nblocks) {
  const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i s0[L], s1[L];
  const uint8_t* p[L];
  for (int l = 0; l < L; ++l) {
    s0[l] = abef_io[l];
    s1[l] = cdgh_io[l];
    p[l] = src[l];
  }
  for (size_t b = 0; b < nblocks; ++b) {
    __m128i save0[L], save1[L], msg[L][4];
    for (int l = 0; l < L; ++l) {
      save0[l] = s0[l];
      save1[l] = s1[l];
      for (int i = 0; i < 4; ++i)
        msg[l][i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[l] + 16 * i)), MASK);
      p[l] += 64;
    }
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) {
      const __m128i k = _mm_load_si128(reinterpret_cast<const __m128i*>(&K[4 * r]));
      __m128i mk[L];
      for (int l = 0; l < L; ++l) {
        mk[l] = _mm_add_epi32(msg[l][r & 3], k);
        s1[l] = _mm_sha256rnds2_epu32(s1[l], s0[l], mk[l]);
      }
      for (int l = 0; l < L; ++l) s0[l] = _mm_sha256rnds2_epu32(s0[l], s1[l], _mm_shuffle_epi32(mk[l], 0x0E));
      if (r < 12) {
        // the message words of round group r + 4 (in slot r & 3)
        for (int l = 0; l < L; ++l) {
          __m128i t = _mm_sha256msg1_epu32(msg[l][r & 3], msg[l][(r + 1) & 3]);
          t = _mm_add_epi32(t, _mm_alignr_epi8(msg[l][(r + 3) & 3], msg[l][(r + 2) & 3], 4));
          msg[l][r & 3] = _mm_sha256msg2_epu32(t, msg[l][(r + 3) & 3]);
        }
      }
    }
    for (int l = 0; l < L; ++l) {
      s0[l] = _mm_add_epi32(s0[l], save0[l]);
      s1[l] = _mm_add_epi32(s1[l], save1[l]);
    }
  }
  for (int l = 0; l < L; ++l) {
    abef_io[l] = s0[l];
    cdgh_io[l] = s1[l];
  }
}

LB_SHA_TARGET void rounds_shani1(__m128i* abef, __m128i* cdgh, const uint8_t* const* src, size_t nblocks) {
  rounds_shani<1>(abef, cdgh, src, nblocks);
}
LB_SHA_TARGET void rounds_shani2(__m128i* abef, __m128i* cdgh, const uint8_t* const* src, size_t nblocks) {
  rounds_shani<2>(abef, cdgh, src, nblocks);
}

LB_SHA_TARGET void to_shani(const uint32_t st[8], __m128i* abef, __m128i* cdgh) {
  const __m128i dcba = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(&st[0])), 0xB1);  // CDAB
  const __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(&st[4])), 0x1B);  // EFGH
  *abef = _mm_alignr_epi8(dcba, efgh, 8);
  *cdgh = _mm_blend_epi16(efgh, dcba, 0xF0);
}

LB_SHA_TARGET void from_shani(__m128i abef, __m128i cdgh, uint32_t st[8]) {
  const __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
  const __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&st[0]), _mm_blend_epi16(feba, dchg, 0xF0));  // DCBA
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&st[4]), _mm_alignr_epi8(dchg, feba, 8));     // HGFE
}

LB_SHA_TARGET void blocks_shani(uint32_t st[8], const uint8_t* p, size_t nblocks) {
  __m128i abef, cdgh;
  to_shani(st, &abef, &cdgh);
  rounds_shani1(&abef, &cdgh, &p, nblocks);
  from_shani(abef, cdgh, st);
}

// One message in a lane of sha256_many: its state and the full blocks left.
struct Lane {
  Sha256Job* job = nullptr;
  const uint8_t* p = nullptr;
  size_t blocks = 0;
};

LB_SHA_TARGET void many_shani(Sha256Job* jobs, size_t n, std::atomic<size_t>& next) {
  Lane lane[2];
  __m128i abef[2], cdgh[2];
  auto take = [&](int l) {
    const size_t i = next.fetch_add(1, std::memory_order_relaxed);
    lane[l].job = i < n ? &jobs[i] : nullptr;
    if (!lane[l].job) return;
    lane[l].p = static_cast<const uint8_t*>(lane[l].job->data);
    lane[l].blocks = lane[l].job->size / 64;
    to_shani(kInit, &abef[l], &cdgh[l]);
  };
  auto finish = [&](int l) {  // the padded tail block(s), then the digest
    Sha256Job& j = *lane[l].job;
    uint8_t tail[128];
    const size_t full = j.size / 64;
    const uint8_t* t = tail;
    rounds_shani1(&abef[l], &cdgh[l], &t, make_tail(tail, lane[l].p, j.size - full * 64, j.size));
    uint32_t st[8];
    from_shani(abef[l], cdgh[l], st);
    put_digest(st, j.digest);
  };
  take(0);
  take(1);
  while (lane[0].job || lane[1].job) {
    if (lane[0].job && lane[1].job) {
      const size_t nb = lane[0].blocks < lane[1].blocks ? lane[0].blocks : lane[1].blocks;
      const uint8_t* src[2] = {lane[0].p, lane[1].p};
      rounds_shani2(abef, cdgh, src, nb);
      for (int l = 0; l < 2; ++l) {
        lane[l].p += nb * 64;
        lane[l].blocks -= nb;
      }
    } else {
      const int l = lane[0].job ? 0 : 1;  // the queue is empty: the last message alone
      rounds_shani1(&abef[l], &cdgh[l], &lane[l].p, lane[l].blocks);
      lane[l].p += lane[l].blocks * 64;
      lane[l].blocks = 0;
    }
    for (int l = 0; l < 2; ++l)
      if (lane[l].job && lane[l].blocks == 0) {
        finish(l);
        take(l);
      }
  }
}

bool cpu_has_sha() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool sha = (b >> 29) & 1;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool sse41 = (c >> 19) & 1, ssse3 = (c >> 9) & 1;
  return sha && sse41 && ssse3;
}
#endif

// SHA-NI where the CPU has it, unless LOWBIT_ISA=scalar forces the portable code (so that the
// native suite's scalar run checks the portable path).
bool use_shani() {
#if LB_SHA_X86
  static const bool has = cpu_has_sha();
  return has && kernels().isa != LB_ISA_SCALAR;
#else
  return false;
#endif
}

}  // namespace

const char* sha256_impl() { return use_shani() ? "sha-ni" : "portable"; }

void sha256(const void* data, size_t n, uint8_t out[32]) {
#if LB_SHA_X86
  if (use_shani()) return sha256_with(blocks_shani, data, n, out);
#endif
  sha256_with(blocks_portable, data, n, out);
}

void sha256_reference(const void* data, size_t n, uint8_t out[32]) { sha256_with(blocks_portable, data, n, out); }

void sha256_many(Sha256Job* jobs, size_t n, std::atomic<size_t>* next) {
  std::atomic<size_t> own{0};
  std::atomic<size_t>& nx = next ? *next : own;
#if LB_SHA_X86
  if (use_shani()) return many_shani(jobs, n, nx);
#endif
  for (size_t i = nx.fetch_add(1, std::memory_order_relaxed); i < n; i = nx.fetch_add(1, std::memory_order_relaxed))
    sha256_with(blocks_portable, jobs[i].data, jobs[i].size, jobs[i].digest);
}

}  // namespace lb
