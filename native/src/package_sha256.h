// SHA-256 for package sections (FIPS 180-4), with the x86 SHA-NI path where the CPU has it
// (two messages interleaved per thread by sha256_many).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace lb {

/// Hashes `n` bytes at `data` into `out` (32 bytes).
void sha256(const void* data, size_t n, uint8_t out[32]);

/// One message for sha256_many.
struct Sha256Job {
  const void* data = nullptr;
  size_t size = 0;
  uint8_t digest[32] = {0};  ///< written when hashed
};

/// Hashes jobs[i] for the indices it takes from `next` (fetch_add, until >= n; nullptr: all of
/// them, from 0), two messages at a time interleaved on SHA-NI. Several threads may share one
/// `next` to split a list; put the longest messages first for the best balance.
void sha256_many(Sha256Job* jobs, size_t n, std::atomic<size_t>* next = nullptr);

/// The portable implementation, whatever the CPU (tests compare the fast paths against it).
void sha256_reference(const void* data, size_t n, uint8_t out[32]);

/// Name of the implementation in use ("sha-ni" or "portable"; LOWBIT_ISA=scalar forces portable).
const char* sha256_impl();

}  // namespace lb
