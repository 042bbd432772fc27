"""Activation statistics from calibration data, collected by running the float graph in ONNX
Runtime with the activations of interest exposed as outputs.

Per tensor: min/max, a random sample of values (for percentile and MSE-optimal ranges), the
per-channel absolute maximum (for ``--smooth``) and, when asked, the input Hessian ``2 X^T X / n``
of a MatMul or group-1 Conv (for GPTQ, k-means weighting and mixed precision).
Ranges are asymmetric int8 with a zero point (uint8-style ranges shifted to int8).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from lowbit import LowbitError
from lowbit.ir import ActQuant, Graph, Node

SAMPLE_PER_BATCH = 4096
SAMPLE_MAX = 1 << 17
HESSIAN_ROWS_PER_BATCH = 4096
DW_HESSIAN_POSITIONS = 1024  # per calibration batch: a depthwise channel's Hessian is only kh*kw square


@dataclass
class TensorStats:
    channel_axis: int
    lo: float = np.inf
    hi: float = -np.inf
    samples: List[np.ndarray] = field(default_factory=list)
    chanmax: Optional[np.ndarray] = None
    hsum: Optional[np.ndarray] = None
    hcount: int = 0
    chansum: Optional[np.ndarray] = None  # per-channel sum (for bias correction)
    chancount: int = 0
    # depthwise convs: one Hessian per channel, [C, kh*kw, kh*kw] (sum of patch outer products)
    dwh_sum: Optional[np.ndarray] = None
    dwh_count: int = 0

    @property
    def chanmean(self) -> Optional[np.ndarray]:
        return None if self.chansum is None else self.chansum / max(self.chancount, 1)

    def sample(self) -> np.ndarray:
        s = np.concatenate(self.samples) if self.samples else np.zeros(1, np.float32)
        return s

    @property
    def hessian(self) -> Optional[np.ndarray]:
        return None if self.hsum is None else (2.0 * self.hsum / max(self.hcount, 1))

    @property
    def dw_hessian(self) -> Optional[np.ndarray]:
        """Per-channel Hessians [C, kh*kw, kh*kw] of a depthwise conv's input (2 X_c^T X_c / n)."""
        return None if self.dwh_sum is None else (2.0 * self.dwh_sum / max(self.dwh_count, 1))


def progress(iterable, desc: str, total: Optional[int] = None, enabled: bool = True):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def is_depthwise(node: Node, graph: Graph) -> bool:
    """A Conv with one input channel per group and one output channel per group (weight [C, 1, kh, kw])."""
    if node.op != "Conv":
        return False
    w = graph.initializers.get(node.inputs[1])
    shape = getattr(w, "orig_shape", None) or getattr(w, "shape", ())
    grp = node.attrs.get("group", 1)
    return len(shape) == 4 and grp > 1 and shape[1] == 1 and shape[0] == grp


