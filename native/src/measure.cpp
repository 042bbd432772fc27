// Device microbenchmarks for the profiler's roofline (lowbit_profile.h).
//
// Bandwidth: threads sum disjoint slices of a buffer larger than the last-level cache with wide
// loads and independent accumulators, so the loop is limited by memory, not by the adds.
// Int8 peak: register-resident dot-product instruction chains of one ISA path (the same
// instructions the kernels use: vpmaddubsw+vpmaddwd, vpdpbusd, smull/sadalp, sdot, smmla), enough
// independent accumulators to hide latency, and an empty asm barrier so the compiler cannot hoist
// the loop-invariant products. The ISA bodies use per-function target attributes (not per-file
// flags) because they are tiny and only run after the CPU check in isa_supported().
#include "measure.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "cpu.h"
#include "error.h"
#include "lowbit/lowbit_profile.h"
#include "dispatch.h"
#include "threadpool.h"

#if defined(__x86_64__) || defined(_M_X64)
#  define LB_MEASURE_X86 1
#  include <immintrin.h>
#elif defined(__aarch64__)
#  define LB_MEASURE_ARM64 1
#  include <arm_neon.h>
#endif

namespace lb {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---- read bandwidth ------------------------------------------------------------------------

// Sums n bytes (n a multiple of 128) as 64-bit lanes; the result only defeats dead-code removal.
uint64_t read_sum_generic(const uint8_t* p, size_t n) {
  const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
  uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < n / 8; i += 8)
    for (int j = 0; j < 8; ++j) a[j] += q[i + j];
  return a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7];
}

// Any length: 64-bit words, then the last bytes.
uint64_t read_sum_bytes(const uint8_t* p, size_t n) {
  uint64_t a[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int j = 0; j < 4; ++j) {
      uint64_t v;
      std::memcpy(&v, p + i + 8 * j, 8);
      a[j] += v;
    }
  for (; i < n; ++i) a[0] += p[i];
  return a[0] ^ a[1] ^ a[2] ^ a[3];
}

#if LB_MEASURE_X86
__attribute__((target("avx2"))) uint64_t read_sum_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i s = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  return uint64_t(_mm256_extract_epi64(s, 0) ^ _mm256_extract_epi64(s, 3));
}

// Any length and alignment (read_stream's slices): unaligned 32-byte loads, bytes at the end.
__attribute__((target("avx2"))) uint64_t read_sum_avx2_u(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i s = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  uint64_t r = uint64_t(_mm256_extract_epi64(s, 0) ^ _mm256_extract_epi64(s, 1) ^ _mm256_extract_epi64(s, 2) ^
                        _mm256_extract_epi64(s, 3));  // every lane: a checksum of every byte (tested)
  for (; i < n; ++i) r += p[i];
  return r;
}
#endif

#if LB_MEASURE_ARM64
uint64_t read_sum_neon(const uint8_t* p, size_t n) {
  uint64x2_t a0 = vdupq_n_u64(0), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 128) {
    a0 = vaddq_u64(a0, vreinterpretq_u64_u8(vld1q_u8(p + i)));
    a1 = vaddq_u64(a1, vreinterpretq_u64_u8(vld1q_u8(p + i + 16)));
    a2 = vaddq_u64(a2, vreinterpretq_u64_u8(vld1q_u8(p + i + 32)));
    a3 = vaddq_u64(a3, vreinterpretq_u64_u8(vld1q_u8(p + i + 48)));
    a0 = vaddq_u64(a0, vreinterpretq_u64_u8(vld1q_u8(p + i + 64)));
    a1 = vaddq_u64(a1, vreinterpretq_u64_u8(vld1q_u8(p + i + 80)));
    a2 = vaddq_u64(a2, vreinterpretq_u64_u8(vld1q_u8(p + i + 96)));
    a3 = vaddq_u64(a3, vreinterpretq_u64_u8(vld1q_u8(p + i + 112)));
  }
  const uint64x2_t s = veorq_u64(veorq_u64(a0, a1), veorq_u64(a2, a3));
  return vgetq_lane_u64(s, 0) ^ vgetq_lane_u64(s, 1);
}

uint64_t read_sum_neon_u(const uint8_t* p, size_t n) {
  const size_t body = n / 128 * 128;
  uint64_t r = body ? read_sum_neon(p, body) : 0;
  for (size_t i = body; i < n; ++i) r += p[i];
  return r;
}
#endif

using ReadFn = uint64_t (*)(const uint8_t*, size_t);

ReadFn pick_read() {
#if LB_MEASURE_X86
  if (cpu_features() & LB_CPU_AVX2) return read_sum_avx2;
#elif LB_MEASURE_ARM64
  return read_sum_neon;
#endif
  return read_sum_generic;
}

