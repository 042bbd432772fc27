// The graph executor: a Model is a verified package plus its parsed graph (read-only, shared by
// sessions); a Session owns threads, the arena and the per-op plan, and runs the ops in order.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "threadpool.h"
#include "ops/ops.h"
#include "package.h"

namespace lb {

/// A value of the graph as declared in the manifest.
struct ValueDecl {
  std::string name;              ///< value name
  DType dtype = DType::F32;      ///< declared dtype
  std::vector<int64_t> shape;    ///< declared dims; -1 for a dynamic dim
  std::vector<std::string> dim_names;  ///< names of dynamic dims ("" for fixed)
  bool is_const = false;         ///< stored in the package
  bool is_input = false;         ///< a graph input
  bool is_output = false;        ///< a graph output
  int producer = -1;             ///< index of the op writing it (-1: input or constant)
  int last_use = -1;             ///< index of the last op reading it
};

struct OpDecl {
  std::string name;              ///< node name (for messages and the profiler)
  std::string type;              ///< ONNX-style op type ("Conv")
  std::string kernel;            ///< runtime kernel name ("conv2d_f32")
  const OpDef* def = nullptr;    ///< implementation
  std::vector<int> in, out;      ///< value ids (-1: omitted optional input)
  const Json* attrs = nullptr;   ///< attributes in the manifest
};

class Model {
 public:
  /// Parses the graph manifest of an opened package; UNSUPPORTED names every op whose kernel
  /// this build lacks, FORMAT any structural problem.
  static lb_status create(std::unique_ptr<Package> pkg, std::unique_ptr<Model>* out);

  const Package& package() const { return *pkg_; }
  const std::vector<ValueDecl>& values() const { return values_; }
  const std::vector<OpDecl>& ops() const { return ops_; }
  const std::vector<int>& inputs() const { return inputs_; }
  const std::vector<int>& outputs() const { return outputs_; }
  int find_value(const std::string& name) const;

 private:
  std::unique_ptr<Package> pkg_;
  std::vector<ValueDecl> values_;
  std::vector<OpDecl> ops_;
  std::vector<int> inputs_, outputs_;
};

/// One op execution as the profiler sees it (the C API's struct).
using ProfileEvent = lb_profile_event;

class Session {
 public:
  static lb_status create(const Model* model, int threads, std::unique_ptr<Session>* out);

  /// Binds an input (no copy: the data must stay valid until run() returns).
  lb_status set_input(const std::string& name, DType dtype, const int64_t* shape, int ndim, const void* data, size_t nbytes);
  lb_status run();
  /// An output of the last run (valid until the next run or set_input that changes shapes).
  lb_status output(const std::string& name, const Tensor** out) const;

  size_t arena_bytes() const { return arena_size_; }
  int threads() const { return pool_ ? pool_->size() : 1; }
  void enable_profiling(bool on) { profiling_ = on; }
  const std::vector<ProfileEvent>& events() const { return events_; }
  const Model& model() const { return *model_; }

 private:
  Session(const Model* m, int threads);
  /// Shape inference, constant folding and the arena for these input shapes (at create when every input
  /// shape is static, else at the first run and whenever the bound shapes change).
  lb_status plan(const std::vector<std::vector<int64_t>>& shapes);

  const Model* model_;
  std::unique_ptr<ThreadPool> pool_;         // null for one thread
  std::vector<Tensor> tensors_;              // one per value
  std::vector<OpParams> params_;             // one per op
  std::vector<OpCtx> ctx_;                   // one per op
  std::vector<char> folded_;                 // op computed at plan time
  std::vector<std::vector<uint8_t>> plan_buffers_;
  std::vector<std::vector<int64_t>> bound_shapes_;  // per graph input, as set
  std::vector<const void*> bound_data_;
  std::vector<std::vector<int64_t>> planned_shapes_;
  bool planned_ = false;
  bool ran_ = false;  // a run completed since the last plan: outputs hold its results
  void* arena_ = nullptr;
  size_t arena_size_ = 0;
  size_t scratch_offset_ = 0;
  size_t scratch_bytes_ = 0;
  bool profiling_ = false;
  std::vector<ProfileEvent> events_;
  std::vector<std::string> shape_text_;

 public:
  ~Session();
};

}  // namespace lb
