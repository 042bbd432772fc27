// Helpers shared by the kernel self-checks and native tests: deterministic random data,
// guard bands around outputs, and a small report writer.
#pragma once
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace lb {
namespace check {

/// xorshift64*: deterministic, fast, identical on every platform.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() { s ^= s >> 12; s ^= s << 25; s ^= s >> 27; return s * 0x2545F4914F6CDD1Dull; }
  int8_t i8(int lo, int hi) { return static_cast<int8_t>(lo + int(next() % uint64_t(hi - lo + 1))); }
  float f32(float lo, float hi) { return lo + (hi - lo) * float(next() >> 40) / float(1ull << 24); }
};

constexpr int kGuard = 64;          ///< guard elements on each side of an output buffer
constexpr uint8_t kGuardByte = 0xA5;

/// An output buffer with guard bands before and after `n` elements of T.
template <class T>
struct Guarded {
  std::vector<uint8_t> raw;
  size_t n;
  explicit Guarded(size_t count) : raw((count + 2 * kGuard) * sizeof(T), kGuardByte), n(count) {}
  T* data() { return reinterpret_cast<T*>(raw.data() + kGuard * sizeof(T)); }
  bool guards_intact() const {
    const size_t g = kGuard * sizeof(T);
    for (size_t i = 0; i < g; ++i)
      if (raw[i] != kGuardByte || raw[raw.size() - 1 - i] != kGuardByte) return false;
    return true;
  }
};

/// Accumulates failures and a bounded text report.
struct Report {
  std::string text;
  int failures = 0;
  int checks = 0;
  void fail(const char* fmt, ...) {
    ++failures;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    text += "FAIL ";
    text += buf;
    text += "\n";
  }
  void note(const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    text += buf;
    text += "\n";
  }
};

}  // namespace check
}  // namespace lb
