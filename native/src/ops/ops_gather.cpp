// gather_q8: an embedding lookup on an int8 table (the exporter stores the large constant Gather tables of
// quantized packages this way, exporters/lbpk_attn.py): out[i..., :] = scale[idx] * codes[idx, :] for each
// index of `indices` (i64 or i32, any shape, negative = from the end), codes i8 [V, E], scale f32 [V]. Only
// the looked-up rows are read and dequantized. An index outside [-V, V) gives a row of zeros (as `gather`).
#include <cstring>

#include "ops.h"
#include "vmath.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace lb {
namespace {

void dequant_row_portable(const int8_t* q, float s, float* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = s * float(q[j]);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void dequant_row_avx2(const int8_t* q, float s, float* y, int64_t n) {
  const __m256 vs = _mm256_set1_ps(s);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + j));
    _mm256_storeu_ps(y + j, _mm256_mul_ps(vs, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b))));
  }
  for (; j < n; ++j) y[j] = s * float(q[j]);  // the same product, one lane at a time
}
#endif

lb_status gather_q8_infer(OpCtx& c) {
  if (c.in.size() != 3 || !c.in[0] || !c.in[1] || !c.in[2]) {
    c.err = "needs inputs codes [V, E] (i8), scale [V] (f32) and indices";
    return LB_ERR_SHAPE;
  }
  const Tensor &q = *c.in[0], &s = *c.in[1], &ix = *c.in[2];
  if (q.dtype != DType::I8 || s.dtype != DType::F32) {
    c.err = std::string("codes must be i8 and scale f32, got ") + dtype_name(q.dtype) + " and " + dtype_name(s.dtype);
    return LB_ERR_DTYPE;
  }
  if (ix.dtype != DType::I64 && ix.dtype != DType::I32) {
    c.err = std::string("indices must be i64 or i32, got ") + dtype_name(ix.dtype);
    return LB_ERR_DTYPE;
  }
  if (q.shape.size() != 2 || s.shape.size() != 1 || s.shape[0] != q.shape[0]) {
    c.err = "codes must be [V, E] and scale [V]; got " + shape_str(q.shape) + " and " + shape_str(s.shape);
    return LB_ERR_SHAPE;
  }
  c.out[0]->dtype = DType::F32;
  c.out[0]->shape = ix.shape;
  c.out[0]->shape.push_back(q.shape[1]);
  return LB_OK;
}

void gather_q8_run(OpCtx& c) {
  const int64_t V = c.in[0]->shape[0], E = c.in[0]->shape[1], n = c.in[2]->numel();
  const int8_t* codes = static_cast<const int8_t*>(c.in[0]->data);
  const float* scale = c.in[1]->f32();
  const bool i64 = c.in[2]->dtype == DType::I64;
  float* y = c.out[0]->f32();
  const bool avx2 = vmath::use_avx2();
  for (int64_t k = 0; k < n; ++k) {
    int64_t idx = i64 ? static_cast<const int64_t*>(c.in[2]->data)[k] : static_cast<const int32_t*>(c.in[2]->data)[k];
    if (idx < 0) idx += V;
    float* row = y + k * E;
    if (idx < 0 || idx >= V) {
      std::memset(row, 0, size_t(E) * sizeof(float));
      continue;
    }
#if defined(__x86_64__)
    if (avx2) {
      dequant_row_avx2(codes + idx * E, scale[idx], row, E);
      continue;
    }
#endif
    dequant_row_portable(codes + idx * E, scale[idx], row, E);
  }
  c.isa = avx2 ? "avx2" : "scalar";
  (void)avx2;
}

}  // namespace

void register_ops_gather(std::vector<OpDef>& r) {
  r.push_back(OpDef{"gather_q8", gather_q8_infer, gather_q8_run, false});
}

}  // namespace lb