// Runs fn(t) on `threads` threads (t = 0..threads-1), the calling thread taking t = 0.
template <class Fn>
void run_threads(int threads, Fn fn) {
  std::vector<std::thread> pool;
  pool.reserve(size_t(threads > 1 ? threads - 1 : 0));
  for (int t = 1; t < threads; ++t) pool.emplace_back(fn, t);
  fn(0);
  for (auto& th : pool) th.join();
}

// ---- int8 peak loops ---------------------------------------------------------------------------
// Each loop runs `iters` iterations of its instruction block and stores a value derived from every
// accumulator in *sink, so nothing is dead. macs_per_iter below must match each body.

void peak_scalar(int64_t iters, int32_t* sink) {
  alignas(64) int8_t a[64], b[64];
  for (int k = 0; k < 64; ++k) {
    a[k] = int8_t(k - 32);
    b[k] = int8_t(3 * k - 90);
  }
  int32_t acc[4] = {0, 0, 0, 0};
  for (int64_t it = 0; it < iters; ++it) {
    __asm__ volatile("" : : "r"(a), "r"(b) : "memory");  // reload a, b each iteration
    for (int k = 0; k < 64; ++k) acc[k & 3] += int32_t(a[k]) * int32_t(b[k]);
  }
  *sink = acc[0] ^ acc[1] ^ acc[2] ^ acc[3];
}
constexpr int64_t kScalarMacs = 64;

#if LB_MEASURE_X86
__attribute__((target("avx2"))) void peak_avx2(int64_t iters, int32_t* sink) {
  __m256i a0 = _mm256_set1_epi8(3), a1 = _mm256_set1_epi8(5), a2 = _mm256_set1_epi8(7), a3 = _mm256_set1_epi8(9);
  const __m256i b0 = _mm256_set1_epi8(-2), b1 = _mm256_set1_epi8(4), ones = _mm256_set1_epi16(1);
  // 8 independent products per iteration into 4 accumulators: 15 of the 16 ymm registers, no spills.
  __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;
#define LB_DOT(a, b) _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones)
  for (int64_t it = 0; it < iters; ++it) {
    __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3));
    c0 = _mm256_add_epi32(c0, _mm256_add_epi32(LB_DOT(a0, b0), LB_DOT(a0, b1)));
    c1 = _mm256_add_epi32(c1, _mm256_add_epi32(LB_DOT(a1, b0), LB_DOT(a1, b1)));
    c2 = _mm256_add_epi32(c2, _mm256_add_epi32(LB_DOT(a2, b0), LB_DOT(a2, b1)));
    c3 = _mm256_add_epi32(c3, _mm256_add_epi32(LB_DOT(a3, b0), LB_DOT(a3, b1)));
  }
#undef LB_DOT
  const __m256i s = _mm256_xor_si256(_mm256_xor_si256(c0, c1), _mm256_xor_si256(c2, c3));
  *sink = _mm256_extract_epi32(s, 0) ^ _mm256_extract_epi32(s, 7);
}
constexpr int64_t kAvx2Macs = 8 * 32;

__attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni"))) void peak_avx512vnni(int64_t iters, int32_t* sink) {
  const __m512i a0 = _mm512_set1_epi8(3), a1 = _mm512_set1_epi8(5);
  const __m512i b0 = _mm512_set1_epi8(-2), b1 = _mm512_set1_epi8(4);
  __m512i c[12];
  for (int i = 0; i < 12; ++i) c[i] = _mm512_setzero_si512();
  for (int64_t it = 0; it < iters; ++it) {
    c[0] = _mm512_dpbusd_epi32(c[0], a0, b0);
    c[1] = _mm512_dpbusd_epi32(c[1], a0, b1);
    c[2] = _mm512_dpbusd_epi32(c[2], a1, b0);
    c[3] = _mm512_dpbusd_epi32(c[3], a1, b1);
    c[4] = _mm512_dpbusd_epi32(c[4], a0, b0);
    c[5] = _mm512_dpbusd_epi32(c[5], a0, b1);
    c[6] = _mm512_dpbusd_epi32(c[6], a1, b0);
    c[7] = _mm512_dpbusd_epi32(c[7], a1, b1);
    c[8] = _mm512_dpbusd_epi32(c[8], a0, b0);
    c[9] = _mm512_dpbusd_epi32(c[9], a0, b1);
    c[10] = _mm512_dpbusd_epi32(c[10], a1, b0);
    c[11] = _mm512_dpbusd_epi32(c[11], a1, b1);
  }
  __m512i s = c[0];
  for (int i = 1; i < 12; ++i) s = _mm512_xor_si512(s, c[i]);
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(reinterpret_cast<__m512i*>(lanes), s);
  *sink = lanes[0] ^ lanes[15];
}
constexpr int64_t kAvx512VnniMacs = 12 * 64;
#endif

