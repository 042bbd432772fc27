// lowbit-kbench: the kernel benchmark without Python, for the device itself (an ARM board over
// adb, a server with AVX-512 VNNI): every weight format x ISA path x thread count on one (K, N)
// shape, timed in rounds that interleave the kernel with a plain read of the same bytes on the
// same pool (the roofline for M = 1) and set against the int8 peak measured on the same path
// (M >= 2). Weights are random codes packed by the C++ packer; for M = 1 the calls rotate over
// enough copies that the working set exceeds the last-level cache (--cold-mb). Before timing,
// each (format, ISA, threads, M) result is checked against the scalar path: a kernel that is
// fast and wrong fails the run (exit 1).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cpu.h"
#include "dispatch.h"
#include "lowbit/lowbit.h"
#include "measure.h"
#include "pack.h"
#include "qlinear.h"
#include "threadpool.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: lowbit-kbench [--shape KxN] [--m 1,128] [--formats q4g32,q8,t2g128,c4g64]\n"
               "                     [--isa avx2,avx512vnni|all] [--threads 1,2] [--rounds R] [--cold-mb MB]\n"
               "                     [--json OUT]\n"
               "  --shape KxN    reduction length x output channels (default 4096x11008)\n"
               "  --m LIST       rows: 1 is the GEMV (decode), >= 2 the GEMM (prefill, CNNs); default 1,128\n"
               "  --formats LIST q8 (int8 per channel, w8a8), q4gG (int4 groups), t2gG (ternary), c4gG (NF4 codebook)\n"
               "  --isa LIST     ISA paths to run (default: every path this CPU can run)\n"
               "  --threads LIST thread counts (default 1,2)\n"
               "  --rounds R     timing rounds (default 15); each round times the kernel and the read probe\n"
               "  --cold-mb MB   M = 1 working set in MiB, rotated over copies of the weight (default 1024)\n"
               "  --json OUT     also write the rows as JSON\n");
  return 2;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

bool parse_int(const std::string& s, int64_t* v) {
  char* end = nullptr;
  long long x = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || x <= 0) return false;
  *v = x;
  return true;
}

struct Format {
  std::string name;
  lb_wfmt fmt;
  int32_t group;  // 0: k (Q8)
};

bool parse_format(const std::string& s, Format* f) {
  f->name = s;
  if (s == "q8") { f->fmt = LB_WFMT_Q8; f->group = 0; return true; }
  static const struct { const char* prefix; lb_wfmt fmt; } kinds[] = {
      {"q4g", LB_WFMT_Q4}, {"t2g", LB_WFMT_T2}, {"c4g", LB_WFMT_C4}};
  for (const auto& k : kinds) {
    const size_t n = std::strlen(k.prefix);
    int64_t g = 0;
    if (s.compare(0, n, k.prefix) == 0 && parse_int(s.substr(n), &g)) {
      f->fmt = k.fmt;
      f->group = int32_t(g);
      return true;
    }
  }
  return false;
}

// NF4's 16 levels (QLoRA): the codebook the c4 rows use.
const float kNF4[16] = {-1.0f, -0.6961928f, -0.5250731f, -0.3949175f, -0.2844414f, -0.1847734f,
                        -0.0910500f, 0.0f, 0.0795803f, 0.1609302f, 0.2461123f, 0.3379152f,
                        0.4407098f, 0.5626170f, 0.7229568f, 1.0f};

struct Weight {
  std::vector<uint8_t*> copies;  // 64-byte aligned packed bytes (copies[0] is the checked one)
  size_t bytes = 0;
  std::vector<lb::PackedWeight> views;  // one per copy (Q8 scales/sums point inside the bytes)
  ~Weight() {
    for (uint8_t* p : copies) std::free(p);
  }
};

uint8_t* alloc64(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 64, (bytes + 63) / 64 * 64) != 0) return nullptr;
  return static_cast<uint8_t*>(p);
}

