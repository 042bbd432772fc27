// lb::Package: the .lbpk container reader (mmap, header + section table + JSON manifest,
// SHA-256 per section, or per chunk of a section where the package has a chunk table (format
// 1.1), checked at load or lazily on first use). Knows nothing about graphs, so
// the graph runtime and the LLM runtime both read their packages through it.
// Byte layout: docs/package-format.md.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lowbit/lowbit.h"
#include "package_json.h"

namespace lb {

constexpr uint16_t kPackageMajor = 1;  ///< format major version this build reads
constexpr uint16_t kPackageMinor = 1;  ///< newest minor version this build knows (1.1: chunk table)
constexpr size_t kPackageAlign = 64;   ///< alignment of every section and tensor

/// Element types stored in packages and used by the runtime.
enum class DType : uint8_t { F32 = 0, F16, I8, U8, I32, I64, Bool, I16, Count };
size_t dtype_size(DType t);
const char* dtype_name(DType t);  ///< "f32", "i64", ...
bool parse_dtype(const std::string& s, DType* out);

/// A tensor stored in a package, used in place (no copy).
struct TensorView {
  const void* data = nullptr;   ///< 64-byte aligned, inside the mapping
  DType dtype = DType::F32;     ///< element type
  std::vector<int64_t> shape;   ///< dimensions
  size_t nbytes = 0;            ///< bytes of data
  const Json* meta = nullptr;   ///< its manifest entry (layout and other writer-specific fields)
};

enum class Verify {
  Full,  ///< hash every section at load (parallel across sections)
  Lazy,  ///< hash the manifest at load, each data section on first use of one of its tensors
};

class Package {
 public:
  struct Section {
    std::string name;            ///< e.g. "manifest", "data.0"
    uint32_t kind = 0;           ///< 1 manifest, 2 tensor data, 3 blob
    uint64_t offset = 0;         ///< from the start of the file, 64-byte aligned
    uint64_t size = 0;           ///< bytes
    uint8_t sha256[32] = {0};    ///< expected hash of the whole section
    const uint8_t* chunk_sha256 = nullptr;  ///< format 1.1: n_chunks expected chunk hashes (32 bytes each, in the chunk table), else null
    uint64_t n_chunks = 0;       ///< chunks of chunk_size() bytes (the last one shorter) checked instead of `sha256`
    mutable std::atomic<int> state{0};  ///< 0 unchecked, 1 good, 2 bad
    mutable std::atomic<int64_t> bad_chunk{-1};  ///< the first chunk found corrupted (state 2 of a chunked section)
  };

  /// Maps and checks a file. On failure returns a status (FORMAT, VERSION, CHECKSUM, IO) and
  /// sets lb_last_error with the section that failed and what was expected.
  static lb_status open_file(const char* path, Verify mode, std::unique_ptr<Package>* out);
  /// Same from memory: the bytes are copied into an aligned buffer owned by the package.
  static lb_status open_buffer(const void* data, size_t size, Verify mode, std::unique_ptr<Package>* out);
  ~Package();
  Package(const Package&) = delete;
  Package& operator=(const Package&) = delete;

  const Json& manifest() const { return manifest_; }
  const std::string& manifest_text() const { return manifest_text_; }
  uint16_t version_major() const { return major_; }
  uint16_t version_minor() const { return minor_; }
  size_t file_size() const { return size_; }
  const uint8_t* base() const { return base_; }
  const std::vector<std::unique_ptr<Section>>& sections() const { return sections_; }
  const Section* section(const std::string& name) const;
  Verify mode() const { return mode_; }
  /// Bytes per chunk of the chunked sections (format 1.1 chunk table); 0 without a chunk table.
  uint64_t chunk_size() const { return chunk_size_; }

  /// A stored tensor by name; in lazy mode hashes its section first if not yet done.
  /// NOT_FOUND for an unknown name, CHECKSUM/FORMAT for a bad section or entry.
  lb_status tensor(const std::string& name, TensorView* out) const;
  /// Hashes a section if it has not been checked yet (thread-safe); CHECKSUM on mismatch.
  lb_status verify_section(const Section& s) const;
  /// Hashes every section not yet checked (hash_sections on lb_default_threads() threads).
  lb_status verify_all() const;
  /// Hashes the given sections (not yet checked) and records good/bad in their state, on up to
  /// `threads` threads (0: lb_default_threads(), i.e. LOWBIT_NUM_THREADS or the CPUs this process
  /// may use), two messages (sections or chunks) at a time per thread. Errors are reported by
  /// verify_section/tensor.
  void hash_sections(std::vector<const Section*> todo, int threads) const;

 private:
  Package() = default;
  lb_status init(Verify mode, const char* what);
  lb_status read_chunk_table(const char* what);

  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  void* owned_ = nullptr;  // aligned copy for open_buffer
  uint16_t major_ = 0, minor_ = 0;
  uint64_t chunk_size_ = 0;
  Verify mode_ = Verify::Full;
  std::string where_;  // file name (or "<buffer>") for messages
  std::vector<std::unique_ptr<Section>> sections_;
  std::string manifest_text_;
  Json manifest_;
};

}  // namespace lb
