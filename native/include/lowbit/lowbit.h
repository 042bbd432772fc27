/// lowbit.h — the public C API of the lowbit runtime.
///
/// Small and stable: opaque handles, every call returns an lb_status, outputs are the last
/// parameters, and lb_last_error() gives the message of the last failure on the calling thread.
/// No C++ type or exception ever crosses this header.
#ifndef LOWBIT_H_
#define LOWBIT_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(LB_BUILDING_LIBRARY)
#    define LB_API __declspec(dllexport)
#  else
#    define LB_API
#  endif
#else
#  define LB_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define LB_VERSION_MAJOR 0
#define LB_VERSION_MINOR 1
#define LB_VERSION_PATCH 0

/// Status of every call. LB_OK is 0; any other value means the call did nothing harmful and
/// lb_last_error() says why.
typedef enum lb_status {
  LB_OK = 0,
  LB_ERR_INVALID_ARG = 1,   ///< a NULL handle, a bad option, an out-of-range value
  LB_ERR_IO = 2,            ///< a file could not be opened, read or mapped
  LB_ERR_FORMAT = 3,        ///< not a package, truncated, or a malformed section
  LB_ERR_VERSION = 4,       ///< package from a newer (unsupported) format version
  LB_ERR_CHECKSUM = 5,      ///< a section's SHA-256 does not match the manifest
  LB_ERR_UNSUPPORTED = 6,   ///< an op, kernel or dtype this build does not have
  LB_ERR_SHAPE = 7,         ///< an input with the wrong shape
  LB_ERR_DTYPE = 8,         ///< an input with the wrong dtype
  LB_ERR_NOT_FOUND = 9,     ///< an unknown input/output name or index
  LB_ERR_OUT_OF_MEMORY = 10,
  LB_ERR_ISA = 11,          ///< a forced ISA path that this CPU cannot run
  LB_ERR_INTERNAL = 12,     ///< a bug in lowbit: please report it
  LB_ERR_CONTEXT = 13,      ///< LLM: a prompt or generation past the context length
} lb_status;

/// ISA paths, in dispatch order within an architecture (scalar is always available).
typedef enum lb_isa {
  LB_ISA_SCALAR = 0,
  LB_ISA_AVX2 = 1,
  LB_ISA_AVX512VNNI = 2,
  LB_ISA_NEON = 3,
  LB_ISA_DOTPROD = 4,
  LB_ISA_I8MM = 5,
  LB_ISA_COUNT = 6,
} lb_isa;

/// CPU feature bits returned by lb_cpu_features().
enum {
  LB_CPU_AVX2 = 1u << 0,
  LB_CPU_FMA = 1u << 1,
  LB_CPU_F16C = 1u << 2,
  LB_CPU_AVX512F = 1u << 3,
  LB_CPU_AVX512BW = 1u << 4,
  LB_CPU_AVX512VL = 1u << 5,
  LB_CPU_AVX512DQ = 1u << 6,
  LB_CPU_AVX512VNNI = 1u << 7,
  LB_CPU_AVX512BF16 = 1u << 8,
  LB_CPU_AVX512VBMI = 1u << 9,
  LB_CPU_AVXVNNI = 1u << 10,
  LB_CPU_ASIMD = 1u << 16,
  LB_CPU_DOTPROD = 1u << 17,
  LB_CPU_I8MM = 1u << 18,
  LB_CPU_SVE = 1u << 19,
  LB_CPU_FP16 = 1u << 20,
  LB_CPU_BF16 = 1u << 21,
};

/// Library version, e.g. "0.1.0".
LB_API const char* lb_version(void);
/// JSON object describing the build: version, compiler, build type, arch, compiled ISA files.
LB_API const char* lb_build_info(void);
/// Text of the last error on the calling thread ("" if none).
LB_API const char* lb_last_error(void);
/// Short name of a status code, e.g. "LB_ERR_CHECKSUM".
LB_API const char* lb_status_name(lb_status status);

/// Feature bits of this CPU (LB_CPU_*), with the OS check for wide-register state.
LB_API uint64_t lb_cpu_features(void);
/// CPU model string, best effort ("AMD EPYC ...", "aarch64 implementer 0x41 part 0xd0b").
LB_API const char* lb_cpu_model(void);
/// Name of one feature bit, e.g. "avx512vnni"; NULL for an unknown bit.
LB_API const char* lb_cpu_feature_name(uint64_t bit);
/// Name of an ISA path ("scalar", "avx2", "avx512vnni", "neon", "dotprod", "i8mm").
LB_API const char* lb_isa_name(lb_isa isa);
/// Best ISA path this CPU and this build can run.
LB_API lb_isa lb_isa_best(void);
/// ISA path in use (the best one, or the one forced by LOWBIT_ISA / lb_isa_select).
LB_API lb_isa lb_isa_active(void);
/// Force an ISA path by name, or "auto" for the best. Fails with LB_ERR_ISA if the CPU or the
/// build cannot run it. Not meant to be called while inference runs on other threads.
LB_API lb_status lb_isa_select(const char* name);
/// Default thread count: LOWBIT_NUM_THREADS if set, else the number of online CPUs.
LB_API int lb_default_threads(void);

/// Runs every kernel of every ISA path this CPU supports against its scalar reference on
/// random shapes (tails included). Writes a text report (truncated to `cap`) and the number of
/// failing checks. Returns LB_OK even when checks fail; `failures` tells.
LB_API lb_status lb_selfcheck(char* report, size_t cap, int* failures);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // LOWBIT_H_
