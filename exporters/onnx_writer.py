"""lowbit graph IR -> ONNX that ONNX Runtime runs (``--format onnx``).

Built from the same ``QuantWeight`` / ``ActQuant`` objects as the device package:

* int8 per-channel weights -> int8 initializer + ``DequantizeLinear`` (per-channel ``axis``);
* int4 group-wise weights of a MatMul -> ``com.microsoft::MatMulNBits`` (bits=4, block_size=G,
  codes stored pre-offset by 8, which is MatMulNBits' default zero point);
* every other format (nf4/fp4/cb4 codebooks, ternary, int4 in a Conv, sparse outliers) -> the
  integer codes + a small decode subgraph (Gather from the codebook / Cast, Mul by the group
  scales, ScatterND of the fp16 outliers) that computes ``QuantWeight.dequantize()`` exactly;
* static activation quantization -> ``QuantizeLinear``/``DequantizeLinear`` (int8 with zero point);
  dynamic per-row quantization -> ReduceMax(|x|)/127, Round, Clip, Mul: the same arithmetic as
  ``lowbit.refexec.quantize_activation``; ``--smooth`` divisors -> a Div before the quantize step.

So ONNX Runtime computes what lowbit's reference executor computes, up to float summation order.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from lowbit import LowbitError
from lowbit.fsutil import publish
from lowbit.ir import ActQuant, Graph, Node, QuantWeight

OPSET = 17
MATMULNBITS_BLOCKS = (16, 32, 64, 128, 256)


def _onnx():
    import onnx  # noqa: PLC0415

    return onnx


class _Builder:
    def __init__(self, graph: Graph, opset: int):
        self.graph = graph
        self.opset = opset
        self.nodes = []
        self.inits = []
        self.names = set(graph.initializers) | {t.name for t in graph.inputs} | \
            {o for n in graph.nodes for o in n.outputs}
        self.uses_ms = False

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    def const(self, base: str, arr: np.ndarray) -> str:
        onnx = _onnx()
        name = self.fresh(base)
        self.inits.append(onnx.numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(self, op: str, inputs: List[str], base: str, domain: str = "", n_out: int = 1, **attrs) -> List[str]:
        onnx = _onnx()
        outs = [self.fresh(f"{base}_out{i}" if n_out > 1 else base) for i in range(n_out)]
        self.nodes.append(onnx.helper.make_node(op, inputs, outs, name=self.fresh("n_" + base), domain=domain or None, **attrs))
        return outs


def _reduce_max(b: _Builder, x: str, axes: Optional[List[int]], base: str) -> str:
    if axes is None:
        return b.node("ReduceMax", [x], base, keepdims=1)[0]
    if b.opset >= 18:
        return b.node("ReduceMax", [x, b.const(base + "_axes", np.array(axes, np.int64))], base, keepdims=1)[0]
    return b.node("ReduceMax", [x], base, keepdims=1, axes=axes)[0]


def emit_act_quant(b: _Builder, x: str, aq: ActQuant, channel_axis: int, rank: int, base: str) -> str:
    """Nodes that fake-quantize activation ``x`` as ``refexec.quantize_activation`` does."""
    if aq.smooth is not None:
        # [C] followed by ones for the axes after the channel axis: broadcasts without raising the rank
        # of x, even where the writer does not know that rank (channel_axis = rank - 1 for MatMul)
        shape = [-1] + [1] * (rank - 1 - channel_axis)
        s = b.const(base + "_smooth", aq.smooth.astype(np.float32).reshape(shape))
        x = b.node("Div", [x, s], base + "_smoothed")[0]
    qmax = float(2 ** (aq.bits - 1) - 1)
    if aq.mode == "static":
        if aq.bits != 8:
            raise LowbitError(f"ONNX QDQ needs 8-bit activations, not {aq.bits}")
        sc = b.const(base + "_scale", np.array(aq.scale, np.float32))
        zp = b.const(base + "_zp", np.array(aq.zero_point, np.int8))
        q = b.node("QuantizeLinear", [x, sc, zp], base + "_q")[0]
        return b.node("DequantizeLinear", [q, sc, zp], base + "_dq")[0]
    ax = b.node("Abs", [x], base + "_abs")[0]
    mx = _reduce_max(b, ax, [-1] if aq.granularity == "row" else None, base + "_amax")
    sc = b.node("Div", [mx, b.const(base + "_qmax", np.array(qmax, np.float32))], base + "_dscale")[0]
    sc = b.node("Max", [sc, b.const(base + "_eps", np.array(1e-12, np.float32))], base + "_dscale_pos")[0]
    r = b.node("Round", [b.node("Div", [x, sc], base + "_div")[0]], base + "_round")[0]
    c = b.node("Clip", [r, b.const(base + "_lo", np.array(-qmax, np.float32)),
                        b.const(base + "_hi", np.array(qmax, np.float32))], base + "_clip")[0]
    return b.node("Mul", [c, sc], base + "_dqd")[0]


def _is_plain_int8(w: QuantWeight) -> bool:
    return (w.fmt == "int8" and w.group_size == w.q.shape[1] and w.zero is None and w.minimum is None
            and w.codebook is None and w.outliers is None)


def _to_orig_layout(b: _Builder, flat_nk: str, w: QuantWeight, base: str) -> str:
    """[N, K] -> the source graph's layout (kn: transpose; conv: reshape to orig_shape)."""
    if w.layout == "kn":
        t = b.node("Transpose", [flat_nk], base + "_t", perm=[1, 0])[0]
        if w.orig_shape and len(w.orig_shape) != 2:
            t = b.node("Reshape", [t, b.const(base + "_shape", np.array(w.orig_shape, np.int64))], base + "_r")[0]
        return t
    if w.orig_shape and tuple(w.orig_shape) != tuple(w.q.shape):
        return b.node("Reshape", [flat_nk, b.const(base + "_shape", np.array(w.orig_shape, np.int64))], base + "_r")[0]
    return flat_nk


