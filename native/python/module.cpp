// lowbit._native: pybind11 bindings only (no logic): the C API and the kernels, for the SDK
// and for tests that check kernels through Python.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings.h"
#include "dispatch.h"
#include "lowbit/lowbit.h"

namespace py = pybind11;

namespace lbpy {
std::vector<std::pair<const char*, BindFn>>& registry() {
  static std::vector<std::pair<const char*, BindFn>> r;
  return r;
}
void throw_status(lb_status st) {
  throw std::runtime_error(std::string(lb_status_name(st)) + ": " + lb_last_error());
}
}  // namespace lbpy

namespace {
using lbpy::throw_status;

const lb::KernelTable& table_for(const std::string& isa) {
  if (isa.empty()) {
    if (lb::dispatch_status() != LB_OK) throw_status(LB_ERR_ISA);
    return lb::kernels();
  }
  lb_isa which;
  if (!lb::parse_isa(isa.c_str(), &which)) throw py::value_error("unknown ISA path '" + isa + "'");
  const lb::KernelTable* t = lb::kernels_for(which);
  if (!t) throw py::value_error("ISA path '" + isa + "' cannot run on this CPU/build");
  return *t;
}

py::dict features() {
  py::dict d;
  const uint64_t f = lb_cpu_features();
  for (int b = 0; b < 64; ++b) {
    const uint64_t bit = uint64_t(1) << b;
    if (const char* name = lb_cpu_feature_name(bit)) d[name] = bool(f & bit);
  }
  return d;
}

py::tuple selfcheck() {
  std::vector<char> report(1 << 16);
  int failures = 0;
  const lb_status st = lb_selfcheck(report.data(), report.size(), &failures);
  if (st != LB_OK) throw_status(st);
  return py::make_tuple(failures, std::string(report.data()));
}

py::array_t<int32_t> q8_gemv(py::array_t<int8_t, py::array::c_style | py::array::forcecast> w,
                             py::array_t<int8_t, py::array::c_style | py::array::forcecast> x,
                             const std::string& isa) {
  if (w.ndim() != 2 || x.ndim() != 1 || w.shape(1) != x.shape(0))
    throw py::value_error("q8_gemv: expected w[N, K] and x[K]");
  const auto& t = table_for(isa);
  py::array_t<int32_t> y(w.shape(0));
  {
    py::gil_scoped_release release;
    t.q8_gemv.fn(w.data(), x.data(), y.mutable_data(), w.shape(0), w.shape(1));
  }
  return y;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "lowbit native runtime (bindings only)";
  m.def("version", &lb_version);
  m.def("build_info", &lb_build_info, "JSON text describing the build");
  m.def("cpu_features", &features, "{feature: bool} with the OS check for wide registers");
  m.def("cpu_model", [] { return std::string(lb_cpu_model()); });
  m.def("isa_best", [] { return std::string(lb_isa_name(lb_isa_best())); });
  m.def("isa_active", [] { return std::string(lb_isa_name(lb_isa_active())); });
  m.def("isa_usable", [] {
    std::vector<std::string> out;
    for (int i = 0; i < LB_ISA_COUNT; ++i)
      if (lb::kernels_for(static_cast<lb_isa>(i))) out.emplace_back(lb_isa_name(static_cast<lb_isa>(i)));
    return out;
  });
  m.def("dispatch_error", [] {
    return lb::dispatch_status() == LB_OK ? std::string() : std::string(lb_last_error());
  }, "empty, or why LOWBIT_ISA cannot be honoured");
  m.def("isa_select", [](const std::string& name) {
    const lb_status st = lb_isa_select(name.c_str());
    if (st != LB_OK) throw_status(st);
  });
  m.def("default_threads", &lb_default_threads);
  m.def("selfcheck", &selfcheck, "(failures, report) for every kernel on every usable ISA path");
  m.def("kernel_names", [](const std::string& isa) {
    const auto& t = table_for(isa);
    py::dict d;
#define LB_FAMILY(fam) d[#fam] = py::make_tuple(t.fam.name, lb_isa_name(t.fam.isa));
#include "families.inc"
#undef LB_FAMILY
    return d;
  }, py::arg("isa") = "");
  m.def("q8_gemv", &q8_gemv, py::arg("w"), py::arg("x"), py::arg("isa") = "",
        "int8 GEMV y = w @ x (int32), on the active or the named ISA path");
  // Binding groups of the other areas (bind_*.cpp), in registration order.
  for (auto& entry : lbpy::registry()) entry.second(m);
}
