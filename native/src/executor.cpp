// Graph executor (see executor.h): manifest -> ops, plan (shapes, folding, arena), run.
#include "executor.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <unordered_map>

#include "arena.h"
#include "error.h"

namespace lb {
namespace {

bool parse_shape(const Json& j, std::vector<int64_t>* shape, std::vector<std::string>* names) {
  shape->clear();
  names->clear();
  if (!j.is_array()) return false;
  for (const Json& d : j.elems()) {
    if (d.is_number() && d.i64() >= 0) {
      shape->push_back(d.i64());
      names->emplace_back();
    } else if (d.is_string() || d.is_null()) {
      shape->push_back(-1);
      names->push_back(d.is_string() ? d.str() : "?");
    } else {
      return false;
    }
  }
  return true;
}

std::string decl_shape_str(const ValueDecl& v) {
  std::string o = "[";
  for (size_t i = 0; i < v.shape.size(); ++i) {
    if (i) o += ", ";
    o += v.shape[i] >= 0 ? std::to_string(v.shape[i]) : (v.dim_names[i].empty() ? "?" : v.dim_names[i]);
  }
  return o + "]";
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int Model::find_value(const std::string& name) const {
  for (size_t i = 0; i < values_.size(); ++i)
    if (values_[i].name == name) return int(i);
  return -1;
}

lb_status Model::create(std::unique_ptr<Package> pkg, std::unique_ptr<Model>* out) {
  std::unique_ptr<Model> m(new Model());
  m->pkg_ = std::move(pkg);
  const Json& man = m->pkg_->manifest();
  const std::string kind = man["kind"].str();
  if (kind != "graph")
    return set_error(LB_ERR_UNSUPPORTED, "package kind '%s' is not a graph model (the graph runtime runs kind 'graph'%s)",
                     kind.c_str(), kind == "llm" ? "; load LLM packages with lb_llm_*" : "");
  std::unordered_map<std::string, int> ids;
  const Json& tensors = man["tensors"];
  auto add_value = [&](const std::string& name) -> int {
    auto it = ids.find(name);
    if (it != ids.end()) return it->second;
    ValueDecl v;
    v.name = name;
    v.is_const = tensors.has(name.c_str());
    if (v.is_const) {
      const Json& t = tensors[name];
      parse_dtype(t["dtype"].str(), &v.dtype);
      parse_shape(t["shape"], &v.shape, &v.dim_names);
    }
    m->values_.push_back(std::move(v));
    ids[name] = int(m->values_.size() - 1);
    return int(m->values_.size() - 1);
  };
  for (const char* which : {"inputs", "outputs"}) {
    const Json& list = man[which];
    if (!list.is_array() || list.size() == 0)
      return set_error(LB_ERR_FORMAT, "manifest: '%s' must be a non-empty list", which);
    for (const Json& e : list.elems()) {
      const std::string name = e["name"].str();
      if (name.empty()) return set_error(LB_ERR_FORMAT, "manifest: an entry of '%s' has no name", which);
      const int id = add_value(name);
      ValueDecl& v = m->values_[size_t(id)];
      if (!parse_dtype(e["dtype"].str(), &v.dtype) || !parse_shape(e["shape"], &v.shape, &v.dim_names))
        return set_error(LB_ERR_FORMAT, "manifest: %s '%s' has an invalid dtype or shape", which, name.c_str());
      if (which[0] == 'i') {
        if (v.is_input) return set_error(LB_ERR_FORMAT, "manifest: input '%s' listed twice", name.c_str());
        v.is_input = true;
        m->inputs_.push_back(id);
      } else {
        v.is_output = true;
        m->outputs_.push_back(id);
      }
    }
  }
  const Json& ops = man["ops"];
  if (!ops.is_array()) return set_error(LB_ERR_FORMAT, "manifest: 'ops' must be a list");
  std::string missing;
  int n_missing = 0;
  for (const Json& o : ops.elems()) {
    OpDecl d;
    d.name = o["name"].str();
    d.type = o["op"].str();
    d.kernel = o["kernel"].str();
    d.attrs = &o["attrs"];
    d.def = find_op(d.kernel);
    if (!d.def) {
      if (n_missing++ < 8) missing += (missing.empty() ? "" : ", ") + d.name + " (" + d.type + " needs kernel '" + d.kernel + "')";
    }
    const int idx = int(m->ops_.size());
    // Every op reads its first input (no kernel has an optional first input): an op without
    // that is a damaged manifest, refused here instead of in each op's shape inference.
    if (!o["inputs"].is_array() || o["inputs"].elems().empty() || !o["inputs"].elems()[0].is_string() ||
        o["inputs"].elems()[0].str().empty() || !o["outputs"].is_array())
      return set_error(LB_ERR_FORMAT, "manifest: op '%s' (%s) needs 'inputs' (a list naming at least its first input) "
                       "and 'outputs' (a list); re-export the model", d.name.c_str(), d.type.c_str());
    for (const Json& i : o["inputs"].elems()) {
      if (!i.is_string()) return set_error(LB_ERR_FORMAT, "manifest: op '%s' has a non-string input", d.name.c_str());
      if (i.str().empty()) {
        d.in.push_back(-1);
        continue;
      }
      auto it = ids.find(i.str());
      int id;
      if (it == ids.end()) {
        if (!tensors.has(i.str().c_str()))
          return set_error(LB_ERR_FORMAT, "manifest: op '%s' reads '%s', which no input, constant or earlier op defines",
                           d.name.c_str(), i.str().c_str());
        id = add_value(i.str());
      } else {
        id = it->second;
      }
      ValueDecl& v = m->values_[size_t(id)];
      if (!v.is_const && !v.is_input && v.producer < 0)
        return set_error(LB_ERR_FORMAT, "manifest: op '%s' reads '%s' before any op writes it", d.name.c_str(), i.str().c_str());
      v.last_use = idx;
      d.in.push_back(id);
    }
    for (const Json& oname : o["outputs"].elems()) {
      const int id = add_value(oname.str());
      ValueDecl& v = m->values_[size_t(id)];
      if (oname.str().empty() || v.producer >= 0 || v.is_const || v.is_input)
        return set_error(LB_ERR_FORMAT, "manifest: value '%s' (op '%s') is defined twice", oname.str().c_str(), d.name.c_str());
      v.producer = idx;
      d.out.push_back(id);
    }
    if (d.out.empty()) return set_error(LB_ERR_FORMAT, "manifest: op '%s' has no outputs", d.name.c_str());
    m->ops_.push_back(std::move(d));
  }
  if (n_missing)
    return set_error(LB_ERR_UNSUPPORTED, "this lowbit build has no kernel for %d op(s): %s%s. Re-export for this runtime or update lowbit.",
                     n_missing, missing.c_str(), n_missing > 8 ? ", ..." : "");
  for (int id : m->outputs_) {
    const ValueDecl& v = m->values_[size_t(id)];
    if (!v.is_input && !v.is_const && v.producer < 0)
      return set_error(LB_ERR_FORMAT, "manifest: output '%s' is never produced", v.name.c_str());
    // A graph output is returned as stored: it must not be in an op's blocked (NCHW8c) layout.
    if (v.producer >= 0) {
      const Json& ya = (*m->ops_[size_t(v.producer)].attrs)["y_nchw8c"];
      if (ya.i64() != 0 || ya.boolean())
        return set_error(LB_ERR_FORMAT, "manifest: output '%s' is written by op '%s' in the blocked NCHW8c layout "
                         "(y_nchw8c); a graph output must be plain: re-export the model", v.name.c_str(),
                         m->ops_[size_t(v.producer)].name.c_str());
    }
  }
  *out = std::move(m);
  return LB_OK;
}

// ---------------------------------------------------------------------------------------
Session::Session(const Model* m, int threads) : model_(m), pool_(threads > 1 ? new ThreadPool(threads) : nullptr) {}

Session::~Session() { std::free(arena_); }

lb_status Session::create(const Model* model, int threads, std::unique_ptr<Session>* out) {
  if (threads <= 0) threads = lb_default_threads();
  if (threads > kMaxThreads) threads = kMaxThreads;
  std::unique_ptr<Session> s(new Session(model, threads));
  const auto& vals = model->values();
  s->tensors_.resize(vals.size());
  // Lazy packages: hash the data sections this graph uses now, on the session's thread count
  // (tensor() below then finds them checked).
  if (model->package().mode() == Verify::Lazy) {
    std::vector<const Package::Section*> todo;
    const Json& tensors = model->package().manifest()["tensors"];
    for (const ValueDecl& v : vals) {
      if (!v.is_const) continue;
      const Package::Section* sec = model->package().section(tensors[v.name]["section"].str());
      if (sec && sec->state.load() == 0 && std::find(todo.begin(), todo.end(), sec) == todo.end()) todo.push_back(sec);
    }
    model->package().hash_sections(std::move(todo), threads);  // two per thread (multi-buffer); errors: tensor() reports
  }
  for (size_t i = 0; i < vals.size(); ++i) {
    if (!vals[i].is_const) continue;
    TensorView tv;
    const lb_status st = model->package().tensor(vals[i].name, &tv);  // lazy mode: hashes the section here
    if (st != LB_OK) return st;
    Tensor& t = s->tensors_[i];
    t.dtype = tv.dtype;
    t.shape = tv.shape;
    t.data = const_cast<void*>(tv.data);  // never written: constants are inputs of ops only
  }
  const size_t nops = model->ops().size();
  s->params_.resize(nops);
  s->ctx_.resize(nops);
  s->folded_.assign(nops, 0);
  s->events_.resize(nops);
  s->shape_text_.resize(nops);
  for (size_t k = 0; k < nops; ++k) {
    const OpDecl& d = model->ops()[k];
    OpCtx& c = s->ctx_[k];
    c.attrs = d.attrs;
    c.p = &s->params_[k];
    c.pool = s->pool_.get();
    for (int id : d.in) c.in.push_back(id >= 0 ? &s->tensors_[size_t(id)] : nullptr);
    for (int id : d.out) c.out.push_back(&s->tensors_[size_t(id)]);
  }
  s->bound_shapes_.resize(model->inputs().size());
  s->bound_data_.assign(model->inputs().size(), nullptr);
  // Every input shape static: plan now, so that a bad attribute or shape is an error of the load, not of the
  // first run, the arena is sized before any run, and the first run costs what later ones do. Graphs with
  // dynamic dims plan on the first run (and again whenever the bound shapes change).
  std::vector<std::vector<int64_t>> declared;
  bool all_static = true;
  for (int id : model->inputs()) {
    declared.push_back(vals[size_t(id)].shape);
    for (int64_t d : declared.back()) all_static = all_static && d >= 0;
  }
  if (all_static) {
    const lb_status st = s->plan(declared);
    if (st != LB_OK) return st;
  }
  *out = std::move(s);
  return LB_OK;
}

lb_status Session::set_input(const std::string& name, DType dtype, const int64_t* shape, int ndim, const void* data,
                             size_t nbytes) {
  const auto& ins = model_->inputs();
  for (size_t k = 0; k < ins.size(); ++k) {
    const ValueDecl& v = model_->values()[size_t(ins[k])];
    if (v.name != name) continue;
    if (dtype != v.dtype)
      return set_error(LB_ERR_DTYPE, "input '%s' expects dtype %s, got %s", name.c_str(), dtype_name(v.dtype), dtype_name(dtype));
    // checked in place and copied into the previous binding's storage: no heap allocation per run
    const size_t nd = size_t(ndim > 0 ? ndim : 0);
    bool ok = ndim >= 0 && nd == v.shape.size();
    uint64_t count = 1;
    for (size_t d = 0; ok && d < nd; ++d) {
      if (shape[d] < 0 || (v.shape[d] >= 0 && shape[d] != v.shape[d]) || (v.shape[d] < 0 && shape[d] == 0)) ok = false;
      if (ok && shape[d] > 0 && count > (uint64_t(1) << 50) / uint64_t(shape[d])) ok = false;  // no size_t wrap
      count *= uint64_t(shape[d] < 0 ? 0 : shape[d]);
    }
    if (!ok)
      return set_error(LB_ERR_SHAPE, "input '%s' expects shape %s, got %s", name.c_str(), decl_shape_str(v).c_str(),
                       shape_str(std::vector<int64_t>(shape, shape + nd)).c_str());
    if (!data && nbytes) return set_error(LB_ERR_INVALID_ARG, "input '%s': NULL data for %zu bytes", name.c_str(), nbytes);
    if (count * dtype_size(dtype) != nbytes)
      return set_error(LB_ERR_INVALID_ARG, "input '%s': %zu bytes given, shape %s of %s needs %llu", name.c_str(), nbytes,
                       shape_str(std::vector<int64_t>(shape, shape + nd)).c_str(), dtype_name(dtype),
                       (unsigned long long)(count * dtype_size(dtype)));
    bound_shapes_[k].assign(shape, shape + nd);
    bound_data_[k] = data;
    return LB_OK;
  }
  std::string names;
  for (int id : ins) names += (names.empty() ? "'" : ", '") + model_->values()[size_t(id)].name + "'";
  return set_error(LB_ERR_NOT_FOUND, "the model has no input '%s' (its inputs: %s)", name.c_str(), names.c_str());
}

lb_status Session::plan(const std::vector<std::vector<int64_t>>& shapes) {
  ran_ = false;  // the outputs' storage moves: no previous run's output stays readable
  const auto& vals = model_->values();
  const auto& ops = model_->ops();
  // reset every non-constant value
  for (size_t i = 0; i < vals.size(); ++i)
    if (!vals[i].is_const) {
      tensors_[i].data = nullptr;
      tensors_[i].shape.clear();
    }
  for (size_t k = 0; k < model_->inputs().size(); ++k) {
    Tensor& t = tensors_[size_t(model_->inputs()[k])];
    t.dtype = vals[size_t(model_->inputs()[k])].dtype;
    t.shape = shapes[k];
    t.data = const_cast<void*>(bound_data_[k]);  // bound at run(); here only for "known" checks
  }
  // inputs are not known at plan time for folding: hide their data while inferring
  std::vector<void*> saved;
  for (int id : model_->inputs()) {
    saved.push_back(tensors_[size_t(id)].data);
    tensors_[size_t(id)].data = nullptr;
  }
  plan_buffers_.clear();
  std::vector<char> known(vals.size(), 0);
  for (size_t i = 0; i < vals.size(); ++i) known[i] = vals[i].is_const;
  scratch_bytes_ = 0;
  for (size_t k = 0; k < ops.size(); ++k) {
    const OpDecl& d = ops[k];
    OpCtx& c = ctx_[k];
    c.err.clear();
    c.scratch_bytes = 0;
    c.flops = 0;
    for (size_t j = 0; j < d.in.size(); ++j)
      if (d.in[j] >= 0 && !known[size_t(d.in[j])] && vals[size_t(d.in[j])].producer >= 0 && tensors_[size_t(d.in[j])].data)
        tensors_[size_t(d.in[j])].data = nullptr;
    lb_status st;
    try {
      st = d.def->infer(c);
    } catch (const AttrError& e) {
      st = LB_ERR_FORMAT;
      c.err = e.what();
    }
    if (st != LB_OK) {
      for (size_t k2 = 0; k2 < saved.size(); ++k2) tensors_[size_t(model_->inputs()[k2])].data = saved[k2];
      return set_error(st, "op '%s' (%s): %s", d.name.c_str(), d.type.c_str(), c.err.c_str());
    }
    std::string txt;
    for (size_t j = 0; j < c.in.size(); ++j) txt += (j ? " x " : "") + (c.in[j] ? shape_str(c.in[j]->shape) : std::string("-"));
    txt += " -> ";
    for (size_t j = 0; j < c.out.size(); ++j) txt += (j ? ", " : "") + shape_str(c.out[j]->shape);
    shape_text_[k] = txt;
    bool all_known = d.def->foldable;
    for (int id : d.in)
      if (id >= 0 && !known[size_t(id)]) all_known = false;
    int64_t out_elems = 0;
    for (Tensor* t : c.out) out_elems += t->numel();
    folded_[k] = all_known && out_elems <= (1 << 16);
    if (folded_[k]) {
      for (size_t j = 0; j < c.out.size(); ++j) {
        plan_buffers_.emplace_back(c.out[j]->nbytes() + 8);
        c.out[j]->data = plan_buffers_.back().data();
        known[size_t(d.out[j])] = 1;
      }
      c.pool = nullptr;  // folded on the planning thread
      d.def->run(c);
      c.pool = pool_.get();
    } else if (c.scratch_bytes > scratch_bytes_) {
      scratch_bytes_ = c.scratch_bytes;
    }
  }
  for (size_t k2 = 0; k2 < saved.size(); ++k2) tensors_[size_t(model_->inputs()[k2])].data = saved[k2];
  // arena: every value written by a non-folded op
  std::vector<ArenaRequest> req;
  std::vector<int> req_ids;
  for (size_t i = 0; i < vals.size(); ++i) {
    const ValueDecl& v = vals[i];
    if (v.is_const || v.is_input || v.producer < 0 || folded_[size_t(v.producer)]) continue;
    const int last = v.is_output ? int(ops.size()) : (v.last_use < v.producer ? v.producer : v.last_use);
    req.push_back({tensors_[i].nbytes(), v.producer, last});
    req_ids.push_back(int(i));
  }
  std::vector<size_t> offs;
  const size_t values_bytes = plan_arena(req, &offs);
  scratch_offset_ = (values_bytes + 63) / 64 * 64;
  const size_t total = scratch_offset_ + (scratch_bytes_ + 63) / 64 * 64;
  if (total > arena_size_ || !arena_) {
    std::free(arena_);
    arena_ = nullptr;
    if (posix_memalign(&arena_, 64, total ? total : 64) != 0) {
      arena_ = nullptr;
      arena_size_ = 0;
      return set_error(LB_ERR_OUT_OF_MEMORY, "cannot allocate a %zu-byte arena", total);
    }
  }
  arena_size_ = total;
  for (size_t r = 0; r < req.size(); ++r) tensors_[size_t(req_ids[r])].data = static_cast<char*>(arena_) + offs[r];
  for (size_t k = 0; k < ops.size(); ++k) {
    ctx_[k].scratch = static_cast<char*>(arena_) + scratch_offset_;
    ctx_[k].scratch_bytes = scratch_bytes_;
  }
  // profile events: static parts
  for (size_t k = 0; k < ops.size(); ++k) {
    ProfileEvent& e = events_[k];
    e.op_name = ops[k].name.c_str();
    e.op_type = ops[k].type.c_str();
    e.kernel = ops[k].kernel.c_str();
    e.isa = "";
    e.shapes = shape_text_[k].c_str();
    e.start_ns = e.end_ns = 0;
    e.bytes_read = e.bytes_written = 0;
    for (const Tensor* t : ctx_[k].in)
      if (t) e.bytes_read += t->nbytes();
    for (const Tensor* t : ctx_[k].out) e.bytes_written += t->nbytes();
    e.ops = ctx_[k].flops;
  }
  planned_shapes_ = shapes;
  planned_ = true;
  return LB_OK;
}

lb_status Session::run() {
  const auto& ins = model_->inputs();
  for (size_t k = 0; k < ins.size(); ++k)
    if (!bound_data_[k] && model_->values()[size_t(ins[k])].shape.size() != 0 && bound_shapes_[k].empty())
      return set_error(LB_ERR_INVALID_ARG, "input '%s' was not set (lb_session_set_input)",
                       model_->values()[size_t(ins[k])].name.c_str());
  if (!planned_ || planned_shapes_ != bound_shapes_) {
    const lb_status st = plan(bound_shapes_);
    if (st != LB_OK) {
      planned_ = false;
      return st;
    }
  }
  for (size_t k = 0; k < ins.size(); ++k) tensors_[size_t(ins[k])].data = const_cast<void*>(bound_data_[k]);
  const auto& ops = model_->ops();
  const int64_t t0 = profiling_ ? now_ns() : 0;
  for (size_t k = 0; k < ops.size(); ++k) {
    if (folded_[k]) {
      if (profiling_) {
        events_[k].isa = "folded";
        events_[k].start_ns = events_[k].end_ns = now_ns() - t0;
      }
      continue;
    }
    OpCtx& c = ctx_[k];
    if (profiling_) {
      events_[k].start_ns = now_ns() - t0;
      ops[k].def->run(c);
      events_[k].end_ns = now_ns() - t0;
      events_[k].isa = c.isa;
    } else {
      ops[k].def->run(c);
    }
  }
  ran_ = true;
  return LB_OK;
}

lb_status Session::output(const std::string& name, const Tensor** out) const {
  for (int id : model_->outputs())
    if (model_->values()[size_t(id)].name == name) {
      if (!ran_) return set_error(LB_ERR_INVALID_ARG, "output '%s': the session has not run yet", name.c_str());
      *out = &tensors_[size_t(id)];
      return LB_OK;
    }
  return set_error(LB_ERR_NOT_FOUND, "the model has no output '%s'", name.c_str());
}

}  // namespace lb
