// qlinear: activation quantization, kernel choice and the thread split of one quantized matmul.
#include "qlinear.h"

#include <algorithm>
#include <cstring>

#include "dispatch.h"
#include "error.h"
#include "mm_gtile.h"
#include "mm_layout.h"

namespace lb {
namespace {

constexpr size_t kAlign = 64;
inline size_t align_up(size_t v) { return (v + kAlign - 1) & ~(kAlign - 1); }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Scratch layout of one call (offsets from the 64-byte aligned base).
struct Plan {
  size_t xq = 0, xm = 0, xs = 0, xu = 0, xt = 0, xg = 0, xgm = 0, total = 0;
  bool flip = false;  // xu: the activations as u8 (xq ^ 0x80) for the AVX2 GEMMs that read them (lb_mm_args::xu)
  int64_t ldu = 0;    // bytes from one xu row to the next
  bool tiles = false;  // xt: the activations in the VNNI w8a8 GEMM's row tiles (lb_mm_args::xt)
  bool gtiles = false;  // xg / xgm: the activations in the VNNI group GEMM's row tiles (lb_mm_args::xg / xgm)
};

Plan plan(const PackedWeight& w, int64_t m, const QLinearOpts& o) {
  Plan p;
  if (o.act == LB_ACT_FLOAT) {
    p.xs = 0;
    p.total = align_up(size_t(m) * size_t(w.k / w.group) * sizeof(float));
  } else {
    p.xq = 0;
    p.xm = align_up(size_t(m) * size_t(w.kp));
    p.total = p.xm + align_up(size_t(m) * size_t(w.kp / w.group) * sizeof(lb_q8_meta));
    // gemm_q7 reads rows kp apart; the w4a8 / t2a8 GEMM (lb::avx2::ugemm) reads 6 rows at a time,
    // which at kp = 4096 would share one L1 set: their rows are padded by 64 bytes.
    const bool q7 = w.fmt == LB_WFMT_Q8 && w.code_bits == 7;
    const bool unp = w.fmt == LB_WFMT_Q4 || w.fmt == LB_WFMT_Q4A || w.fmt == LB_WFMT_T2;
    p.flip = (q7 || unp) && m > 1;
    if (p.flip) {
      p.ldu = q7 ? w.kp : w.kp + 64;
      p.xu = p.total;
      p.total += align_up(size_t(m) * size_t(p.ldu));
    }
    p.tiles = w.fmt == LB_WFMT_Q8 && m > 1;
    if (p.tiles) {
      p.xt = p.total;
      p.total += align_up(size_t(layout::round_up(m, layout::kQ8TileRows)) * size_t(w.kp));
    }
    p.gtiles = w.fmt != LB_WFMT_Q8 && m > 1;
    if (p.gtiles) {
      p.xg = p.total;
      p.xgm = p.xg + align_up(size_t(layout::group_tile_bytes(m, w.kp)));
      p.total = p.xgm + align_up(size_t(layout::group_tile_meta_bytes(m, w.kp / w.group)));
    }
  }
  p.total += kAlign;  // room to align the caller's pointer
  return p;
}

/// u[i] = q[i] ^ 0x80 (= q + 128 as u8) for n bytes, n a multiple of 8.
void flip_row(const int8_t* q, uint8_t* u, int64_t n) {
  for (int64_t i = 0; i < n; i += 8) {
    uint64_t v;
    std::memcpy(&v, q + i, 8);
    v ^= 0x8080808080808080ull;
    std::memcpy(u + i, &v, 8);
  }
}

/// Rows of activations quantized per task (quantization is cheap; a task should be worth a wakeup).
constexpr int64_t kQuantRowsPerTask = 8;
static_assert(kQuantRowsPerTask % layout::kGroupTileRows == 0, "a quantization task lays out whole group tiles");
constexpr int64_t kGemvGrain = 2;  // the GEMV's smallest chunk, in panels (more than one: >= 2 tasks)
/// GEMM: rows per task when m is split (a multiple of every kernel's row tile).
constexpr int64_t kGemmRowsPerTask = 48;
/// GEMM row split (below): a weight of at most this many codes (kp x n: int8 bytes, twice the
/// bytes of the nibble formats) is read whole by every thread, and each thread needs at least
/// this many rows.
constexpr int64_t kRowSplitWeightBytes = int64_t(4) << 20;
constexpr int64_t kRowSplitMinRows = 24;
/// Tall GEMMs (convs through qlinear: M = OH x OW) get a multiple of the thread count of tasks of
/// at most about this many rows, so a descheduled thread's share can be taken over in pieces.
constexpr int64_t kRowSplitTaskRows = 256;
/// Row boundaries of the row split: m * i / tasks rounded to a multiple of this. Near the even
/// cut on purpose: the graph ops' row chunks (parallel_ranges, affine) cut there too, so each
/// thread reads the rows it wrote itself (MiniLM 2 threads: 5.4 ms with boundaries on the q8 tile's
/// 12 rows, 5.0 ms on 4; in the stretches without a shared L3 7.6 vs 6.9 ms).
constexpr int64_t kRowSplitAlign = 4;

/// True when every Q8 code lies in [-LB_Q8_W7_MAX, LB_Q8_W7_MAX] (the 7-bit property). Checks
/// 4 KiB at a time and stops at the first chunk with a larger code: an 8-bit weight (each row's
/// largest code is +-127) costs a few rows, a 7-bit one one read of its codes.
bool q8_codes_fit_7bit(const uint8_t* codes, size_t bytes) {
  constexpr size_t kChunk = 4096;
  for (size_t i = 0; i < bytes; i += kChunk) {
    const size_t e = std::min(bytes, i + kChunk);
    uint8_t bad = 0;
    for (size_t j = i; j < e; ++j) bad |= uint8_t(uint8_t(codes[j] + LB_Q8_W7_MAX) > 2 * LB_Q8_W7_MAX);
    if (bad) return false;
  }
  return true;
}

}  // namespace

lb_status packed_weight_init(lb_wfmt fmt, int64_t n, int64_t k, int32_t group, const void* data, size_t bytes,
                             PackedWeight* out) {
  if (!out || !data) return set_error(LB_ERR_INVALID_ARG, "packed_weight_init: null data or output");
  if (fmt < LB_WFMT_Q8 || fmt > LB_WFMT_T2) return set_error(LB_ERR_INVALID_ARG, "packed weight: unknown format %d", int(fmt));
  if (fmt == LB_WFMT_Q8 && group != k)
    return set_error(LB_ERR_INVALID_ARG, "packed weight: int8 weights are per channel (group %d != k %lld)", group,
                     (long long)k);
  const uint64_t need = lb_wfmt_packed_bytes(fmt, n, k, group);
  if (!need)
    return set_error(LB_ERR_INVALID_ARG, "packed weight: format %d cannot hold [%lld, %lld] with group %d", int(fmt),
                     (long long)n, (long long)k, group);
  if (need != bytes)
    return set_error(LB_ERR_FORMAT, "packed weight [%lld, %lld] format %d group %d: %zu bytes, expected %llu",
                     (long long)n, (long long)k, int(fmt), group, bytes, (unsigned long long)need);
  PackedWeight w;
  w.fmt = fmt;
  w.n = n;
  w.k = k;
  w.group = group;
  w.data = static_cast<const uint8_t*>(data);
  w.kp = fmt == LB_WFMT_Q8 ? ceil_div(k, LB_KBLOCK) * LB_KBLOCK : k;
  if (fmt == LB_WFMT_Q8) {
    w.group = int32_t(w.kp);  // one activation block per row
    const int64_t npad = ceil_div(n, LB_PANEL_ROWS) * LB_PANEL_ROWS;
    if (reinterpret_cast<uintptr_t>(data) % 4)
      return set_error(LB_ERR_INVALID_ARG, "packed weight: int8 weights must be 4-byte aligned");
    w.row_scale = reinterpret_cast<const float*>(w.data + npad * w.kp);
    w.row_sum = reinterpret_cast<const int32_t*>(w.data + npad * w.kp + npad * 4);
    w.code_bits = q8_codes_fit_7bit(w.data, size_t(npad * w.kp)) ? 7 : 8;
  } else if (fmt == LB_WFMT_C4) {
    w.lut = reinterpret_cast<const int8_t*>(w.data + bytes - sizeof(lb_c4_lut));
  }
  *out = w;
  return LB_OK;
}

size_t qlinear_scratch_bytes(const PackedWeight& w, int64_t m, const QLinearOpts& opts) {
  if (m <= 0 || !w.data) return 0;
  return plan(w, m, opts).total;
}

lb_status qlinear_with(const KernelTable& t, const PackedWeight& w, const float* x, int64_t m, const float* bias,
                       float* y, const QLinearOpts& o, ThreadPool* pool, void* scratch, size_t scratch_bytes,
                       QLinearInfo* info) {
  if (!w.data || !w.kp) return set_error(LB_ERR_INVALID_ARG, "qlinear: weight not initialised (packed_weight_init)");
  if (!x || !y || m <= 0) return set_error(LB_ERR_INVALID_ARG, "qlinear: null input/output or m <= 0");
  // At M = 1 the activations are quantized on the caller and the GEMV is the call's only parallel
  // job: wake a sleeping worker now, so that its wake-up (30-40 us on this VM) overlaps the
  // quantization instead of following it (docs/kernels.md, session 14).
  if (m == 1 && pool && ceil_div(w.n, LB_PANEL_ROWS) > kGemvGrain) pool->wake();
  const int64_t ldx = o.ldx ? o.ldx : w.k, ldy = o.ldy ? o.ldy : w.n;
  if (ldx < w.k || ldy < w.n) return set_error(LB_ERR_INVALID_ARG, "qlinear: row stride smaller than the row");
  const Plan p = plan(w, m, o);
  if (!scratch || scratch_bytes < p.total)
    return set_error(LB_ERR_INVALID_ARG, "qlinear: scratch of %zu bytes, need %zu (qlinear_scratch_bytes)", scratch_bytes,
                     p.total);
  uint8_t* base = reinterpret_cast<uint8_t*>(align_up(reinterpret_cast<uintptr_t>(scratch)));

  // Which kernels: (GEMV, GEMM) of the format and activation mode.
  const KernelRef<lb_mm_t>* gemv = nullptr;
  const KernelRef<lb_mm_t>* gemm = nullptr;
  const bool float_act = o.act == LB_ACT_FLOAT;
  switch (w.fmt) {
    case LB_WFMT_Q8:
      if (!float_act) gemv = &t.gemv_q8, gemm = w.code_bits == 7 ? &t.gemm_q7 : &t.gemm_q8;
      break;
    case LB_WFMT_Q4:
    case LB_WFMT_Q4A:
      if (float_act) gemv = &t.gemv_q4f, gemm = &t.gemm_q4f;
      else if (o.act != LB_ACT_STATIC) gemv = &t.gemv_q4, gemm = &t.gemm_q4;
      break;
    case LB_WFMT_C4:
      if (!float_act && o.act != LB_ACT_STATIC) gemv = &t.gemv_c4, gemm = &t.gemm_c4;
      break;
    case LB_WFMT_T2:
      if (!float_act && o.act != LB_ACT_STATIC) gemv = &t.gemv_t2, gemm = &t.gemm_t2;
      break;
    default: break;
  }
  if (!gemv)
    return set_error(LB_ERR_UNSUPPORTED, "qlinear: no kernel for weight format %d with activation mode %d "
                     "(static activations need int8 weights; float activations need int4 weights)", int(w.fmt), int(o.act));
  if (o.act == LB_ACT_STATIC && !(o.act_scale > 0.f))
    return set_error(LB_ERR_INVALID_ARG, "qlinear: static activations need act_scale > 0");
  if (o.act == LB_ACT_STATIC && (o.act_zero < -128 || o.act_zero > 127))
    return set_error(LB_ERR_INVALID_ARG, "qlinear: static zero point %d outside [-128, 127]", o.act_zero);
  const KernelRef<lb_mm_t>& kern = m == 1 ? *gemv : *gemm;

  const int threads = pool ? pool->size() : 1;
  const int64_t ng = w.kp / w.group;  // activation blocks per row

  lb_mm_args a = mm_args(w);
  a.bias = bias;
  a.y = y;
  a.ldy = ldy;

  // The row split of a GEMM with a small weight (MiniLM's linears: 0.15-0.6 MB) on a few
  // threads: each task quantizes its own rows and runs them over every column, so no thread reads
  // activations another one wrote, and quantization, GEMM and epilogue are one job (one closing
  // barrier instead of two or three). Split over columns, every thread reads every row that the
  // others quantized: on this 2-core Zen 4 VM, in stretches when its two vCPUs do not share an L3
  // (the host moves them), that doubled a MiniLM linear's 2-thread time (docs/kernels.md, session 10).
  // Each task reads the whole weight (from L2 / L3: at >= 24 rows a weight byte feeds >= 48 ops).
  const int64_t row_tasks =
      threads > 1 && m > 1 && !float_act && w.kp * w.n <= kRowSplitWeightBytes
          ? std::min<int64_t>(threads * std::max<int64_t>(1, m / (threads * kRowSplitTaskRows)), m / kRowSplitMinRows)
          : 0;
  const bool row_split = row_tasks >= 2;
  // Activation quantization of rows [r0, r1) (int8 modes).
  int8_t* xq = reinterpret_cast<int8_t*>(base + p.xq);
  lb_q8_meta* xm = reinterpret_cast<lb_q8_meta*>(base + p.xm);
  uint8_t* xu = p.flip && kern.isa == LB_ISA_AVX2 ? base + p.xu : nullptr;  // only the AVX2 GEMMs read it
  // only the VNNI w8a8 GEMM reads xt, and only its column tasks on several threads share it: the row split's tasks
  // quantize their own rows, and one thread's single call tiles its rows itself (small chunks stay in L1 there)
  uint8_t* xt = p.tiles && kern.isa == LB_ISA_AVX512VNNI && threads > 1 && !row_split ? base + p.xt : nullptr;
  // the same for the VNNI group GEMM's tiles: its column tasks otherwise each lay out every row
  const bool gtiles = p.gtiles && kern.isa == LB_ISA_AVX512VNNI && threads > 1 && !row_split;
  int8_t* xg = gtiles ? reinterpret_cast<int8_t*>(base + p.xg) : nullptr;
  layout::GroupTileMeta* xgm = gtiles ? reinterpret_cast<layout::GroupTileMeta*>(base + p.xgm) : nullptr;
  const int goff = layout::group_tile_offset(w.fmt);
  lb_quant_args qa{};
  qa.k = w.k;
  qa.kp = w.kp;
  qa.block = w.group;
  qa.per_row = w.fmt == LB_WFMT_Q8 || o.act == LB_ACT_DYNAMIC_ROW;
  qa.mul = o.act_mul;
  qa.is_static = o.act == LB_ACT_STATIC;
  qa.static_scale = o.act_scale;
  qa.static_zero = o.act_zero;
  auto quant_rows = [&](int64_t r0, int64_t r1) {
    lb_quant_args qr = qa;
    for (int64_t r = r0; r < r1; ++r) {
      qr.x = x + r * ldx;
      t.quant_q8.fn(&qr, xq + r * w.kp, xm + r * ng);
      if (xu) flip_row(xq + r * w.kp, xu + r * p.ldu, w.kp);
      if (xt) layout::q8_tile_row(xq + r * w.kp, r, w.kp, xt);
    }
    // r0 is on a tile boundary here (quantization tasks are whole tiles of rows)
    if (xg) layout::group_tiles(xq, xm, w.kp, ng, goff, r0, r1, xg + r0 * w.kp, xgm + r0 / layout::kGroupTileRows * ng);
  };

  // 1. Activations, once per call, shared by every thread (the row split: per task, below).
  if (float_act) {
    if (ldx != w.k) return set_error(LB_ERR_INVALID_ARG, "qlinear: float activations must be contiguous (ldx == k)");
    float* xs = reinterpret_cast<float*>(base + p.xs);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t g = 0; g < ng; ++g) {
        const float* xg = x + r * ldx + g * w.group;
        float s = 0.f;
        for (int32_t j = 0; j < w.group; ++j) s += xg[j];
        xs[r * ng + g] = s;
      }
    a.xf = x;
    a.xs = xs;
  } else {
    if (!row_split)
      parallel_for(pool, ceil_div(m, kQuantRowsPerTask), [&](int64_t task, int) {
        quant_rows(task * kQuantRowsPerTask, std::min(m, (task + 1) * kQuantRowsPerTask));
      });
    a.xq = xq;
    a.xm = xm;
    a.xu = xu;
    a.ldu = p.ldu;
    a.xt = xt;
    a.xg = xg;
    a.xgm = xgm;
    a.act_zero = qa.is_static ? o.act_zero : 0;
  }

