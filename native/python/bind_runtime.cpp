// Bindings of the model/session C API (lowbit.h) for lowbit.runtime: bindings only, no logic.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "bindings.h"
#include "lowbit/lowbit.h"
#include "ops/ops.h"
#include "package_sha256.h"

namespace py = pybind11;

namespace {

const char* kDtypeNames[] = {"float32", "float16", "int8", "uint8", "int32", "int64", "bool", "int16"};

// numpy's dtype objects for kDtypeNames, made once (a dtype from a name per input per run cost
// more than the rest of the binding's run); never freed: they live as long as numpy does
const py::dtype& cached_dtype(int k) {
  static const std::vector<py::dtype>* d = [] {
    auto* v = new std::vector<py::dtype>();
    for (const char* n : kDtypeNames) v->push_back(py::dtype(n));
    return v;
  }();
  return (*d)[size_t(k)];
}

py::dtype np_dtype(lb_dtype d) { return cached_dtype(int(d)); }

py::dict info_dict(const lb_tensor_info& i) {
  py::dict d;
  d["name"] = std::string(i.name);
  d["dtype"] = std::string(kDtypeNames[int(i.dtype)]);
  py::list shape;
  for (int k = 0; k < i.ndim; ++k) shape.append(i.shape[k] < 0 ? py::object(py::none()) : py::object(py::int_(i.shape[k])));
  d["shape"] = shape;
  return d;
}

struct PyModel {
  lb_model* m = nullptr;
  PyModel(const std::string& path, bool lazy) {
    lb_status st;
    {
      py::gil_scoped_release r;
      st = lb_model_load(path.c_str(), lazy ? LB_LOAD_LAZY : 0, &m);
    }
    lbpy::check(st);
  }
  PyModel(py::bytes data, bool lazy) {
    std::string s = data;
    lbpy::check(lb_model_load_buffer(s.data(), s.size(), lazy ? LB_LOAD_LAZY : 0, &m));
  }
  ~PyModel() { lb_model_free(m); }
  py::list io(bool inputs) const {
    py::list out;
    const int n = inputs ? lb_model_num_inputs(m) : lb_model_num_outputs(m);
    for (int i = 0; i < n; ++i) {
      lb_tensor_info info;
      lbpy::check(inputs ? lb_model_input(m, i, &info) : lb_model_output(m, i, &info));
      out.append(info_dict(info));
    }
    return out;
  }
};

struct PySession {
  std::shared_ptr<PyModel> model;
  lb_session* s = nullptr;
  PySession(std::shared_ptr<PyModel> mdl, int threads) : model(std::move(mdl)) {
    lb_session_options o{threads};
    lbpy::check(lb_session_create(model->m, &o, &s));
  }
  ~PySession() { lb_session_free(s); }

  py::dict run(py::dict feeds) {
    std::vector<py::array> keep;
    for (auto item : feeds) {
      const std::string name = py::str(item.first);
      py::array a = py::array::ensure(item.second, py::array::c_style);
      if (!a) throw py::value_error("input '" + name + "' is not an array");
      const py::dtype dt = a.dtype();
      int code = -1;
      // by value, not identity: an array from pickle or another extension carries an equal
      // dtype object that is not numpy's cached singleton (byte-swapped dtypes compare unequal)
      for (int k = 0; k < 8 && code < 0; ++k)
        if (PyObject_RichCompareBool(dt.ptr(), cached_dtype(k).ptr(), Py_EQ) == 1) code = k;
      if (code < 0) {
        lb_session_set_input(s, name.c_str(), static_cast<lb_dtype>(99), nullptr, 0, nullptr, 0);
        throw std::runtime_error("LB_ERR_DTYPE: input '" + name + "' has dtype " + std::string(py::str(a.dtype())) +
                                 ", which lowbit does not take");
      }
      std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
      keep.push_back(a);
      lbpy::check(lb_session_set_input(s, name.c_str(), static_cast<lb_dtype>(code), shape.data(), int(a.ndim()), a.data(),
                                       size_t(a.nbytes())));
    }
    lb_status st;
    {
      py::gil_scoped_release r;
      st = lb_session_run(s);
    }
    lbpy::check(st);
    py::dict out;
    const int n = lb_model_num_outputs(model->m);
    for (int i = 0; i < n; ++i) {
      lb_tensor_info decl, info;
      lbpy::check(lb_model_output(model->m, i, &decl));
      const void* data = nullptr;
      lbpy::check(lb_session_get_output(s, decl.name, &info, &data));
      std::vector<py::ssize_t> shape(info.shape, info.shape + info.ndim);
      py::array arr(np_dtype(info.dtype), shape);
      std::memcpy(arr.mutable_data(), data, size_t(arr.nbytes()));
      out[py::str(decl.name)] = arr;
    }
    return out;
  }

