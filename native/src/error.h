// Thread-local error text behind lb_last_error(), and helpers to set it.
#pragma once
#include "lowbit/lowbit.h"

namespace lb {

/// Records `status` with a printf-style message for the calling thread and returns `status`.
lb_status set_error(lb_status status, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void clear_error();

}  // namespace lb
