// Device microbenchmarks for the profiler's roofline: sustained read bandwidth and the int8
// multiply-accumulate peak of one ISA path (C API in lowbit/lowbit_profile.h).
#pragma once
#include <cstddef>
#include <cstdint>

#include "lowbit/lowbit.h"

namespace lb {

class ThreadPool;

/// Best-of-`repeats` read bandwidth (GB/s) of `threads` threads streaming a `bytes` buffer.
lb_status measure_bandwidth(size_t bytes, int threads, int repeats, double* gbps);

/// Best-of-`repeats` int8 MAC throughput (GOPS, 2 ops per MAC) of `isa` on `threads` threads.
lb_status measure_int8_peak(lb_isa isa, int threads, int repeats, double* gops);

/// Reads [p, p + bytes) once, the way a GEMV reads its packed weight on `pool` (null: the calling
/// thread): 8 contiguous slices per thread handed out dynamically, 32-byte loads. The same-rounds
/// read probe of bench/kernels.py (interleaved with the kernels on copies of the same size, so
/// kernel and probe are timed by the same statistic). Returns a checksum (defeats dead code).
uint64_t read_stream(const uint8_t* p, size_t bytes, ThreadPool* pool);

/// A checksum of every byte of [p, p + bytes) (any length and alignment), read with the widest
/// loads this CPU has: the read loop of read_stream and of the LLM's weight-read probe.
uint64_t read_sum(const uint8_t* p, size_t bytes);

/// Multiply-accumulates done by one iteration of the peak loop of `isa` (0 if not built here).
int64_t int8_peak_macs_per_iter(lb_isa isa);

}  // namespace lb
