// Per-op timing of the decoder runtime (lb_llm_profile_*). Each op boundary calls mark(); the
// time since the previous mark is charged to that op, so the ops of a forward pass add up to the
// whole pass. Totals are kept per (phase, layer, op): no allocation while tokens run. When
// profiling is off a mark is one predictable branch (no clock read).
#pragma once
#include <chrono>
#include <cstdint>
#include <vector>

namespace lb {
namespace llm {

enum class Phase : int { Prefill = 0, Decode = 1 };

enum ProfOp : int {
  kOpEmbed = 0,   ///< embedding row lookup (outside the blocks)
  kOpAttnNorm,    ///< RMSNorm before attention
  kOpQkv,         ///< fused q/k/v projection
  kOpRope,        ///< RoPE on q and k
  kOpKvStore,     ///< appending k/v to the cache (conversion to fp16 / int8)
  kOpAttention,   ///< scores, softmax and the weighted V sum
  kOpOProj,       ///< output projection
  kOpResidual,    ///< residual adds
  kOpFfnNorm,     ///< RMSNorm before the MLP
  kOpGateUp,      ///< fused gate/up projection
  kOpSwiglu,      ///< silu(gate) * up
  kOpDown,        ///< down projection
  kOpFinalNorm,   ///< final RMSNorm (outside the blocks)
  kOpLmHead,      ///< output head (outside the blocks)
  kOpSampling,    ///< sampling a token (outside the blocks)
  kOpCount
};

const char* prof_op_name(int op);

class Profiler {
 public:
  struct Slot {
    int64_t calls = 0;
    int64_t ns = 0;
    int64_t bytes = 0;           ///< weight bytes one call reads (linears), else 0
    const char* kernel = "";     ///< what ran (static string)
    const char* isa = "";        ///< its ISA (static string)
  };

  void init(int layers) {
    layers_ = layers;
    slots_.assign(size_t(2) * (layers + 1) * kOpCount, Slot());
  }
  void enable(bool on) {
    on_ = on;
    clear();
  }
  bool on() const { return on_; }
  void clear() {
    for (Slot& s : slots_) s = Slot();
  }
  int layers() const { return layers_; }

  /// Starts timing (the next mark charges the time since now).
  void start() {
    if (on_) last_ = now_ns();
  }
  /// Charges the time since the previous mark/start to (phase, layer, op). layer -1: outside.
  void mark(Phase ph, int layer, int op, const char* kernel, const char* isa, int64_t bytes = 0) {
    if (!on_) return;
    const int64_t t = now_ns();
    Slot& s = slots_[index(ph, layer, op)];
    s.calls += 1;
    s.ns += t - last_;
    s.bytes = bytes;
    s.kernel = kernel;
    s.isa = isa;
    last_ = t;
  }
  const Slot& slot(Phase ph, int layer, int op) const { return slots_[index(ph, layer, op)]; }

 private:
  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  size_t index(Phase ph, int layer, int op) const {
    return (size_t(ph) * (layers_ + 1) + size_t(layer + 1)) * kOpCount + size_t(op);
  }
  bool on_ = false;
  int layers_ = 0;
  int64_t last_ = 0;
  std::vector<Slot> slots_;  // [phase][layer + 1][op]
};

}  // namespace llm
}  // namespace lb
