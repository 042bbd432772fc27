// The model/session C API (lowbit.h): thin wrappers over lb::Model / lb::Session. No exception
// crosses this file: every entry point catches everything and turns it into a status.
#include <cstring>
#include <memory>
#include <new>

#include "dispatch.h"
#include "error.h"
#include "executor.h"
#include "lowbit/lowbit.h"

struct lb_model {
  std::unique_ptr<lb::Model> impl;
};
struct lb_session {
  std::unique_ptr<lb::Session> impl;
  lb_model* model;
};

namespace {

template <class F>
lb_status guarded(const char* fn, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return lb::set_error(LB_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  } catch (const std::exception& e) {
    return lb::set_error(LB_ERR_INTERNAL, "%s: internal error: %s", fn, e.what());
  } catch (...) {
    return lb::set_error(LB_ERR_INTERNAL, "%s: internal error", fn);
  }
}

lb_status finish_load(std::unique_ptr<lb::Package> pkg, lb_model** out) {
  std::unique_ptr<lb::Model> m;
  const lb_status st = lb::Model::create(std::move(pkg), &m);
  if (st != LB_OK) return st;
  *out = new lb_model{std::move(m)};
  return LB_OK;
}

lb_status fill_info(const lb::Model& m, int id, lb_tensor_info* info) {
  const lb::ValueDecl& v = m.values()[size_t(id)];
  if (v.shape.size() > LB_MAX_DIMS) return lb::set_error(LB_ERR_UNSUPPORTED, "'%s' has more than %d dims", v.name.c_str(), LB_MAX_DIMS);
  info->name = v.name.c_str();
  info->dtype = static_cast<lb_dtype>(v.dtype);
  info->ndim = int(v.shape.size());
  for (size_t d = 0; d < v.shape.size(); ++d) info->shape[d] = v.shape[d];
  return LB_OK;
}

}  // namespace

