"""Quantized weights for the TVM writer: packing (numpy) and the TE kernels that decode the packed
codes *inside* the matmul / convolution reduction (no dequantized weight is ever materialised).

Storage per format (packed along K, low bits first, K-major so that N is contiguous):
  int4       two codes per byte, nibble = code + 8           value = nibble - 8
  int4_asym  two codes per byte, nibble = code (0..15)        value = nibble
  nf4/fp4/cb4 two indices per byte                            value = codebook[nibble]
  ternary    four codes per byte, 2 bits = code + 1           value = bits - 1
  int8       one int8 per element                             value = code
and then ``(value - zero) * scale``, ``value * scale + minimum`` or ``value * scale`` per group.
Sparse outliers are a per-row correction table added to the same reduction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from lowbit.ir import QuantWeight

FOUR_BIT = ("int4", "int4_asym", "nf4", "fp4", "cb4")
FORMATS = FOUR_BIT + ("ternary", "int8")


@dataclass
class PackedWeight:
    """The arrays a quantized kernel takes as parameters, plus how to decode them."""

    fmt: str
    n: int
    k: int
    group: int
    per_byte: int                       # codes per stored element (2, 4 or 1)
    data: np.ndarray                    # uint8 [ceil(K / per_byte), N] or int8 [K, N] (K-major)
    scale: np.ndarray                   # float32 [K / G, N]
    zero: Optional[np.ndarray] = None   # float32 [K / G, N]
    minimum: Optional[np.ndarray] = None  # float32 [K / G, N]
    codebook: Optional[np.ndarray] = None  # float32 [16]
    out_idx: Optional[np.ndarray] = None   # int32 [N, R]: K index of each outlier in row n
    out_delta: Optional[np.ndarray] = None  # float32 [N, R]: outlier value - decoded value (0 = padding)

    @property
    def nbytes(self) -> int:
        arrs = [self.data, self.scale, self.zero, self.minimum, self.codebook, self.out_idx, self.out_delta]
        return int(sum(a.nbytes for a in arrs if a is not None))

    def arrays(self) -> List[np.ndarray]:
        """Kernel parameters in the order :func:`decode_fn` expects them."""
        return [a for a in (self.data, self.scale, self.zero, self.minimum, self.codebook,
                            self.out_idx, self.out_delta) if a is not None]


def pack(w: QuantWeight) -> PackedWeight:
    """Packs a QuantWeight's codes for the TVM kernels (bit-exact with QuantWeight.dequantize)."""
    if w.fmt not in FORMATS:
        raise ValueError(f"the TVM writer has no kernel for weight format {w.fmt!r} (known: {', '.join(FORMATS)})")
    q = np.asarray(w.q)
    n, k = q.shape
    if k % w.group_size:
        raise ValueError(f"K={k} is not a multiple of the group size {w.group_size}")
    if w.fmt == "int8":
        per_byte, data = 1, q.astype(np.int8)
    else:
        if w.fmt == "ternary":
            per_byte, codes = 4, (q.astype(np.int16) + 1)
            bits = 2
        else:
            per_byte, bits = 2, 4
            codes = q.astype(np.int16) + (8 if w.fmt == "int4" else 0)
        if codes.min(initial=0) < 0 or codes.max(initial=0) >= (1 << bits):
            raise ValueError(f"{w.fmt} codes out of range [{codes.min()}, {codes.max()}]")
        kp = -(-k // per_byte) * per_byte
        padded = np.zeros((n, kp), np.uint16)
        padded[:, :k] = codes
        data = np.zeros((n, kp // per_byte), np.uint16)
        for j in range(per_byte):
            data |= padded[:, j::per_byte] << (bits * j)
        data = data.astype(np.uint8)
    # Stored K-major ([K / per_byte, N], scales [K / G, N]): consecutive output channels are
    # consecutive bytes, so a kernel vectorised over N loads its codes and scales contiguously.
    pw = PackedWeight(fmt=w.fmt, n=n, k=k, group=w.group_size, per_byte=per_byte, data=np.ascontiguousarray(data.T),
                      scale=np.ascontiguousarray(np.asarray(w.scale, np.float32).reshape(n, k // w.group_size).T))
    if w.zero is not None:
        pw.zero = np.ascontiguousarray(np.asarray(w.zero, np.float32).reshape(n, -1).T)
    if w.minimum is not None:
        pw.minimum = np.ascontiguousarray(np.asarray(w.minimum, np.float32).reshape(n, -1).T)
    if w.fmt in ("nf4", "fp4", "cb4"):
        if w.codebook is None:
            raise ValueError(f"a {w.fmt} weight needs a codebook")
        pw.codebook = np.ascontiguousarray(w.codebook, dtype=np.float32).reshape(16)
    if w.outliers is not None and len(w.outliers[0]):
        pw.out_idx, pw.out_delta = _outlier_table(w, n, k)
    return pw


def _outlier_table(w: QuantWeight, n: int, k: int) -> Tuple[np.ndarray, np.ndarray]:
    idx, val = w.outliers
    idx = np.asarray(idx, np.int64)
    plain = QuantWeight(fmt=w.fmt, q=w.q, scale=w.scale, group_size=w.group_size, zero=w.zero,
                        minimum=w.minimum, codebook=w.codebook).dequantize().reshape(-1)
    delta = np.asarray(val, np.float32) - plain[idx]
    rows, cols = idx // k, idx % k
    counts = np.bincount(rows, minlength=n)
    r = int(counts.max())
    out_idx = np.zeros((n, r), np.int32)
    out_delta = np.zeros((n, r), np.float32)
    fill = np.zeros(n, np.int64)
    for row, col, d in zip(rows, cols, delta):
        out_idx[row, fill[row]] = col
        out_delta[row, fill[row]] = d
        fill[row] += 1
    return out_idx, out_delta


def decode_fn(pw: PackedWeight, tensors: List) -> Callable:
    """``deq(n, k)`` -> float32 PrimExpr reading the packed TE tensors (in ``pw.arrays()`` order)."""
    from tvm import tirx as tir  # noqa: PLC0415

    it = iter(tensors)
    data, scale = next(it), next(it)
    zero = next(it) if pw.zero is not None else None
    minimum = next(it) if pw.minimum is not None else None
    codebook = next(it) if pw.codebook is not None else None
    g = pw.group

    def deq(n, k):
        if pw.fmt == "int8":
            val = data[k, n].astype("float32")
        else:
            bits = 8 // pw.per_byte
            byte = data[k // pw.per_byte, n]
            shift = ((k % pw.per_byte) * bits).astype("uint8")
            code = (byte >> shift) & tir.const((1 << bits) - 1, "uint8")
            if codebook is not None:
                val = codebook[code.astype("int32")]
            elif pw.fmt == "int4":
                val = code.astype("float32") - tir.const(8.0, "float32")
            elif pw.fmt == "ternary":
                val = code.astype("float32") - tir.const(1.0, "float32")
            else:
                val = code.astype("float32")
        s = scale[k // g, n]
        if minimum is not None:
            return val * s + minimum[k // g, n]
        if zero is not None:
            return (val - zero[k // g, n]) * s
        return val * s

    return deq


def outlier_terms(pw: PackedWeight, tensors: List):
    """(idx, delta) TE tensors of the outlier table, or None."""
    if pw.out_idx is None:
        return None
    return tensors[-2], tensors[-1]


def matmul_te(pw: PackedWeight, a_shape: Tuple[int, ...], src_map: Callable, name: str) -> Callable:
    """TE builder for ``y[..., j] = sum_i a[..., i] * W_src[i, j]``, W_src decoded in the reduction.

    ``src_map(i, j) -> (n, k)`` maps a source-layout weight index to the quantized [N, K] index;
    ``src_shape`` is (contracted, output) extents.
    """
    from tvm import te  # noqa: PLC0415

    def build(a, *wts, src_shape):
        kk, jj = src_shape
        deq = decode_fn(pw, list(wts))
        r = te.reduce_axis((0, kk), "k")
        lead = tuple(a.shape[:-1])

        def body(*idx):
            pre, j = idx[:-1], idx[-1]
            n, k = src_map(r, j)
            return te.sum(a[(*pre, r)] * deq(n, k), axis=r)

        y = te.compute((*lead, jj), body, name=name)
        ot = outlier_terms(pw, list(wts))
        if ot is None:
            return y
        oidx, odelta = ot
        rr = te.reduce_axis((0, oidx.shape[1]), "r")

        def corr(*idx):
            pre, j = idx[:-1], idx[-1]
            # Outliers are stored per quantized row n: this path is used only when j is that row.
            return te.sum(a[(*pre, oidx[j, rr])] * odelta[j, rr], axis=rr)

        c = te.compute((*lead, jj), corr, name=name + "_outliers")
        return te.compute((*lead, jj), lambda *idx: y[idx] + c[idx], name=name + "_sum")

    return build


def conv2d_te(pw: PackedWeight, strides, pads, dilations, groups: int, kshape: Tuple[int, int], name: str):
    """TE builder for an NCHW conv whose OIHW weight is decoded from the packed codes in the reduction."""
    from tvm import te, topi  # noqa: PLC0415

    def build(x, *wts, out_channels):
        deq = decode_fn(pw, list(wts))
        nb, c, h, w = (int(v) for v in x.shape)
        kh, kw = kshape
        cg = c // groups
        og = out_channels // groups
        xp = topi.nn.pad(x, (0, 0, pads[0], pads[1]), (0, 0, pads[2], pads[3]), name=name + "_pad") \
            if any(pads) else x
        oh = (h + pads[0] + pads[2] - (kh - 1) * dilations[0] - 1) // strides[0] + 1
        ow = (w + pads[1] + pads[3] - (kw - 1) * dilations[1] - 1) // strides[1] + 1
        rc = te.reduce_axis((0, cg), "rc")
        ry = te.reduce_axis((0, kh), "ry")
        rx = te.reduce_axis((0, kw), "rx")

        def body(b, o, y, xx):
            k = (rc * kh + ry) * kw + rx
            cin = (o // og) * cg + rc
            return te.sum(xp[b, cin, y * strides[0] + ry * dilations[0], xx * strides[1] + rx * dilations[1]]
                          * deq(o, k), axis=[rc, ry, rx])

        return te.compute((nb, out_channels, oh, ow), body, name=name)

    return build
