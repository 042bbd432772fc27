"""Float pointwise convs on small maps -> ``conv2d_pw_f32`` (docs/package-format.md, section 7).

A float ``conv2d_f32`` that is 1x1, stride 1, unpadded, one group, whose output map has at most
``PW_MAX_PIXELS`` pixels (EfficientNet-Lite0's 7x7, 14x14 and 28x28 maps, PP-OCR det's 10x20), gets its
weight stored blocked by 8 output channels, ``[ceil(O/8), K, 8]`` (zero-padded), and becomes
``conv2d_pw_f32`` with the attribute ``out_channels`` = O. The runtime reads the blocks in place
with the output channels in the vector lanes (native/src/ops/ops_conv.cpp); the NCHW GEMM it
replaces puts the few pixels in the lanes (a 49-pixel map leaves a 1-column edge panel).
Same inputs otherwise (input, weight, optional bias) and the same fused activation.

A ``matmul_f32`` of one row (A [1, K], EfficientNet-Lite0's classifier) with a constant float B [K, N]
used by no other op gets B in the GEMM's panel layout ``[ceil(N/16), K, 16]`` (attr ``b_panels`` = N,
the layout exporters/lbpk_attn.py gives MatMuls of >= 16 rows): the GEMM then streams each panel
sequentially instead of reading 64-column strips of the row-major B (1280x1000: 0.55 -> 0.36 ms).

Blocked chains (``float_blocked_chains``, run last): a float tensor produced by a ``conv2d_pw_f32`` or
a depthwise ``conv2d_f32`` and read only (as the data input) by such ops, with a multiple of 8 channels
and not a graph output, is kept in the blocked NCHW8c layout ``[N][C/8][H][W][8]`` (the same bytes as
NCHW): the producer gets ``y_nchw8c = 1``, every consumer ``x_nchw8c = 1``. EfficientNet-Lite0's
expand -> depthwise -> project blocks on 28x28 / 14x14 / 7x7 maps then skip the depthwise's 8x8 transposes in
and out and the 1x1 convs' input packing / output transposes (native/src/ops/ops_conv.cpp). The
shape in the manifest stays the logical NCHW one; the result is bitwise that of the NCHW ops.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

# Larger maps keep the NCHW GEMM / 1x1 kernels. Session 11 (Zen 4, AVX-512): 256 -> 784 (28x28), where the
# blocked chain then also covers EfficientNet's 28x28 blocks (separate processes, 1 thread, chrt, load 4-5:
# the 240 -> 40 projection 161 -> 140 us, the 5x5 depthwise 188 -> 178, the stride-2 one after it 55 -> 47);
# at 56x56 the blocked chain made the depthwise convs (channel-blocked kernel instead of the 16-lane NCHW
# ones) and the expansions slower than the projections gained.
PW_MAX_PIXELS = 784
BLOCKED_CHAINS = True  # tests turn it off to compare the blocked ops with the NCHW ones
DW_BLOCKED_MAX_W = 512  # the runtime's channel-blocked depthwise keeps a few padded rows in ~160 KB


def _map_hw(low, name: str) -> Optional[Tuple[int, int]]:
    """(H, W) of the 4-D value ``name`` if the graph knows it (value_info or a graph input/output)."""
    known = [(getattr(low.g, "value_info", None) or {}).get(name)]
    known += [t for t in list(low.g.inputs) + list(low.g.outputs) if t.name == name]
    for vi in known:
        shape = getattr(vi, "shape", None) if vi is not None else None
        if shape is not None and len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]):
            return int(shape[2]), int(shape[3])
    return None


def _pointwise(attrs: dict) -> bool:
    def all_eq(key: str, v: int) -> bool:
        return all(int(x) == v for x in attrs.get(key, [v]))

    return (int(attrs.get("group", 1)) == 1 and all_eq("strides", 1) and all_eq("pads", 0)
            and attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID"))


def blocked_weight(w: np.ndarray) -> np.ndarray:
    """[O, K, 1, 1] -> [ceil(O/8), K, 8] float32, block b holding output channels 8b..8b+7 (zeros past O)."""
    o, k = w.shape[:2]
    nb = (o + 7) // 8
    wp = np.zeros((nb * 8, k), np.float32)
    wp[:o] = w.reshape(o, k)
    return np.ascontiguousarray(wp.reshape(nb, 8, k).transpose(0, 2, 1))


def _one_row_matmul_panels(low) -> int:
    """B of the one-row ``matmul_f32`` ops -> 16-column panels (module docstring); returns how many."""
    from lowbit.exporters.lbpk_attn import _pack_matmul_weights

    return _pack_matmul_weights(low, rows_ok=lambda m: m == 1)


def float_pointwise(low) -> int:
    """Rewrites the eligible ``conv2d_f32`` ops of ``low`` (an ``lbpk._Lowering``) in place and packs the
    one-row MatMuls' B (module docstring); returns how many convs."""
    _one_row_matmul_panels(low)
    count = 0
    for op in low.ops:
        if op["kernel"] != "conv2d_f32" or len(op["inputs"]) < 2 or not _pointwise(op["attrs"]):
            continue
        w: Any = low.const(op["inputs"][1])
        if w is None or w.dtype != np.float32 or w.ndim != 4 or w.shape[2:] != (1, 1):
            continue
        hw = _map_hw(low, op["outputs"][0]) or _map_hw(low, op["inputs"][0])  # the same map (1x1, stride 1)
        if hw is None or hw[0] * hw[1] > PW_MAX_PIXELS:
            continue
        wname = f"{low.name(op['inputs'][1])}.pw8"
        if wname not in low.consts:
            low.consts[wname] = blocked_weight(w)
        attrs = {k: v for k, v in op["attrs"].items() if k not in ("group", "strides", "pads", "dilations",
                                                                   "kernel_shape", "auto_pad")}
        attrs["out_channels"] = int(w.shape[0])
        op.update(kernel="conv2d_pw_f32", attrs=attrs, inputs=[op["inputs"][0], wname] + op["inputs"][2:])
        count += 1
    if BLOCKED_CHAINS:
        float_blocked_chains(low)
    return count


