// Bindings of the quantized kernels (no logic): the C++ packer, block sizes, the activation
// quantizer, a thread pool, and qlinear (one call, or a prepared QLinear for benchmarks).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <vector>

#include "bindings.h"
#include "dispatch.h"
#include "lowbit/lowbit_blocks.h"
#include "measure.h"
#include "pack.h"
#include "qlinear.h"

namespace py = pybind11;

namespace {

template <class T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

const lb::KernelTable& table(const std::string& isa) {
  if (isa.empty()) {
    if (lb::dispatch_status() != LB_OK) lbpy::throw_status(LB_ERR_ISA);
    return lb::kernels();
  }
  lb_isa which;
  if (!lb::parse_isa(isa.c_str(), &which)) throw py::value_error("unknown ISA path '" + isa + "'");
  const lb::KernelTable* t = lb::kernels_for(which);
  if (!t) throw py::value_error("ISA path '" + isa + "' cannot run on this CPU/build");
  return *t;
}

lb_wfmt parse_fmt(const std::string& f) {
  if (f == "q8") return LB_WFMT_Q8;
  if (f == "q4") return LB_WFMT_Q4;
  if (f == "q4a") return LB_WFMT_Q4A;
  if (f == "c4") return LB_WFMT_C4;
  if (f == "t2") return LB_WFMT_T2;
  throw py::value_error("unknown packed format '" + f + "' (q8, q4, q4a, c4, t2)");
}

lb::lb_act_mode parse_act(const std::string& a) {
  if (a == "dynamic") return lb::LB_ACT_DYNAMIC;
  if (a == "row") return lb::LB_ACT_DYNAMIC_ROW;
  if (a == "static") return lb::LB_ACT_STATIC;
  if (a == "float") return lb::LB_ACT_FLOAT;
  throw py::value_error("unknown activation mode '" + a + "' (dynamic, row, static, float)");
}

py::array_t<uint8_t> pack_weight(const std::string& fmt, carray<int8_t> q, carray<float> scale, int group,
                                 py::object zero, py::object minimum, py::object codebook) {
  if (q.ndim() != 2) throw py::value_error("pack_weight: codes must be [N, K]");
  lb::QuantWeightView v;
  v.fmt = parse_fmt(fmt);
  v.n = q.shape(0);
  v.k = q.shape(1);
  v.group = group;
  v.q = q.data();
  v.scale = scale.data();
  const int64_t ng = v.fmt == LB_WFMT_Q8 ? 1 : (group > 0 ? v.k / group : 0);
  if (scale.size() != v.n * ng) throw py::value_error("pack_weight: scale must have N * K/group elements");
  carray<float> z, mn, cb;
  if (!zero.is_none()) z = zero.cast<carray<float>>(), v.zero = z.data();
  if (!minimum.is_none()) mn = minimum.cast<carray<float>>(), v.minimum = mn.data();
  if (!codebook.is_none()) cb = codebook.cast<carray<float>>(), v.codebook = cb.data();
  if ((v.zero && z.size() != scale.size()) || (v.minimum && mn.size() != scale.size()) || (v.codebook && cb.size() != 16))
    throw py::value_error("pack_weight: zero/minimum must match scale; codebook has 16 entries");
  const uint64_t bytes = lb_wfmt_packed_bytes(v.fmt, v.n, v.k, group);
  py::array_t<uint8_t> out(py::ssize_t(bytes ? bytes : 1));
  lbpy::check(lb::pack_weight(v, out.mutable_data(), size_t(bytes)));
  return out;
}

py::tuple quantize_act(carray<float> x, int block, bool per_row, const std::string& isa) {
  if (x.ndim() != 2) throw py::value_error("quantize_act: x must be [M, K]");
  const int64_t m = x.shape(0), k = x.shape(1), kp = (k + 31) / 32 * 32;
  if (block <= 0 || kp % block) throw py::value_error("quantize_act: block must divide K rounded up to 32");
  const auto& t = table(isa);
  py::array_t<int8_t> q({m, kp});
  py::array_t<float> d({m, kp / block});
  py::array_t<int32_t> s({m, kp / block});
  std::vector<lb_q8_meta> meta(size_t(kp / block));
  for (int64_t r = 0; r < m; ++r) {
    lb_quant_args a{};
    a.x = x.data() + r * k;
    a.k = k;
    a.kp = kp;
    a.block = block;
    a.per_row = per_row;
    t.quant_q8.fn(&a, q.mutable_data() + r * kp, meta.data());
    for (int64_t b = 0; b < kp / block; ++b) {
      d.mutable_data()[r * (kp / block) + b] = meta[b].d;
      s.mutable_data()[r * (kp / block) + b] = meta[b].s;
    }
  }
  return py::make_tuple(q, d, s);
}

/// A packed weight ready to run: keeps the bytes alive and owns its scratch (so one QLinear is
/// not meant to be called from two Python threads at once).
struct PyQLinear {
  carray<uint8_t> blob;
  lb::PackedWeight w;
  std::vector<uint8_t> scratch;

  PyQLinear(carray<uint8_t> b, const std::string& fmt, int64_t n, int64_t k, int group) : blob(std::move(b)) {
    lbpy::check(lb::packed_weight_init(parse_fmt(fmt), n, k, group, blob.data(), size_t(blob.size()), &w));
  }