#if LB_MEASURE_ARM64
void peak_neon(int64_t iters, int32_t* sink) {
  int8x16_t a0 = vdupq_n_s8(3), a1 = vdupq_n_s8(5), a2 = vdupq_n_s8(7), a3 = vdupq_n_s8(9);
  const int8x16_t b0 = vdupq_n_s8(-2), b1 = vdupq_n_s8(4);
  int32x4_t c0 = vdupq_n_s32(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
#define LB_DOT(acc, a, b) acc = vpadalq_s16(acc, vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), a, b))
  for (int64_t it = 0; it < iters; ++it) {
    __asm__ volatile("" : "+w"(a0), "+w"(a1), "+w"(a2), "+w"(a3));
    LB_DOT(c0, a0, b0);
    LB_DOT(c1, a0, b1);
    LB_DOT(c2, a1, b0);
    LB_DOT(c3, a1, b1);
    LB_DOT(c4, a2, b0);
    LB_DOT(c5, a2, b1);
    LB_DOT(c6, a3, b0);
    LB_DOT(c7, a3, b1);
  }
#undef LB_DOT
  const int32x4_t s = veorq_s32(veorq_s32(veorq_s32(c0, c1), veorq_s32(c2, c3)),
                                veorq_s32(veorq_s32(c4, c5), veorq_s32(c6, c7)));
  *sink = vaddvq_s32(s);
}
constexpr int64_t kNeonMacs = 8 * 16;

__attribute__((target("arch=armv8.2-a+dotprod"))) void peak_dotprod(int64_t iters, int32_t* sink) {
  const int8x16_t a0 = vdupq_n_s8(3), a1 = vdupq_n_s8(5), b0 = vdupq_n_s8(-2), b1 = vdupq_n_s8(4);
  int32x4_t c[12];
  for (int i = 0; i < 12; ++i) c[i] = vdupq_n_s32(0);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) c[i] = vdotq_s32(c[i], (i & 1) ? a1 : a0, (i & 2) ? b1 : b0);
  }
  int32x4_t s = c[0];
  for (int i = 1; i < 12; ++i) s = veorq_s32(s, c[i]);
  *sink = vaddvq_s32(s);
}
constexpr int64_t kDotprodMacs = 12 * 16;

__attribute__((target("arch=armv8.2-a+dotprod+i8mm"))) void peak_i8mm(int64_t iters, int32_t* sink) {
  const int8x16_t a0 = vdupq_n_s8(3), a1 = vdupq_n_s8(5), b0 = vdupq_n_s8(-2), b1 = vdupq_n_s8(4);
  int32x4_t c[12];
  for (int i = 0; i < 12; ++i) c[i] = vdupq_n_s32(0);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) c[i] = vmmlaq_s32(c[i], (i & 1) ? a1 : a0, (i & 2) ? b1 : b0);
  }
  int32x4_t s = c[0];
  for (int i = 1; i < 12; ++i) s = veorq_s32(s, c[i]);
  *sink = vaddvq_s32(s);
}
constexpr int64_t kI8mmMacs = 12 * 32;
#endif

using PeakFn = void (*)(int64_t, int32_t*);

PeakFn peak_fn(lb_isa isa) {
  switch (isa) {
    case LB_ISA_SCALAR: return peak_scalar;
#if LB_MEASURE_X86
    case LB_ISA_AVX2: return peak_avx2;
    case LB_ISA_AVX512VNNI: return peak_avx512vnni;
#endif
#if LB_MEASURE_ARM64
    case LB_ISA_NEON: return peak_neon;
    case LB_ISA_DOTPROD: return peak_dotprod;
    case LB_ISA_I8MM: return peak_i8mm;
#endif
    default: return nullptr;
  }
}

int resolve_threads(int threads) { return threads > 0 ? threads : lb_default_threads(); }

}  // namespace

int64_t int8_peak_macs_per_iter(lb_isa isa) {
  switch (isa) {
    case LB_ISA_SCALAR: return kScalarMacs;
#if LB_MEASURE_X86
    case LB_ISA_AVX2: return kAvx2Macs;
    case LB_ISA_AVX512VNNI: return kAvx512VnniMacs;
#endif
#if LB_MEASURE_ARM64
    case LB_ISA_NEON: return kNeonMacs;
    case LB_ISA_DOTPROD: return kDotprodMacs;
    case LB_ISA_I8MM: return kI8mmMacs;
#endif
    default: return 0;
  }
}

