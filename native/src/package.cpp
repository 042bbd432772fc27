// .lbpk reader: maps the file, checks header, section table and hashes (docs/package-format.md).
#include "package.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "error.h"
#include "package_sha256.h"

namespace lb {
namespace {

constexpr uint8_t kMagic[8] = {'L', 'B', 'P', 'K', 0, '\r', '\n', 0x1a};
constexpr size_t kHeaderSize = 128;
constexpr size_t kEntrySize = 96;
constexpr size_t kHeaderUsed = 72;
constexpr size_t kNameBytes = 40;
constexpr uint32_t kKindManifest = 1, kKindChunks = 4;
constexpr size_t kChunkHeader = 16;  // chunk table: chunk size, entry count, reserved
constexpr size_t kChunkEntry = 64;   // name, section size, chunk count, reserved
// A hashing thread is started only for at least this many bytes (~1.5 ms of two-stream SHA-NI,
// against ~0.1 ms to start and join a thread).
constexpr uint64_t kBytesPerThread = uint64_t(4) << 20;

// The result of hashing a section: good (bad == -2), the whole section bad (-1) or its first bad chunk.
void record(const Package::Section& s, int64_t bad) {
  int expect = 0;  // a concurrent verify_section may have set it already (same result)
  if (bad >= -1) s.bad_chunk.store(bad, std::memory_order_relaxed);
  s.state.compare_exchange_strong(expect, bad == -2 ? 1 : 2, std::memory_order_acq_rel);
}

uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
uint32_t rd32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t rd64(const uint8_t* p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; }

const char* kDTypeNames[] = {"f32", "f16", "i8", "u8", "i32", "i64", "bool", "i16"};
const size_t kDTypeSizes[] = {4, 2, 1, 1, 4, 8, 1, 2};

// Maps `size` bytes of the file read-only. A file of 2 MB or more is placed at a 2 MB-aligned
// address (so every 2 MB of the file lines up with a 2 MB page of the address space) and advised
// MADV_HUGEPAGE: where the page cache holds the file in 2 MB folios (Linux with large folios,
// e.g. ext4 from 6.16 or xfs, read through such a mapping), the kernel then maps it with 2 MB
// pages, and a weight stream takes one TLB miss per 2 MB instead of per 4 KB (docs/llm.md,
// session 6). Advice only: the bytes are the same either way.
void* map_file(int fd, size_t size) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr size_t kHuge = size_t(2) << 20;
  if (size >= kHuge) {
    void* r = mmap(nullptr, size + kHuge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r != MAP_FAILED) {
      uint8_t* lo = static_cast<uint8_t*>(r);
      uint8_t* hi = lo + size + kHuge;
      uint8_t* at = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(lo) + kHuge - 1) & ~uintptr_t(kHuge - 1));
      void* p = mmap(at, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
      if (p == MAP_FAILED) {
        munmap(r, size + kHuge);
      } else {
        const long pg = sysconf(_SC_PAGESIZE);
        const uintptr_t page = uintptr_t(pg > 0 ? pg : 4096);
        uint8_t* end = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(at) + size + page - 1) & ~(page - 1));
        if (at > lo) munmap(lo, size_t(at - lo));  // the reservation around the file mapping
        if (hi > end) munmap(end, size_t(hi - end));
        madvise(p, size, MADV_HUGEPAGE);  // advisory: an error changes nothing
        return p;
      }
    }
  }
#endif
  return mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
}

}  // namespace

size_t dtype_size(DType t) { return t < DType::Count ? kDTypeSizes[int(t)] : 0; }
const char* dtype_name(DType t) { return t < DType::Count ? kDTypeNames[int(t)] : "?"; }
bool parse_dtype(const std::string& s, DType* out) {
  for (int i = 0; i < int(DType::Count); ++i)
    if (s == kDTypeNames[i]) {
      *out = DType(i);
      return true;
    }
  return false;
}

Package::~Package() {
  if (mapped_ && base_) munmap(const_cast<uint8_t*>(base_), size_);
  std::free(owned_);
}

