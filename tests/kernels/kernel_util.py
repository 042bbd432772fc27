"""Helpers of the kernel tests: random QuantWeights of every format and their dequantized
values exactly as the packed layout stores them (fp16 scales, int8 codebook)."""
from __future__ import annotations

import numpy as np

from lowbit import packing
from lowbit.ir import QuantWeight

NF4 = np.array([-1.0, -0.6961928, -0.52507305, -0.3949175, -0.28444138, -0.18477343, -0.09105004, 0.0,
                0.0795803, 0.1609302, 0.2461123, 0.33791524, 0.44070983, 0.562617, 0.72295684, 1.0], np.float32)
FP4 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], np.float32)

# (IR format, group) pairs covering every packed format
FORMATS = [("int8", 0), ("int4", 32), ("int4", 64), ("int4", 128), ("int4_asym", 32), ("int4_asym", 128),
           ("nf4", 64), ("fp4", 32), ("cb4", 32), ("ternary", 32), ("ternary", 128)]


def make_qw(fmt: str, n: int, k: int, group: int, rng: np.random.Generator, exact: bool = False,
            asym_zero: bool = False) -> QuantWeight:
    """A random QuantWeight; `exact` gives unit scales (integer results)."""
    g = k if fmt == "int8" else group
    ng = k // g
    lo, hi = {"int8": (-127, 127), "int4": (-8, 7), "int4_asym": (0, 15), "nf4": (0, 15), "fp4": (0, 15),
              "cb4": (0, 15), "ternary": (-1, 1)}[fmt]
    q = rng.integers(lo, hi + 1, size=(n, k), dtype=np.int8)
    scale = np.ones((n, ng), np.float32) if exact else rng.uniform(0.001, 0.05, (n, ng)).astype(np.float32)
    kw = {}
    if fmt == "int4_asym":
        if asym_zero:
            kw["zero"] = rng.integers(0, 16, size=(n, ng)).astype(np.float32)
        else:
            kw["minimum"] = (rng.integers(-12, 1, size=(n, ng)) if exact else rng.uniform(-0.4, 0, (n, ng))).astype(np.float32)
    if fmt in ("nf4", "fp4", "cb4"):
        kw["codebook"] = {"nf4": NF4, "fp4": FP4, "cb4": np.sort(rng.normal(size=16)).astype(np.float32)}[fmt]
        if exact:
            kw["codebook"] = FP4
    return QuantWeight(fmt=fmt, q=q, scale=scale, group_size=g, **kw)


def packed_dequant(qw: QuantWeight) -> np.ndarray:
    """Float [N, K] weights as the kernels see them after packing (fp16 scales, int8 codebook)."""
    n, k = qw.q.shape
    g = qw.group_size
    fmt = packing.IR_FORMATS[qw.fmt]
    if fmt == "q8":
        return qw.q.astype(np.float32) * qw.scale.reshape(n, 1).astype(np.float32)
    sc = qw.scale.astype(np.float32).reshape(n, k // g)
    if fmt == "c4":
        lut, lut_scale = packing.codebook_to_lut(qw.codebook)
        vals = lut.astype(np.float32)[qw.q.astype(np.int64)]
        sc = sc * np.float32(lut_scale)
    else:
        vals = qw.q.astype(np.float32)
    d = sc.astype(np.float16).astype(np.float32)
    out = vals.reshape(n, k // g, g) * d[:, :, None]
    if fmt == "q4a":
        mn = qw.minimum if qw.minimum is not None else -(qw.scale.reshape(n, -1) * qw.zero.reshape(n, -1))
        out = out + mn.astype(np.float32).astype(np.float16).astype(np.float32)[:, :, None]
    return out.reshape(n, k)


def act_block(qw: QuantWeight) -> int:
    k = qw.q.shape[1]
    return -(-k // 32) * 32 if qw.fmt == "int8" else qw.group_size


def qlinear(nat, qw: QuantWeight):
    """The native QLinear over `qw`'s packed bytes."""
    blob, meta = packing.pack(qw)
    return nat.QLinear(blob, meta["format"], meta["n"], meta["k"], meta["group"])


def exact_case(fmt: str, n: int, k: int, group: int, m: int, rng: np.random.Generator):
    """(qw, x, bias, want) with unit weight scales and integer activations whose every activation block holds a
    127 (so it quantizes with scale 1): every kernel's output is exactly the float64 product."""
    qw = make_qw(fmt, n, k, group, rng, exact=True)
    x = rng.integers(-127, 128, size=(m, k)).astype(np.float32)
    x[:, ::act_block(qw)] = 127
    bias = rng.integers(-20, 20, size=n).astype(np.float32)
    want = (x.astype(np.float64) @ packed_dequant(qw).astype(np.float64).T + bias).astype(np.float32)
    return qw, x, bias, want