  // 2. The output split: contiguous panel ranges (and row ranges for tall GEMMs). Every output
  // element is computed whole by one kernel call, so the split never changes a result bit.
  const int64_t panels = ceil_div(w.n, LB_PANEL_ROWS);
  lb_mm_t* fn = kern.fn;
  if (m == 1) {  // the GEMV: guided chunks, so the threads finish together (threadpool.h)
    const int64_t tasks = parallel_guided(pool, panels, kGemvGrain, [&](int, int64_t p0, int64_t p1) {
      fn(&a, 0, 1, p0 * LB_PANEL_ROWS, std::min(w.n, p1 * LB_PANEL_ROWS));
    });
    if (o.post) o.post(o.post_ctx, y, ldy, w.n, 0, 1);
    if (info) *info = QLinearInfo{kern.name, kern.isa, float_act ? "" : t.quant_q8.name, threads, tasks};
    return LB_OK;
  }
  if (row_split) {  // row_tasks contiguous row ranges, boundaries on multiples of kRowSplitAlign
    auto bound = [&](int64_t i) {
      if (i >= row_tasks) return m;
      const int64_t b = (m * i / row_tasks + kRowSplitAlign / 2) / kRowSplitAlign * kRowSplitAlign;
      return std::min(m, b);
    };
    parallel_for_affine(pool, row_tasks, [&](int64_t task, int) {
      const int64_t m0 = bound(task), m1 = bound(task + 1);
      if (m0 >= m1) return;
      quant_rows(m0, m1);
      fn(&a, m0, m1, 0, w.n);
      if (o.post) o.post(o.post_ctx, y, ldy, w.n, m0, m1);
    });
    if (info) *info = QLinearInfo{kern.name, kern.isa, t.quant_q8.name, threads, row_tasks};
    return LB_OK;
  }
  int64_t m_tasks = 1;
  if (m > 1 && threads > 1 && panels < 8 * threads) m_tasks = ceil_div(m, kGemmRowsPerTask);
  const int64_t want_n_tasks = threads == 1 ? 1 : std::max<int64_t>(1, (8 * threads + m_tasks - 1) / m_tasks);
  const int64_t n_tasks = std::min(panels, want_n_tasks);
  int64_t panels_per_task = ceil_div(panels, n_tasks);
  if (m > 1 && n_tasks > 1) panels_per_task += panels_per_task & 1;  // GEMM tiles are 16 columns wide
  const int64_t n_chunks = ceil_div(panels, panels_per_task);
  const int64_t rows_per_task = ceil_div(m, m_tasks);
  parallel_for(pool, n_chunks * m_tasks, [&](int64_t task, int) {
    const int64_t nc = task % n_chunks, mc = task / n_chunks;
    const int64_t n0 = nc * panels_per_task * LB_PANEL_ROWS;
    const int64_t n1 = std::min(w.n, (nc + 1) * panels_per_task * LB_PANEL_ROWS);
    const int64_t m0 = mc * rows_per_task, m1 = std::min(m, (mc + 1) * rows_per_task);
    if (n0 < n1 && m0 < m1) fn(&a, m0, m1, n0, n1);
  });
  if (o.post)
    parallel_for(pool, ceil_div(m, kQuantRowsPerTask), [&](int64_t task, int) {
      o.post(o.post_ctx, y, ldy, w.n, task * kQuantRowsPerTask, std::min(m, (task + 1) * kQuantRowsPerTask));
    });

  if (info) {
    info->kernel = kern.name;
    info->isa = kern.isa;
    info->quant = float_act ? "" : t.quant_q8.name;
    info->threads = threads;
    info->tasks = n_chunks * m_tasks;
  }
  return LB_OK;
}

lb_status qlinear(const PackedWeight& w, const float* x, int64_t m, const float* bias, float* y,
                  const QLinearOpts& opts, ThreadPool* pool, void* scratch, size_t scratch_bytes, QLinearInfo* info) {
  if (dispatch_status() != LB_OK) return LB_ERR_ISA;
  return qlinear_with(kernels(), w, x, m, bias, y, opts, pool, scratch, scratch_bytes, info);
}

}  // namespace lb
