"""Quantization of the decoder's linear weights for the LLM schemes, and writing them into a
package in the byte layout the native qlinear kernels read (``lowbit.packing``).

Round-to-nearest quantizers here produce :class:`lowbit.ir.QuantWeight`; GPTQ comes from
``lowbit.quant`` when available.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from lowbit import LowbitError
from lowbit.ir import QuantWeight


def scheme_params(scheme: str) -> Tuple[str, int]:
    """(weight format, group size) of an LLM scheme."""
    base = scheme[:-5] if scheme.endswith("-gptq") else scheme
    if base.startswith("w4a8-g"):
        return "int4", int(base.split("-g")[1])
    if base == "w8a8d":
        return "int8", 0  # per output channel
    if base == "t2a8":
        return "ternary", 64
    raise LowbitError(f"scheme {scheme!r} has no quantized weight format")


def quantize_int4(w: np.ndarray, group: int) -> QuantWeight:
    """Symmetric int4, one scale per group of ``group`` along K; the largest-magnitude value of a
    group maps to -8 (the full signed range, as llama.cpp's Q4_0 does)."""
    n, k = w.shape
    if k % group:
        raise LowbitError(f"int4 group {group} does not divide K={k}")
    g = w.reshape(n, k // group, group).astype(np.float32)
    idx = np.argmax(np.abs(g), axis=-1)
    mx = np.take_along_axis(g, idx[..., None], axis=-1)[..., 0]
    d = (mx / -8.0).astype(np.float16).astype(np.float32)  # packed scales are fp16
    inv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1), 0.0)
    q = np.clip(np.rint(g * inv[..., None]), -8, 7).astype(np.int8).reshape(n, k)
    return QuantWeight(fmt="int4", q=q, scale=d.astype(np.float32), group_size=group, algo="rtn", float_ref=w)


def quantize_int8_channel(w: np.ndarray) -> QuantWeight:
    n, k = w.shape
    amax = np.abs(w).max(axis=1)
    s = (amax / 127.0).astype(np.float32)
    inv = np.where(s > 0, 1.0 / np.where(s > 0, s, 1), 0.0)
    q = np.clip(np.rint(w * inv[:, None]), -127, 127).astype(np.int8)
    return QuantWeight(fmt="int8", q=q, scale=s[:, None], group_size=k, algo="rtn", float_ref=w)