  size_t arena_bytes() const {
    size_t b = 0;
    lbpy::check(lb_session_arena_bytes(s, &b));
    return b;
  }

  py::list events() const {
    const lb_profile_event* ev = nullptr;
    size_t n = 0;
    lbpy::check(lb_session_profile_events(s, &ev, &n));
    py::list out;
    for (size_t i = 0; i < n; ++i) {
      py::dict d;
      d["op_name"] = ev[i].op_name;
      d["op_type"] = ev[i].op_type;
      d["kernel"] = ev[i].kernel;
      d["isa"] = ev[i].isa;
      d["shapes"] = ev[i].shapes;
      d["start_ns"] = ev[i].start_ns;
      d["end_ns"] = ev[i].end_ns;
      d["bytes_read"] = ev[i].bytes_read;
      d["bytes_written"] = ev[i].bytes_written;
      d["ops"] = ev[i].ops;
      out.append(d);
    }
    return out;
  }
};

void bind(py::module_& m) {
  py::class_<PyModel, std::shared_ptr<PyModel>>(m, "GraphModel", "a loaded .lbpk package (lb_model)")
      .def(py::init<py::bytes, bool>(), py::arg("data"), py::arg("lazy") = false)  // before str: bytes convert to str
      .def(py::init<const std::string&, bool>(), py::arg("path"), py::arg("lazy") = false)
      .def_property_readonly("manifest_json", [](const PyModel& p) { return std::string(lb_model_manifest(p.m)); })
      .def_property_readonly("inputs", [](const PyModel& p) { return p.io(true); })
      .def_property_readonly("outputs", [](const PyModel& p) { return p.io(false); })
      .def("verify", [](PyModel& p) {
        lb_status st;
        {
          py::gil_scoped_release r;
          st = lb_model_verify(p.m);
        }
        lbpy::check(st);
      });
  py::class_<PySession>(m, "GraphSession", "a session on a model (lb_session)")
      .def(py::init<std::shared_ptr<PyModel>, int>(), py::arg("model"), py::arg("threads") = 0)
      .def("run", &PySession::run)
      .def_property_readonly("arena_bytes", &PySession::arena_bytes)
      .def("enable_profiling", [](PySession& p, bool on) { lbpy::check(lb_session_enable_profiling(p.s, on)); })
      .def("profile_events", &PySession::events);
  m.def("runtime_kernels", [] { return lb::op_kernel_names(); }, "kernel names the graph runtime of this build has");
  m.def("sha256_many", [](const std::vector<py::buffer>& bufs) {  // the package reader's SHA-256 (tests, bench/load.py)
        std::vector<py::buffer_info> info;
        std::vector<lb::Sha256Job> jobs(bufs.size());
        for (size_t i = 0; i < bufs.size(); ++i) {
          info.push_back(bufs[i].request());
          if (!PyBuffer_IsContiguous(info.back().view(), 'C')) throw py::value_error("sha256_many: buffers must be contiguous");
          jobs[i].data = info.back().ptr;
          jobs[i].size = size_t(info.back().size * info.back().itemsize);
        }
        {
          py::gil_scoped_release r;
          lb::sha256_many(jobs.data(), jobs.size());
        }
        py::list out;
        for (const auto& j : jobs) out.append(py::bytes(reinterpret_cast<const char*>(j.digest), 32));
        return out;
      }, "SHA-256 digests of the buffers, hashed in this thread two at a time (multi-buffer SHA-NI where the CPU has it)");
  m.def("sha256_impl", [] { return std::string(lb::sha256_impl()); }, "\"sha-ni\" or \"portable\"");
}

}  // namespace

LB_PYBIND_REGISTER(runtime, bind);