  py::tuple run(carray<float> x, py::object bias, const std::string& act, float act_scale, int act_zero,
                lb::ThreadPool* pool, const std::string& isa, py::object out, py::object act_mul) {
    if (x.ndim() != 2 || x.shape(1) != w.k) throw py::value_error("qlinear: x must be [M, K] with K = " + std::to_string(w.k));
    const int64_t m = x.shape(0);
    lb::QLinearOpts o;
    o.act = parse_act(act);
    o.act_scale = act_scale;
    o.act_zero = act_zero;
    carray<float> mul;
    if (!act_mul.is_none()) {  // the --smooth multipliers, applied to x before quantizing
      mul = act_mul.cast<carray<float>>();
      if (mul.size() != w.k) throw py::value_error("qlinear: act_mul must have K elements");
      o.act_mul = mul.data();
    }
    carray<float> b;
    if (!bias.is_none()) {
      b = bias.cast<carray<float>>();
      if (b.size() != w.n) throw py::value_error("qlinear: bias must have N elements");
    }
    py::array_t<float> y;
    if (out.is_none()) {
      y = py::array_t<float>({m, w.n});
    } else {
      if (!py::isinstance<py::array_t<float>>(out)) throw py::value_error("qlinear: out must be a float32 array");
      y = out.cast<py::array_t<float>>();
      if (y.ndim() != 2 || y.shape(0) != m || y.shape(1) != w.n || !(y.flags() & py::array::c_style))
        throw py::value_error("qlinear: out must be a C-contiguous float32 [M, N] array");
    }
    const size_t need = lb::qlinear_scratch_bytes(w, m, o);
    if (scratch.size() < need) scratch.resize(need);
    const auto& t = table(isa);
    lb::QLinearInfo info;
    lb_status st;
    {
      py::gil_scoped_release release;
      st = lb::qlinear_with(t, w, x.data(), m, bias.is_none() ? nullptr : b.data(), y.mutable_data(), o, pool,
                            scratch.data(), scratch.size(), &info);
    }
    lbpy::check(st);
    py::dict d;
    d["kernel"] = info.kernel;
    d["isa"] = lb_isa_name(info.isa);
    d["quant"] = info.quant;
    d["threads"] = info.threads;
    d["tasks"] = info.tasks;
    return py::make_tuple(y, d);
  }
};

void bind(py::module_& m) {
  py::class_<lb::ThreadPool>(m, "ThreadPool", "A persistent pool of `threads` threads (caller included)")
      .def(py::init<int>(), py::arg("threads"))
      .def_property_readonly("size", &lb::ThreadPool::size);

  m.def("read_probe", [](carray<uint8_t> buf, lb::ThreadPool* pool) {
    py::gil_scoped_release release;
    return lb::read_stream(buf.data(), size_t(buf.size()), pool);
  }, py::arg("buf"), py::arg("pool") = nullptr, "Reads the bytes once as a GEMV reads its weight (same-rounds read probe)");

  m.def("wfmt_packed_bytes", [](const std::string& fmt, int64_t n, int64_t k, int group) {
    return lb_wfmt_packed_bytes(parse_fmt(fmt), n, k, group);
  }, py::arg("fmt"), py::arg("n"), py::arg("k"), py::arg("group"));

  m.def("block_sizes", [] {
    py::dict d;
    d["panel_rows"] = LB_PANEL_ROWS;
    d["kblock"] = LB_KBLOCK;
    d["q8_quad"] = sizeof(lb_q8_quad);
    d["q4_g32"] = sizeof(lb_q4_g32);
    d["q4_g64"] = sizeof(lb_q4_g64);
    d["q4_g128"] = sizeof(lb_q4_g128);
    d["q4a_g32"] = sizeof(lb_q4a_g32);
    d["q4a_g64"] = sizeof(lb_q4a_g64);
    d["q4a_g128"] = sizeof(lb_q4a_g128);
    d["t2_g32"] = sizeof(lb_t2_g32);
    d["t2_g64"] = sizeof(lb_t2_g64);
    d["t2_g128"] = sizeof(lb_t2_g128);
    d["c4_lut"] = sizeof(lb_c4_lut);
    d["q8_meta"] = sizeof(lb_q8_meta);
    return d;
  }, "sizeof of every block struct of lowbit_blocks.h");

  m.def("pack_weight", &pack_weight, py::arg("fmt"), py::arg("q"), py::arg("scale"), py::arg("group"),
        py::arg("zero") = py::none(), py::arg("minimum") = py::none(), py::arg("codebook") = py::none(),
        "The C++ packer (fmt: q8, q4, q4a, c4, t2): codes [N, K] -> packed bytes");

  m.def("quantize_act", &quantize_act, py::arg("x"), py::arg("block"), py::arg("per_row") = false,
        py::arg("isa") = "", "Dynamic int8 activation quantizer: (q [M, Kp], d, s) on the active or named ISA path");

  py::class_<PyQLinear>(m, "QLinear", "A packed weight ready for qlinear (keeps the bytes alive)")
      .def(py::init<carray<uint8_t>, const std::string&, int64_t, int64_t, int>(), py::arg("blob"), py::arg("fmt"),
           py::arg("n"), py::arg("k"), py::arg("group"))
      .def("__call__", &PyQLinear::run, py::arg("x"), py::arg("bias") = py::none(), py::arg("act") = "dynamic",
           py::arg("act_scale") = 0.f, py::arg("act_zero") = 0, py::arg("pool") = nullptr, py::arg("isa") = "",
           py::arg("out") = py::none(), py::arg("act_mul") = py::none(),
           "y [M, N] and {kernel, isa, quant, threads, tasks}: what ran");
}

LB_PYBIND_REGISTER(kernels, bind);

}  // namespace
