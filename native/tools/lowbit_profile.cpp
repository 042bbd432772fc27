// lowbit-profile: the profiler without Python. Profiles a .lbpk through the C API (per-op events,
// warm-up, N runs, runs with events off for the overhead) and prints the device fingerprint and
// the measured roofline, as JSON in the schema of `lowbit profile --json` ("lowbit.profile/1"),
// so `lowbit profile FILE.json --html OUT` renders it. Aggregation follows
// sdk/lowbit/profiler/report.py (same keys, same percentile rule, same slow-path warnings).
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/lowbit.h"
#include "lowbit/lowbit_profile.h"
#include "package_json.h"
#include "package_sha256.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: lowbit-profile PKG [--runs N] [--warmup N] [--threads N] [--measure] [--json OUT]\n"
               "       lowbit-profile --device [--measure] [--threads N] [--json OUT]\n"
               "  PKG           a .lbpk package: per-op time, kernel and ISA, roofline, memory\n"
               "  --device      only the device fingerprint (and, with --measure, its roofline)\n"
               "  --measure     measure read bandwidth and int8 peak now (else: the cache that\n"
               "                `lowbit doctor --measure` wrote, ~/.cache/lowbit/device-<id>.json)\n"
               "  --runs N      measured runs (default 20); --warmup N  warm-up runs (default 3)\n"
               "  --threads N   threads (default: lowbit's default)\n"
               "  --json OUT    write the JSON to OUT instead of stdout\n");
  return 2;
}

// ---- small helpers ---------------------------------------------------------------------------

std::string jstr(const std::string& s) {
  std::string out;
  lb::json_escape(s, &out);
  return out;
}

