// SHA-256 for package sections (FIPS 180-4), with the x86 SHA-NI path where the CPU has it.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lb {

/// Hashes `n` bytes at `data` into `out` (32 bytes).
void sha256(const void* data, size_t n, uint8_t out[32]);

/// Name of the implementation in use ("sha-ni" or "portable").
const char* sha256_impl();

}  // namespace lb
