"""Small graphs for the TVM writer's tests: every weight format, act_quant modes, conv and float ops."""
from __future__ import annotations

import numpy as np

from lowbit.ir import ActQuant, Graph, Node, QuantWeight, TensorInfo

NF4 = np.array([-1.0, -0.6962, -0.5251, -0.3949, -0.2844, -0.1848, -0.0911, 0.0, 0.0796, 0.1609,
                0.2461, 0.3379, 0.4407, 0.5626, 0.723, 1.0], np.float32)


def quant_weight(rng, n, k, fmt, group=32, layout="kn", outliers=0):
    """A QuantWeight of format ``fmt`` with random codes (not derived from floats: tests the decode)."""
    g = group if k % group == 0 else k
    kw = dict(fmt=fmt, group_size=g, layout=layout, orig_shape=(k, n) if layout == "kn" else (n, k))
    scale = (rng.random((n, k // g), dtype=np.float32) * 0.05 + 0.01).astype(np.float32)
    if fmt == "int4":
        q = rng.integers(-8, 8, (n, k))
    elif fmt == "int4_asym":
        q = rng.integers(0, 16, (n, k))
        kw["minimum"] = (rng.standard_normal((n, k // g)) * 0.1).astype(np.float32)
    elif fmt in ("nf4", "fp4", "cb4"):
        q = rng.integers(0, 16, (n, k))
        kw["codebook"] = NF4 if fmt == "nf4" else np.sort(rng.standard_normal(16)).astype(np.float32)
    elif fmt == "ternary":
        q = rng.integers(-1, 2, (n, k))
    elif fmt == "int8":
        q = rng.integers(-127, 128, (n, k))
        kw["zero"] = None
    else:
        raise ValueError(fmt)
    w = QuantWeight(q=q.astype(np.int8), scale=scale, **kw)
    if outliers:
        idx = rng.choice(n * k, outliers, replace=False).astype(np.int64)
        w.outliers = (idx, (rng.standard_normal(outliers) * 2).astype(np.float16))
    return w


def mlp_graph(fmts=("int4", "int8"), m=3, k=64, hidden=32, out=16, act=("dynamic", "static"), seed=0, outliers=0):
    """x[m,k] -> MatMul(fmt0) + b -> Relu -> Gemm(fmt1, transB) -> Softmax."""
    rng = np.random.default_rng(seed)
    w1 = quant_weight(rng, hidden, k, fmts[0], outliers=outliers)
    w2 = quant_weight(rng, out, hidden, fmts[1], layout="nk")
    aq = {"dynamic": ActQuant(mode="dynamic", granularity="row"),
          "static": ActQuant(mode="static", scale=0.02, zero_point=3), None: None}
    n1 = {"act_quant": aq[act[0]]} if act[0] else {}
    n2 = {"transB": 1, **({"act_quant": aq[act[1]]} if act[1] else {})}
    nodes = [
        Node("MatMul", "mm1", ["x", "w1"], ["h0"], n1),
        Node("Add", "add1", ["h0", "b1"], ["h1"]),
        Node("Relu", "relu1", ["h1"], ["h2"]),
        Node("Gemm", "gemm2", ["h2", "w2", "b2"], ["h3"], n2),
        Node("Softmax", "sm", ["h3"], ["y"], {"axis": -1}),
    ]
    return Graph("mlp", nodes, [TensorInfo("x", "float32", (m, k))], [TensorInfo("y", "float32", (m, out))],
                 {"w1": w1, "b1": rng.standard_normal(hidden).astype(np.float32) * 0.1,
                  "w2": w2, "b2": rng.standard_normal(out).astype(np.float32) * 0.1})


def conv_graph(fmt="int4", seed=0):
    """x[1,8,10,10] -> quantized Conv 3x3 (pad 1) -> Relu -> depthwise float Conv -> GAP -> Flatten -> MatMul."""
    rng = np.random.default_rng(seed)
    o, c = 16, 8
    wq = quant_weight(rng, o, c * 9, fmt, group=8, layout="nk")
    wq.orig_shape = (o, c, 3, 3)
    nodes = [
        Node("Conv", "conv1", ["x", "wc", "bc"], ["c1"], {"pads": [1, 1, 1, 1], "strides": [1, 1],
                                                          "act_quant": ActQuant(mode="static", scale=0.05)}),
        Node("Relu", "r1", ["c1"], ["c2"]),
        Node("Conv", "dw", ["c2", "wd"], ["c3"], {"group": o, "pads": [1, 1, 1, 1], "strides": [2, 2]}),
        Node("GlobalAveragePool", "gap", ["c3"], ["p"]),
        Node("Flatten", "fl", ["p"], ["f"]),
        Node("MatMul", "fc", ["f", "wf"], ["y"]),
    ]
    return Graph("cnn", nodes, [TensorInfo("x", "float32", (1, c, 10, 10))], [TensorInfo("y", "float32", (1, 10))],
                 {"wc": wq, "bc": rng.standard_normal(o).astype(np.float32) * 0.1,
                  "wd": rng.standard_normal((o, 1, 3, 3)).astype(np.float32) * 0.3,
                  "wf": quant_weight(rng, 10, o, "int4", group=16)})


# ------------------------------------------------------------------ numpy reference
# The same semantics as lowbit.refexec (weights = QuantWeight.dequantize(), activations fake-quantized
# with round-half-to-even), written out for the few ops these graphs use.

def _wsrc(w):
    deq = w.dequantize()
    return np.ascontiguousarray(deq.T) if w.layout == "kn" else deq.reshape(w.orig_shape or deq.shape)


def _fq(x, aq, axis):
    if aq is None:
        return x
    qmax = float(2 ** (aq.bits - 1) - 1)
    if aq.mode == "static":
        s = np.float32(aq.scale)
        q = np.clip(np.round(x / s) + np.float32(aq.zero_point), -qmax - 1, qmax)
        return ((q - np.float32(aq.zero_point)) * s).astype(np.float32)
    amax = np.max(np.abs(x), axis=-1, keepdims=True) if aq.granularity == "row" else np.max(np.abs(x), keepdims=True)
    s = np.maximum(amax / np.float32(qmax), np.float32(1e-12)).astype(np.float32)
    return (np.clip(np.round(x / s), -qmax, qmax) * s).astype(np.float32)


def _conv(x, w, pads, strides, group):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - kh) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - kw) // strides[1] + 1
    y = np.zeros((n, o, oh, ow), np.float64)
    og = o // group
    for oc in range(o):
        g = oc // og
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg, i:i + strides[0] * oh:strides[0], j:j + strides[1] * ow:strides[1]]
                y[:, oc] += np.einsum("nchw,c->nhw", patch, w[oc, :, i, j])
    return y.astype(np.float32)


def reference(graph, feeds):
    """Runs one of the graphs above in numpy."""
    env = dict(feeds)
    for k, v in graph.initializers.items():
        env[k] = _wsrc(v) if isinstance(v, QuantWeight) else v
    for n in graph.nodes:
        a = [env[i] for i in n.inputs]
        aq = n.attrs.get("act_quant")
        if n.op == "MatMul":
            y = _fq(a[0], aq, -1) @ a[1]
        elif n.op == "Gemm":
            b = a[1].T if n.attrs.get("transB") else a[1]
            y = _fq(a[0], aq, -1) @ b + (a[2] if len(a) > 2 else 0)
        elif n.op == "Add":
            y = a[0] + a[1]
        elif n.op == "Relu":
            y = np.maximum(a[0], 0)
        elif n.op == "Softmax":
            e = np.exp(a[0] - a[0].max(axis=-1, keepdims=True))
            y = e / e.sum(axis=-1, keepdims=True)
        elif n.op == "Conv":
            w = a[1].reshape(graph.initializers[n.inputs[1]].orig_shape) if isinstance(
                graph.initializers[n.inputs[1]], QuantWeight) else a[1]
            y = _conv(_fq(a[0], aq, 1), w, n.attrs.get("pads", [0] * 4), n.attrs.get("strides", [1, 1]),
                      n.attrs.get("group", 1))
            if len(a) > 2:
                y = y + a[2].reshape(1, -1, 1, 1)
        elif n.op == "GlobalAveragePool":
            y = a[0].mean(axis=(2, 3), keepdims=True)
        elif n.op == "Flatten":
            y = a[0].reshape(a[0].shape[0], -1)
        else:
            raise NotImplementedError(n.op)
        env[n.outputs[0]] = np.asarray(y, np.float32)
    return {t.name: env[t.name] for t in graph.outputs}