// Random codes in the format's range, packed by the C++ packer.
bool make_weight(const Format& f, int64_t k, int64_t n, size_t copies, Weight* w, std::string* err) {
  const int32_t group = f.group ? f.group : int32_t(k);
  if (k % group != 0) {
    *err = f.name + ": K = " + std::to_string(k) + " is not a multiple of the group size " + std::to_string(group);
    return false;
  }
  std::mt19937 rng(1234);
  std::vector<int8_t> q(size_t(n * k));
  std::uniform_int_distribution<int> code(f.fmt == LB_WFMT_Q8 ? -127 : f.fmt == LB_WFMT_Q4 ? -8 : f.fmt == LB_WFMT_T2 ? -1 : 0,
                                          f.fmt == LB_WFMT_Q8 ? 127 : f.fmt == LB_WFMT_Q4 ? 7 : f.fmt == LB_WFMT_T2 ? 1 : 15);
  for (auto& c : q) c = int8_t(code(rng));
  std::vector<float> scale(size_t(n * (k / group)));
  std::uniform_real_distribution<float> sd(0.5f / 127, 2.0f / 127);
  for (auto& s : scale) s = sd(rng);
  lb::QuantWeightView v;
  v.fmt = f.fmt;
  v.n = n;
  v.k = k;
  v.group = group;
  v.q = q.data();
  v.scale = scale.data();
  v.codebook = f.fmt == LB_WFMT_C4 ? kNF4 : nullptr;
  w->bytes = size_t(lb_wfmt_packed_bytes(f.fmt, n, k, group));
  for (size_t c = 0; c < copies; ++c) {
    uint8_t* p = alloc64(w->bytes);
    if (!p) {
      *err = "out of memory for " + std::to_string(copies) + " copies of " + std::to_string(w->bytes) + " bytes (lower --cold-mb)";
      return false;
    }
    w->copies.push_back(p);
    if (c == 0) {
      if (lb::pack_weight(v, p, w->bytes) != LB_OK) {
        *err = f.name + ": " + lb_last_error();
        return false;
      }
    } else {
      std::memcpy(p, w->copies[0], w->bytes);
    }
  }
  for (uint8_t* p : w->copies) {
    w->views.emplace_back();
    if (lb::packed_weight_init(f.fmt, n, k, group, p, w->bytes, &w->views.back()) != LB_OK) {
      *err = f.name + ": " + lb_last_error();
      return false;
    }
  }
  return true;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

struct Row {
  std::string fmt, isa, kernel;
  int threads;
  int64_t m;
  double ms, probe_ms, gbps, probe_gbps, gops, peak_gops, fraction, max_err;
};

}  // namespace

