// lowbit-run: the native command-line tool (no Python): build info, kernel self-check, and
// running/verifying device packages.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lowbit/lowbit.h"
#include "package_json.h"

static int usage() {
  std::fprintf(stderr,
               "usage: lowbit-run --version | --info | --selfcheck\n"
               "       lowbit-run run PKG [--input NAME=FILE.npy]... [--threads N] [--repeat N] [--lazy] [--output DIR]\n"
               "       lowbit-run verify PKG [--threads N]\n"
               "  --version    print the library version\n"
               "  --info       print build info, CPU features and the active ISA path (JSON)\n"
               "  --selfcheck  check every SIMD kernel against its scalar reference\n"
               "  run          run a .lbpk on .npy inputs (default: its golden inputs); print outputs and latency;\n"
               "               --output DIR writes each output as DIR/NAME.npy\n"
               "  verify       check every section's SHA-256 and the golden vectors on this device\n");
  return 2;
}

static int info() {
  std::printf("{\"build\": %s, \"isa_best\": \"%s\", \"isa_active\": \"%s\", \"threads\": %d, \"features\": [",
              lb_build_info(), lb_isa_name(lb_isa_best()), lb_isa_name(lb_isa_active()), lb_default_threads());
  const uint64_t f = lb_cpu_features();
  bool first = true;
  for (int b = 0; b < 64; ++b) {
    const uint64_t bit = uint64_t(1) << b;
    if ((f & bit) && lb_cpu_feature_name(bit)) {
      std::printf("%s\"%s\"", first ? "" : ", ", lb_cpu_feature_name(bit));
      first = false;
    }
  }
  std::printf("]}\n");
  return 0;
}

// ---- run / verify (C API only, plus the manifest JSON reader) ------------------------------
namespace {

const char* kDescr[] = {"<f4", "<f2", "|i1", "|u1", "<i4", "<i8", "|b1", "<i2"};
const size_t kSize[] = {4, 2, 1, 1, 4, 8, 1, 2};

struct Array {
  lb_dtype dtype = LB_DTYPE_F32;
  std::vector<int64_t> shape;
  std::vector<char> data;
};

// Minimal .npy (version 1/2) reader: little-endian, C order.
bool read_npy(const char* path, Array* a, std::string* err) {
  FILE* f = std::fopen(path, "rb");
  if (!f) {
    *err = std::string("cannot open ") + path;
    return false;
  }
  unsigned char pre[10];
  bool ok = std::fread(pre, 1, 10, f) == 10 && std::memcmp(pre, "\x93NUMPY", 6) == 0;
  size_t hlen = 0;
  if (ok && pre[6] == 1) {
    hlen = pre[8] | (pre[9] << 8);
  } else if (ok && pre[6] >= 2) {
    unsigned char b[2];
    ok = std::fread(b, 1, 2, f) == 2;
    hlen = pre[8] | (pre[9] << 8) | (size_t(b[0]) << 16) | (size_t(b[1]) << 24);
  }
  std::string h(hlen, '\0');
  ok = ok && hlen < (1 << 20) && std::fread(&h[0], 1, hlen, f) == hlen;
  if (!ok) {
    std::fclose(f);
    *err = std::string(path) + " is not a .npy file";
    return false;
  }
  int code = -1;
  for (int i = 0; i < 8; ++i)
    if (h.find(std::string("'") + kDescr[i] + "'") != std::string::npos) code = i;
  if (h.find("'fortran_order': True") != std::string::npos || code < 0) {
    std::fclose(f);
    *err = std::string(path) + ": unsupported dtype or Fortran order (header " + h + ")";
    return false;
  }
  a->dtype = static_cast<lb_dtype>(code);
  const size_t p0 = h.find('(', h.find("'shape'")), p1 = h.find(')', p0);
  size_t count = 1;
  for (size_t i = p0 + 1; i < p1;) {
    while (i < p1 && (h[i] == ' ' || h[i] == ',')) ++i;
    if (i >= p1) break;
    const long long v = std::strtoll(h.c_str() + i, nullptr, 10);
    a->shape.push_back(v);
    count *= size_t(v);
    while (i < p1 && h[i] != ',') ++i;
  }
  a->data.resize(count * kSize[code]);
  ok = std::fread(a->data.data(), 1, a->data.size(), f) == a->data.size();
  std::fclose(f);
  if (!ok) *err = std::string(path) + ": truncated data";
  return ok;
}

// Minimal .npy (version 1) writer: little-endian, C order; the inverse of read_npy.
bool write_npy(const std::string& path, const lb_tensor_info& info, const void* data) {
  std::string shape = "(";
  size_t count = 1;
  for (int d = 0; d < info.ndim; ++d) {
    shape += std::to_string(info.shape[d]) + (info.ndim == 1 ? "," : (d + 1 < info.ndim ? ", " : ""));
    count *= size_t(info.shape[d]);
  }
  shape += ")";
  std::string header = std::string("{'descr': '") + kDescr[info.dtype] + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(header.size() & 0xff),
                                 (unsigned char)(header.size() >> 8)};
  bool ok = std::fwrite(pre, 1, 10, f) == 10 && std::fwrite(header.data(), 1, header.size(), f) == header.size();
  const size_t bytes = count * kSize[info.dtype];
  ok = ok && std::fwrite(data, 1, bytes, f) == bytes;
  return std::fclose(f) == 0 && ok;
}

