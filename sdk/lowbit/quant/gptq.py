"""GPTQ (Frantar et al.): quantize a weight matrix column by column, spreading each column's
rounding error over the columns not yet quantized through the inverse Hessian of the layer input
(H = 2 X^T X / n from the calibration data). Damping, act-order (columns in order of decreasing
Hessian diagonal) and lazy batch updates (error applied to the rest of the matrix once per block
of columns) as in the paper. Group scales are fixed before the sweep from the original weights
("static groups"), so act-order keeps lowbit's contiguous groups along K.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from lowbit.ir import QuantWeight
from lowbit.quant import weights as wq


def _upper_cholesky_of_inverse(H: np.ndarray) -> np.ndarray:
    """Upper-triangular U with H^-1 = U^T U, from one Cholesky factorisation: with J the exchange
    matrix and J H J = L L^T, U = J L^-1 J (flipping both axes of a lower triangle makes it upper)."""
    L = np.linalg.cholesky(H[::-1, ::-1])
    try:
        from scipy.linalg import solve_triangular  # noqa: PLC0415

        Linv = solve_triangular(L, np.eye(L.shape[0]), lower=True, check_finite=False)
    except ImportError:  # pragma: no cover
        Linv = np.linalg.inv(L)
    return np.ascontiguousarray(Linv[::-1, ::-1])


def _one_blas_thread():
    """GPTQ is a long chain of small BLAS calls: one thread is faster than several, and much faster
    on a busy machine, where multi-threaded OpenBLAS spins (a 384x384 Cholesky: 10 ms vs 0.6 s)."""
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        return threadpool_limits(limits=1, user_api="blas")
    except ImportError:  # pragma: no cover
        import contextlib  # noqa: PLC0415

        return contextlib.nullcontext()


def gptq_quantize(w: np.ndarray, hessian: np.ndarray, fmt: str, group: int, **kw) -> QuantWeight:
    with _one_blas_thread():
        return _gptq(w, hessian, fmt, group, **kw)


def _gptq(w: np.ndarray, hessian: np.ndarray, fmt: str, group: int, *, damp: float = 0.01,
                  act_order: bool = True, block: int = 128, sparse_pct: float = 0.0,
                  codebook: Optional[np.ndarray] = None, int8_qmax: Optional[int] = None) -> QuantWeight:
    """``int8_qmax``: the int8 code range (None: 127; QMAX_INT8_7BIT for 7-bit weights)."""
    w = np.asarray(w, np.float32)
    qmax = (int8_qmax or wq.QMAX["int8"]) if fmt == "int8" else wq.QMAX.get(fmt, 0)
    n, k = w.shape
    g = group or k
    dense, outliers = wq.split_outliers(w, sparse_pct)
    H = np.array(hessian, np.float64, copy=True)
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    W = dense.astype(np.float64).copy()
    W[:, dead] = 0.0
    hdiag = np.diag(H).astype(np.float32)

    cb = None
    if fmt in ("nf4", "fp4", "cb4"):
        cb = codebook if codebook is not None else (wq.NF4 if fmt in ("nf4", "cb4") else wq.FP4)
        scale = wq.group_scales(W.astype(np.float32), fmt, g, hdiag, cb)
        if fmt == "cb4" and codebook is None:
            cb = wq.kmeans_codebook(W.astype(np.float32), scale, g, hdiag)
            scale = wq.group_scales(W.astype(np.float32), fmt, g, hdiag, cb)
    else:
        scale = wq.group_scales(W.astype(np.float32), fmt, g, hdiag, qmax=qmax if fmt == "int8" else None)

    perm = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(k)
    W = W[:, perm]
    H = H[perm][:, perm]
    col_scale = scale[:, perm // g].astype(np.float64)  # [N, K] scale of each (permuted) column

    H[np.diag_indices(k)] += damp * np.mean(np.diag(H))
    U = _upper_cholesky_of_inverse(H)

    Q = np.zeros((n, k), np.int8)
    lo = -qmax - 1 if qmax == 7 else -qmax
    cbs = None
    if cb is not None:
        order = np.argsort(cb)
        cbs = cb[order].astype(np.float64)
        mids = (cbs[1:] + cbs[:-1]) / 2
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        W1 = W[:, i1:i2].copy()
        E1 = np.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = W1[:, i]
            s = col_scale[:, i1 + i]
            if cb is None:
                code = np.clip(np.round(col / s), lo, qmax)
                deq = code * s
            else:
                idx = np.searchsorted(mids, col / s)
                code = order[idx]
                deq = cbs[idx] * s
            Q[:, i1 + i] = code
            err = (col - deq) / U1[i, i]
            W1[:, i:] -= np.outer(err, U1[i, i:])
            E1[:, i] = err
        W[:, i2:] -= E1 @ U[i1:i2, i2:]
    inv = np.argsort(perm)
    Q = Q[:, inv]
    qw = QuantWeight(fmt, Q, scale.astype(np.float32), g, codebook=None if cb is None else cb.astype(np.float32),
                     algo="gptq")
    qw.outliers = outliers
    qw.float_ref = w
    return qw


def gptq_per_row(w: np.ndarray, hessians: np.ndarray, *, damp: float = 0.01, act_order: bool = True,
                 qmax: int = wq.QMAX["int8"]) -> QuantWeight:
    """GPTQ for a layer whose output channels see different inputs (a depthwise conv: channel n
    reads only input channel n), so each row has its own Hessian ``hessians[n]`` [K, K]. Symmetric
    int8 per row (scale absmax / qmax), all rows at once: K is small (kh * kw)."""
    w = np.asarray(w, np.float32)
    n, k = w.shape
    if hessians.shape != (n, k, k):
        raise ValueError(f"per-row Hessians {hessians.shape} do not match the weight {w.shape}")
    with _one_blas_thread():
        scale = wq.group_scales(w, "int8", k, qmax=qmax).reshape(n).astype(np.float64)
        H = np.array(hessians, np.float64, copy=True)
        diag = np.einsum("nkk->nk", H)  # a view: writes go to H
        diag[diag <= 0] = 1.0  # dead inputs (e.g. a channel that is always 0): plain rounding
        diag += damp * diag.mean(axis=1, keepdims=True)
        perm = np.argsort(-np.einsum("nkk->nk", H), axis=1, kind="stable") if act_order else \
            np.broadcast_to(np.arange(k), (n, k))
        Hp = np.take_along_axis(np.take_along_axis(H, perm[:, :, None], axis=1), perm[:, None, :], axis=2)
        W = np.take_along_axis(w.astype(np.float64), perm, axis=1)
        L = np.linalg.cholesky(Hp[:, ::-1, ::-1])
        U = np.ascontiguousarray(np.linalg.inv(L)[:, ::-1, ::-1])  # H^-1 = U^T U, U upper
        Q = np.zeros((n, k), np.float64)
        for i in range(k):
            Q[:, i] = np.clip(np.round(W[:, i] / scale), -qmax, qmax)
            err = (W[:, i] - Q[:, i] * scale) / U[:, i, i]
            W[:, i:] -= err[:, None] * U[:, i, i:]
        codes = np.empty((n, k), np.int8)
        np.put_along_axis(codes, perm, Q.astype(np.int8), axis=1)
    qw = QuantWeight("int8", codes, scale.astype(np.float32).reshape(n, 1), k, algo="gptq")
    qw.float_ref = w
    return qw
