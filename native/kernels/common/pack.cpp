// The C++ weight packer (see pack.h and docs/block-formats.md).
#include "pack.h"

#include <cmath>
#include <cstring>

#include "error.h"
#include "mm_layout.h"

namespace lb {

void codebook_to_lut(const float* cb, int8_t lut[16], float* lut_scale) {
  for (int e = 0; e < 8; ++e) {
    const float mul = float(1 << e);
    bool exact = true;
    for (int i = 0; i < 16 && exact; ++i) {
      const float v = cb[i] * mul;
      exact = std::fabs(v) <= 127.f && std::nearbyint(v) == v;
    }
    if (exact) {
      for (int i = 0; i < 16; ++i) lut[i] = int8_t(int(cb[i] * mul));
      *lut_scale = 1.0f / mul;
      return;
    }
  }
  float amax = 0.f;
  for (int i = 0; i < 16; ++i) amax = std::fabs(cb[i]) > amax ? std::fabs(cb[i]) : amax;
  const float inv = 127.0f / amax;  // amax > 0: an all-zero codebook is exact at e = 0
  for (int i = 0; i < 16; ++i) {
    float v = std::nearbyint(cb[i] * inv);
    v = v > 127.f ? 127.f : (v < -127.f ? -127.f : v);
    lut[i] = int8_t(int(v));
  }
  *lut_scale = amax / 127.0f;
}

namespace {

lb_status check_codes(const QuantWeightView& w, int lo, int hi) {
  const int64_t total = w.n * w.k;
  for (int64_t i = 0; i < total; ++i)
    if (w.q[i] < lo || w.q[i] > hi)
      return set_error(LB_ERR_INVALID_ARG, "pack_weight: code %d at [%lld, %lld] is outside [%d, %d] for this format",
                       int(w.q[i]), (long long)(i / w.k), (long long)(i % w.k), lo, hi);
  return LB_OK;
}

void pack_q8(const QuantWeightView& w, uint8_t* out) {
  const int64_t kp = layout::round_up(w.k, LB_KBLOCK), npad = layout::panels(w.n) * layout::kRows;
  float* scales = reinterpret_cast<float*>(out + npad * kp);
  int32_t* sums = reinterpret_cast<int32_t*>(out + npad * kp + npad * 4);
  for (int64_t n = 0; n < w.n; ++n) {
    int32_t s = 0;
    for (int64_t k = 0; k < w.k; ++k) {
      const int8_t c = w.q[n * w.k + k];
      out[layout::q8_offset(n, k, kp)] = uint8_t(c);
      s += c;
    }
    std::memcpy(&scales[n], &w.scale[n], 4);
    std::memcpy(&sums[n], &s, 4);
  }
}

void put_fp16(uint8_t* p, float v) {
  const lb_fp16 h = lb_f32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

void pack_group(const QuantWeightView& w, uint8_t* out, const int8_t* lut, float lut_scale) {
  const int64_t G = w.group, ng = w.k / G;
  const int hb = layout::header_bytes(w.fmt);
  for (int64_t n = 0; n < w.n; ++n) {
    const int r = int(n % layout::kRows);
    for (int64_t g = 0; g < ng; ++g) {
      uint8_t* blk = const_cast<uint8_t*>(layout::block(out, w.fmt, w.k, w.group, n / layout::kRows, g));
      const float s = w.scale[n * ng + g];
      put_fp16(blk + 2 * r, w.fmt == LB_WFMT_C4 ? s * lut_scale : s);
      if (w.fmt == LB_WFMT_Q4A)
        put_fp16(blk + 16 + 2 * r, w.minimum ? w.minimum[n * ng + g] : -(s * w.zero[n * ng + g]));
      for (int64_t j = 0; j < G; ++j) {
        const int c = w.q[n * w.k + g * G + j];
        size_t byte;
        int shift;
        int u;
        if (w.fmt == LB_WFMT_T2) {
          layout::t2_pos(r, j, &byte, &shift);
          u = c + 1;
        } else {
          layout::nib_pos(r, j, &byte, &shift);
          u = w.fmt == LB_WFMT_Q4 ? c + 8 : c;
        }
        blk[hb + byte] |= uint8_t(u << shift);
      }
    }
  }
  if (w.fmt == LB_WFMT_C4) {
    lb_c4_lut tail{};
    std::memcpy(tail.lut, lut, 16);
    tail.lut_scale = lut_scale;
    const size_t body = size_t(layout::panels(w.n) * ng) * lb_wfmt_block_bytes(w.fmt, w.group);
    std::memcpy(out + body, &tail, sizeof tail);
  }
}

}  // namespace

lb_status pack_weight(const QuantWeightView& w, uint8_t* out, size_t bytes) {
  if (!w.q || !w.scale || !out) return set_error(LB_ERR_INVALID_ARG, "pack_weight: null codes, scales or output");
  if (w.fmt == LB_WFMT_Q8 && w.group != w.k)
    return set_error(LB_ERR_INVALID_ARG, "pack_weight: int8 weights are per output channel (group %d != k %lld)",
                     w.group, (long long)w.k);
  const uint64_t need = lb_wfmt_packed_bytes(w.fmt, w.n, w.k, w.group);
  if (!need)
    return set_error(LB_ERR_INVALID_ARG,
                     "pack_weight: format %d cannot hold [%lld, %lld] with group %d (groups are 32, 64 or 128 and "
                     "must divide k)", int(w.fmt), (long long)w.n, (long long)w.k, w.group);
  if (bytes != need)
    return set_error(LB_ERR_INVALID_ARG, "pack_weight: output is %zu bytes, the packed weight needs %llu", bytes,
                     (unsigned long long)need);
  lb_status st = LB_OK;
  switch (w.fmt) {
    case LB_WFMT_Q8: st = check_codes(w, -127, 127); break;
    case LB_WFMT_Q4: st = check_codes(w, -8, 7); break;
    case LB_WFMT_Q4A:
      st = check_codes(w, 0, 15);
      if (st == LB_OK && !w.zero && !w.minimum)
        st = set_error(LB_ERR_INVALID_ARG, "pack_weight: int4_asym needs a zero point or a minimum");
      break;
    case LB_WFMT_C4:
      st = check_codes(w, 0, 15);
      if (st == LB_OK && !w.codebook) st = set_error(LB_ERR_INVALID_ARG, "pack_weight: codebook format without a codebook");
      break;
    case LB_WFMT_T2: st = check_codes(w, -1, 1); break;
    default: st = set_error(LB_ERR_INVALID_ARG, "pack_weight: unknown format %d", int(w.fmt));
  }
  if (st != LB_OK) return st;
  std::memset(out, 0, bytes);
  if (w.fmt == LB_WFMT_Q8) {
    pack_q8(w, out);
  } else {
    int8_t lut[16] = {};
    float lut_scale = 1.f;
    if (w.fmt == LB_WFMT_C4) codebook_to_lut(w.codebook, lut, &lut_scale);
    pack_group(w, out, lut, lut_scale);
  }
  return LB_OK;
}

}  // namespace lb
