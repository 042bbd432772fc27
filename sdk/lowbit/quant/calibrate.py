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

    @property
    def chanmean(self) -> Optional[np.ndarray]:
        return None if self.chansum is None else self.chansum / max(self.chancount, 1)

    def sample(self) -> np.ndarray:
        s = np.concatenate(self.samples) if self.samples else np.zeros(1, np.float32)
        return s

    @property
    def hessian(self) -> Optional[np.ndarray]:
        return None if self.hsum is None else (2.0 * self.hsum / max(self.hcount, 1))


def progress(iterable, desc: str, total: Optional[int] = None, enabled: bool = True):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def _rows(x: np.ndarray, node: Node, graph: Graph) -> np.ndarray:
    """The rows of the layer's reduction input: [M, K] for MatMul, im2col rows for a Conv."""
    if node.op == "Conv":
        from lowbit import refexec  # noqa: PLC0415

        w = graph.initializers[node.inputs[1]]
        wshape = getattr(w, "orig_shape", None) or w.shape
        k, strides, dil, pads = refexec.conv_params(node, x.shape, wshape)
        cols = refexec._im2col(x, k, strides, dil, pads)  # [N, C, kh, kw, OH, OW]
        n, c, kh, kw, oh, ow = cols.shape
        return np.ascontiguousarray(cols.transpose(0, 4, 5, 1, 2, 3)).reshape(-1, c * kh * kw)
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
    out_names = [o.name for o in sess.get_outputs()]
    rng = np.random.default_rng(seed)
    pending: Dict[str, List[np.ndarray]] = {}
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
            if t in want_hessian:
                rows = _rows(x, by_tensor[t], graph)
                if rows.shape[0] > HESSIAN_ROWS_PER_BATCH:
                    rows = rows[rng.choice(rows.shape[0], HESSIAN_ROWS_PER_BATCH, replace=False)]
                pending.setdefault(t, []).append(rows)
                if sum(r.shape[0] for r in pending[t]) >= HESSIAN_ROWS_PER_BATCH:
                    _flush(st, pending.pop(t))
    for t, rows in pending.items():
        _flush(stats[t], rows)
    return stats


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
