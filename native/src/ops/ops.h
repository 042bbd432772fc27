// Graph ops of the runtime: one OpDef per op type (shape inference + run), looked up by the
// executor from the kernel name the package's manifest asks for.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../package.h"
#include "../package_json.h"
#include "../threadpool.h"
#include "lowbit/lowbit.h"

namespace lb {

/// Most threads a session runs (ops size their per-thread scratch for this many).
constexpr int kMaxThreads = 16;

/// A value during planning and running: dtype, shape and where its bytes are.
struct Tensor {
  DType dtype = DType::F32;          ///< element type
  std::vector<int64_t> shape;        ///< dimensions (resolved)
  void* data = nullptr;              ///< arena slot, package mapping or plan-time buffer
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  const float* f32() const { return static_cast<const float*>(data); }
  float* f32() { return static_cast<float*>(data); }
};

/// Per-op parameters decoded from the manifest attributes at plan time (no parsing while running).
struct OpParams {
  int64_t i[48] = {0};    ///< integer parameters (meaning per op)
  float f[8] = {0};       ///< float parameters (meaning per op)
  std::vector<int64_t> v; ///< variable-length parameters (perm, axes, ...), sized at plan time
};

/// What an op sees at plan time and at run time.
struct OpCtx {
  const Json* attrs = nullptr;        ///< the op's "attrs" object
  std::vector<Tensor*> in;            ///< inputs (nullptr for an omitted optional input)
  std::vector<Tensor*> out;           ///< outputs
  OpParams* p = nullptr;              ///< decoded parameters (plan writes, run reads)
  void* scratch = nullptr;            ///< run: per-op scratch (size requested at plan)
  size_t scratch_bytes = 0;           ///< plan: set by the op (bytes of scratch it needs)
  uint64_t flops = 0;                 ///< plan: operations count for the profiler
  ThreadPool* pool = nullptr;         ///< run: thread pool of the session (null: one thread)
  const char* isa = "scalar";         ///< run: the code path that ran (set by the op)
  std::string err;                    ///< plan: what is wrong (with LB_ERR_SHAPE/UNSUPPORTED)
};

/// Threads the op's pool runs (1 without a pool): per-thread scratch is sized for this many.
inline int op_threads(const OpCtx& c) { return c.pool ? c.pool->size() : 1; }

/// Infers output dtypes/shapes (and decodes params); may read the data of inputs that are
/// known at plan time (constants, shape arithmetic). Returns LB_OK or a status with ctx.err.
using InferFn = lb_status (*)(OpCtx& ctx);
using RunFn = void (*)(OpCtx& ctx);

struct OpDef {
  const char* kernel;  ///< kernel name used in manifests, e.g. "conv2d_f32"
  InferFn infer;       ///< plan-time shape inference
  RunFn run;           ///< execution
  bool foldable;       ///< may run at plan time when all its inputs are known (shape arithmetic)
};

/// The op for a kernel name, or nullptr if this build has none.
const OpDef* find_op(const std::string& kernel);
/// All kernel names this build has (for lowbit.h introspection and the exporter's check).
std::vector<std::string> op_kernel_names();

/// Registration: each ops_<group>.cpp has one function that appends its ops (called from
/// ops_common.cpp: explicit calls, because static registrars are dropped from static archives).
void register_ops_conv(std::vector<OpDef>& r);
void register_ops_elementwise(std::vector<OpDef>& r);
void register_ops_nn(std::vector<OpDef>& r);
void register_ops_shape(std::vector<OpDef>& r);
void register_ops_qlinear(std::vector<OpDef>& r);
void register_ops_qconv(std::vector<OpDef>& r);
void register_ops_qnhwc(std::vector<OpDef>& r);
void register_ops_qnhwc_graph(std::vector<OpDef>& r);

// ---- shared helpers -----------------------------------------------------------------
/// Thrown by the attr_* readers when an attribute is present with the wrong JSON type (a list where
/// a number belongs, a string element in a list of ints, 2.5 for an integer): the executor turns it
/// into LB_ERR_FORMAT naming the op, instead of the op silently running with the default.
struct AttrError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// The attr_* readers: an absent (or null) key gives the default / false; a present key of the
/// wrong type throws AttrError.
bool attr_ints(const Json& attrs, const char* key, std::vector<int64_t>* out);
int64_t attr_int(const Json& attrs, const char* key, int64_t def);
float attr_float(const Json& attrs, const char* key, float def);
std::string attr_str(const Json& attrs, const char* key, const char* def);
std::string shape_str(const std::vector<int64_t>& s);
/// Reads a small integer tensor known at plan time (i64/i32) into `out`; false if not known.
bool read_ints(const Tensor* t, std::vector<int64_t>* out);
/// Numpy-style broadcast of two shapes; false if incompatible.
bool broadcast_shapes(const std::vector<int64_t>& a, const std::vector<int64_t>& b, std::vector<int64_t>* out);

/// Fused activation codes (Conv/Gemm/MatMul "act" attribute).
// ACT_HARDSWISH_AFFINE: s * hardswish(x) + t (lo = s, hi = t; PP-LCNetV3's affine block folded in).
enum Act : int64_t { ACT_NONE = 0, ACT_RELU, ACT_CLIP, ACT_HARDSWISH, ACT_HARDSIGMOID, ACT_SIGMOID, ACT_HARDSWISH_AFFINE };
bool parse_act(const Json& attrs, OpParams* p, int slot_code, int slot_f);
/// The window attributes of a 2-D Conv-like op into win[8] = {stride h, w, dilation h, w, pad top,
/// left, bottom, right} (ONNX defaults 1, 1, 0); false with `err` for a non-positive stride or
/// dilation or a negative pad.
bool parse_conv_window(const Json& attrs, int64_t* win, std::string* err);
/// Output height and width of a 2-D window over in[2] with kernel[2] and win[8] (above): applies
/// auto_pad SAME_* to the pads in win, then out = (in + pads - dilated kernel) / stride + 1; false
/// with `err` when the output would be empty.
bool conv_output_hw(const std::string& auto_pad, const int64_t* in, const int64_t* kernel, int64_t* win, int64_t* out,
                    std::string* err);
/// Both of the above for an op whose kernel size is an attribute: reads kernel_shape into kwin[0..1]
/// (LB_ERR_UNSUPPORTED when missing or not positive), the window into kwin[2..9] and the output
/// size into out[2] (LB_ERR_SHAPE, with `err`, as above).
lb_status conv_window_attrs(const Json& attrs, const int64_t* in, int64_t* kwin, int64_t* out, std::string* err);
/// ONNX auto_pad "SAME_UPPER" / "SAME_LOWER" for a 2-D window: sets pads[0..3] (top, left, bottom,
/// right) so that the output is ceil(in / stride) per dimension, given in[2], stride[2] and the
/// dilated kernel extents eff_kernel[2]; any other auto_pad value leaves the pads as they are.
void apply_same_pads(const std::string& auto_pad, const int64_t* in, const int64_t* stride, const int64_t* eff_kernel,
                     int64_t* pads);
void apply_act(float* x, int64_t n, int64_t code, float lo, float hi);

/// Resize (resize_f32's params: i[0] mode, i[1] coordinate mode, i[2] nearest mode, f[0..1] scales):
/// source index (nearest) or index pair and weight (linear) of output coordinate `coord` along one
/// axis of `in` -> `out` elements with `scale`.
struct ResizeTap {
  int64_t i0, i1;
  float d;
};
ResizeTap resize_tap(const OpParams& p, int64_t coord, float scale, int64_t in, int64_t out);

/// Single-precision GEMM on row-major matrices: C[M,N] = A[M,K]*B[K,N] (+bias) then activation.
/// bias_mode 0: none, 1: per row (length M), 2: per column (length N). ldc = row stride of C.
/// Splits N (or M) over the pool; every output element is reduced in a fixed order.
struct GemmArgs {
  int64_t M, N, K;
  const float* A; int64_t lda;   ///< A[m*lda + k]
  const float* B; int64_t ldb;   ///< B[k*ldb + n]
  bool b_trans = false;          ///< B given as [N,K] (B[n*ldb + k])
  float* C; int64_t ldc;
  const float* bias = nullptr; int bias_mode = 0;
  int64_t act = ACT_NONE; float lo = 0, hi = 0;
  /// Optional: writes B[k0:k0+kc, n0:n0+nr] zero-padded to 16 columns into dst[kc][16] instead
  /// of reading B (Conv gathers its im2col columns this way, panel by panel, with no col buffer).
  void (*pack)(const void* ctx, int64_t k0, int64_t kc, int64_t n0, int64_t nr, float* dst) = nullptr;
  const void* pack_ctx = nullptr;
};
/// Scratch bytes gemm() needs per worker thread.
size_t gemm_scratch_per_thread();
const char* gemm(const GemmArgs& g, ThreadPool* pool, void* scratch, size_t scratch_bytes);

/// Runs fn(thread, begin, end) over [0, n) on the op's pool, in chunks of at least ~16K
/// elementary steps (`item_cost` steps per item); one chunk when the op is small. The cut does
/// not depend on the thread count (see parallel_ranges), `thread` indexes per-thread scratch.
constexpr int64_t kChunkWork = 1 << 14;
template <class F>
void for_ranges(const OpCtx& c, int64_t n, int64_t item_cost, F&& fn) {
  const int64_t grain = item_cost >= kChunkWork ? 1 : kChunkWork / (item_cost < 1 ? 1 : item_cost);
  parallel_ranges(c.pool, n, grain, fn);
}

}  // namespace lb
