// Loads an LLM package (manifest kind "llm"): config from the manifest's "llm" object, weights
// as views into the mapping. Every shape is checked against the config before anything runs.
#include "llm/llm_model.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#if defined(__linux__)
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "error.h"
#include "measure.h"

namespace lb {
namespace llm {

void Embedding::row(int token, int hidden, float* out) const {
  if (f32) {
    std::memcpy(out, f32 + size_t(token) * hidden, size_t(hidden) * 4);
  } else {
    const int8_t* q = i8 + size_t(token) * hidden;
    const float s = scale[token];
    for (int i = 0; i < hidden; ++i) out[i] = s * float(q[i]);
  }
}

namespace {

struct Loader {
  Model* m;
  const char* path;

  lb_status tensor(const std::string& name, DType dt, std::initializer_list<int64_t> shape, TensorView* tv) {
    lb_status st = m->pkg->tensor(name, tv);
    if (st != LB_OK) return st;
    std::vector<int64_t> want(shape);
    if (tv->dtype != dt || tv->shape != want) {
      std::string ws, gs;
      for (auto d : want) ws += std::to_string(d) + ",";
      for (auto d : tv->shape) gs += std::to_string(d) + ",";
      return set_error(LB_ERR_FORMAT, "%s: tensor '%s' is %s[%s], expected %s[%s]", path, name.c_str(),
                       dtype_name(tv->dtype), gs.c_str(), dtype_name(dt), ws.c_str());
    }
    return LB_OK;
  }
  lb_status f32(const std::string& name, std::initializer_list<int64_t> shape, const float** out) {
    TensorView tv;
    lb_status st = tensor(name, DType::F32, shape, &tv);
    if (st == LB_OK) *out = static_cast<const float*>(tv.data);
    return st;
  }
  lb_status linear(const std::string& name, int n, int k, bool bias, Linear* L) {
    TensorView tv;
    lb_status st = m->pkg->tensor(name, &tv);
    if (st != LB_OK) return st;
    const std::string fmt = tv.meta ? (*tv.meta)["linear"].str() : std::string();
    L->n = n;
    L->k = k;
    L->format_name = fmt;
    if (fmt == "f32") {
      if ((st = tensor(name, DType::F32, {n, k}, &tv)) != LB_OK) return st;
      L->kind = Linear::F32;
      L->w = static_cast<const float*>(tv.data);
    } else if (fmt == "q8" || fmt == "q4" || fmt == "q4a" || fmt == "c4" || fmt == "t2") {
      if (tv.dtype != DType::U8 || tv.shape.size() != 1)
        return set_error(LB_ERR_FORMAT, "%s: packed linear '%s' must be a 1-D u8 tensor", path, name.c_str());
      const Json& meta = *tv.meta;
      if (meta["n"].i64() != n || meta["k"].i64() != k)
        return set_error(LB_ERR_FORMAT, "%s: packed linear '%s' is [%lld, %lld], expected [%d, %d]", path,
                         name.c_str(), (long long)meta["n"].i64(), (long long)meta["k"].i64(), n, k);
      const lb_wfmt wf = fmt == "q8" ? LB_WFMT_Q8 : fmt == "q4" ? LB_WFMT_Q4 : fmt == "q4a" ? LB_WFMT_Q4A
                         : fmt == "c4" ? LB_WFMT_C4 : LB_WFMT_T2;
      st = packed_weight_init(wf, n, k, int32_t(meta["group"].i64()), tv.data, tv.nbytes, &L->pw);
      if (st != LB_OK)
        return set_error(st, "%s: packed linear '%s': %s", path, name.c_str(), lb_last_error());
      L->kind = Linear::Quant;
      L->packed_bytes = tv.nbytes;
    } else {
      return set_error(LB_ERR_UNSUPPORTED, "%s: tensor '%s' has linear format '%s', which this build cannot run",
                       path, name.c_str(), fmt.c_str());
    }
    if (bias && (st = f32(name + ".bias", {n}, &L->bias)) != LB_OK) return st;
    m->weight_bytes += L->bytes();
    return LB_OK;
  }
};

int geti(const Json& j, const char* key, int def = 0) { return j.has(key) ? int(j[key].i64(def)) : def; }

}  // namespace

lb_status load_model(const char* path, bool verify_full, std::unique_ptr<Model>* out) {
  std::unique_ptr<Model> m(new (std::nothrow) Model());
  if (!m) return set_error(LB_ERR_OUT_OF_MEMORY, "out of memory");
  lb_status st = Package::open_file(path, verify_full ? Verify::Full : Verify::Lazy, &m->pkg);
  if (st != LB_OK) return st;
  m->path = path;
  const Json& man = m->pkg->manifest();
  if (man["kind"].str() != "llm")
    return set_error(LB_ERR_FORMAT, "%s: not an LLM package (manifest kind is '%s', expected 'llm'); "
                     "use lb_model_load for graph models", path, man["kind"].str().c_str());
  const Json& j = man["llm"];
  if (!j.is_object()) return set_error(LB_ERR_FORMAT, "%s: manifest has no 'llm' object", path);
  Config& c = m->cfg;
  c.arch = j["arch"].str();
  if (c.arch != "llama" && c.arch != "qwen2" && c.arch != "mistral")  // the decoders this runtime implements
    return set_error(LB_ERR_UNSUPPORTED, "%s: LLM architecture '%s' is not supported by this runtime (it runs llama, "
                     "qwen2, mistral); update lowbit or re-export", path, c.arch.c_str());
  c.scheme = man["scheme"].str();
  c.vocab = geti(j, "vocab_size");
  c.hidden = geti(j, "hidden_size");
  c.inter = geti(j, "intermediate_size");
  c.layers = geti(j, "num_layers");
  c.heads = geti(j, "num_heads");
  c.kv_heads = geti(j, "num_kv_heads");
  c.head_dim = geti(j, "head_dim");
  c.context = geti(j, "context_length");
  c.sliding_window = geti(j, "sliding_window");
  c.eps = float(j["rms_norm_eps"].num(1e-6));
  c.rope_scale = float(j["rope_attention_scale"].num(1.0));
  c.qkv_bias = j["qkv_bias"].boolean();
  c.o_bias = j["o_bias"].boolean();
  c.bos = j["bos_token_id"].is_number() ? int(j["bos_token_id"].i64()) : -1;
  for (const Json& e : j["eos_token_ids"].elems())
    if (e.is_number()) c.eos.push_back(int(e.i64()));
  if (c.vocab <= 0 || c.hidden <= 0 || c.inter <= 0 || c.layers <= 0 || c.heads <= 0 || c.kv_heads <= 0 ||
      c.head_dim <= 0 || c.context <= 0 || c.heads % c.kv_heads || c.head_dim % 2 || c.head_dim > 1024)
    return set_error(LB_ERR_FORMAT, "%s: invalid LLM config in the manifest (vocab %d, hidden %d, layers %d, "
                     "heads %d/%d, head_dim %d, context %d)", path, c.vocab, c.hidden, c.layers, c.heads,
                     c.kv_heads, c.head_dim, c.context);

  Loader ld{m.get(), path};
  const std::string emb_fmt = j["embed_format"].str();
  TensorView tv;
  if (emb_fmt == "f32") {
    if ((st = ld.f32("embed", {c.vocab, c.hidden}, &m->embed.f32)) != LB_OK) return st;
  } else if (emb_fmt == "i8") {
    if ((st = ld.tensor("embed", DType::I8, {c.vocab, c.hidden}, &tv)) != LB_OK) return st;
    m->embed.i8 = static_cast<const int8_t*>(tv.data);
    if ((st = ld.f32("embed.scale", {c.vocab}, &m->embed.scale)) != LB_OK) return st;
  } else {
    return set_error(LB_ERR_UNSUPPORTED, "%s: embedding format '%s' is not supported", path, emb_fmt.c_str());
  }
  m->weight_bytes += int64_t(c.hidden) * (m->embed.f32 ? 4 : 1);
  if ((st = ld.f32("norm", {c.hidden}, &m->norm)) != LB_OK) return st;
  if ((st = ld.f32("rope.inv_freq", {c.head_dim / 2}, &m->inv_freq)) != LB_OK) return st;
  m->layers.resize(c.layers);
  for (int i = 0; i < c.layers; ++i) {
    Layer& L = m->layers[i];
    const std::string p = "layers." + std::to_string(i) + ".";
    if ((st = ld.f32(p + "attn_norm", {c.hidden}, &L.attn_norm)) != LB_OK) return st;
    if ((st = ld.f32(p + "ffn_norm", {c.hidden}, &L.ffn_norm)) != LB_OK) return st;
    if ((st = ld.linear(p + "qkv", c.q_dim() + 2 * c.kv_dim(), c.hidden, c.qkv_bias, &L.qkv)) != LB_OK) return st;
    if ((st = ld.linear(p + "o", c.hidden, c.q_dim(), c.o_bias, &L.o)) != LB_OK) return st;
    if ((st = ld.linear(p + "gate_up", 2 * c.inter, c.hidden, false, &L.gate_up)) != LB_OK) return st;
    if ((st = ld.linear(p + "down", c.hidden, c.inter, false, &L.down)) != LB_OK) return st;
  }
  if (j["head_tied"].boolean()) {
    if (!m->embed.f32)
      return set_error(LB_ERR_FORMAT, "%s: a tied output head needs float embeddings", path);
    m->head.kind = Linear::F32;
    m->head.n = c.vocab;
    m->head.k = c.hidden;
    m->head.w = m->embed.f32;
    m->head.format_name = "f32";
    m->weight_bytes += m->head.bytes();
  } else if ((st = ld.linear("head", c.vocab, c.hidden, false, &m->head)) != LB_OK) {
    return st;
  }
  if (j["kv_order"].is_string()) {  // optional: the bfp KV cache's channel orders from calibration text
    const std::string name = j["kv_order"].str();
    if ((st = ld.tensor(name, DType::I32, {c.layers, c.kv_heads, 2, c.head_dim}, &tv)) != LB_OK) return st;
    const int32_t* ord = static_cast<const int32_t*>(tv.data);
    std::vector<uint8_t> seen(size_t(c.head_dim));
    for (int64_t r = 0; r < int64_t(c.layers) * c.kv_heads * 2; ++r) {
      std::fill(seen.begin(), seen.end(), 0);
      const int32_t* p = ord + r * c.head_dim;
      for (int i = 0; i < c.head_dim; ++i) {
        if (p[i] < 0 || p[i] >= c.head_dim || seen[size_t(p[i])]++)
          return set_error(LB_ERR_FORMAT, "%s: tensor '%s' (layer %d, kv head %d, %s) is not a permutation of "
                           "0..%d; re-export the package", path, name.c_str(), int(r / (2 * c.kv_heads)),
                           int(r / 2 % c.kv_heads), r % 2 ? "values" : "keys", c.head_dim - 1);
      }
    }
    m->kv_order = ord;
  }
  *out = std::move(m);
  return LB_OK;
}

std::vector<std::pair<const uint8_t*, size_t>> linear_weight_ranges(const Model& m) {
  std::vector<std::pair<const uint8_t*, size_t>> r;
  auto add = [&r](const Linear& L) {
    const uint8_t* p = L.kind == Linear::Quant ? L.pw.data : reinterpret_cast<const uint8_t*>(L.w);
    if (p && L.bytes() > 0) r.emplace_back(p, size_t(L.bytes()));
  };
  for (const Layer& L : m.layers)
    for (const Linear* li : {&L.qkv, &L.o, &L.gate_up, &L.down}) add(*li);
  add(m.head);
  return r;
}

uint64_t read_ranges(const std::vector<std::pair<const uint8_t*, size_t>>& ranges, size_t b0, size_t b1) {
  uint64_t sum = 0;
  size_t off = 0;
  for (const auto& r : ranges) {
    const size_t lo = std::max(b0, off), hi = std::min(b1, off + r.second);
    if (lo < hi) sum ^= read_sum(r.first + (lo - off), hi - lo);
    off += r.second;
    if (off >= b1) break;
  }
  return sum;
}

WeightArena::~WeightArena() {
#if defined(__linux__)
  if (base) munmap(base, len);
#endif
}

#if defined(__linux__)
namespace {
// Transparent huge pages usable with madvise ("always" or "madvise" in sysfs, not "never")?
bool thp_available() {
  FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (!f) return false;
  char buf[128] = {0};
  const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = 0;
  return std::strstr(buf, "[never]") == nullptr && (std::strstr(buf, "[always]") || std::strstr(buf, "[madvise]"));
}

// Is the package mapping [base, base + size) already mapped with 2 MB pages, at least 95% of it?
// The package is mapped 2 MB-aligned with MADV_HUGEPAGE (package.cpp); where the page cache
// holds the file in 2 MB folios (a kernel with large folios for the file system, the file read
// through such a mapping) the kernel maps it with 2 MB pages and a copy gains nothing. One byte
// per 2 MB is read first (each read maps a whole 2 MB folio, or reads it in), then
// /proc/self/smaps says how much of the mapping is FilePmdMapped.
bool mapping_in_huge_pages(const uint8_t* base, size_t size) {
  constexpr size_t kHuge = size_t(2) << 20;
  if (size < 16 * kHuge || (reinterpret_cast<uintptr_t>(base) & (kHuge - 1)) != 0) return false;
  uint8_t sink = 0;
  for (size_t i = 0; i < size; i += kHuge) sink ^= *static_cast<const volatile uint8_t*>(base + i);
  __asm__ volatile("" : : "r"(sink));
  FILE* f = std::fopen("/proc/self/smaps", "r");
  if (!f) return false;
  const uintptr_t a = reinterpret_cast<uintptr_t>(base);
  char line[512];
  bool in = false;
  unsigned long long pmd_kb = 0;
  while (std::fgets(line, sizeof line, f)) {
    unsigned long long lo = 0, hi = 0;
    char c = 0;
    if (std::sscanf(line, "%llx-%llx%c", &lo, &hi, &c) == 3 && c == ' ') {
      in = a >= lo && a < hi;
      continue;
    }
    unsigned long long kb = 0;
    if (in && std::sscanf(line, "FilePmdMapped: %llu kB", &kb) == 1) pmd_kb += kb;
  }
  std::fclose(f);
  return double(pmd_kb) * 1024.0 >= 0.95 * double(size / kHuge * kHuge);
}
}  // namespace
#endif

lb_status copy_weights_huge(Model* m, ThreadPool* pool, bool* copied) {
  *copied = false;
#if defined(__linux__)
  if (!thp_available()) return LB_OK;  // nothing to gain: keep reading the mapping
  const uint8_t* pbase = m->pkg->base();
  const size_t psize = m->pkg->file_size();
  if (mapping_in_huge_pages(pbase, psize)) return LB_OK;  // already in 2 MB pages
  if (!m->path.empty() && psize >= (size_t(32) << 20)) {
    // Small page-cache folios: drop them (ours, then the file's unshared clean ones) and read the
    // file again through the MADV_HUGEPAGE mapping. The mapping is private and never written,
    // so its bytes are the file's before and after.
    madvise(const_cast<uint8_t*>(pbase), psize, MADV_DONTNEED);
    const int fd = ::open(m->path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      ::close(fd);
    }
    if (mapping_in_huge_pages(pbase, psize)) return LB_OK;
  }
  std::vector<Linear*> lins;
  for (Layer& L : m->layers)
    for (Linear* li : {&L.qkv, &L.o, &L.gate_up, &L.down}) lins.push_back(li);
  if (m->head.w != m->embed.f32 || m->head.kind == Linear::Quant) lins.push_back(&m->head);  // a tied head stays with the embeddings
  constexpr size_t kAlign = 64, kHuge = size_t(2) << 20;
  auto src_of = [](const Linear* L) -> const uint8_t* {
    return L->kind == Linear::Quant ? L->pw.data : reinterpret_cast<const uint8_t*>(L->w);
  };
  std::vector<size_t> offs;
  size_t total = 0;
  for (const Linear* L : lins) {
    total = (total + kAlign - 1) / kAlign * kAlign;
    offs.push_back(total);
    total += size_t(L->bytes());
  }
  if (total == 0) return LB_OK;
  const size_t len = (total + kHuge - 1) / kHuge * kHuge + kHuge;  // room to align the start to 2 MB
  void* base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return LB_OK;  // keep the mapping: slower, not wrong
  m->arena.base = base;  // owned by the model from here on
  m->arena.len = len;
  uint8_t* dst = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(base) + kHuge - 1) & ~uintptr_t(kHuge - 1));
  madvise(dst, len - size_t(dst - static_cast<uint8_t*>(base)), MADV_HUGEPAGE);  // advisory: failure is fine
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096);
  // Copy, then drop the source, 8 MB at a time (chunks run on the pool): peak RSS grows by
  // threads x 8 MB, not by the weights. Dropping the whole pages of a chunk of the read-only
  // file mapping releases them from this process (the page cache keeps them; touching them
  // again would fault them back in from the file).
  constexpr size_t kChunk = size_t(8) << 20;
  struct Piece { const uint8_t* src; uint8_t* dst; size_t n; };
  std::vector<Piece> pieces;
  for (size_t i = 0; i < lins.size(); ++i) {
    const uint8_t* src = src_of(lins[i]);
    const size_t n = size_t(lins[i]->bytes());
    for (size_t c = 0; c < n; c += kChunk) pieces.push_back({src + c, dst + offs[i] + c, std::min(kChunk, n - c)});
  }
  parallel_for(pool, int64_t(pieces.size()), [&](int64_t t, int) {
    const Piece& p = pieces[size_t(t)];
    std::memcpy(p.dst, p.src, p.n);
    const uintptr_t a = (reinterpret_cast<uintptr_t>(p.src) + page - 1) & ~(page - 1);
    const uintptr_t b = (reinterpret_cast<uintptr_t>(p.src) + p.n) & ~(page - 1);
    if (b > a) madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);
  });
  for (size_t i = 0; i < lins.size(); ++i) {
    Linear* L = lins[i];
    uint8_t* d = dst + offs[i];
    if (L->kind == Linear::Quant) {
      // Re-derived from the copy (init turns an int8 weight's group k into kp; pass k back).
      const PackedWeight pw = L->pw;
      const int32_t group = pw.fmt == LB_WFMT_Q8 ? int32_t(pw.k) : pw.group;
      const lb_status st = packed_weight_init(pw.fmt, pw.n, pw.k, group, d, size_t(L->bytes()), &L->pw);
      if (st != LB_OK) return st;  // cannot happen (same bytes and shape); the arena is freed with the model
    } else {
      L->w = reinterpret_cast<const float*>(d);
    }
  }
  m->arena.bytes = total;
  *copied = true;
#else
  (void)m;
  (void)pool;
#endif
  return LB_OK;
}

}  // namespace llm
}  // namespace lb