def _blockable(low, op) -> bool:
    """A ``conv2d_pw_f32``, or a depthwise ``conv2d_f32`` (group = in = out channels, <= 64 taps, a known
    map at most DW_BLOCKED_MAX_W wide), with channels (in and out) a multiple of 8."""
    if op["kernel"] == "conv2d_pw_f32":
        w = low.const(op["inputs"][1])
        return w is not None and w.shape[1] % 8 == 0 and int(op["attrs"]["out_channels"]) % 8 == 0
    if op["kernel"] != "conv2d_f32" or len(op["inputs"]) < 2:
        return False
    w = low.const(op["inputs"][1])
    if w is None or w.dtype != np.float32 or w.ndim != 4 or w.shape[1] != 1:
        return False
    g = int(op["attrs"].get("group", 1))
    hw = _map_hw(low, op["inputs"][0])
    return (g == w.shape[0] and g % 8 == 0 and w.shape[2] * w.shape[3] <= 64 and hw is not None
            and hw[1] <= DW_BLOCKED_MAX_W)


def float_blocked_chains(low) -> int:
    """Marks the tensors kept blocked (NCHW8c) between ops (module docstring); returns how many."""
    ok = {id(op): _blockable(low, op) for op in low.ops}
    readers: dict = {}
    for op in low.ops:
        for i, t in enumerate(op["inputs"]):
            if t:
                readers.setdefault(t, []).append((op, i))
    outs = {t.name for t in low.g.outputs}
    count = 0
    for op in low.ops:
        t = op["outputs"][0] if op["outputs"] else None
        if not ok[id(op)] or not t or t in outs or not readers.get(t):
            continue
        if any(i != 0 or not ok[id(r)] for r, i in readers[t]):
            continue
        op["attrs"]["y_nchw8c"] = 1
        for r, _ in readers[t]:
            r["attrs"]["x_nchw8c"] = 1
        count += 1
    return count
