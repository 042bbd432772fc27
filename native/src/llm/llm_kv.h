// The KV cache and fused attention. Keys/values are stored per layer as
// [kv_head][slot][head_dim] in fp32, fp16 or int8 (int8: one fp32 scale per slot, head and group
// of 32 channels; bfp: int8 mantissas and one int8 power-of-two exponent per slot, head and block of
// 16 channels, in a per-(layer, head) channel order that groups channels of similar magnitude; see
// docs/llm.md). Without eviction slot == position; with H2O eviction each layer keeps its own
// slot -> position map and the accumulated attention each slot received.
#pragma once
#include <cstdint>
#include <vector>

#include "llm/llm_ops.h"
#include "lowbit/lowbit_llm.h"

namespace lb {
namespace llm {

/// Names of the cache's store and attention routines for the profiler, per element type.
const char* kv_store_name(lb_llm_kv_type t);
const char* kv_attend_name(lb_llm_kv_type t);

/// Zeroed bytes for the cache's keys and values, in 2 MB pages where the OS allows it (Linux
/// transparent huge pages through madvise), else a plain heap block. Decode reads each layer's
/// cache once per token after ~25 MB of weights went through the caches since the last read;
/// on 4 KB pages every page of a layer's rows then costs a page walk from memory, which doubled
/// the time of attention (docs/llm.md, session 10).
class KvBytes {
 public:
  KvBytes() = default;
  ~KvBytes() { release(); }
  KvBytes(const KvBytes&) = delete;
  KvBytes& operator=(const KvBytes&) = delete;
  /// n zero bytes (the old contents are dropped); throws std::bad_alloc.
  void assign(size_t n);
  uint8_t* data() { return p_; }
  const uint8_t* data() const { return p_; }
  size_t size() const { return n_; }
  uint8_t& operator[](size_t i) { return p_[i]; }
  const uint8_t& operator[](size_t i) const { return p_[i]; }
  /// True when the block is a 2 MB-aligned mapping marked for huge pages.
  bool huge() const { return map_ != nullptr; }

 private:
  void release();
  uint8_t* p_ = nullptr;
  size_t n_ = 0;
  void* map_ = nullptr;  // the mapping (Linux), or null when the bytes live in vec_
  size_t map_len_ = 0;
  std::vector<uint8_t> vec_;
};

class KvCache {
 public:
  /// cap: slots per layer. h2o_budget > 0 enables eviction (cap == budget then).
  void init(int layers, int kv_heads, int head_dim, int cap, lb_llm_kv_type type, int h2o_budget, int h2o_recent);
  void reset();

  int capacity() const { return cap_; }
  int slots(int layer) const { return n_[layer]; }
  bool h2o() const { return h2o_budget_ > 0; }
  int64_t bytes() const;
  lb_llm_kv_type type() const { return type_; }
  /// Keys and values are in a huge-page mapping (KvBytes::huge), for tests and the profile.
  bool huge_pages() const { return k_.huge() && v_.huge(); }

  /// With H2O: makes room for `incoming` new slots in every layer (evicts heavy-hitter losers).
  void make_room(int incoming);
  /// bfp with reordering: true until the layer's channel order is set (first prefill chunk after reset).
  bool needs_order(int layer) const { return reorder_ && !ordered_[layer]; }
  /// Sets the layer's channel order per kv head from `t` rows of keys / values (row stride `stride`
  /// floats; post-RoPE): channels sorted by magnitude (keys: the norm of the RoPE pair i, i + d/2).
  void set_order(int layer, const float* k, const float* v, int stride, int t);
  /// bfp with reordering: uses the package's channel orders (`order` [layers][kv_heads][2][head_dim]
  /// int32, keys then values, each a permutation of 0..head_dim-1, checked at load) for every layer,
  /// instead of computing them from the first prefill chunk; reset() keeps them.
  void set_fixed_order(const int32_t* order);
  /// Appends the key and value rows (all kv heads, [kv_heads * head_dim]) of one position.
  void append(int layer, int pos, const float* k, const float* v, const VecOps& ops);
  /// Attention for `g` query heads sharing kv head `kvh`: q [g][head_dim] -> out [g][head_dim].
  /// Attends to the slots whose position is in [pos - window + 1, pos] (window 0 = unlimited).
  /// `scores` is scratch of at least g * capacity floats.
  void attend(int layer, int kvh, const float* q, int g, int pos, int window, float* scores, float* out,
              const VecOps& ops);

 private:
  int layers_ = 0, kv_heads_ = 0, d_ = 0, cap_ = 0, group_ = 32, ngroups_ = 1;
  lb_llm_kv_type type_ = LB_LLM_KV_F16;
  int h2o_budget_ = 0, h2o_recent_ = 0;
  size_t elt_ = 2;                  // bytes per element
  KvBytes k_, v_;                   // [layer][kv_head][slot][d] elements
  std::vector<float> ks_, vs_;      // int8 scales [layer][kv_head][slot][ngroups]
  std::vector<int8_t> ke_, ve_;     // bfp exponents [layer][kv_head][slot][ngroups]
  bool bfp_ = false, reorder_ = false, fixed_order_ = false;
  std::vector<uint8_t> ordered_;    // [layer] channel order set (bfp with reordering)
  std::vector<int32_t> kperm_, vperm_;  // [layer][kv_head][d]: stored channel i holds channel perm[i]
  std::vector<int> n_;              // filled slots per layer
  std::vector<int32_t> pos_;        // [layer][slot] position held by the slot
  std::vector<float> acc_;          // [layer][kv_head][slot] accumulated attention (H2O)

  size_t row(int layer, int kvh, int slot) const { return ((size_t(layer) * kv_heads_ + kvh) * cap_ + slot); }
  void store_row(uint8_t* base, float* scales, int8_t* exps, const int32_t* perm, size_t r, const float* x,
                 const VecOps& ops);
  void evict_one(int layer);
  void attend_rows(int layer, int kvh, const float* q, int g, int pos, int window, float* scores, float* out,
                   const VecOps& ops);
  /// bfp: the exponents of `cnt` rows from row r as fp32 scales (thread-local scratch).
  const float* bfp_scales(const std::vector<int8_t>& e, size_t r, int cnt) const;
  std::vector<float> row_tmp_;      // bfp store: one row in cache order
};

}  // namespace llm
}  // namespace lb
