"""Weight quantizers on a float ``[N, K]`` matrix -> :class:`lowbit.ir.QuantWeight`.

Round-to-nearest int8/int4 (symmetric, per channel or per group, with a small per-group clipping
search for 4 bits), NF4 / FP4 (E2M1) codebooks, a k-means codebook per tensor (``cb4``, SqueezeLLM's
idea, weighted by the Hessian diagonal when calibration data gives one), ternary absmean, and the
dense-and-sparse split (``--sparse-outliers``): the largest weights stay in fp16 in a side table.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from lowbit.ir import QuantWeight

# QLoRA's NF4 levels (quantiles of N(0, 1) normalised to [-1, 1]).
NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], np.float32)
# FP4 E2M1 magnitudes {0, 0.5, 1, 1.5, 2, 3, 4, 6} with sign, normalised to [-1, 1].
_E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], np.float32) / 6.0
FP4 = np.concatenate([_E2M1, -_E2M1]).astype(np.float32)  # index 8 is -0 (kept for a 16-entry table)

QMAX = {"int8": 127, "int4": 7, "ternary": 1}
# 7-bit int8 weights (codes in [-63, 63]): the packed bytes are ordinary int8 (Q8), but the AVX2
# GEMM can feed them to vpmaddubsw with unsigned activations exactly (lowbit_blocks.h LB_Q8_W7_MAX,
# docs/block-formats.md). Worth it on CPUs without int8 dot products (x86 without VNNI, ARM
# without dotprod): see weight_bits7_for().
QMAX_INT8_7BIT = 63
CLIP_RATIOS_4BIT = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75)


def _groups(w: np.ndarray, g: int) -> np.ndarray:
    n, k = w.shape
    return w.reshape(n, k // g, g)


def int_codes(w_g: np.ndarray, scale: np.ndarray, qmax: int) -> np.ndarray:
    """Symmetric integer codes for grouped weights [N, G, g] with scales [N, G]."""
    lo = -qmax - 1 if qmax == 7 else -qmax
    return np.clip(np.round(w_g / scale[..., None]), lo, qmax)


def codebook_codes(w_g: np.ndarray, scale: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Nearest codebook index for grouped weights [N, G, g] normalised by scales [N, G]."""
    x = w_g / scale[..., None]
    order = np.argsort(codebook)
    cb = codebook[order]
    mids = (cb[1:] + cb[:-1]) / 2
    return order[np.searchsorted(mids, x)]


def group_scales(w: np.ndarray, fmt: str, g: int, hdiag: Optional[np.ndarray] = None,
                 codebook: Optional[np.ndarray] = None, qmax: Optional[int] = None) -> np.ndarray:
    """Per-group scales [N, K/g]: absmax-based, with a clipping search for 4-bit formats
    (the ratio that minimises the (Hessian-diagonal weighted) squared error per group). ``qmax``
    overrides the int8 code range (QMAX_INT8_7BIT for 7-bit weights)."""
    wg = _groups(w, g)
    amax = np.abs(wg).max(axis=-1)
    amax = np.where(amax == 0, 1.0, amax).astype(np.float32)
    if fmt == "ternary":
        mean = np.abs(wg).mean(axis=-1)
        return np.where(mean == 0, 1.0, mean).astype(np.float32)
    if fmt == "int8":
        return (amax / float(qmax or QMAX["int8"])).astype(np.float32)
    weight = None if hdiag is None else _groups(np.broadcast_to(hdiag[None, :], w.shape), g)
    best, best_err = None, None
    for r in CLIP_RATIOS_4BIT:
        if fmt == "int4":
            s = (amax * r / 7.0).astype(np.float32)
            deq = int_codes(wg, s, 7) * s[..., None]
        else:
            s = (amax * r).astype(np.float32)
            deq = codebook[codebook_codes(wg, s, codebook)] * s[..., None]
        e = (deq - wg) ** 2
        err = (e * weight).sum(-1) if weight is not None else e.sum(-1)
        if best is None:
            best, best_err = s, err
        else:
            better = err < best_err
            best = np.where(better, s, best)
            best_err = np.where(better, err, best_err)
    return best.astype(np.float32)


