// Thread-local last-error storage for the C API.
#include "error.h"

#include <cstdarg>
#include <cstdio>

namespace lb {
namespace {
thread_local char g_last_error[1024] = "";
}

lb_status set_error(lb_status status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(g_last_error, sizeof(g_last_error), fmt, ap);
  va_end(ap);
  return status;
}

void clear_error() { g_last_error[0] = '\0'; }

}  // namespace lb

extern "C" LB_API const char* lb_last_error(void) { return lb::g_last_error; }

extern "C" LB_API const char* lb_status_name(lb_status s) {
  switch (s) {
    case LB_OK: return "LB_OK";
    case LB_ERR_INVALID_ARG: return "LB_ERR_INVALID_ARG";
    case LB_ERR_IO: return "LB_ERR_IO";
    case LB_ERR_FORMAT: return "LB_ERR_FORMAT";
    case LB_ERR_VERSION: return "LB_ERR_VERSION";
    case LB_ERR_CHECKSUM: return "LB_ERR_CHECKSUM";
    case LB_ERR_UNSUPPORTED: return "LB_ERR_UNSUPPORTED";
    case LB_ERR_SHAPE: return "LB_ERR_SHAPE";
    case LB_ERR_DTYPE: return "LB_ERR_DTYPE";
    case LB_ERR_NOT_FOUND: return "LB_ERR_NOT_FOUND";
    case LB_ERR_OUT_OF_MEMORY: return "LB_ERR_OUT_OF_MEMORY";
    case LB_ERR_ISA: return "LB_ERR_ISA";
    case LB_ERR_INTERNAL: return "LB_ERR_INTERNAL";
    case LB_ERR_CONTEXT: return "LB_ERR_CONTEXT";
  }
  return "LB_ERR_UNKNOWN";
}
