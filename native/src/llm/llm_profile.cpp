// Op names of the decoder profiler (see llm_profile.h).
#include "llm/llm_profile.h"

namespace lb {
namespace llm {

const char* prof_op_name(int op) {
  static const char* const kNames[kOpCount] = {"embed",    "attn_norm", "qkv",     "rope",   "kv_store",
                                               "attention", "o_proj",   "residual", "ffn_norm", "gate_up",
                                               "swiglu",   "down",      "final_norm", "lm_head", "sampling"};
  return op >= 0 && op < kOpCount ? kNames[op] : "?";
}

}  // namespace llm
}  // namespace lb