def kmeans_codebook(w: np.ndarray, scale: np.ndarray, g: int, hdiag: Optional[np.ndarray] = None,
                    iters: int = 12, sample: int = 1 << 18, seed: int = 0) -> np.ndarray:
    """A 16-entry codebook for the group-normalised weights of one tensor (weighted 1-D k-means,
    initialised at the NF4 levels)."""
    x = (_groups(w, g) / scale[..., None]).reshape(-1)
    wt = np.ones_like(x) if hdiag is None else np.broadcast_to(hdiag[None, :], w.shape).reshape(-1)
    if x.size > sample:
        idx = np.random.default_rng(seed).choice(x.size, sample, replace=False)
        x, wt = x[idx], wt[idx]
    cb = NF4.astype(np.float64).copy()
    for _ in range(iters):
        order = np.argsort(cb)
        mids = (cb[order][1:] + cb[order][:-1]) / 2
        a = order[np.searchsorted(mids, x)]
        num = np.bincount(a, weights=x * wt, minlength=16)
        den = np.bincount(a, weights=wt, minlength=16)
        cb = np.where(den > 0, num / np.maximum(den, 1e-30), cb)
    return cb.astype(np.float32)


def split_outliers(w: np.ndarray, pct: float) -> Tuple[np.ndarray, Optional[Tuple[np.ndarray, np.ndarray]]]:
    """Dense-and-sparse: the ``pct`` percent largest-magnitude weights go to an fp16 side table and
    are zeroed in the dense part (so they do not stretch the scales)."""
    if not pct or pct <= 0:
        return w, None
    count = max(1, int(round(w.size * pct / 100.0)))
    flat = w.reshape(-1)
    idx = np.argpartition(np.abs(flat), flat.size - count)[flat.size - count:]
    idx = np.sort(idx).astype(np.int64)
    vals = flat[idx].astype(np.float16)
    dense = flat.copy()
    dense[idx] = 0.0
    return dense.reshape(w.shape), (idx, vals)


def quantize_rtn(w: np.ndarray, fmt: str, group: int, *, hdiag: Optional[np.ndarray] = None,
                 sparse_pct: float = 0.0, codebook: Optional[np.ndarray] = None,
                 int8_qmax: Optional[int] = None) -> QuantWeight:
    """Round-to-nearest (or nearest codebook entry) quantization of a float [N, K] matrix.
    ``int8_qmax``: int8 code range (None: 127; QMAX_INT8_7BIT for 7-bit weights)."""
    w = np.asarray(w, np.float32)
    n, k = w.shape
    g = group or k
    dense, outliers = split_outliers(w, sparse_pct)
    algo = {"cb4": "kmeans", "ternary": "absmean"}.get(fmt, "rtn")
    if fmt in ("nf4", "fp4", "cb4"):
        cb = codebook if codebook is not None else (NF4 if fmt in ("nf4", "cb4") else FP4)
        scale = group_scales(dense, fmt, g, hdiag, cb)
        if fmt == "cb4" and codebook is None:
            cb = kmeans_codebook(dense, scale, g, hdiag)
            scale = group_scales(dense, fmt, g, hdiag, cb)
        q = codebook_codes(_groups(dense, g), scale, cb).reshape(n, k)
        qw = QuantWeight(fmt, q.astype(np.int8), scale, g, codebook=cb.astype(np.float32), algo=algo)
    else:
        qmax = (int8_qmax or QMAX[fmt]) if fmt == "int8" else QMAX[fmt]
        scale = group_scales(dense, fmt, g, hdiag, qmax=qmax)
        q = int_codes(_groups(dense, g), scale, qmax).reshape(n, k)
        qw = QuantWeight(fmt, q.astype(np.int8), scale, g, algo=algo)
    qw.outliers = outliers
    qw.float_ref = w
    return qw


def weight_bits7_for(profile) -> bool:
    """Whether int8 weights should be 7-bit for a target profile (lowbit.targets): yes on x86 CPUs
    without int8 dot-product instructions (no AVX-512 VNNI / AVX-VNNI), where the 7-bit AVX2 GEMM
    is the fast exact one; no elsewhere (VNNI, ARM, GPUs, or no profile)."""
    if profile is None or getattr(profile, "device", "cpu") not in ("cpu", None):
        return False
    feats = {str(f).lower() for f in (getattr(profile, "features", None) or [])}
    arch = str(getattr(profile, "arch", "") or "").lower()
    if arch in ("x86_64", "amd64", "x86"):
        return not ({"avx512vnni", "avxvnni"} & feats)
    return False  # ARM: no 7-bit kernel (NEON without dotprod runs the int8 one either way)