lb_status Package::open_file(const char* path, Verify mode, std::unique_ptr<Package>* out) {
  if (!path || !out) return set_error(LB_ERR_INVALID_ARG, "lb_model_load: NULL path");
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return set_error(LB_ERR_IO, "cannot open package '%s': %s", path, std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return set_error(LB_ERR_IO, "cannot stat '%s': %s", path, std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return set_error(LB_ERR_IO, "'%s' is not a regular file", path);
  }
  const size_t size = size_t(st.st_size);
  if (size < kHeaderSize) {
    ::close(fd);
    return set_error(LB_ERR_FORMAT, "'%s' is %zu bytes: too short for a .lbpk header (%zu bytes); truncated or not a package",
                     path, size, kHeaderSize);
  }
  void* p = map_file(fd, size);
  ::close(fd);
  if (p == MAP_FAILED) return set_error(LB_ERR_IO, "cannot mmap '%s': %s", path, std::strerror(errno));
  std::unique_ptr<Package> pkg(new (std::nothrow) Package());
  if (!pkg) {
    munmap(p, size);
    return set_error(LB_ERR_OUT_OF_MEMORY, "out of memory");
  }
  pkg->base_ = static_cast<const uint8_t*>(p);
  pkg->size_ = size;
  pkg->mapped_ = true;
  pkg->where_ = path;
  const lb_status s = pkg->init(mode, path);
  if (s != LB_OK) return s;
  *out = std::move(pkg);
  return LB_OK;
}

lb_status Package::open_buffer(const void* data, size_t size, Verify mode, std::unique_ptr<Package>* out) {
  if (!data || !out) return set_error(LB_ERR_INVALID_ARG, "lb_model_load_buffer: NULL buffer");
  if (size < kHeaderSize)
    return set_error(LB_ERR_FORMAT, "buffer of %zu bytes is too short for a .lbpk header (%zu bytes)", size, kHeaderSize);
  std::unique_ptr<Package> pkg(new (std::nothrow) Package());
  void* mem = nullptr;
  if (!pkg || posix_memalign(&mem, 4096, size) != 0) return set_error(LB_ERR_OUT_OF_MEMORY, "out of memory copying a %zu-byte package", size);
  std::memcpy(mem, data, size);
  pkg->owned_ = mem;
  pkg->base_ = static_cast<const uint8_t*>(mem);
  pkg->size_ = size;
  pkg->where_ = "<buffer>";
  const lb_status s = pkg->init(mode, "<buffer>");
  if (s != LB_OK) return s;
  *out = std::move(pkg);
  return LB_OK;
}

lb_status Package::init(Verify mode, const char* what) {
  mode_ = mode;
  const uint8_t* h = base_;
  if (std::memcmp(h, kMagic, 8) != 0) return set_error(LB_ERR_FORMAT, "%s is not a lowbit package (bad magic bytes)", what);
  major_ = rd16(h + 8);
  minor_ = rd16(h + 10);
  if (major_ != kPackageMajor)
    return set_error(LB_ERR_VERSION, "%s has package format %u.%u; this runtime reads format %u.x (up to %u.%u): %s", what,
                     major_, minor_, kPackageMajor, kPackageMajor, kPackageMinor,
                     major_ > kPackageMajor ? "update lowbit" : "re-export the model");
  if (rd32(h + 12) != 0) return set_error(LB_ERR_FORMAT, "%s: header flags 0x%x unknown to this runtime", what, rd32(h + 12));
  for (size_t i = kHeaderUsed; i < kHeaderSize; ++i)
    if (h[i] != 0) return set_error(LB_ERR_FORMAT, "%s: header reserved byte %zu is not zero (corrupted header)", what, i);
  const uint64_t file_size = rd64(h + 16);
  if (file_size != size_)
    return set_error(LB_ERR_FORMAT, "%s: header says the package is %llu bytes, found %zu bytes (%s)", what,
                     (unsigned long long)file_size, size_, size_ < file_size ? "truncated" : "trailing data");
  const uint64_t table_off = rd64(h + 24);
  const uint32_t n = rd32(h + 32);
  const uint32_t esize = rd32(h + 36);
  if (esize != kEntrySize || n == 0 || n > 1000000 || table_off < kHeaderSize || table_off % kPackageAlign ||
      table_off > size_ || uint64_t(n) * esize > size_ - table_off)
    return set_error(LB_ERR_FORMAT, "%s: section table (offset %llu, %u entries of %u bytes) is out of bounds", what,
                     (unsigned long long)table_off, n, esize);
  uint8_t digest[32];
  sha256(base_ + table_off, size_t(n) * esize, digest);
  if (std::memcmp(digest, h + 40, 32) != 0)
    return set_error(LB_ERR_CHECKSUM, "%s: section table checksum mismatch (corrupted section table)", what);
  for (uint32_t i = 0; i < n; ++i) {
    const uint8_t* e = base_ + table_off + size_t(i) * esize;
    auto s = std::unique_ptr<Section>(new (std::nothrow) Section());
    if (!s) return set_error(LB_ERR_OUT_OF_MEMORY, "out of memory");
    size_t len = 0;
    while (len < kNameBytes && e[len]) ++len;
    if (len == 0 || len == kNameBytes) return set_error(LB_ERR_FORMAT, "%s: section %u has an invalid name", what, i);
    s->name.assign(reinterpret_cast<const char*>(e), len);
    s->kind = rd32(e + 40);
    s->offset = rd64(e + 48);
    s->size = rd64(e + 56);
    std::memcpy(s->sha256, e + 64, 32);
    if (s->offset < kHeaderSize || s->offset % kPackageAlign || s->offset > table_off || s->size > table_off - s->offset)
      return set_error(LB_ERR_FORMAT, "%s: section '%s' (offset %llu, %llu bytes) is out of bounds", what, s->name.c_str(),
                       (unsigned long long)s->offset, (unsigned long long)s->size);
    sections_.push_back(std::move(s));
  }
  const Section* man = section("manifest");
  if (!man || man->kind != kKindManifest) return set_error(LB_ERR_FORMAT, "%s: no manifest section", what);
  lb_status st = read_chunk_table(what);
  if (st != LB_OK) return st;
  st = verify_section(*man);
  if (st != LB_OK) return st;
  manifest_text_.assign(reinterpret_cast<const char*>(base_ + man->offset), man->size);
  std::string err;
  if (!Json::parse(manifest_text_.data(), manifest_text_.size(), &manifest_, &err) || !manifest_.is_object())
    return set_error(LB_ERR_FORMAT, "%s: manifest is not a valid JSON object: %s", what, err.c_str());
  if (!manifest_["tensors"].is_object() && manifest_.has("tensors"))
    return set_error(LB_ERR_FORMAT, "%s: manifest 'tensors' is not an object", what);
  if (mode == Verify::Full) {
    st = verify_all();
    if (st != LB_OK) return st;
  }
  return LB_OK;
}

const Package::Section* Package::section(const std::string& name) const {
  for (const auto& s : sections_)
    if (s->name == name) return s.get();
  return nullptr;
}

// Format 1.1 chunk table (docs/package-format.md, "Chunk table"): the one section of kind 4,
// checked by its own SHA-256 like any section, then every field against the section table.
lb_status Package::read_chunk_table(const char* what) {
  const Section* ct = nullptr;
  for (const auto& s : sections_)
    if (s->kind == kKindChunks) {
      if (ct) return set_error(LB_ERR_FORMAT, "%s: two chunk tables ('%s' and '%s'); a package has at most one", what, ct->name.c_str(), s->name.c_str());
      ct = s.get();
    }
  if (!ct) return LB_OK;
  lb_status st = verify_section(*ct);
  if (st != LB_OK) return st;
  const uint8_t* p = base_ + ct->offset;
  const uint64_t n = ct->size;
  if (n < kChunkHeader)
    return set_error(LB_ERR_FORMAT, "%s: chunk table '%s' is %llu bytes, shorter than its %zu-byte header (truncated)", what,
                     ct->name.c_str(), (unsigned long long)n, kChunkHeader);
  const uint64_t cs = rd64(p);
  const uint32_t count = rd32(p + 8);
  if (cs < 4096 || cs % 64 || cs > (uint64_t(1) << 30))
    return set_error(LB_ERR_FORMAT, "%s: chunk table '%s' has chunk size %llu; it must be a multiple of 64 from 4096 to 2^30 bytes",
                     what, ct->name.c_str(), (unsigned long long)cs);
  if (rd32(p + 12) != 0) return set_error(LB_ERR_FORMAT, "%s: chunk table '%s' header reserved field is not zero", what, ct->name.c_str());
  if (count > sections_.size() || uint64_t(count) * kChunkEntry > n - kChunkHeader)
    return set_error(LB_ERR_FORMAT, "%s: chunk table '%s' lists %u sections, but its %llu bytes hold at most %llu entries (truncated or wrong count)",
                     what, ct->name.c_str(), count, (unsigned long long)n, (unsigned long long)((n - kChunkHeader) / kChunkEntry));
  uint64_t digests = 0;
  std::vector<Section*> listed;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = p + kChunkHeader + size_t(i) * kChunkEntry;
    size_t len = 0;
    while (len < kNameBytes && e[len]) ++len;
    const std::string name(reinterpret_cast<const char*>(e), len);
    Section* s = nullptr;
    std::string shown = name;  // for messages: a damaged name may hold any byte
    for (char& c : shown)
      if (c < 0x20 || c > 0x7e) c = '?';
    for (const auto& x : sections_)
      if (x->name == name) s = x.get();
    if (!s || len == kNameBytes)
      return set_error(LB_ERR_FORMAT, "%s: chunk table entry %u names section '%s', which the section table lacks", what, i, shown.c_str());
    if (s->kind == kKindManifest || s->kind == kKindChunks || s->n_chunks)
      return set_error(LB_ERR_FORMAT, "%s: chunk table entry %u: section '%s' %s", what, i, shown.c_str(),
                       s->n_chunks ? "is listed twice" : "cannot be chunked (the manifest and the chunk table are hashed whole)");
    const uint64_t size = rd64(e + 40), nc = rd64(e + 48);
    if (size != s->size)
      return set_error(LB_ERR_FORMAT, "%s: chunk table says section '%s' is %llu bytes; the section table says %llu", what,
                       shown.c_str(), (unsigned long long)size, (unsigned long long)s->size);
    const uint64_t want = (size + cs - 1) / cs;
    if (nc != want || nc == 0)
      return set_error(LB_ERR_FORMAT, "%s: chunk table gives section '%s' %llu chunks; %llu bytes in %llu-byte chunks are %llu", what,
                       shown.c_str(), (unsigned long long)nc, (unsigned long long)size, (unsigned long long)cs, (unsigned long long)want);
    if (rd64(e + 56) != 0) return set_error(LB_ERR_FORMAT, "%s: chunk table entry %u reserved field is not zero", what, i);
    s->n_chunks = nc;
    digests += nc;
    listed.push_back(s);
  }
  const uint64_t need = kChunkHeader + uint64_t(count) * kChunkEntry + digests * 32;
  if (n != need)
    return set_error(LB_ERR_FORMAT, "%s: chunk table '%s' is %llu bytes; %u entries with %llu chunk hashes take %llu (%s)", what,
                     ct->name.c_str(), (unsigned long long)n, count, (unsigned long long)digests, (unsigned long long)need,
                     n < need ? "truncated" : "trailing bytes");
  const uint8_t* d = p + kChunkHeader + size_t(count) * kChunkEntry;
  for (Section* s : listed) {  // the digests follow in entry order
    s->chunk_sha256 = d;
    d += s->n_chunks * 32;
  }
  chunk_size_ = cs;
  return LB_OK;
}

