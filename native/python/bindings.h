// Registration of binding groups: each native/python/bind_<area>.cpp registers one function
// with LB_PYBIND_REGISTER, and module.cpp calls them all, so areas never edit a shared file.
#pragma once
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "lowbit/lowbit.h"

namespace lbpy {

using BindFn = void (*)(pybind11::module_&);
std::vector<std::pair<const char*, BindFn>>& registry();

struct Registrar {
  Registrar(const char* name, BindFn fn) { registry().emplace_back(name, fn); }
};

/// Raises RuntimeError("LB_ERR_...: <lb_last_error()>") for a failed status.
[[noreturn]] void throw_status(lb_status st);
inline void check(lb_status st) {
  if (st != LB_OK) throw_status(st);
}

}  // namespace lbpy

#define LB_PYBIND_REGISTER(name, fn) static lbpy::Registrar lbpy_registrar_##name(#name, fn)