extern "C" {

LB_API lb_status lb_model_load(const char* path, uint32_t flags, lb_model** model) {
  if (!path || !model) return lb::set_error(LB_ERR_INVALID_ARG, "lb_model_load: NULL argument");
  *model = nullptr;
  if (flags & ~uint32_t(LB_LOAD_LAZY))
    return lb::set_error(LB_ERR_INVALID_ARG, "lb_model_load: unknown flag bits 0x%x (known: LB_LOAD_LAZY = 0x1)",
                         unsigned(flags & ~uint32_t(LB_LOAD_LAZY)));
  return guarded("lb_model_load", [&] {
    std::unique_ptr<lb::Package> pkg;
    const lb_status st = lb::Package::open_file(path, (flags & LB_LOAD_LAZY) ? lb::Verify::Lazy : lb::Verify::Full, &pkg);
    if (st != LB_OK) return st;
    return finish_load(std::move(pkg), model);
  });
}

LB_API lb_status lb_model_load_buffer(const void* data, size_t size, uint32_t flags, lb_model** model) {
  if (!data || !model) return lb::set_error(LB_ERR_INVALID_ARG, "lb_model_load_buffer: NULL argument");
  *model = nullptr;
  if (flags & ~uint32_t(LB_LOAD_LAZY))
    return lb::set_error(LB_ERR_INVALID_ARG, "lb_model_load_buffer: unknown flag bits 0x%x (known: LB_LOAD_LAZY = 0x1)",
                         unsigned(flags & ~uint32_t(LB_LOAD_LAZY)));
  return guarded("lb_model_load_buffer", [&] {
    std::unique_ptr<lb::Package> pkg;
    const lb_status st = lb::Package::open_buffer(data, size, (flags & LB_LOAD_LAZY) ? lb::Verify::Lazy : lb::Verify::Full, &pkg);
    if (st != LB_OK) return st;
    return finish_load(std::move(pkg), model);
  });
}

LB_API void lb_model_free(lb_model* model) { delete model; }

LB_API lb_status lb_model_verify(lb_model* model) {
  if (!model) return lb::set_error(LB_ERR_INVALID_ARG, "lb_model_verify: NULL model");
  return guarded("lb_model_verify", [&] { return model->impl->package().verify_all(); });
}

LB_API const char* lb_model_manifest(const lb_model* model) {
  return model ? model->impl->package().manifest_text().c_str() : "";
}

LB_API lb_status lb_model_tensor(const lb_model* model, const char* name, lb_tensor_info* info, const void** data) {
  if (!model || !name || !info || !data) return lb::set_error(LB_ERR_INVALID_ARG, "lb_model_tensor: NULL argument");
  return guarded("lb_model_tensor", [&] {
    lb::TensorView tv;
    const lb_status st = model->impl->package().tensor(name, &tv);
    if (st != LB_OK) return st;
    if (tv.shape.size() > LB_MAX_DIMS) return lb::set_error(LB_ERR_UNSUPPORTED, "tensor '%s' has too many dims", name);
    const lb::Json& entries = model->impl->package().manifest()["tensors"];
    for (const auto& kv : entries.items())
      if (kv.first == name) info->name = kv.first.c_str();
    info->dtype = static_cast<lb_dtype>(tv.dtype);
    info->ndim = int(tv.shape.size());
    for (size_t d = 0; d < tv.shape.size(); ++d) info->shape[d] = tv.shape[d];
    *data = tv.data;
    return LB_OK;
  });
}

LB_API int lb_model_num_inputs(const lb_model* model) { return model ? int(model->impl->inputs().size()) : 0; }
LB_API int lb_model_num_outputs(const lb_model* model) { return model ? int(model->impl->outputs().size()) : 0; }

LB_API lb_status lb_model_input(const lb_model* model, int index, lb_tensor_info* info) {
  if (!model || !info) return lb::set_error(LB_ERR_INVALID_ARG, "lb_model_input: NULL argument");
  if (index < 0 || index >= int(model->impl->inputs().size()))
    return lb::set_error(LB_ERR_NOT_FOUND, "input index %d out of range (the model has %zu inputs)", index,
                         model->impl->inputs().size());
  return fill_info(*model->impl, model->impl->inputs()[size_t(index)], info);
}

LB_API lb_status lb_model_output(const lb_model* model, int index, lb_tensor_info* info) {
  if (!model || !info) return lb::set_error(LB_ERR_INVALID_ARG, "lb_model_output: NULL argument");
  if (index < 0 || index >= int(model->impl->outputs().size()))
    return lb::set_error(LB_ERR_NOT_FOUND, "output index %d out of range (the model has %zu outputs)", index,
                         model->impl->outputs().size());
  return fill_info(*model->impl, model->impl->outputs()[size_t(index)], info);
}

LB_API lb_status lb_session_create(lb_model* model, const lb_session_options* options, lb_session** session) {
  if (!model || !session) return lb::set_error(LB_ERR_INVALID_ARG, "lb_session_create: NULL argument");
  *session = nullptr;
  if (options && options->threads < 0) return lb::set_error(LB_ERR_INVALID_ARG, "lb_session_create: threads must be >= 0");
  if (lb::dispatch_status() != LB_OK) return LB_ERR_ISA;
  return guarded("lb_session_create", [&] {
    std::unique_ptr<lb::Session> s;
    const lb_status st = lb::Session::create(model->impl.get(), options ? options->threads : 0, &s);
    if (st != LB_OK) return st;
    *session = new lb_session{std::move(s), model};
    return LB_OK;
  });
}

LB_API void lb_session_free(lb_session* session) { delete session; }

LB_API lb_status lb_session_set_input(lb_session* session, const char* name, lb_dtype dtype, const int64_t* shape,
                                      int ndim, const void* data, size_t nbytes) {
  if (!session || !name || (ndim > 0 && !shape)) return lb::set_error(LB_ERR_INVALID_ARG, "lb_session_set_input: NULL argument");
  if (int(dtype) < 0 || int(dtype) >= int(lb::DType::Count))
    return lb::set_error(LB_ERR_DTYPE, "lb_session_set_input: unknown dtype code %d", int(dtype));
  if (ndim < 0 || ndim > LB_MAX_DIMS) return lb::set_error(LB_ERR_SHAPE, "lb_session_set_input: ndim %d out of range", ndim);
  return guarded("lb_session_set_input", [&] {
    return session->impl->set_input(name, static_cast<lb::DType>(dtype), shape, ndim, data, nbytes);
  });
}

LB_API lb_status lb_session_run(lb_session* session) {
  if (!session) return lb::set_error(LB_ERR_INVALID_ARG, "lb_session_run: NULL session");
  return guarded("lb_session_run", [&] { return session->impl->run(); });
}

LB_API lb_status lb_session_get_output(lb_session* session, const char* name, lb_tensor_info* info, const void** data) {
  if (!session || !name || !info || !data) return lb::set_error(LB_ERR_INVALID_ARG, "lb_session_get_output: NULL argument");
  return guarded("lb_session_get_output", [&] {
    const lb::Tensor* t = nullptr;
    const lb_status st = session->impl->output(name, &t);
    if (st != LB_OK) return st;
    if (t->shape.size() > LB_MAX_DIMS) return lb::set_error(LB_ERR_UNSUPPORTED, "output '%s' has too many dims", name);
    const int id = session->impl->model().find_value(name);
    info->name = session->impl->model().values()[size_t(id)].name.c_str();
    info->dtype = static_cast<lb_dtype>(t->dtype);
    info->ndim = int(t->shape.size());
    for (size_t d = 0; d < t->shape.size(); ++d) info->shape[d] = t->shape[d];
    *data = t->data;
    return LB_OK;
  });
}

LB_API lb_status lb_session_arena_bytes(const lb_session* session, size_t* bytes) {
  if (!session || !bytes) return lb::set_error(LB_ERR_INVALID_ARG, "lb_session_arena_bytes: NULL argument");
  *bytes = session->impl->arena_bytes();
  return LB_OK;
}

LB_API lb_status lb_session_enable_profiling(lb_session* session, int enabled) {
  if (!session) return lb::set_error(LB_ERR_INVALID_ARG, "lb_session_enable_profiling: NULL session");
  session->impl->enable_profiling(enabled != 0);
  return LB_OK;
}

LB_API lb_status lb_session_profile_events(const lb_session* session, const lb_profile_event** events, size_t* count) {
  if (!session || !events || !count) return lb::set_error(LB_ERR_INVALID_ARG, "lb_session_profile_events: NULL argument");
  *events = session->impl->events().data();
  *count = session->impl->events().size();
  return LB_OK;
}

}  // extern "C"