lb_status Package::verify_section(const Section& s) const {
  if (s.state.load(std::memory_order_acquire) == 0) hash_sections({&s}, 1);
  if (s.state.load(std::memory_order_acquire) != 2) return LB_OK;
  const int64_t c = s.bad_chunk.load(std::memory_order_relaxed);
  if (c >= 0) {
    const uint64_t lo = uint64_t(c) * chunk_size_, hi = std::min(lo + chunk_size_, s.size);
    return set_error(LB_ERR_CHECKSUM, "%s: section '%s' checksum mismatch in chunk %lld of %llu (bytes %llu..%llu of its %llu): SHA-256 differs from the chunk table (corrupted package)",
                     where_.c_str(), s.name.c_str(), (long long)c, (unsigned long long)s.n_chunks, (unsigned long long)lo,
                     (unsigned long long)hi, (unsigned long long)s.size);
  }
  return set_error(LB_ERR_CHECKSUM, "%s: section '%s' checksum mismatch: SHA-256 of its %llu bytes differs from the section table (corrupted package)",
                   where_.c_str(), s.name.c_str(), (unsigned long long)s.size);
}

lb_status Package::verify_all() const {
  std::vector<const Section*> todo;
  for (const auto& s : sections_)
    if (s->state.load() == 0) todo.push_back(s.get());
  hash_sections(todo, 0);
  for (const auto& s : sections_) {
    const lb_status st = verify_section(*s);
    if (st != LB_OK) return st;
  }
  return LB_OK;
}