int main(int argc, char** argv) {
  int64_t K = 4096, N = 11008, rounds = 15, cold_mb = 1024;
  std::vector<int64_t> ms = {1, 128}, threads = {1, 2};
  std::vector<std::string> fmt_names = {"q4g32", "q8", "t2g128", "c4g64"}, isa_names;
  const char* json_out = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    auto ints = [&](std::vector<int64_t>* out) {
      out->clear();
      for (const auto& s : split(argv[++i])) {
        int64_t v;
        if (!parse_int(s, &v)) return false;
        out->push_back(v);
      }
      return !out->empty();
    };
    if (a == "--shape" && has) {
      const std::string s = argv[++i];
      const size_t x = s.find('x');
      if (x == std::string::npos || !parse_int(s.substr(0, x), &K) || !parse_int(s.substr(x + 1), &N)) {
        std::fprintf(stderr, "lowbit-kbench: --shape wants KxN with positive integers, e.g. 4096x11008 (got %s)\n", s.c_str());
        return 2;
      }
    } else if (a == "--m" && has) {
      if (!ints(&ms)) { std::fprintf(stderr, "lowbit-kbench: --m wants positive integers, e.g. 1,128\n"); return 2; }
    } else if (a == "--threads" && has) {
      if (!ints(&threads)) { std::fprintf(stderr, "lowbit-kbench: --threads wants positive integers, e.g. 1,2\n"); return 2; }
    } else if (a == "--formats" && has) {
      fmt_names = split(argv[++i]);
    } else if (a == "--isa" && has) {
      const std::string s = argv[++i];
      if (s != "all") isa_names = split(s);
    } else if (a == "--rounds" && has) {
      if (!parse_int(argv[++i], &rounds)) { std::fprintf(stderr, "lowbit-kbench: --rounds wants a positive integer\n"); return 2; }
    } else if (a == "--cold-mb" && has) {
      if (!parse_int(argv[++i], &cold_mb)) { std::fprintf(stderr, "lowbit-kbench: --cold-mb wants a positive integer\n"); return 2; }
    } else if (a == "--json" && has) {
      json_out = argv[++i];
    } else {
      return usage();
    }
  }
  std::vector<Format> fmts;
  for (const auto& s : fmt_names) {
    Format f;
    if (!parse_format(s, &f)) {
      std::fprintf(stderr, "lowbit-kbench: unknown format '%s' (q8, q4gG, t2gG, c4gG with G in 32/64/128)\n", s.c_str());
      return 2;
    }
    fmts.push_back(f);
  }
  std::vector<lb_isa> isas;
  if (isa_names.empty()) {
    for (int i = 0; i < LB_ISA_COUNT; ++i)
      if (i != LB_ISA_SCALAR && lb::kernels_for(static_cast<lb_isa>(i)) && lb::isa_supported(static_cast<lb_isa>(i)))
        isas.push_back(static_cast<lb_isa>(i));
  } else {
    for (const auto& s : isa_names) {
      lb_isa isa;
      if (!lb::parse_isa(s.c_str(), &isa) || !lb::kernels_for(isa) || !lb::isa_supported(isa)) {
        std::fprintf(stderr, "lowbit-kbench: ISA path '%s' is not built or cannot run on this CPU (best here: %s)\n",
                     s.c_str(), lb_isa_name(lb_isa_best()));
        return 2;
      }
      isas.push_back(isa);
    }
  }
  const lb::KernelTable* scalar = lb::kernels_for(LB_ISA_SCALAR);
  std::printf("lowbit-kbench %s: K=%lld N=%lld, best ISA %s, %d round(s)\n", lb_version(), (long long)K, (long long)N,
              lb_isa_name(lb_isa_best()), int(rounds));
  std::printf("%-8s %-11s %3s %5s %9s %9s %8s %8s %7s %9s  %s\n", "format", "isa", "thr", "M", "ms", "probe ms", "GB/s",
              "GOPS", "roof", "max err", "kernel");
  std::vector<Row> rows;
  std::map<std::pair<int, int>, double> peaks;
  bool failed = false;
  std::mt19937 rng(99);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (const Format& f : fmts) {
    Weight w;
    std::string err;
    const size_t one = size_t(lb_wfmt_packed_bytes(f.fmt, N, K, f.group ? f.group : int32_t(K)));
    const size_t copies = std::max<size_t>(2, size_t(cold_mb) * (size_t(1) << 20) / std::max<size_t>(one, 1) + 1);
    if (!make_weight(f, K, N, copies, &w, &err)) {
      std::fprintf(stderr, "lowbit-kbench: %s\n", err.c_str());
      return 1;
    }
    for (int64_t m : ms) {
      std::vector<float> x(size_t(m * K)), y(size_t(m * N)), yref(size_t(m * N));
      for (auto& v : x) v = nd(rng);
      lb::QLinearOpts opts;
      opts.act = f.fmt == LB_WFMT_Q8 ? lb::LB_ACT_DYNAMIC_ROW : lb::LB_ACT_DYNAMIC;
      const size_t sb = lb::qlinear_scratch_bytes(w.views[0], m, opts);
      std::unique_ptr<uint8_t, decltype(&std::free)> scratch(alloc64(std::max<size_t>(sb, 64)), &std::free);
      if (lb::qlinear_with(*scalar, w.views[0], x.data(), m, nullptr, yref.data(), opts, nullptr, scratch.get(), sb) != LB_OK) {
        std::fprintf(stderr, "lowbit-kbench: %s M=%lld on the scalar path: %s\n", f.name.c_str(), (long long)m, lb_last_error());
        return 1;
      }
      float amax = 0.f;
      for (float v : yref) amax = std::max(amax, std::fabs(v));
      for (lb_isa isa : isas) {
        const lb::KernelTable* table = lb::kernels_for(isa);
        for (int64_t t : threads) {
          double peak = 0.0;
          lb::ThreadPool pool(static_cast<int>(t));
          lb::QLinearInfo info;
          auto call = [&](size_t c) {
            return lb::qlinear_with(*table, w.views[c], x.data(), m, nullptr, y.data(), opts, &pool, scratch.get(), sb,
                                    &info);
          };
          if (call(0) != LB_OK) {
            std::fprintf(stderr, "lowbit-kbench: %s M=%lld on %s: %s\n", f.name.c_str(), (long long)m, lb_isa_name(isa),
                         lb_last_error());
            return 1;
          }
          double max_err = 0.0;
          for (size_t i = 0; i < y.size(); ++i) max_err = std::max(max_err, double(std::fabs(y[i] - yref[i])));
          max_err /= std::max(amax, 1e-30f);
          const bool bad = !(max_err <= 1e-4);
          failed = failed || bad;
          if (m >= 2) {  // best of every measurement of this (ISA, threads): a busy core only lowers it
            double p = 0.0;
            lb::measure_int8_peak(isa, int(t), 3, &p);
            double& best = peaks[std::make_pair(int(isa), int(t))];
            best = std::max(best, p);
            peak = best;
          }
          const size_t n_cold = m == 1 ? copies : 1;
          std::vector<double> tk, tp;
          size_t c = 0;
          uint64_t sink = 0;
          for (int64_t r = 0; r < rounds; ++r) {
            // one block per round: a few calls of the kernel, then as many reads of the same size
            const int calls = m == 1 ? 4 : 2;
            double t0 = now_s();
            for (int j = 0; j < calls; ++j) call(c = (c + 1) % n_cold);
            tk.push_back((now_s() - t0) / calls);
            if (m == 1) {
              t0 = now_s();
              // the read probe streams the kernel's own copies (half a cycle away, so as cold as the
              // kernel's): separately allocated buffers can sit in faster or slower physical memory
              // on 4 KiB pages (7-15% apart on the development VM, by allocation order)
              for (int j = 0; j < calls; ++j)
                sink += lb::read_stream(w.copies[(c + copies / 2 + j) % copies], w.bytes, &pool);
              tp.push_back((now_s() - t0) / calls);
            }
          }
          if (sink == 42) std::printf(" ");
          Row row{f.name, lb_isa_name(isa), info.kernel ? info.kernel : "", int(t), m, 1e3 * median(tk),
                  m == 1 ? 1e3 * median(tp) : 0.0, 0, 0, 0, peak, 0, max_err};
          row.gbps = double(w.bytes) / (row.ms * 1e-3) / 1e9;
          row.gops = 2.0 * double(m) * double(N) * double(K) / (row.ms * 1e-3) / 1e9;
          if (m == 1) {
            row.probe_gbps = double(w.bytes) / (row.probe_ms * 1e-3) / 1e9;
            row.fraction = row.gbps / row.probe_gbps;
          } else {
            row.fraction = peak > 0 ? row.gops / peak : 0.0;
          }
          std::printf("%-8s %-11s %3d %5lld %9.3f %9s %8.2f %8.1f %6.0f%% %9.2e  %s%s\n", row.fmt.c_str(), row.isa.c_str(),
                      row.threads, (long long)m, row.ms, m == 1 ? std::to_string(row.probe_ms).substr(0, 7).c_str() : "-",
                      row.gbps, row.gops, 100 * row.fraction, max_err, row.kernel.c_str(),
                      bad ? "  MISMATCH vs scalar" : "");
          std::fflush(stdout);
          rows.push_back(row);
        }
      }
    }
  }
  std::printf("roof: M = 1 -> kernel GB/s / read probe GB/s (same bytes, same pool, same rounds); "
              "M >= 2 -> GOPS / measured int8 peak of that ISA and thread count\n");
  if (json_out) {
    FILE* fp = std::fopen(json_out, "w");
    if (!fp) {
      std::fprintf(stderr, "lowbit-kbench: cannot write %s\n", json_out);
      return 1;
    }
    std::fprintf(fp, "{\"tool\": \"lowbit-kbench\", \"version\": \"%s\", \"k\": %lld, \"n\": %lld, \"rounds\": %lld, \"rows\": [",
                 lb_version(), (long long)K, (long long)N, (long long)rounds);
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::fprintf(fp,
                   "%s\n  {\"format\": \"%s\", \"isa\": \"%s\", \"kernel\": \"%s\", \"threads\": %d, \"m\": %lld, "
                   "\"median_ms\": %.6f, \"probe_ms\": %.6f, \"gbps\": %.4f, \"probe_gbps\": %.4f, \"gops\": %.3f, "
                   "\"peak_gops\": %.3f, \"roofline_fraction\": %.5f, \"max_rel_err\": %.3e}",
                   i ? "," : "", r.fmt.c_str(), r.isa.c_str(), r.kernel.c_str(), r.threads, (long long)r.m, r.ms,
                   r.probe_ms, r.gbps, r.probe_gbps, r.gops, r.peak_gops, r.fraction, r.max_err);
    }
    std::fprintf(fp, "\n]}\n");
    std::fclose(fp);
  }
  if (failed) {
    std::fprintf(stderr, "lowbit-kbench: a kernel's output differs from the scalar path (MISMATCH rows above)\n");
    return 1;
  }
  return 0;
}