int fail(const char* what) {
  std::fprintf(stderr, "lowbit-run: %s: %s (%s)\n", what, lb_last_error(), "see lb_status");
  return 1;
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string shape_text(const lb_tensor_info& t) {
  std::string s = "[";
  for (int d = 0; d < t.ndim; ++d) s += (d ? ", " : "") + std::to_string(t.shape[d]);
  return s + "]";
}

double as_double(const void* p, lb_dtype dt, size_t i) {
  switch (dt) {
    case LB_DTYPE_F32: return static_cast<const float*>(p)[i];
    case LB_DTYPE_I64: return double(static_cast<const int64_t*>(p)[i]);
    case LB_DTYPE_I32: return static_cast<const int32_t*>(p)[i];
    case LB_DTYPE_I8: return static_cast<const int8_t*>(p)[i];
    case LB_DTYPE_U8: case LB_DTYPE_BOOL: return static_cast<const uint8_t*>(p)[i];
    case LB_DTYPE_I16: return static_cast<const int16_t*>(p)[i];
    default: return 0;
  }
}

size_t count_of(const lb_tensor_info& t) {
  size_t n = 1;
  for (int d = 0; d < t.ndim; ++d) n *= size_t(t.shape[d]);
  return n;
}

// Binds the golden inputs named in the manifest (returns false if there are none).
bool bind_golden(lb_model* m, lb_session* s, const lb::Json& man, int* rc) {
  const lb::Json& g = man["golden"];
  if (!g.is_object()) return false;
  for (const auto& kv : g["inputs"].items()) {
    lb_tensor_info info;
    const void* data = nullptr;
    if (lb_model_tensor(m, kv.second.str().c_str(), &info, &data) != LB_OK ||
        lb_session_set_input(s, kv.first.c_str(), info.dtype, info.shape, info.ndim, data,
                             count_of(info) * kSize[info.dtype]) != LB_OK) {
      *rc = fail("golden input");
      return false;
    }
  }
  return true;
}

int cmd_run_verify(int argc, char** argv, bool verify) {
  if (argc < 3) return usage();
  const char* path = argv[2];
  int threads = 0, repeat = 1;
  uint32_t flags = 0;
  std::vector<std::pair<std::string, std::string>> inputs;
  std::string out_dir;
  for (int i = 3; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--lazy")) flags |= LB_LOAD_LAZY;
    else if (!std::strcmp(argv[i], "--output") && i + 1 < argc) out_dir = argv[++i];
    else if (!std::strcmp(argv[i], "--input") && i + 1 < argc) {
      const std::string spec = argv[++i];
      const size_t eq = spec.find('=');
      if (eq == std::string::npos) return usage();
      inputs.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
    } else {
      return usage();
    }
  }
  const double t0 = now_ms();
  lb_model* m = nullptr;
  if (lb_model_load(path, flags, &m) != LB_OK) {
    std::fprintf(stderr, "lowbit-run: cannot load %s: %s: %s\n", path, lb_status_name(LB_ERR_FORMAT) ? "" : "", lb_last_error());
    return 1;
  }
  const double load_ms = now_ms() - t0;
  lb::Json man;
  std::string err;
  const char* text = lb_model_manifest(m);
  lb::Json::parse(text, std::strlen(text), &man, &err);
  if (verify) std::printf("hashes: ok (loaded and verified in %.2f ms)\n", load_ms);
  lb_session_options o{threads};
  lb_session* s = nullptr;
  if (lb_session_create(m, &o, &s) != LB_OK) {
    const int rc = fail("session");
    lb_model_free(m);
    return rc;
  }
  int rc = 0;
  std::vector<Array> arrays(inputs.size());
  bool bound = false;
  if (!inputs.empty()) {
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!read_npy(inputs[i].second.c_str(), &arrays[i], &err)) {
        std::fprintf(stderr, "lowbit-run: %s\n", err.c_str());
        rc = 1;
        break;
      }
      if (lb_session_set_input(s, inputs[i].first.c_str(), arrays[i].dtype, arrays[i].shape.data(),
                               int(arrays[i].shape.size()), arrays[i].data.data(), arrays[i].data.size()) != LB_OK) {
        rc = fail("input");
        break;
      }
    }
    bound = rc == 0;
  } else {
    bound = bind_golden(m, s, man, &rc);
    if (!bound && rc == 0) {
      std::fprintf(stderr, verify ? "golden vectors: none in this package\n"
                                  : "lowbit-run: give --input NAME=FILE.npy (the package has no golden inputs)\n");
      rc = verify ? 0 : 2;
    }
  }
  if (bound) {
    std::vector<double> times;
    for (int r = 0; r < repeat && rc == 0; ++r) {
      const double t = now_ms();
      if (lb_session_run(s) != LB_OK) rc = fail("run");
      times.push_back(now_ms() - t);
    }
    if (rc == 0 && !verify) {
      for (int i = 0; i < lb_model_num_outputs(m); ++i) {
        lb_tensor_info decl, info;
        const void* data = nullptr;
        lb_model_output(m, i, &decl);
        lb_session_get_output(s, decl.name, &info, &data);
        const size_t n = count_of(info);
        size_t best = 0;
        for (size_t k = 1; k < n; ++k)
          if (as_double(data, info.dtype, k) > as_double(data, info.dtype, best)) best = k;
        std::printf("%s: %s [", info.name, shape_text(info).c_str());
        for (size_t k = 0; k < n && k < 6; ++k) std::printf("%s%.5g", k ? ", " : "", as_double(data, info.dtype, k));
        std::printf("%s]  argmax %zu\n", n > 6 ? ", ..." : "", best);
        if (!out_dir.empty() && !write_npy(out_dir + "/" + info.name + ".npy", info, data)) {
          std::fprintf(stderr, "lowbit-run: cannot write %s/%s.npy\n", out_dir.c_str(), info.name);
          rc = 1;
        }
      }
      std::sort(times.begin(), times.end());
      size_t arena = 0;
      lb_session_arena_bytes(s, &arena);
      std::printf("load %.2f ms, latency %.2f ms (median of %zu), arena %.2f MiB\n", load_ms, times[times.size() / 2],
                  times.size(), double(arena) / (1 << 20));
    }
    if (rc == 0 && verify) {
      const lb::Json& g = man["golden"];
      const double rtol = g["rtol"].num(1e-4), atol = g["atol"].num(1e-5);
      bool all_ok = true;
      for (const auto& kv : g["outputs"].items()) {
        lb_tensor_info ei, gi;
        const void *exp = nullptr, *got = nullptr;
        if (lb_model_tensor(m, kv.second.str().c_str(), &ei, &exp) != LB_OK ||
            lb_session_get_output(s, kv.first.c_str(), &gi, &got) != LB_OK) {
          rc = fail("golden output");
          break;
        }
        const size_t n = count_of(ei);
        bool ok = n == count_of(gi);
        double max_abs = 0;
        for (size_t k = 0; ok && k < n; ++k) {
          const double e = as_double(exp, ei.dtype, k), a = as_double(got, gi.dtype, k);
          const double d = std::fabs(a - e);
          max_abs = std::max(max_abs, d);
          if (!(d <= atol + rtol * std::fabs(e))) ok = false;
        }
        std::printf("  %s: max abs err %.3g  %s (rtol %g, atol %g)\n", kv.first.c_str(), max_abs, ok ? "ok" : "FAIL", rtol, atol);
        all_ok = all_ok && ok;
      }
      if (rc == 0) {
        std::printf("verify: %s\n", all_ok ? "passed" : "FAILED");
        rc = all_ok ? 0 : 1;
      }
    }
  }
  lb_session_free(s);
  lb_model_free(m);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  if (std::strcmp(argv[1], "run") == 0) return cmd_run_verify(argc, argv, false);
  if (std::strcmp(argv[1], "verify") == 0) return cmd_run_verify(argc, argv, true);
  if (std::strcmp(argv[1], "--version") == 0) {
    std::printf("lowbit-run %s\n", lb_version());
    return 0;
  }
  if (std::strcmp(argv[1], "--info") == 0) return info();
  if (std::strcmp(argv[1], "--selfcheck") == 0) {
    std::vector<char> report(1 << 16);
    int failures = 0;
    if (lb_selfcheck(report.data(), report.size(), &failures) != LB_OK) {
      std::fprintf(stderr, "lowbit-run: %s\n", lb_last_error());
      return 1;
    }
    std::printf("%s%s\n", report.data(), failures ? "SELF-CHECK FAILED" : "self-check passed");
    return failures ? 1 : 0;
  }
  return usage();
}
