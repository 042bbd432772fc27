// Bindings for the profiler's device measurements (lowbit_profile.h): bindings only, no logic.
#include <pybind11/pybind11.h>

#include <string>

#include "bindings.h"
#include "lowbit/lowbit_profile.h"

namespace py = pybind11;

namespace {

void bind_profile(py::module_& m) {
  m.def("measure_bandwidth", [](size_t bytes, int threads, int repeats) {
    double gbps = 0.0;
    lb_status st;
    {
      py::gil_scoped_release release;
      st = lb_measure_bandwidth(bytes, threads, repeats, &gbps);
    }
    lbpy::check(st);
    return gbps;
  }, py::arg("bytes") = 0, py::arg("threads") = 0, py::arg("repeats") = 0,
     "sustained read bandwidth in GB/s (0 = defaults: 256 MiB, all threads, 5 repeats)");
  m.def("measure_int8_peak", [](const std::string& isa, int threads, int repeats) {
    double gops = 0.0;
    lb_status st;
    {
      py::gil_scoped_release release;
      st = lb_measure_int8_peak(isa.c_str(), threads, repeats, &gops);
    }
    lbpy::check(st);
    return gops;
  }, py::arg("isa") = "auto", py::arg("threads") = 0, py::arg("repeats") = 0,
     "int8 multiply-accumulate peak in GOPS (2 ops per MAC) of an ISA path");
}

}  // namespace

LB_PYBIND_REGISTER(profile, bind_profile);