lb_status measure_bandwidth(size_t bytes, int threads, int repeats, double* gbps) {
  if (!gbps) return set_error(LB_ERR_INVALID_ARG, "lb_measure_bandwidth: gbps is NULL");
  if (threads < 0 || repeats < 0) return set_error(LB_ERR_INVALID_ARG, "lb_measure_bandwidth: negative threads or repeats");
  threads = resolve_threads(threads);
  if (repeats == 0) repeats = 5;
  if (bytes == 0) bytes = size_t(256) << 20;
  // Each thread gets a slice that is a multiple of 128 bytes (the read loops' step).
  const size_t slice = std::max<size_t>(128, (bytes / size_t(threads)) / 128 * 128);
  const size_t total = slice * size_t(threads);
  void* mem = nullptr;
  if (posix_memalign(&mem, 64, total) != 0 || !mem)
    return set_error(LB_ERR_OUT_OF_MEMORY, "lb_measure_bandwidth: cannot allocate %zu bytes", total);
  uint8_t* buf = static_cast<uint8_t*>(mem);
  // First touch by the thread that will read the slice (pages land on its NUMA node).
  run_threads(threads, [&](int t) { std::memset(buf + size_t(t) * slice, 1 + t, slice); });
  const ReadFn read = pick_read();
  std::atomic<uint64_t> sink{0};
  double best = 0.0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    run_threads(threads, [&](int t) { sink.fetch_xor(read(buf + size_t(t) * slice, slice), std::memory_order_relaxed); });
    const double s = seconds_since(t0);
    if (s > 0) best = std::max(best, double(total) / s / 1e9);
  }
  std::free(mem);
  *gbps = best;
  return LB_OK;
}

uint64_t read_sum(const uint8_t* p, size_t bytes) {
#if LB_MEASURE_X86
  if (cpu_features() & LB_CPU_AVX2) return read_sum_avx2_u(p, bytes);
#elif LB_MEASURE_ARM64
  return read_sum_neon_u(p, bytes);
#endif
  return read_sum_bytes(p, bytes);
}

uint64_t read_stream(const uint8_t* p, size_t bytes, ThreadPool* pool) {
  const int threads = pool ? pool->size() : 1;
  const int64_t tasks = threads == 1 ? 1 : 8 * int64_t(threads);
  const size_t slice = ((bytes + size_t(tasks) - 1) / size_t(tasks) + 63) / 64 * 64;
  std::atomic<uint64_t> sink{0};
  parallel_for(pool, tasks, [&](int64_t t, int) {
    const size_t b0 = std::min(bytes, slice * size_t(t)), b1 = std::min(bytes, b0 + slice);
    sink.fetch_xor(read_sum(p + b0, b1 - b0), std::memory_order_relaxed);
  });
  return sink.load();
}

lb_status measure_int8_peak(lb_isa isa, int threads, int repeats, double* gops) {
  if (!gops) return set_error(LB_ERR_INVALID_ARG, "lb_measure_int8_peak: gops is NULL");
  if (threads < 0 || repeats < 0) return set_error(LB_ERR_INVALID_ARG, "lb_measure_int8_peak: negative threads or repeats");
  const PeakFn fn = peak_fn(isa);
  if (!fn || !isa_supported(isa))
    return set_error(LB_ERR_ISA, "lb_measure_int8_peak: ISA path '%s' cannot run on this CPU/build", lb_isa_name(isa));
  threads = resolve_threads(threads);
  if (repeats == 0) repeats = 5;
  const double macs_per_iter = double(int8_peak_macs_per_iter(isa));
  // Calibrate on one thread: iterations for about 20 ms.
  int32_t sink = 0;
  int64_t iters = 1 << 12;
  for (;;) {
    const auto t0 = Clock::now();
    fn(iters, &sink);
    const double s = seconds_since(t0);
    if (s >= 0.005 || iters >= (int64_t(1) << 40)) {
      iters = std::max<int64_t>(1, int64_t(double(iters) * 0.020 / std::max(s, 1e-9)));
      break;
    }
    iters *= 4;
  }
  std::vector<int32_t> sinks(size_t(threads), 0);
  double best = 0.0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    run_threads(threads, [&](int t) { fn(iters, &sinks[size_t(t)]); });
    const double s = seconds_since(t0);
    if (s > 0) best = std::max(best, 2.0 * macs_per_iter * double(iters) * double(threads) / s / 1e9);
  }
  *gops = best;
  return LB_OK;
}

}  // namespace lb

extern "C" LB_API lb_status lb_measure_bandwidth(size_t bytes, int threads, int repeats, double* gbps) {
  return lb::measure_bandwidth(bytes, threads, repeats, gbps);
}

extern "C" LB_API lb_status lb_measure_int8_peak(const char* isa, int threads, int repeats, double* gops) {
  lb_isa which = lb_isa_best();
  if (isa && *isa && std::strcmp(isa, "auto") != 0 && !lb::parse_isa(isa, &which))
    return lb::set_error(LB_ERR_INVALID_ARG, "lb_measure_int8_peak: unknown ISA path '%s'", isa);
  return lb::measure_int8_peak(which, threads, repeats, gops);
}