def _patches(x: np.ndarray, node: Node, graph: Graph, rng=None, limit: int = 0) -> np.ndarray:
    """im2col of a Conv's input at (at most ``limit`` random) output positions: [N, P, C, kh*kw]."""
    from lowbit import refexec  # noqa: PLC0415

    w = graph.initializers[node.inputs[1]]
    wshape = getattr(w, "orig_shape", None) or w.shape
    k, strides, dil, pads = refexec.conv_params(node, x.shape, wshape)
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - (k[0] - 1) * dil[0] - 1) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - (k[1] - 1) * dil[1] - 1) // strides[1] + 1
    pos = np.arange(oh * ow) if not limit or oh * ow <= limit else np.sort(rng.choice(oh * ow, limit, replace=False))
    ys, xs = (pos // ow) * strides[0], (pos % ow) * strides[1]
    taps = [xp[:, :, ys + i * dil[0], xs + j * dil[1]] for i in range(k[0]) for j in range(k[1])]  # [N, C, P] each
    return np.stack(taps, axis=-1).transpose(0, 2, 1, 3)  # [N, P, C, kh*kw]


def _dw_patches(x: np.ndarray, node: Node, graph: Graph, rng, limit: int) -> np.ndarray:
    """Per-channel patches of a depthwise conv's input: [C, N*P, kh*kw]."""
    p = _patches(x, node, graph, rng, limit)
    n, npos, c, kk = p.shape
    return np.ascontiguousarray(p.transpose(2, 0, 1, 3)).reshape(c, n * npos, kk)


def _rows(x: np.ndarray, node: Node, graph: Graph, rng=None, limit: int = 0) -> np.ndarray:
    """The rows of the layer's reduction input: [M, K] for MatMul, im2col rows for a Conv (at
    most ``limit`` random output positions per image when ``limit``), K ordered (C, kh, kw)."""
    if node.op == "Conv":
        p = _patches(x, node, graph, rng, limit)
        return np.ascontiguousarray(p).reshape(-1, p.shape[2] * p.shape[3])
    return x.reshape(-1, x.shape[-1])


def collect(graph: Graph, feeds: List[Dict[str, np.ndarray]], nodes: List[Node], *,
            want_hessian: Optional[set] = None, want_chanmax: bool = False,
            transforms: Optional[Dict[str, np.ndarray]] = None, show_progress: bool = True,
            seed: int = 0) -> Dict[str, TensorStats]:
    """Statistics of the activation input (input 0) of each node, keyed by tensor name.
    ``transforms[tensor]`` is a smoothing divisor applied (on the channel axis) before statistics."""
    from lowbit.exporters.onnx_writer import ort_session  # noqa: PLC0415

    want_hessian = want_hessian or set()
    transforms = transforms or {}
    by_tensor: Dict[str, Node] = {}
    for n in nodes:
        by_tensor.setdefault(n.inputs[0], n)
    graph_inputs = {t.name for t in graph.inputs}
    extra = [t for t in by_tensor if t not in graph_inputs]
    stats = {t: TensorStats(1 if n.op in ("Conv", "ConvTranspose") else -1) for t, n in by_tensor.items()}
    if not feeds:
        raise LowbitError("this scheme needs calibration data (calib=... / --calib PATH)")
    sess = ort_session(graph, threads=2, extra_outputs=extra)
    rng = np.random.default_rng(seed)
    pending: Dict[str, List[np.ndarray]] = {}
    from lowbit.quant.gptq import _one_blas_thread  # noqa: PLC0415

    with _one_blas_thread():  # many small GEMMs: multi-threaded BLAS only spins on a shared machine
        _collect_loop(sess, feeds, stats, by_tensor, graph, transforms, want_hessian, pending, rng, show_progress)
        for t, rows in pending.items():
            _flush(stats[t], rows)
    return stats


def _collect_loop(sess, feeds, stats, by_tensor, graph, transforms, want_hessian, pending, rng, show_progress):
    out_names = [o.name for o in sess.get_outputs()]
    for feed in progress(feeds, "calibrating", len(feeds), show_progress):
        res = dict(zip(out_names, sess.run(None, feed)))
        res.update({k: v for k, v in feed.items() if k in stats})
        for t, st in stats.items():
            x = np.asarray(res[t], np.float32)
            if t in transforms:
                shape = [1] * x.ndim
                shape[st.channel_axis] = -1
                x = x / transforms[t].reshape(shape)
            st.lo = min(st.lo, float(x.min()))
            st.hi = max(st.hi, float(x.max()))
            flat = x.reshape(-1)
            st.samples.append(flat if flat.size <= SAMPLE_PER_BATCH else
                              flat[rng.choice(flat.size, SAMPLE_PER_BATCH, replace=False)])
            if sum(s.size for s in st.samples) > SAMPLE_MAX:
                allv = np.concatenate(st.samples)
                st.samples = [allv[rng.choice(allv.size, SAMPLE_MAX // 2, replace=False)]]
            ax = st.channel_axis % x.ndim
            red = tuple(i for i in range(x.ndim) if i != ax)
            if True:  # per-channel |max|: smoothing factors and the outlier ratio in the report
                cm = np.abs(x).max(axis=red)
                st.chanmax = cm if st.chanmax is None else np.maximum(st.chanmax, cm)
            cs = x.sum(axis=red, dtype=np.float64)
            st.chansum = cs if st.chansum is None else st.chansum + cs
            st.chancount += x.size // x.shape[ax]
            if t in want_hessian and is_depthwise(by_tensor[t], graph):
                p = _dw_patches(x, by_tensor[t], graph, rng, DW_HESSIAN_POSITIONS // x.shape[0])
                hs = np.matmul(p.transpose(0, 2, 1), p).astype(np.float64)  # float32 GEMMs, summed in float64
                st.dwh_sum = hs if st.dwh_sum is None else st.dwh_sum + hs
                st.dwh_count += p.shape[1]
            elif t in want_hessian:
                rows = _rows(x, by_tensor[t], graph, rng, HESSIAN_ROWS_PER_BATCH // x.shape[0])
                if rows.shape[0] > HESSIAN_ROWS_PER_BATCH:
                    rows = rows[rng.choice(rows.shape[0], HESSIAN_ROWS_PER_BATCH, replace=False)]
                pending.setdefault(t, []).append(rows)
                if sum(r.shape[0] for r in pending[t]) >= HESSIAN_ROWS_PER_BATCH:
                    _flush(st, pending.pop(t))


def _flush(st: TensorStats, rows: List[np.ndarray]) -> None:
    """Add X^T X of the buffered rows (one large float32 GEMM, accumulated in float64)."""
    x = np.concatenate(rows).astype(np.float32)
    hs = (x.T @ x).astype(np.float64)
    st.hsum = hs if st.hsum is None else st.hsum + hs
    st.hcount += x.shape[0]


def _qdq_error(x: np.ndarray, lo: float, hi: float) -> float:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / 255.0, 1e-12)
    zp = np.clip(np.round(-128 - lo / scale), -128, 127)
    q = np.clip(np.round(x / scale) + zp, -128, 127)
    return float(np.mean(((q - zp) * scale - x) ** 2))


def act_range(st: TensorStats, method: str = "minmax", percentile: float = 99.99) -> tuple:
    """(lo, hi) of the activation range by ``method``: minmax, percentile or mse."""
    if method == "minmax":
        return st.lo, st.hi
    s = st.sample()
    if method == "percentile":
        return float(np.percentile(s, 100 - percentile)), float(np.percentile(s, percentile))
    if method == "mse":
        best, best_err = (st.lo, st.hi), None
        for r in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3):
            lo, hi = st.lo * r, st.hi * r
            e = _qdq_error(s, lo, hi)
            if best_err is None or e < best_err - 1e-15:
                best, best_err = (lo, hi), e
        return best
    raise LowbitError(f"unknown calibration method {method!r} (minmax, percentile, mse)")


def static_act_quant(lo: float, hi: float, smooth: Optional[np.ndarray] = None) -> ActQuant:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return ActQuant("static", 8, float(np.float32(scale)), zp, "tensor", 0, smooth)


def on_grid(st: TensorStats, aq: ActQuant, tol: float = 1e-3) -> bool:
    """Whether every sampled value of a tensor is exactly representable by the static quantizer
    ``aq`` (e.g. 8-bit pixels mapped by a fixed affine preprocessing): then quantizing it is lossless."""
    if aq.mode != "static" or aq.smooth is not None or not st.samples:
        return False
    v = st.sample().astype(np.float64) / aq.scale
    return bool(np.all(np.abs(v - np.round(v)) <= tol) and
                np.round(v).min() + aq.zero_point >= -128 and np.round(v).max() + aq.zero_point <= 127)


def grid_act_quant(st: TensorStats, tol: float = 1e-3) -> Optional[ActQuant]:
    """A static int8 quantizer whose grid holds every sampled value exactly, if the values lie on one
    grid of at most 256 points that includes 0 (8-bit pixels through an affine map that does not span
    all 256 levels in the calibration data, so min/max ranges miss the grid); else None."""
    v = np.unique(st.sample().astype(np.float64))
    if v.size < 2 or v.size > 256:
        return None
    step = float(np.diff(v).min())
    if step <= 0 or not np.all(np.abs(v / step - np.round(v / step)) <= tol):
        return None
    lo, hi = min(int(np.round(v[0] / step)), 0), max(int(np.round(v[-1] / step)), 0)
    if hi - lo > 255:
        return None
    aq = ActQuant("static", 8, float(np.float32(step)), -128 - lo, "tensor", 0, None)
    return aq if on_grid(st, aq, tol) else None