std::string jnum(double v) {
  if (!std::isfinite(v)) return "null";
  char b[40];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

std::string read_line(const char* path) {
  std::ifstream f(path);
  std::string s;
  if (!f || !std::getline(f, s)) return "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool read_file(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// FNV-1a 64 of the stable device facts; sdk/lowbit/profiler/device.py computes the same.
std::string fnv1a64_hex(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(h));
  return b;
}

struct Summary {
  double min = 0, median = 0, p95 = 0, mean = 0, max = 0;
  size_t n = 0;
};

// numpy.percentile's default (linear interpolation between closest ranks).
double percentile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const double pos = q / 100.0 * double(v.size() - 1);
  const size_t lo = size_t(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

Summary summarize(const std::vector<double>& v) {
  Summary s;
  s.n = v.size();
  if (v.empty()) return s;
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / double(v.size());
  s.median = percentile(v, 50);
  s.p95 = percentile(v, 95);
  return s;
}

std::string summary_json(const Summary& s, bool with_n) {
  std::string o = "{";
  if (with_n) o += "\"n\": " + std::to_string(s.n) + ", ";
  o += "\"min\": " + jnum(s.min) + ", \"median\": " + jnum(s.median) + ", \"p95\": " + jnum(s.p95) +
       ", \"mean\": " + jnum(s.mean) + ", \"max\": " + jnum(s.max) + "}";
  return o;
}

// ---- device ----------------------------------------------------------------------------------

struct Device {
  std::string id, json;
};

Device device_info(int threads) {
  std::string feats, feats_csv;
  std::vector<std::string> sorted;
  const uint64_t f = lb_cpu_features();
  for (int b = 0; b < 64; ++b) {
    const uint64_t bit = uint64_t(1) << b;
    const char* name = lb_cpu_feature_name(bit);
    if ((f & bit) && name) {
      feats_csv += (feats_csv.empty() ? "" : ",") + std::string(name);
      sorted.emplace_back(name);
    }
  }
  std::sort(sorted.begin(), sorted.end());
  for (const auto& s : sorted) feats += (feats.empty() ? "" : ", ") + jstr(s);
  struct utsname un {};
  uname(&un);
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  const std::string governor = read_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor");
  const std::string model = lb_cpu_model();
  Device d;
  d.id = fnv1a64_hex(model + "\n" + feats_csv + "\n" + std::to_string(cores) + "\n" + un.machine);
  d.json = "{\"id\": " + jstr(d.id) + ", \"cpu_model\": " + jstr(model) + ", \"arch\": " + jstr(un.machine) +
           ", \"os\": " + jstr(std::string(un.sysname) + " " + un.release) + ", \"features\": [" + feats + "]" +
           ", \"cores\": " + std::to_string(cores) + ", \"threads_used\": " + std::to_string(threads) +
           ", \"governor\": " + (governor.empty() ? std::string("null") : jstr(governor)) +
           ", \"isa_best\": " + jstr(lb_isa_name(lb_isa_best())) +
           ", \"isa_active\": " + jstr(lb_isa_name(lb_isa_active())) +
           ", \"lowbit_version\": " + jstr(lb_version()) + "}";
  return d;
}

struct Roofline {
  double read_gbps = NAN, int8_gops = NAN;
  int threads = 0;
  std::string source = "none", isa;
  std::string json() const {
    if (source == "none")
      return "{\"read_gbps\": null, \"int8_gops\": null, \"isa\": null, \"threads\": null, \"source\": \"none\", "
             "\"note\": \"no device measurement: run `lowbit doctor --measure` or pass --measure\"}";
    return "{\"read_gbps\": " + jnum(read_gbps) + ", \"int8_gops\": " + jnum(int8_gops) + ", \"isa\": " + jstr(isa) +
           ", \"threads\": " + std::to_string(threads) + ", \"source\": " + jstr(source) + "}";
  }
};

std::string cache_file(const std::string& id) {
  std::string dir;
  if (const char* e = std::getenv("LOWBIT_CACHE_DIR")) dir = e;
  else if (const char* x = std::getenv("XDG_CACHE_HOME")) dir = std::string(x) + "/lowbit";
  else if (const char* h = std::getenv("HOME")) dir = std::string(h) + "/.cache/lowbit";
  else return "";
  return dir + "/device-" + id + ".json";
}

// The cached figures for the nearest thread count (device.py's roofline_for, measure_version 1).
Roofline cached_roofline(const std::string& id, int threads) {
  Roofline r;
  std::string text, err;
  lb::Json j;
  if (!read_file(cache_file(id), &text) || !lb::Json::parse(text.data(), text.size(), &j, &err)) return r;
  const lb::Json& m = j["measured"];
  if (m["measure_version"].i64() != 1) return r;
  int best = -1;
  for (const auto& kv : m["read_gbps"].items()) {
    const int t = std::atoi(kv.first.c_str());
    if (best < 0 || std::abs(t - threads) < std::abs(best - threads) ||
        (std::abs(t - threads) == std::abs(best - threads) && t > best))
      best = t;
  }
  if (best < 0) return r;
  const std::string key = std::to_string(best);
  r.read_gbps = m["read_gbps"][key].num(NAN);
  r.int8_gops = m["int8_gops"][key].num(NAN);
  r.isa = m["isa"].str();
  r.threads = best;
  r.source = "cache";
  return r;
}

bool measure_roofline(int threads, Roofline* r) {
  double gbps = 0, gops = 0;
  if (lb_measure_bandwidth(0, threads, 0, &gbps) != LB_OK || lb_measure_int8_peak("auto", threads, 0, &gops) != LB_OK)
    return false;
  r->read_gbps = gbps;
  r->int8_gops = gops;
  r->threads = threads;
  r->isa = lb_isa_name(lb_isa_best());
  r->source = "measured";
  return true;
}

// ---- the kernel-name grammar (stats.py) ---------------------------------------------------------

// Activation and weight formats of lb_<op>_<out>_<act>_<weight>[_<tile>]__<isa>; false otherwise.
bool kernel_formats(const std::string& name, std::string* act, std::string* weight) {
  const size_t sep = name.find("__");
  if (name.rfind("lb_", 0) != 0 || sep == std::string::npos) return false;
  std::vector<std::string> parts;
  std::stringstream ss(name.substr(3, sep - 3));
  for (std::string p; std::getline(ss, p, '_');) parts.push_back(p);
  if (parts.size() < 4) return false;
  *act = parts[2];
  *weight = parts[3];
  return true;
}

bool is_float_fmt(const std::string& f) { return f == "f32" || f == "f16" || f == "bf16" || f == "fp32" || f == "fp16"; }

// ---- profiling a package ---------------------------------------------------------------------------

struct Event {
  std::string name, type, kernel, isa, shapes;
  int64_t start_ns = 0, end_ns = 0;
  uint64_t bytes_read = 0, bytes_written = 0, ops = 0;
};

struct Input {
  std::string name;
  lb_dtype dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

size_t dtype_size(lb_dtype d) {
  switch (d) {
    case LB_DTYPE_F32: case LB_DTYPE_I32: return 4;
    case LB_DTYPE_F16: case LB_DTYPE_I16: return 2;
    case LB_DTYPE_I64: return 8;
    default: return 1;
  }
}

// Deterministic inputs of the declared shapes (dynamic dims = 1): floats uniform in [-1, 1),
// integers 1 (a valid token id and attention mask for text models).
std::vector<Input> make_inputs(lb_model* model) {
  std::vector<Input> out;
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < lb_model_num_inputs(model); ++i) {
    lb_tensor_info info{};
    if (lb_model_input(model, i, &info) != LB_OK) continue;
    Input in;
    in.name = info.name;
    in.dtype = info.dtype;
    size_t n = 1;
    for (int d = 0; d < info.ndim; ++d) {
      in.shape.push_back(info.shape[d] < 0 ? 1 : info.shape[d]);
      n *= size_t(in.shape.back());
    }
    in.data.assign(n * dtype_size(info.dtype), 0);
    for (size_t k = 0; k < n; ++k) {
      switch (info.dtype) {
        case LB_DTYPE_F32: {
          seed = seed * 6364136223846793005ull + 1442695040888963407ull;
          const float v = float(double(seed >> 11) / double(1ull << 53) * 2.0 - 1.0);
          std::memcpy(&in.data[k * 4], &v, 4);
          break;
        }
        case LB_DTYPE_I64: { const int64_t v = 1; std::memcpy(&in.data[k * 8], &v, 8); break; }
        case LB_DTYPE_I32: { const int32_t v = 1; std::memcpy(&in.data[k * 4], &v, 4); break; }
        case LB_DTYPE_I16: { const int16_t v = 1; std::memcpy(&in.data[k * 2], &v, 2); break; }
        case LB_DTYPE_F16: break;  // zeros
        default: in.data[k] = 1; break;
      }
    }
    out.push_back(std::move(in));
  }
  return out;
}

long rss_high_water_bytes() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6) * 1024;
  return -1;
}

