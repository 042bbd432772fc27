// lowbit-profile: the profiler without Python. Prints the device fingerprint and, with --measure,
// the roofline figures (read bandwidth, int8 peak) as JSON in the same schema as
// `lowbit profile --json` ("lowbit.profile/1"), so `lowbit profile --render FILE` can draw it.
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "lowbit/lowbit.h"
#include "lowbit/lowbit_profile.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: lowbit-profile --device [--measure] [--threads N] [--json OUT]\n"
               "  --device      print the device fingerprint (JSON, schema lowbit.profile/1)\n"
               "  --measure     also measure read bandwidth and int8 peak (slow: about a second)\n"
               "  --threads N   threads for the measurements (default: lowbit's default)\n"
               "  --json OUT    write the JSON to OUT instead of stdout\n");
  return 2;
}

std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') { out += '\\'; out += c; }
    else if (static_cast<unsigned char>(c) < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); out += b; }
    else out += c;
  }
  return out + "\"";
}

std::string read_line(const char* path) {
  FILE* f = std::fopen(path, "r");
  if (!f) return "";
  char buf[256] = "";
  if (!std::fgets(buf, sizeof buf, f)) buf[0] = '\0';
  std::fclose(f);
  std::string s(buf);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// FNV-1a 64 of the stable device facts; the Python profiler computes the same (device.py).
std::string fnv1a64_hex(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) { h ^= c; h *= 1099511628211ull; }
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(h));
  return b;
}

std::string device_json(int threads) {
  std::string feats, feats_csv;
  const uint64_t f = lb_cpu_features();
  for (int b = 0; b < 64; ++b) {
    const uint64_t bit = uint64_t(1) << b;
    const char* name = lb_cpu_feature_name(bit);
    if ((f & bit) && name) {
      feats += (feats.empty() ? "" : ", ") + json_str(name);
      feats_csv += (feats_csv.empty() ? "" : ",") + std::string(name);
    }
  }
  struct utsname un {};
  uname(&un);
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  const std::string governor = read_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor");
  const std::string model = lb_cpu_model();
  const std::string id = fnv1a64_hex(model + "\n" + feats_csv + "\n" + std::to_string(cores) + "\n" + un.machine);
  std::string s = "{";
  s += "\"id\": " + json_str(id);
  s += ", \"cpu_model\": " + json_str(model);
  s += ", \"arch\": " + json_str(un.machine);
  s += ", \"os\": " + json_str(std::string(un.sysname) + " " + un.release);
  s += ", \"features\": [" + feats + "]";
  s += ", \"cores\": " + std::to_string(cores);
  s += ", \"threads_used\": " + std::to_string(threads);
  s += ", \"governor\": " + (governor.empty() ? std::string("null") : json_str(governor));
  s += ", \"isa_best\": " + json_str(lb_isa_name(lb_isa_best()));
  s += ", \"isa_active\": " + json_str(lb_isa_name(lb_isa_active()));
  s += ", \"lowbit_version\": " + json_str(lb_version());
  s += "}";
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  bool device = false, measure = false;
  int threads = 0;
  const char* json_out = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--device")) device = true;
    else if (!std::strcmp(argv[i], "--measure")) measure = true;
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_out = argv[++i];
    else if (!std::strcmp(argv[i], "--version")) { std::printf("lowbit-profile %s\n", lb_version()); return 0; }
    else return usage();
  }
  if (!device && !measure) return usage();
  if (threads <= 0) threads = lb_default_threads();

  std::string roofline = "null";
  if (measure) {
    double gbps = 0.0, gops = 0.0;
    if (lb_measure_bandwidth(0, threads, 0, &gbps) != LB_OK || lb_measure_int8_peak("auto", threads, 0, &gops) != LB_OK) {
      std::fprintf(stderr, "lowbit-profile: %s: %s\n", "measure", lb_last_error());
      return 1;
    }
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "{\"read_gbps\": %.3f, \"int8_gops\": %.3f, \"isa\": \"%s\", \"threads\": %d, \"source\": \"measured\"}",
                  gbps, gops, lb_isa_name(lb_isa_best()), threads);
    roofline = buf;
  }
  const std::string doc = "{\"schema\": \"lowbit.profile/1\", \"tool\": \"lowbit-profile\", \"device\": " +
                          device_json(threads) + ", \"roofline\": " + roofline + "}\n";
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
