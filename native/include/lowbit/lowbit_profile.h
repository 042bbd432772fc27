/// lowbit_profile.h — device measurements for the profiler's roofline (C API addition).
///
/// The profiler reports each op's achieved GB/s and GOPS as a fraction of what *this* device
/// can do, measured here: sustained read bandwidth from memory (a buffer larger than the
/// last-level cache) and the int8 multiply-accumulate peak of an ISA path (register-resident
/// dot-product instructions, no memory traffic). Ops are counted as 2 per multiply-accumulate.
/// Both calls are slow (tens to hundreds of milliseconds): `lowbit doctor --measure` runs them
/// once and caches the result per device.
#ifndef LOWBIT_PROFILE_H_
#define LOWBIT_PROFILE_H_

#include "lowbit/lowbit.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Sustained read bandwidth in GB/s (1e9 bytes/s): `threads` threads (0 = lb_default_threads())
/// each stream their share of a `bytes`-byte buffer (0 = 256 MiB), best of `repeats` passes
/// (0 = 5). Fails with LB_ERR_OUT_OF_MEMORY if the buffer cannot be allocated.
LB_API lb_status lb_measure_bandwidth(size_t bytes, int threads, int repeats, double* gbps);

/// Int8 multiply-accumulate peak in GOPS (1e9 ops/s, 2 ops per MAC) of one ISA path: `isa` is a
/// name as in lb_isa_select ("scalar", "avx2", "avx512vnni", "neon", "dotprod", "i8mm") or
/// NULL/"auto" for the best path this CPU and build can run; `threads` as above; best of
/// `repeats` timed runs of about 20 ms each (0 = 5). Fails with LB_ERR_ISA for a path this CPU
/// cannot run.
LB_API lb_status lb_measure_int8_peak(const char* isa, int threads, int repeats, double* gops);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // LOWBIT_PROFILE_H_
