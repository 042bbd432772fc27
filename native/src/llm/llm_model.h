// The decoder model as the runtime sees it: the resolved config and pointers to every weight
// inside the mapped .lbpk (nothing is copied), loaded from a package with manifest kind "llm".
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "llm/llm_linear.h"
#include "lowbit/lowbit.h"
#include "package.h"
#include "threadpool.h"

namespace lb {
namespace llm {

/// Resolved model configuration (manifest "llm" object, written by lowbit.llm.export).
struct Config {
  std::string arch;             ///< "llama", "qwen2", "mistral"
  std::string scheme;           ///< quantization scheme name
  int vocab = 0;                ///< vocabulary size
  int hidden = 0;               ///< model width
  int inter = 0;                ///< SwiGLU width
  int layers = 0;               ///< decoder blocks
  int heads = 0;                ///< query heads
  int kv_heads = 0;             ///< key/value heads (GQA)
  int head_dim = 0;             ///< channels per head
  int context = 0;              ///< longest sequence accepted
  int sliding_window = 0;       ///< 0 = full attention
  float eps = 1e-6f;            ///< RMSNorm epsilon
  float rope_scale = 1.0f;      ///< multiplies cos/sin (YaRN attention factor)
  bool qkv_bias = false;        ///< q/k/v projections carry a bias
  bool o_bias = false;          ///< o projection carries a bias
  int bos = -1;                 ///< BOS id or -1
  std::vector<int> eos;         ///< EOS ids

  int q_dim() const { return heads * head_dim; }
  int kv_dim() const { return kv_heads * head_dim; }
};

/// Token embedding table: float32 rows, or int8 rows with one fp32 scale per row.
struct Embedding {
  const float* f32 = nullptr;   ///< [vocab, hidden] when float
  const int8_t* i8 = nullptr;   ///< [vocab, hidden] when int8
  const float* scale = nullptr; ///< [vocab] for int8
  void row(int token, int hidden, float* out) const;
};

/// One decoder block. q/k/v and gate/up are fused at export into single matrices.
struct Layer {
  const float* attn_norm = nullptr;  ///< [hidden]
  const float* ffn_norm = nullptr;   ///< [hidden]
  Linear qkv;                        ///< [q_dim + 2 kv_dim, hidden] (+ bias for Qwen2)
  Linear o;                          ///< [hidden, q_dim]
  Linear gate_up;                    ///< [2 inter, hidden]: gate rows then up rows
  Linear down;                       ///< [hidden, inter]
};

/// Anonymous memory the linear weights were copied into at open (see copy_weights_huge).
struct WeightArena {
  void* base = nullptr;  ///< the mmap'd region (munmap'd by the destructor)
  size_t len = 0;        ///< its length
  size_t bytes = 0;      ///< weight bytes copied into it
  WeightArena() = default;
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;
  ~WeightArena();
};

struct Model {
  std::unique_ptr<Package> pkg;  ///< owns the mapping the embeddings and norms point into
  std::string path;              ///< the package file (copy_weights_huge re-reads it in 2 MB pages)
  WeightArena arena;             ///< the linears' weights when copied (else they point into the mapping)
  Config cfg;
  Embedding embed;
  std::vector<Layer> layers;
  const float* norm = nullptr;      ///< [hidden] final RMSNorm
  const float* inv_freq = nullptr;  ///< [head_dim / 2] RoPE frequencies, scaling applied at export
  Linear head;                      ///< [vocab, hidden]
  /// [layers][kv_heads][2][head_dim] channel orders for the bfp KV cache (keys, values), from the
  /// exporter's calibration run; null when the package has none (the cache then orders at run time).
  const int32_t* kv_order = nullptr;
  int64_t weight_bytes = 0;         ///< bytes streamed per decoded token (all linears + one embedding row)
};

/// Opens and validates a package; errors name the tensor or manifest field at fault.
lb_status load_model(const char* path, bool verify_full, std::unique_ptr<Model>* out);

/// Puts the weights decode streams in 2 MB pages (with 4 KB pages a decode streaming hundreds of
/// MB per token pays a TLB miss every 4 KB). The package is mapped 2 MB-aligned with
/// MADV_HUGEPAGE (package.cpp), so where the kernel keeps the file in 2 MB page-cache folios
/// (Linux 6.x with large folios for the file system, e.g. ext4 from 6.16) the mapping already
/// has 2 MB pages: then nothing is copied. If the page cache holds the file in small folios (the
/// exporter wrote it, or it was read through a plain mapping), this process's pages of the file
/// are dropped and the file's cached pages that no other process maps are evicted
/// (POSIX_FADV_DONTNEED), and the file is read again through the mapping, in 2 MB folios. Only if
/// the mapping still is not in 2 MB pages (another process maps the file, dirty pages not yet
/// written back, a file system without large folios) is every linear's weight copied into one
/// anonymous, 2 MB-aligned region marked MADV_HUGEPAGE, in decode order, and the linears
/// repointed there (*copied = true). The source pages are dropped from this
/// process (MADV_DONTNEED) as they are copied, so peak RSS grows by one copy chunk, not by the
/// weights (copy chunks run on `pool`, null = the caller). Linux with transparent huge pages
/// only; elsewhere (THP "never", or the region cannot be mapped) the weights stay mapped and
/// *copied is false. Results are bitwise the same either way.
lb_status copy_weights_huge(Model* m, ThreadPool* pool, bool* copied);

/// The byte ranges decode streams once per token, in decode order: every linear's weight
/// (not the embedding table, of which decode reads one row).
std::vector<std::pair<const uint8_t*, size_t>> linear_weight_ranges(const Model& m);

/// Reads bytes [b0, b1) of the concatenation of `ranges` with wide loads (the sum only defeats
/// dead-code removal). The decode roofline probe: the same bytes, pages and order decode reads.
uint64_t read_ranges(const std::vector<std::pair<const uint8_t*, size_t>>& ranges, size_t b0, size_t b1);

}  // namespace llm
}  // namespace lb
