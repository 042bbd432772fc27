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

/* ---- Models and sessions (device packages, docs/package-format.md) --------------------- */

/// Element types of inputs and outputs (the package's dtype names in brackets).
typedef enum lb_dtype {
  LB_DTYPE_F32 = 0,   ///< "f32"
  LB_DTYPE_F16 = 1,   ///< "f16"
  LB_DTYPE_I8 = 2,    ///< "i8"
  LB_DTYPE_U8 = 3,    ///< "u8"
  LB_DTYPE_I32 = 4,   ///< "i32"
  LB_DTYPE_I64 = 5,   ///< "i64"
  LB_DTYPE_BOOL = 6,  ///< "bool" (one byte)
  LB_DTYPE_I16 = 7,   ///< "i16"
} lb_dtype;

typedef struct lb_model lb_model;      ///< a loaded package (read-only; shared by sessions)
typedef struct lb_session lb_session;  ///< threads, arena and plan for running one model

/// Load flags.
enum {
  LB_LOAD_LAZY = 1u << 0,  ///< check data sections' SHA-256 on first use instead of at load
};

#define LB_MAX_DIMS 8

/// Name, dtype and shape of an input or output. A dynamic dimension is -1 in a model's
/// declaration; a session's output always has the actual sizes.
typedef struct lb_tensor_info {
  const char* name;               ///< valid while the model lives
  lb_dtype dtype;                 ///< element type
  int ndim;                       ///< number of dimensions
  int64_t shape[LB_MAX_DIMS];     ///< sizes (-1: dynamic)
} lb_tensor_info;

/// Opens a .lbpk file (mmap; verified per `flags`). FORMAT, VERSION, CHECKSUM, IO or UNSUPPORTED
/// (an op this build has no kernel for) with lb_last_error() naming the section or op.
LB_API lb_status lb_model_load(const char* path, uint32_t flags, lb_model** model);
/// Same from memory; the bytes are copied (the buffer may be freed after the call).
LB_API lb_status lb_model_load_buffer(const void* data, size_t size, uint32_t flags, lb_model** model);
/// Frees a model (NULL is fine). Free its sessions first.
LB_API void lb_model_free(lb_model* model);
/// Hashes every section not checked yet (lazy mode); LB_ERR_CHECKSUM names a bad section.
LB_API lb_status lb_model_verify(lb_model* model);
/// The manifest (JSON text), valid while the model lives.
LB_API const char* lb_model_manifest(const lb_model* model);
/// A tensor stored in the package (weights, golden vectors), used in place: `*data` is valid
/// while the model lives. NOT_FOUND for an unknown name; CHECKSUM for a bad section (lazy mode).
LB_API lb_status lb_model_tensor(const lb_model* model, const char* name, lb_tensor_info* info, const void** data);
LB_API int lb_model_num_inputs(const lb_model* model);
LB_API int lb_model_num_outputs(const lb_model* model);
LB_API lb_status lb_model_input(const lb_model* model, int index, lb_tensor_info* info);
LB_API lb_status lb_model_output(const lb_model* model, int index, lb_tensor_info* info);

/// Session options; zero-initialize, then set what you need.
typedef struct lb_session_options {
  int threads;  ///< worker threads (0: lb_default_threads()); at most 16
} lb_session_options;

/// Creates a session (`options` may be NULL). Many sessions may run one model at once, each
/// from its own thread; one session is used by one thread at a time.
LB_API lb_status lb_session_create(lb_model* model, const lb_session_options* options, lb_session** session);
LB_API void lb_session_free(lb_session* session);
/// Binds an input by name. The data is read during lb_session_run (not copied): keep it valid.
/// NOT_FOUND (unknown name), DTYPE, SHAPE, INVALID_ARG (byte count), each naming what was expected.
LB_API lb_status lb_session_set_input(lb_session* session, const char* name, lb_dtype dtype, const int64_t* shape,
                                      int ndim, const void* data, size_t nbytes);
/// Runs the model on the bound inputs (plans memory on the first run and when input shapes change).
LB_API lb_status lb_session_run(lb_session* session);
/// An output of the last run: `info` gets its shape, `*data` points into the session's arena
/// (valid until the next run or lb_session_free).
LB_API lb_status lb_session_get_output(lb_session* session, const char* name, lb_tensor_info* info, const void** data);
/// Bytes of the session's arena (all intermediate values + scratch) for the current plan.
LB_API lb_status lb_session_arena_bytes(const lb_session* session, size_t* bytes);

/// One op of the last run, for the profiler (strings valid until the next run).
typedef struct lb_profile_event {
  const char* op_name;      ///< node name
  const char* op_type;      ///< op type ("Conv")
  const char* kernel;       ///< runtime kernel ("conv2d_f32")
  const char* isa;          ///< code path that ran ("avx2", "scalar"; "folded" = computed at plan time)
  const char* shapes;       ///< "[1, 3, 224, 224] x [32, 3, 3, 3] -> [1, 32, 112, 112]"
  int64_t start_ns;         ///< from the start of the run
  int64_t end_ns;
  uint64_t bytes_read;      ///< bytes of the op's inputs
  uint64_t bytes_written;   ///< bytes of its outputs
  uint64_t ops;             ///< arithmetic operations (2 per multiply-add)
} lb_profile_event;

/// Turns per-op timing on or off (off: no cost).
LB_API lb_status lb_session_enable_profiling(lb_session* session, int enabled);
/// Events of the last run (one per op, in execution order).
LB_API lb_status lb_session_profile_events(const lb_session* session, const lb_profile_event** events, size_t* count);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // LOWBIT_H_