void Package::hash_sections(std::vector<const Section*> todo, int threads) const {
  // One message per chunk of a chunked section (format 1.1), one per whole section otherwise;
  // longest first. Each thread hashes two messages at a time (sha256_many), taking the next one
  // from the shared list when one of its two ends, so the time is about
  // max(the longest message alone, all bytes / (threads * two-stream speed)).
  struct Piece {
    Sha256Job job;
    size_t section;  // index in todo
    int64_t chunk;   // -1: the whole section
  };
  std::vector<Piece> pieces;
  uint64_t bytes = 0;
  for (size_t i = 0; i < todo.size(); ++i) {
    const Section& s = *todo[i];
    const uint8_t* p = base_ + s.offset;
    if (s.n_chunks) {
      for (uint64_t c = 0; c < s.n_chunks; ++c) {
        Piece x;
        x.job.data = p + c * chunk_size_;
        x.job.size = size_t(std::min(chunk_size_, s.size - c * chunk_size_));
        x.section = i;
        x.chunk = int64_t(c);
        pieces.push_back(x);
      }
    } else {
      Piece x;
      x.job.data = p;
      x.job.size = size_t(s.size);
      x.section = i;
      x.chunk = -1;
      pieces.push_back(x);
    }
    bytes += s.size;
  }
  std::stable_sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.job.size > b.job.size; });
  std::vector<Sha256Job> jobs(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) jobs[i] = pieces[i].job;
  size_t nt = size_t(threads > 0 ? threads : lb_default_threads());
  if (nt > 8) nt = 8;
  // With t threads the time is at least max(longest message alone, bytes / (2 t) streams): a
  // thread more helps only while bytes / (2 t) > longest (a format 1.0 package whose largest
  // section is half of it hashes fastest on one thread, both streams busy), and only for
  // kBytesPerThread bytes or more each (thread start-up).
  const uint64_t largest = jobs.empty() ? 0 : jobs[0].size;
  uint64_t useful = largest ? bytes / (2 * largest) : 1;
  useful = std::min(useful, bytes / kBytesPerThread);
  if (nt > useful) nt = size_t(useful > 0 ? useful : 1);
  std::atomic<size_t> next{0};
  std::vector<std::thread> th;
  for (size_t t = 1; t < nt; ++t) {
    try {
      th.emplace_back([&] { sha256_many(jobs.data(), jobs.size(), &next); });
    } catch (...) {  // no thread to be had: the others (and this one) take its share
      break;
    }
  }
  sha256_many(jobs.data(), jobs.size(), &next);
  for (auto& t : th) t.join();
  std::vector<int64_t> bad(todo.size(), -2);  // -2 good, -1 whole section bad, else the first bad chunk
  for (size_t i = 0; i < pieces.size(); ++i) {
    const Piece& x = pieces[i];
    const Section& s = *todo[x.section];
    const uint8_t* want = x.chunk < 0 ? s.sha256 : s.chunk_sha256 + 32 * size_t(x.chunk);
    if (std::memcmp(jobs[i].digest, want, 32) != 0 && (bad[x.section] == -2 || x.chunk < bad[x.section])) bad[x.section] = x.chunk;
  }
  for (size_t i = 0; i < todo.size(); ++i) record(*todo[i], bad[i]);
}

