// Small float kernels of the decoder that are not matrix products: RMSNorm, RoPE, SwiGLU, and the
// vector primitives of attention over fp32 / fp16 / int8 cache rows. Picked once per session: AVX2
// (+FMA, F16C) when the active ISA path allows it, portable scalar otherwise.
#pragma once
#include <cstdint>

namespace lb {
namespace llm {

struct VecOps {
  const char* isa;  ///< "avx2" or "scalar"
  float (*dot_f32)(const float* a, const float* b, int n);
  float (*dot_f16)(const float* a, const uint16_t* b, int n);
  float (*dot_i8)(const float* a, const int8_t* b, int n);
  void (*axpy_f32)(float alpha, const float* x, float* y, int n);  ///< y += alpha x
  void (*axpy_f16)(float alpha, const uint16_t* x, float* y, int n);
  void (*axpy_i8)(float alpha, const int8_t* x, float* y, int n);
  void (*f32_to_f16)(const float* x, uint16_t* y, int n);
  // Attention over `cnt` consecutive cache rows (stride d) for g query heads sharing one KV head.
  /// s[j * g + gi] = scale * (q_gi . k_j), q [g][d].
  void (*scores_f32)(const float* q, int g, const float* k, int cnt, int d, float scale, float* s);
  void (*scores_f16)(const float* q, int g, const uint16_t* k, int cnt, int d, float scale, float* s);
  /// int8 rows with one scale per row and group of `group` channels: ksc [cnt][d / group].
  void (*scores_i8)(const float* q, int g, const int8_t* k, const float* ksc, int group, int cnt, int d, float scale,
                    float* s);
  /// Per head gi: s[j * g + gi] = exp(s[j * g + gi] - max_j s[. * g + gi]); sum[gi] = their sum.
  void (*softmax_cols)(float* s, int cnt, int g, float* sum);
  /// out[gi][:] = inv_sum[gi] * sum_j p[j * g + gi] v_j (overwrites out [g][d]).
  void (*wsum_f32)(const float* p, int g, const float* v, int cnt, int d, const float* inv_sum, float* out);
  void (*wsum_f16)(const float* p, int g, const uint16_t* v, int cnt, int d, const float* inv_sum, float* out);
  void (*wsum_i8)(const float* p, int g, const int8_t* v, const float* vsc, int group, int cnt, int d,
                  const float* inv_sum, float* out);
  /// out[i] = silu(gate[i]) * up[i].
  void (*swiglu)(const float* gate, const float* up, int n, float* out);
  /// x += res (skipped when res is null), then y = x / rms(x) * w over n channels: the residual
  /// add and the next RMSNorm in one pass. The sum of squares is taken in double in a fixed
  /// order (8 partial sums, lane i % 8), so every ISA gives the same bits.
  void (*add_rms_norm)(float* x, const float* res, const float* w, float eps, int n, float* y);
  /// Rotate-half RoPE in place on `heads` heads of `d` channels with the position's cos / sin
  /// table (rope_table: d / 2 entries each).
  void (*rope)(float* x, int heads, int d, const float* cs, const float* sn);
};

/// The best VecOps for the active ISA path (lb_isa_active()).
const VecOps& vec_ops();
/// The portable scalar VecOps (tests compare the SIMD ones with it).
const VecOps& vec_ops_scalar();

uint16_t f32_to_f16_scalar(float f);
float f16_to_f32_scalar(uint16_t h);

/// y = x / rms(x) * w over n channels.
void rms_norm(const float* x, const float* w, float eps, int n, float* y);
/// Rotate-half RoPE in place on `heads` heads of `d` channels at position `pos`.
void rope_apply(float* x, int heads, int d, int pos, const float* inv_freq, float scale);
/// cos / sin of position `pos` for the d / 2 frequencies, times `scale` (what rope_apply uses;
/// the same for every layer, so the decoder computes it once per token).
void rope_table(int pos, int d, const float* inv_freq, float scale, float* cs, float* sn);
/// out[i] = silu(gate[i]) * up[i].
void swiglu(const float* gate, const float* up, int n, float* out);

}  // namespace llm
}  // namespace lb
