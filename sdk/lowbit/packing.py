"""Weight packing: :class:`lowbit.ir.QuantWeight` -> the bytes lowbit's kernels read.

The layouts are defined in ``native/include/lowbit/lowbit_blocks.h`` and drawn in
``docs/block-formats.md``. One layout per weight format, the same on every ISA (x86 and ARM read
the same bytes), so a package is portable. This module is numpy only and produces exactly the
bytes of the C++ packer (``native/kernels/common/pack.cpp``); the tests compare the two.

>>> blob, meta = pack(qw)          # blob: np.ndarray[uint8], meta: dict for the .lbpk manifest

Activation quantization (done by the runtime, documented here because it is part of what a
package means; :func:`quantize_activations` is its numpy reference):

* dynamic (``w8a8d``, ``w4a8``, codebook, ternary): symmetric int8, ``d = amax / 127`` and
  ``q = rint(x * (127 / amax))`` (round half to even, float32 arithmetic), per block of the
  weight's group size (per row for int8 weights, or per row for any format when the op asks for
  ``granularity="row"``); each block also stores the sum of its codes, which folds weight offsets
  and minimums into one multiply-add. An all-zero block has ``d = 0``.
* static (``w8a8``, int8 weights only): ``q = clamp(rint(x * (1 / scale)) + zero_point, -128, 127)``.
* ``w4a16``: float activations, no quantization.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

PANEL_ROWS = 8  # rows interleaved in one panel (LB_PANEL_ROWS)
KBLOCK = 32  # int8 weights and activations pad K to a multiple of this (LB_KBLOCK)
GROUPS = (32, 64, 128)

# lb_wfmt values (part of the package format: never renumber)
WFMT = {"q8": 1, "q4": 2, "q4a": 3, "c4": 4, "t2": 5}
# lowbit.ir.QuantWeight.fmt -> packed format
IR_FORMATS = {"int8": "q8", "int4": "q4", "int4_asym": "q4a", "nf4": "c4", "fp4": "c4", "cb4": "c4", "ternary": "t2"}


def block_bytes(fmt: str, group: int) -> int:
    """Bytes of one (panel, group) block of a group format (lb_wfmt_block_bytes)."""
    if group not in GROUPS:
        raise ValueError(f"group size {group} is not one of {GROUPS}")
    return {"q4": 16 + 4 * group, "c4": 16 + 4 * group, "q4a": 32 + 4 * group, "t2": 16 + 2 * group}[fmt]


def packed_bytes(fmt: str, n: int, k: int, group: int) -> int:
    """Total packed bytes of an [n, k] weight (lb_wfmt_packed_bytes)."""
    npad = -(-n // PANEL_ROWS) * PANEL_ROWS
    if fmt == "q8":
        k32 = -(-k // KBLOCK) * KBLOCK
        return npad * (k32 + 8)
    if k % group:
        raise ValueError(f"k={k} is not a multiple of the group size {group}")
    return npad // PANEL_ROWS * (k // group) * block_bytes(fmt, group) + (32 if fmt == "c4" else 0)


def codebook_to_lut(codebook: np.ndarray) -> Tuple[np.ndarray, np.float32]:
    """int8 table and scale of a 16-entry codebook (codebook ~= lut_scale * lut).

    Exact when 2**e * codebook is integral within [-127, 127] for some e in 0..7 (FP4 E2M1 is:
    e = 1); otherwise lut = rint(codebook * (127 / amax)) and lut_scale = amax / 127.
    """
    cb = np.asarray(codebook, dtype=np.float32).reshape(16)
    for e in range(8):
        v = cb * np.float32(1 << e)
        if np.all(np.abs(v) <= 127) and np.all(np.rint(v) == v):
            return v.astype(np.int8), np.float32(1.0) / np.float32(1 << e)
    amax = np.float32(np.max(np.abs(cb)))
    inv = np.float32(127.0) / amax
    lut = np.clip(np.rint(cb * inv), -127, 127).astype(np.int8)
    return lut, np.float32(amax / np.float32(127.0))


def _pad_rows(a: np.ndarray, npad: int) -> np.ndarray:
    if a.shape[0] == npad:
        return a
    out = np.zeros((npad,) + a.shape[1:], dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


def _fp16_bytes(v: np.ndarray, npanels: int, ng: int) -> np.ndarray:
    """[npad, ng] float32 -> [npanels, ng, 16] bytes of 8 fp16 per (panel, group)."""
    h = v.astype(np.float32).astype(np.float16)
    h = h.reshape(npanels, PANEL_ROWS, ng).transpose(0, 2, 1)
    return np.ascontiguousarray(h).view(np.uint8).reshape(npanels, ng, 2 * PANEL_ROWS)


def _pack_q8(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    n, k = q.shape
    npad = -(-n // PANEL_ROWS) * PANEL_ROWS
    kp = -(-k // KBLOCK) * KBLOCK
    codes = np.zeros((npad, kp), np.int8)
    codes[:n, :k] = q
    body = codes.reshape(npad // PANEL_ROWS, PANEL_ROWS, kp // 4, 4).transpose(0, 2, 1, 3)
    scales = np.zeros(npad, np.float32)
    scales[:n] = scale.reshape(n)
    sums = np.zeros(npad, np.int32)
    sums[:n] = q.astype(np.int32).sum(axis=1)
    return np.concatenate([np.ascontiguousarray(body).view(np.uint8).reshape(-1), scales.view(np.uint8), sums.view(np.uint8)])


def _pack_group(fmt: str, q: np.ndarray, scale: np.ndarray, group: int, minimum=None,
                lut: np.ndarray = None, lut_scale=None) -> np.ndarray:
    n, k = q.shape
    npad = -(-n // PANEL_ROWS) * PANEL_ROWS
    npan, ng = npad // PANEL_ROWS, k // group
    if fmt == "q4":
        u = q.astype(np.int16) + 8
    elif fmt == "t2":
        u = q.astype(np.int16) + 1
    else:
        u = q.astype(np.int16)
    u = _pad_rows(u.astype(np.uint8), npad)
    if fmt == "t2":
        # [panel, row, group, chunk c, p, j] -> [panel, group, c, row, j, p]; bits 2p of byte (row*4+j)
        c = u.reshape(npan, PANEL_ROWS, ng, group // 16, 4, 4).transpose(0, 2, 3, 1, 5, 4)
        codes = c[..., 0] | (c[..., 1] << 2) | (c[..., 2] << 4) | (c[..., 3] << 6)
    else:
        # [panel, row, group, chunk c, half h, j] -> [panel, group, c, row, j, h]; nibble h of byte (row*4+j)
        c = u.reshape(npan, PANEL_ROWS, ng, group // 8, 2, 4).transpose(0, 2, 3, 1, 5, 4)
        codes = c[..., 0] | (c[..., 1] << 4)
    codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(npan, ng, -1)
    s = scale.astype(np.float32).reshape(n, ng)
    if lut_scale is not None:
        s = s * np.float32(lut_scale)
    parts = [_fp16_bytes(_pad_rows(s, npad), npan, ng)]
    if fmt == "q4a":
        parts.append(_fp16_bytes(_pad_rows(minimum.astype(np.float32).reshape(n, ng), npad), npan, ng))
    parts.append(codes)
    body = np.concatenate(parts, axis=2).reshape(-1)
    if fmt == "c4":
        tail = np.zeros(32, np.uint8)
        tail[:16] = lut.view(np.uint8)
        tail[16:20] = np.array([lut_scale], np.float32).view(np.uint8)
        body = np.concatenate([body, tail])
    return body


def pack(qw) -> Tuple[np.ndarray, Dict]:
    """Packs a :class:`lowbit.ir.QuantWeight` (layout "nk") into kernel bytes.

    Returns ``(blob, meta)``: ``blob`` is a flat ``uint8`` array (store it 64-byte aligned), ``meta``
    holds what the runtime needs to use it: ``format`` (q8/q4/q4a/c4/t2), ``wfmt`` (lb_wfmt value),
    ``n``, ``k``, ``group``, ``bytes``, and for codebooks ``lut_scale``.
    """
    if qw.fmt not in IR_FORMATS:
        raise ValueError(f"cannot pack weight format {qw.fmt!r}; known: {sorted(IR_FORMATS)}")
    if getattr(qw, "layout", "nk") != "nk":
        raise ValueError(f"pack() needs an [N, K] ('nk') weight, got layout {qw.layout!r}")
    fmt = IR_FORMATS[qw.fmt]
    q = np.ascontiguousarray(np.asarray(qw.q, dtype=np.int8))
    if q.ndim != 2:
        raise ValueError(f"codes must be [N, K], got shape {q.shape}")
    n, k = q.shape
    group = int(qw.group_size)
    scale = np.asarray(qw.scale, dtype=np.float32)
    meta: Dict = {"format": fmt, "wfmt": WFMT[fmt], "n": n, "k": k, "group": k if fmt == "q8" else group}
    lo, hi = {"q8": (-127, 127), "q4": (-8, 7), "q4a": (0, 15), "c4": (0, 15), "t2": (-1, 1)}[fmt]
    if q.size and (q.min() < lo or q.max() > hi):
        raise ValueError(f"{qw.fmt} codes must lie in [{lo}, {hi}] (found {int(q.min())}..{int(q.max())})")
    if fmt == "q8":
        if group != k:
            raise ValueError(f"int8 weights are packed per output channel (group_size {group} != K {k})")
        if qw.zero is not None and np.any(np.asarray(qw.zero) != 0):
            raise ValueError("int8 weights must be symmetric (zero points are not supported)")
        blob = _pack_q8(q, scale)
    else:
        if group not in GROUPS or k % group:
            raise ValueError(f"{qw.fmt}: group size must be one of {GROUPS} and divide K={k} (got {group})")
        minimum = lut = lut_scale = None
        if fmt == "q4a":
            if qw.minimum is not None:
                minimum = np.asarray(qw.minimum, np.float32)
            elif qw.zero is not None:
                minimum = -(scale.reshape(n, -1) * np.asarray(qw.zero, np.float32).reshape(n, -1))
            else:
                raise ValueError("int4_asym needs a zero point or a minimum")
        elif fmt == "q4" and (qw.zero is not None or qw.minimum is not None):
            raise ValueError("int4 (symmetric) weights must not carry a zero point or minimum; use int4_asym")
        if fmt == "c4":
            if qw.codebook is None:
                raise ValueError(f"{qw.fmt} weights need a 16-entry codebook")
            lut, lut_scale = codebook_to_lut(qw.codebook)
            meta["lut_scale"] = float(lut_scale)
        blob = _pack_group(fmt, q, scale, group, minimum, lut, lut_scale)
    assert blob.size == packed_bytes(fmt, n, k, meta["group"]), "packer size mismatch"
    meta["bytes"] = int(blob.size)
    return blob, meta


def quantize_activations(x: np.ndarray, block: int, per_row: bool = False):
    """Numpy reference of the runtime's dynamic int8 activation quantizer for one [M, K] input.

    Returns ``(q [M, Kp] int8, d [M, Kp/block] float32, s [M, Kp/block] int32)`` with Kp = K
    rounded up to 32 (zero padded); ``block`` must divide Kp.
    """
    x = np.asarray(x, np.float32)
    m, k = x.shape
    kp = -(-k // KBLOCK) * KBLOCK
    if kp % block:
        raise ValueError(f"block {block} does not divide the padded K {kp}")
    xp = np.zeros((m, kp), np.float32)
    xp[:, :k] = x
    blocks = xp.reshape(m, kp // block, block)
    if per_row:
        amax = np.repeat(np.abs(x).max(axis=1, keepdims=True), kp // block, axis=1).astype(np.float32)
    else:
        amax = np.abs(blocks).max(axis=2).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(amax > 0, np.float32(127.0) / amax, np.float32(0)).astype(np.float32)
    q = np.clip(np.rint(blocks * inv[:, :, None]), -127, 127).astype(np.int8)
    d = (amax / np.float32(127.0)).astype(np.float32)
    s = q.astype(np.int32).sum(axis=2)
    return q.reshape(m, kp), d, s