lb_status Package::tensor(const std::string& name, TensorView* out) const {
  const Json& e = manifest_["tensors"][name];
  if (!e.is_object()) return set_error(LB_ERR_NOT_FOUND, "%s: no tensor '%s' in the manifest", where_.c_str(), name.c_str());
  DType dt;
  if (!parse_dtype(e["dtype"].str(), &dt))
    return set_error(LB_ERR_FORMAT, "%s: tensor '%s' has unknown dtype '%s'", where_.c_str(), name.c_str(), e["dtype"].str().c_str());
  const Section* s = section(e["section"].str());
  if (!s || s->kind != 2)
    return set_error(LB_ERR_FORMAT, "%s: tensor '%s' names a missing data section '%s'", where_.c_str(), name.c_str(),
                     e["section"].str().c_str());
  std::vector<int64_t> shape;
  uint64_t count = 1;
  for (const Json& d : e["shape"].elems()) {
    if (!d.is_number() || d.i64() < 0 || d.i64() > (int64_t(1) << 40))
      return set_error(LB_ERR_FORMAT, "%s: tensor '%s' has an invalid shape", where_.c_str(), name.c_str());
    shape.push_back(d.i64());
    count *= uint64_t(d.i64());
    if (count > (uint64_t(1) << 40)) return set_error(LB_ERR_FORMAT, "%s: tensor '%s' is too large", where_.c_str(), name.c_str());
  }
  const int64_t off = e["offset"].i64(-1), nb = e["nbytes"].i64(-1);
  if (off < 0 || nb < 0 || off % int64_t(kPackageAlign) || uint64_t(off) > s->size || uint64_t(nb) > s->size - uint64_t(off) ||
      uint64_t(nb) != count * dtype_size(dt))
    return set_error(LB_ERR_FORMAT, "%s: tensor '%s' (offset %lld, %lld bytes) does not fit its section '%s' or its shape",
                     where_.c_str(), name.c_str(), (long long)off, (long long)nb, s->name.c_str());
  const lb_status st = verify_section(*s);
  if (st != LB_OK) return st;
  out->data = base_ + s->offset + off;
  out->dtype = dt;
  out->shape = std::move(shape);
  out->nbytes = size_t(nb);
  out->meta = &e;
  return LB_OK;
}

}  // namespace lb