def quantize_ternary(w: np.ndarray, group: int) -> QuantWeight:
    n, k = w.shape
    if k % group:
        raise LowbitError(f"ternary group {group} does not divide K={k}")
    g = w.reshape(n, k // group, group)
    s = np.abs(g).mean(axis=-1).astype(np.float16).astype(np.float32)  # packed scales are fp16
    inv = np.where(s > 0, 1.0 / np.where(s > 0, s, 1), 0.0)
    q = np.clip(np.rint(g * inv[..., None]), -1, 1).astype(np.int8).reshape(n, k)
    return QuantWeight(fmt="ternary", q=q, scale=s, group_size=group, algo="absmean", float_ref=w)


def quantize_rows_int8(e: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Embedding table -> (int8 rows, fp32 scale per row)."""
    qw = quantize_int8_channel(e)
    return qw.q, qw.scale[:, 0].copy()


def quantize_linear(w: np.ndarray, scheme: str) -> QuantWeight:
    fmt, group = scheme_params(scheme)
    if fmt == "int4":
        return quantize_int4(w, group)
    if fmt == "int8":
        return quantize_int8_channel(w)
    return quantize_ternary(w, group)


def write_linear(writer, name: str, w: np.ndarray, scheme: str, qweight: Optional[QuantWeight] = None) -> str:
    """Adds one linear weight [N, K] to the package; returns its format name."""
    if scheme == "fp32":
        writer.add_tensor(name, np.ascontiguousarray(w, dtype=np.float32), linear="f32")
        return "f32"
    qw = qweight if qweight is not None else quantize_linear(w, scheme)
    from lowbit import packing

    blob, meta = packing.pack(qw)
    writer.add_tensor(name, blob, linear=meta["format"], wfmt=int(meta["wfmt"]), n=int(meta["n"]),
                      k=int(meta["k"]), group=int(meta["group"]))
    return meta["format"]


def dequantized(w: np.ndarray, scheme: str) -> np.ndarray:
    """The float weight the quantized kernels compute with (for accuracy reports)."""
    if scheme == "fp32":
        return w
    return quantize_linear(w, scheme).dequantize()


# A decoder layer's fused linears in dataflow order -> the lowbit names of their parts, in row order.
FUSED_LINEARS = {"qkv": ("wq", "wk", "wv"), "o": ("wo",), "gate_up": ("w_gate", "w_up"), "down": ("w_down",)}


class _Captured(Exception):
    """Ends a layer's forward once the linear being calibrated has seen its input."""


class GptqContext:
    """GPTQ for the ``-gptq`` schemes, sequential as in the GPTQ paper: each linear's Hessian 2/n X^T X
    comes from the calibration sequences run through the model with every linear before it already
    quantized (earlier layers, and within a layer qkv -> o -> gate_up -> down), so each layer also
    corrects the error of the ones before. ``quantize_layer`` must be called for layers 0, 1, ... in
    order; the float reference decoder's ``layer_forward`` runs the layers.

    calib: anything ``lowbit.llm.calib.calib_sequences`` reads (token ids, texts, a file).
    kv: a ``KvOrderStats`` filled from the same run (the bfp KV cache's channel orders).
    """

    def __init__(self, ck, calib, scheme: str = "w4a8-g32-gptq", kv=None):
        from lowbit.llm.calib import calib_sequences

        if calib is None:
            raise LowbitError(f"{scheme} needs calibration data: calib=[token id lists] or a list of texts")
        seqs = calib_sequences(ck, calib)
        self.fmt, self.group = scheme_params(scheme)
        self.cfg, self.kv = ck.cfg, kv
        self.w = {k: np.asarray(v, dtype=np.float32) for k, v in ck.load_all().items()}
        self.inv_freq = self.cfg.inv_freq()
        self.xs = [self.w["embed"][s] for s in seqs]  # each sequence's input to the next layer
        self.next_layer = 0

    def _forward(self, w, i, x, capture=None):
        from lowbit.llm.reference import layer_forward

        empty = np.zeros((0, self.cfg.num_kv_heads, self.cfg.head_dim), np.float32)
        return layer_forward(self.cfg, w, i, x, np.arange(x.shape[0]), self.inv_freq, empty, empty, capture)

    def _hessian(self, w, i: int, name: str) -> np.ndarray:
        acc = {"h": 0.0, "n": 0}

        def capture(layer, what, x):
            if what == name:
                x = np.asarray(x, np.float64)
                acc["h"] = acc["h"] + x.T @ x
                acc["n"] += x.shape[0]
                raise _Captured

        for x in self.xs:
            try:
                self._forward(w, i, x, capture)
            except _Captured:
                pass
        return acc["h"] * (2.0 / max(1, acc["n"]))

    def quantize_layer(self, i: int, mats) -> dict:
        """GPTQ-quantized weights of layer ``i``'s fused linears ``mats`` ({"qkv", "o", "gate_up", "down"}:
        float [N, K]); then moves the calibration sequences past the quantized layer."""
        from lowbit.quant.gptq import gptq_quantize

        if i != self.next_layer:
            raise LowbitError(f"GPTQ is sequential: layer {self.next_layer} next, not {i}")
        w = dict(self.w)  # layer i's linears replaced by their dequantized weights as they are quantized
        out = {}
        for name, parts in FUSED_LINEARS.items():
            qw = gptq_quantize(mats[name], self._hessian(w, i, name), self.fmt, self.group)
            if qw.outliers is not None:
                raise LowbitError("GPTQ returned sparse outliers, which LLM packages do not store")
            qw.layout = "nk"
            out[name] = qw
            deq, row = qw.dequantize(), 0
            for part in parts:
                rows = self.w[f"layers.{i}.{part}"].shape[0]
                w[f"layers.{i}.{part}"] = deq[row:row + rows]
                row += rows
        for s, x in enumerate(self.xs):
            self.xs[s], k, v = self._forward(w, i, x)
            if self.kv is not None:
                self.kv.update_layer(i, k, v)
        self.next_layer += 1
        return out