def emit_weight(b: _Builder, name: str, w: QuantWeight) -> str:
    """Nodes producing the float weight ``name`` from its codes (returns the value name)."""
    n, k = w.q.shape
    base = name
    if _is_plain_int8(w) and b.opset >= 13:
        if w.layout == "kn":
            codes = np.ascontiguousarray(w.q.T).reshape(w.orig_shape or (k, n))
            axis = len(codes.shape) - 1
        else:
            codes = w.q.reshape(w.orig_shape or w.q.shape)
            axis = 0
        qn = b.const(base + "_q", codes.astype(np.int8))
        sc = b.const(base + "_scale", w.scale.reshape(n).astype(np.float32))
        zp = b.const(base + "_zp", np.zeros(n, np.int8))
        return b.node("DequantizeLinear", [qn, sc, zp], base + "_dq", axis=axis)[0]
    g = w.group_size
    if w.codebook is not None:
        cb = b.const(base + "_codebook", w.codebook.astype(np.float32))
        codes = b.const(base + "_codes", w.q.astype(np.uint8))
        idx = b.node("Cast", [codes], base + "_idx", to=6)[0]  # Gather indices must be int32/int64
        vals = b.node("Gather", [cb, idx], base + "_lut", axis=0)[0]
    else:
        codes = b.const(base + "_codes", w.q.astype(np.int8))
        vals = b.node("Cast", [codes], base + "_f", to=1)[0]
    vals = b.node("Reshape", [vals, b.const(base + "_grp", np.array([n, k // g, g], np.int64))], base + "_g")[0]
    if w.zero is not None and w.minimum is None:
        vals = b.node("Sub", [vals, b.const(base + "_zero", w.zero.astype(np.float32)[:, :, None])], base + "_z")[0]
    vals = b.node("Mul", [vals, b.const(base + "_scale", w.scale.astype(np.float32)[:, :, None])], base + "_s")[0]
    if w.minimum is not None:
        vals = b.node("Add", [vals, b.const(base + "_min", w.minimum.astype(np.float32)[:, :, None])], base + "_m")[0]
    if w.outliers is not None:
        idx, val = w.outliers
        flat = b.node("Reshape", [vals, b.const(base + "_flat", np.array([n * k], np.int64))], base + "_fl")[0]
        flat = b.node("ScatterND", [flat, b.const(base + "_oidx", idx.astype(np.int64).reshape(-1, 1)),
                                    b.node("Cast", [b.const(base + "_oval", val.astype(np.float16))],
                                           base + "_ovf", to=1)[0]], base + "_sc")[0]
        vals = flat
    nk = b.node("Reshape", [vals, b.const(base + "_nk", np.array([n, k], np.int64))], base + "_nkv")[0]
    return _to_orig_layout(b, nk, w, base)


def _matmulnbits_ok(node: Node, w: QuantWeight) -> bool:
    n, k = w.q.shape
    return (node.op == "MatMul" and w.fmt == "int4" and w.layout == "kn" and len(w.orig_shape or (k, n)) == 2
            and w.group_size in MATMULNBITS_BLOCKS and k % w.group_size == 0 and w.zero is None
            and w.minimum is None and w.codebook is None and w.outliers is None)


def pack_matmulnbits(w: QuantWeight):
    """(B uint8 [N, K/G, G/2], scales float32 [N * K/G]) for com.microsoft MatMulNBits, bits=4."""
    n, k = w.q.shape
    g = w.group_size
    u = (w.q.astype(np.int16) + 8).astype(np.uint8).reshape(n, k // g, g)
    packed = (u[..., 0::2] | (u[..., 1::2] << 4)).astype(np.uint8)
    return packed, w.scale.astype(np.float32).reshape(-1)


def graph_to_model(graph: Graph, *, extra_outputs: Optional[List[str]] = None, keep_value_info: bool = True,
                   opset: Optional[int] = None):
    """Build an ``onnx.ModelProto`` from the IR. ``extra_outputs``: intermediate values to expose
    (used by calibration and the accuracy report)."""
    onnx = _onnx()
    h = onnx.helper
    opset = int(opset or max(graph.metadata.get("opset", OPSET), 13 if _has_quant(graph) else 1))
    b = _Builder(graph, opset)
    weight_values: Dict[str, str] = {}
    for name, v in graph.initializers.items():
        if isinstance(v, np.ndarray):
            b.inits.append(onnx.numpy_helper.from_array(np.ascontiguousarray(v), name))
    for node in graph.nodes:
        inputs = list(node.inputs)
        aq = node.attrs.get("act_quant")
        attrs = {k: v for k, v in node.attrs.items() if k != "act_quant" and not k.startswith("lowbit_")}
        if aq is not None and inputs:
            vi = graph.value_info.get(inputs[0])
            rank = len(vi.shape) if vi is not None and vi.shape else (4 if node.op == "Conv" else 3)
            inputs[0] = emit_act_quant(b, inputs[0], aq, 1 if node.op in ("Conv", "ConvTranspose") else rank - 1, rank,
                                       node.name + "_aq")
        wname = inputs[1] if len(inputs) > 1 else ""
        w = graph.initializers.get(wname)
        if isinstance(w, QuantWeight) and _matmulnbits_ok(node, w):
            packed, scales = pack_matmulnbits(w)
            n, k = w.q.shape
            b.uses_ms = True
            b.nodes.append(h.make_node(
                "MatMulNBits", [inputs[0], b.const(wname + "_q4", packed), b.const(wname + "_scales", scales)],
                node.outputs, name=node.name, domain="com.microsoft", K=k, N=n, bits=4, block_size=w.group_size))
            continue
        for i, name in enumerate(inputs):
            v = graph.initializers.get(name)
            if isinstance(v, QuantWeight):
                if name not in weight_values:
                    weight_values[name] = emit_weight(b, name, v)
                inputs[i] = weight_values[name]
        if node.domain == "com.microsoft":
            b.uses_ms = True
        b.nodes.append(h.make_node(node.op, inputs, node.outputs, name=node.name, domain=node.domain or None,
                                   **{k: _attr(v) for k, v in attrs.items()}))

    def vi(t):
        dt = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype)) if t.dtype != "unknown" else onnx.TensorProto.FLOAT
        shape = None if t.shape is None else [d if isinstance(d, (int, str)) else None for d in t.shape]
        return h.make_tensor_value_info(t.name, dt, shape)

    outputs = [vi(t) for t in graph.outputs]
    for name in extra_outputs or []:
        t = graph.value_info.get(name)
        outputs.append(vi(t) if t is not None and t.dtype != "unknown" else
                       h.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    g = h.make_graph(b.nodes, graph.name or "lowbit", [vi(t) for t in graph.inputs], outputs, b.inits,
                     value_info=[vi(t) for t in graph.value_info.values() if t.dtype != "unknown"]
                     if keep_value_info else None)
    opsets = [h.make_opsetid("", opset)]
    for dom, ver in (graph.metadata.get("opsets") or {}).items():
        if dom and dom != "com.microsoft":
            opsets.append(h.make_opsetid(dom, ver))
    if b.uses_ms:
        opsets.append(h.make_opsetid("com.microsoft", 1))
    model = h.make_model(g, opset_imports=opsets, producer_name="lowbit")
    model.ir_version = min(model.ir_version, 9)
    return model


def _attr(v):
    if isinstance(v, np.ndarray):
        return _onnx().numpy_helper.from_array(v)
    return v


def _has_quant(graph: Graph) -> bool:
    return any(isinstance(v, QuantWeight) for v in graph.initializers.values()) or \
        any("act_quant" in n.attrs for n in graph.nodes)


def write_onnx(graph: Graph, out, *, check: bool = True, metadata: Optional[Dict[str, str]] = None) -> Path:
    """Write ``graph`` as an ONNX file atomically (temp file + rename); validated with onnx.checker.
    ``metadata`` goes into the model's metadata_props (the accuracy report JSON, the scheme)."""
    onnx = _onnx()
    out = Path(out)
    model = graph_to_model(graph)
    for k, v in (metadata or {}).items():
        onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, k: str(v)})
    if check:
        try:
            onnx.checker.check_model(model, full_check=False)
        except Exception as exc:
            raise LowbitError(f"the ONNX model lowbit built does not pass onnx.checker: {exc}") from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + out.name + ".", suffix=".tmp", dir=str(out.parent))
    os.close(fd)
    try:
        data = model.SerializeToString()
        with open(tmp, "wb") as f:
            f.write(data)
        publish(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out


def ort_session(graph_or_model, threads: int = 1, extra_outputs: Optional[List[str]] = None):
    """An onnxruntime InferenceSession for an IR graph (or ModelProto), in memory."""
    import onnxruntime as ort  # noqa: PLC0415

    model = graph_or_model if not isinstance(graph_or_model, Graph) else \
        graph_to_model(graph_or_model, extra_outputs=extra_outputs)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # ORT_ENABLE_ALL would rewrite our dynamic-quantization pattern + DequantizeLinear/MatMul into its
    # own MatMulIntegerToFloat with different rounding (so does EXTENDED); BASIC keeps lowbit's exact arithmetic.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    # Even at BASIC, ORT (>= 1.20) runs WeightBiasQuantization: a float bias of a Conv/Gemm whose input
    # and weight come from DequantizeLinear is rounded to int32 at scale x_scale * w_scale (and a float
    # weight behind a quantized input is quantized per tensor). lowbit's arithmetic (refexec, the native
    # kernels) keeps the bias in float, so lowbit's own sessions turn that rewrite off.
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"],
                                disabled_optimizers=ORT_DISABLED_OPTIMIZERS)


ORT_DISABLED_OPTIMIZERS = ["WeightBiasQuantization"]