std::string sha256_file(const std::string& path) {
  std::string bytes;
  if (!read_file(path, &bytes)) return "";
  uint8_t h[32];
  lb::sha256(bytes.data(), bytes.size(), h);
  char hex[65];
  for (int i = 0; i < 32; ++i) std::snprintf(hex + 2 * i, 3, "%02x", h[i]);
  return hex;
}

#define CHECK_LB(call)                                                                   \
  do {                                                                                   \
    const lb_status st_ = (call);                                                        \
    if (st_ != LB_OK) {                                                                  \
      std::fprintf(stderr, "lowbit-profile: %s: %s\n", lb_status_name(st_), lb_last_error()); \
      return false;                                                                      \
    }                                                                                    \
  } while (0)

bool profile_package(const std::string& path, int runs, int warmup, int threads, const Device& dev,
                     const Roofline& roof, std::string* doc) {
  lb_model* model = nullptr;
  CHECK_LB(lb_model_load(path.c_str(), 0, &model));
  struct Guard {
    lb_model* m;
    lb_session* s = nullptr;
    ~Guard() {
      lb_session_free(s);
      lb_model_free(m);
    }
  } g{model};
  lb_session_options opts{};
  opts.threads = threads;
  CHECK_LB(lb_session_create(model, &opts, &g.s));
  lb_session* s = g.s;
  std::vector<Input> inputs = make_inputs(model);
  for (auto& in : inputs)
    CHECK_LB(lb_session_set_input(s, in.name.c_str(), in.dtype, in.shape.data(), int(in.shape.size()), in.data.data(),
                                  in.data.size()));
  // Manifest: model facts, weights and which ops read packed (quantized) weights.
  lb::Json man;
  std::string err;
  const char* mtext = lb_model_manifest(model);
  if (!lb::Json::parse(mtext, std::strlen(mtext), &man, &err)) {
    std::fprintf(stderr, "lowbit-profile: manifest: %s\n", err.c_str());
    return false;
  }
  uint64_t weight_bytes = 0;
  for (const auto& kv : man["tensors"].items()) weight_bytes += uint64_t(kv.second["nbytes"].i64());
  std::map<std::string, bool> quantized;
  for (const auto& op : man["ops"].elems()) {
    bool q = false;
    for (const auto& in : op["inputs"].elems()) {
      const lb::Json& t = man["tensors"][in.str()];
      if (t.is_object() && (t["dtype"].str() == "i8" || t["dtype"].str() == "u8" || t.has("packed") || t.has("layout")))
        q = true;
    }
    quantized[op["name"].str()] = q;
  }

  CHECK_LB(lb_session_enable_profiling(s, 0));
  for (int i = 0; i < warmup; ++i) CHECK_LB(lb_session_run(s));
  std::vector<std::vector<Event>> ev_runs;
  std::vector<double> e2e_on, e2e_off;  // ns
  const int block = std::max(1, std::min(5, runs));
  for (int done = 0; done < runs;) {
    const int k = std::min(block, runs - done);
    CHECK_LB(lb_session_enable_profiling(s, 0));
    for (int i = 0; i < k; ++i) {
      const int64_t t0 = now_ns();
      CHECK_LB(lb_session_run(s));
      e2e_off.push_back(double(now_ns() - t0));
    }
    CHECK_LB(lb_session_enable_profiling(s, 1));
    for (int i = 0; i < k; ++i) {
      const int64_t t0 = now_ns();
      CHECK_LB(lb_session_run(s));
      e2e_on.push_back(double(now_ns() - t0));
      const lb_profile_event* ev = nullptr;
      size_t n = 0;
      CHECK_LB(lb_session_profile_events(s, &ev, &n));
      std::vector<Event> run;
      for (size_t j = 0; j < n; ++j)
        run.push_back({ev[j].op_name, ev[j].op_type, ev[j].kernel, ev[j].isa, ev[j].shapes, ev[j].start_ns,
                       ev[j].end_ns, ev[j].bytes_read, ev[j].bytes_written, ev[j].ops});
      ev_runs.push_back(std::move(run));
    }
    done += k;
  }
  CHECK_LB(lb_session_enable_profiling(s, 0));
  size_t arena = 0;
  lb_session_arena_bytes(s, &arena);

  // Aggregate per op (execution order of the first run).
  const std::vector<Event>& first = ev_runs[0];
  const size_t nops = first.size();
  std::vector<Summary> per(nops);
  double total_median = 0;
  for (size_t j = 0; j < nops; ++j) {
    std::vector<double> t;
    for (const auto& r : ev_runs)
      if (j < r.size()) t.push_back(double(r[j].end_ns - r[j].start_ns) / 1e6);
    per[j] = summarize(t);
    total_median += per[j].median;
  }
  if (total_median <= 0) total_median = 1e-12;
  std::vector<double> ratios, e2e_ms;
  for (size_t r = 0; r < ev_runs.size(); ++r) {
    double sum = 0;
    for (const auto& e : ev_runs[r]) sum += double(e.end_ns - e.start_ns);
    if (e2e_on[r] > 0) ratios.push_back(sum / e2e_on[r]);
    e2e_ms.push_back(e2e_on[r] / 1e6);
  }
  std::vector<double> off_ms;
  for (double v : e2e_off) off_ms.push_back(v / 1e6);
  const Summary lat = summarize(e2e_ms), lat_off = summarize(off_ms);
  const std::string best = lb_isa_name(lb_isa_best());
  const std::string active = lb_isa_name(lb_isa_active());
  const bool forced = best != active;
  std::vector<std::string> warnings;
  if (forced) warnings.push_back("LOWBIT_ISA forces the " + active + " path; this CPU runs " + best);
  if (roof.source == "none") warnings.push_back("no roofline: this device has no measurement yet (`lowbit doctor --measure`)");

  std::string ops_json;
  double ops_sum = 0;
  for (size_t j = 0; j < nops; ++j) {
    const Event& e = first[j];
    const Summary& t = per[j];
    ops_sum += t.median;
    std::string act, weight;
    const bool named = kernel_formats(e.kernel, &act, &weight);
    const bool int_arith = named && !is_float_fmt(act);
    const uint64_t int_ops = int_arith ? e.ops : 0, float_ops = int_arith ? 0 : e.ops;
    bool q = quantized.count(e.name) ? quantized[e.name] : (named && !is_float_fmt(weight));
    // Roofline point (stats.roofline_point).
    const double sec = t.median / 1e3, bytes = double(e.bytes_read + e.bytes_written), ops = double(e.ops);
    std::string roof_json = "{\"gbps\": null, \"gops\": null, \"intensity\": null, \"bound\": null, \"fraction\": null, \"attainable_gops\": null}";
    if (sec > 0) {
      const double gbps = bytes / sec / 1e9, gops = ops / sec / 1e9;
      const double inten = bytes > 0 ? ops / bytes : NAN;
      std::string bound = "null";
      double frac = NAN, attain = NAN;
      const bool have = roof.source != "none";
      if (ops > 0 && bytes > 0 && have) {
        const double mem_roof = inten * roof.read_gbps;
        attain = std::min(roof.int8_gops, mem_roof);
        bound = mem_roof < roof.int8_gops ? "\"memory\"" : "\"compute\"";
        frac = gops / attain;
      } else if (ops > 0 && have) {
        bound = "\"compute\"";
        attain = roof.int8_gops;
        frac = gops / roof.int8_gops;
      } else if (bytes > 0 && have) {
        bound = "\"memory\"";
        frac = gbps / roof.read_gbps;
      }
      roof_json = "{\"gbps\": " + jnum(gbps) + ", \"gops\": " + jnum(gops) + ", \"intensity\": " + jnum(inten) +
                  ", \"bound\": " + bound + ", \"fraction\": " + jnum(frac) + ", \"attainable_gops\": " + jnum(attain) + "}";
    }
    std::vector<std::string> w;
    if (q && named && is_float_fmt(weight) && is_float_fmt(act))
      w.push_back("float fallback: quantized op ran the float kernel " + e.kernel);
    const bool scalar = e.isa == "scalar" || e.isa == "ref" ||
                        (e.kernel.size() > 5 && e.kernel.compare(e.kernel.size() - 5, 5, "__ref") == 0);
    static const char* kHeavy[] = {"Conv", "ConvTranspose", "MatMul", "Gemm", "QLinear", "MatMulNBits", "Attention"};
    bool heavy = q;
    for (const char* h : kHeavy) heavy = heavy || e.type == h;
    if (heavy && !e.kernel.empty() && scalar && best != "scalar")
      w.push_back("scalar fallback: " + e.kernel + " ran on the scalar path although this CPU runs " + best + " (" +
                  (forced ? "forced by LOWBIT_ISA=" + active : std::string("no SIMD variant in this build")) + ")");
    std::string wj;
    for (const auto& x : w) {
      wj += (wj.empty() ? "" : ", ") + jstr(x);
      warnings.push_back(e.name + ": " + x);
    }
    if (!ops_json.empty()) ops_json += ",\n    ";
    ops_json += "{\"name\": " + jstr(e.name) + ", \"type\": " + jstr(e.type) + ", \"kernel\": " + jstr(e.kernel) +
                ", \"isa\": " + jstr(e.isa) + ", \"quantized\": " + (q ? "true" : "false") +
                ", \"shapes\": {\"text\": " + jstr(e.shapes) + "}, \"time_ms\": " + summary_json(t, false) +
                ", \"share\": " + jnum(t.median / total_median) + ", \"bytes_read\": " + std::to_string(e.bytes_read) +
                ", \"bytes_written\": " + std::to_string(e.bytes_written) + ", \"int_ops\": " + std::to_string(int_ops) +
                ", \"float_ops\": " + std::to_string(float_ops) + ", \"roofline\": " + roof_json +
                ", \"gap\": null, \"warnings\": [" + wj + "]}";
  }
  // Timeline of the median run.
  std::vector<size_t> order(e2e_ms.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return e2e_ms[a] < e2e_ms[b]; });
  const auto& mid = ev_runs[order[order.size() / 2]];
  int64_t t0 = mid.empty() ? 0 : mid[0].start_ns;
  for (const auto& e : mid) t0 = std::min(t0, e.start_ns);
  std::string timeline;
  for (const auto& e : mid)
    timeline += std::string(timeline.empty() ? "" : ", ") + "{\"name\": " + jstr(e.name) + ", \"start_us\": " +
                jnum(double(e.start_ns - t0) / 1e3) + ", \"dur_us\": " + jnum(double(e.end_ns - e.start_ns) / 1e3) +
                ", \"tid\": 0}";
  std::string runs_json;
  for (double v : e2e_ms) runs_json += (runs_json.empty() ? "" : ", ") + jnum(v);
  std::string lat_json = summary_json(lat, true);
  lat_json.insert(lat_json.size() - 1, ", \"runs\": [" + runs_json + "]");
  std::string warn_json;
  for (const auto& w : warnings) warn_json += (warn_json.empty() ? "" : ", ") + jstr(w);
  struct stat st {};
  stat(path.c_str(), &st);
  const long hw = rss_high_water_bytes();
  *doc = "{\"schema\": \"lowbit.profile/1\", \"tool\": \"lowbit-profile\",\n"
         " \"package\": {\"path\": " + jstr(path) + ", \"name\": " + jstr(man["model"].str()) + ", \"sha256\": " +
         jstr(sha256_file(path)) + ", \"scheme\": " + jstr(man["scheme"].str()) + ", \"target\": " + jstr(man["target"].str()) + "},\n"
         " \"device\": " + dev.json + ",\n \"roofline\": " + roof.json() + ",\n"
         " \"config\": {\"runs\": " + std::to_string(runs) + ", \"warmup\": " + std::to_string(warmup) +
         ", \"threads\": " + std::to_string(threads) + ", \"inputs\": \"synthetic\"},\n"
         " \"latency_ms\": " + lat_json + ",\n \"ops\": [\n    " + ops_json + "],\n"
         " \"ops_sum_ms\": " + jnum(ops_sum) + ", \"ops_sum_over_e2e\": " + jnum(summarize(ratios).median) + ",\n"
         " \"timeline\": [" + timeline + "],\n"
         " \"memory\": {\"weights_bytes\": " + std::to_string(weight_bytes) + ", \"package_file_bytes\": " +
         std::to_string(static_cast<long long>(st.st_size)) + ", \"arena_bytes\": " + std::to_string(arena) +
         (hw > 0 ? ", \"process_rss_high_water_bytes\": " + std::to_string(hw) : std::string()) + "},\n"
         " \"outputs_gap\": {}, \"overhead\": {\"on_ms\": " + jnum(lat.median) + ", \"off_ms\": " + jnum(lat_off.median) +
         ", \"fraction\": " + jnum(lat_off.median > 0 ? lat.median / lat_off.median - 1.0 : NAN) + "},\n"
         " \"compare\": [], \"warnings\": [" + warn_json + "]}\n";
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  bool device_only = false, measure = false;
  int threads = 0, runs = 20, warmup = 3;
  const char* json_out = nullptr;
  std::string pkg;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--device")) device_only = true;
    else if (!std::strcmp(argv[i], "--measure")) measure = true;
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) runs = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_out = argv[++i];
    else if (!std::strcmp(argv[i], "--version")) { std::printf("lowbit-profile %s\n", lb_version()); return 0; }
    else if (argv[i][0] != '-' && pkg.empty()) pkg = argv[i];
    else return usage();
  }
  if ((!device_only && pkg.empty()) || runs < 1 || warmup < 0) return usage();
  if (threads <= 0) threads = lb_default_threads();

  const Device dev = device_info(threads);
  Roofline roof = cached_roofline(dev.id, threads);
  if (measure && !measure_roofline(threads, &roof)) {
    std::fprintf(stderr, "lowbit-profile: measure: %s\n", lb_last_error());
    return 1;
  }
  std::string doc;
  if (device_only) {
    doc = "{\"schema\": \"lowbit.profile/1\", \"tool\": \"lowbit-profile\", \"device\": " + dev.json +
          ", \"roofline\": " + (roof.source == "none" ? std::string("null") : roof.json()) + "}\n";
  } else if (!profile_package(pkg, runs, warmup, threads, dev, roof, &doc)) {
    return 1;
  }
  if (json_out) {
    FILE* f = std::fopen(json_out, "w");
    if (!f || std::fputs(doc.c_str(), f) < 0) {
      std::fprintf(stderr, "lowbit-profile: cannot write %s\n", json_out);
      if (f) std::fclose(f);
      return 1;
    }
    std::fclose(f);
  } else {
    std::fputs(doc.c_str(), stdout);
  }
  return 0;
}
