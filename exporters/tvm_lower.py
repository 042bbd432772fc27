"""Lowers lowbit's graph IR to a TVM Relax module (static shapes).

Float ops map onto Relax ops (legalised to TIR by TVM). Quantized MatMul/Gemm/Conv become one TE
kernel each whose reduction reads the packed codes and scales (see ``tvm_quant``): the weight is
decoded inside the kernel, never ahead of time. Activation quantization (``act_quant``) is lowered
to the same fake-quant arithmetic as ``lowbit.refexec`` (round half to even, clamp, rescale).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from lowbit import LowbitError, refexec
from lowbit.ir import ActQuant, Graph, Node, QuantWeight

from . import tvm_quant

_OPS: Dict[str, Callable] = {}
_QUANT_AWARE = {"MatMul", "Gemm", "Conv"}  # ops that take a QuantWeight and decode it in their kernel


def op(*names):
    def deco(fn):
        for n in names:
            _OPS[n] = fn
        return fn
    return deco


def supported_ops() -> List[str]:
    return sorted(_OPS)


class Lowering:
    """State while one graph is lowered: the block builder, the value map and constants."""

    def __init__(self, graph: Graph, input_shapes: Optional[Dict[str, Sequence[int]]] = None):
        import tvm  # noqa: PLC0415
        from tvm import relax  # noqa: PLC0415

        self.tvm, self.relax, self.R = tvm, relax, relax.op
        self.graph = graph
        self.input_shapes = dict(input_shapes or {})
        self.bb = relax.BlockBuilder()
        self.env: Dict[str, Any] = {}
        self.quant_kernels: List[str] = []  # names of the fused decode-matmul kernels emitted

    # -- values --------------------------------------------------------------------------
    def value(self, name: str):
        if name in self.env:
            return self.env[name]
        init = self.graph.initializers.get(name)
        if init is None:
            raise LowbitError(f"TVM writer: value {name!r} is not defined")
        if isinstance(init, QuantWeight):
            arr = tvm_quant_weight_array(init)
        else:
            arr = np.asarray(init)
        c = self.relax.const(_normalize_dtype(arr))
        self.env[name] = c
        return c

    def const_array(self, name: str, node: Node) -> np.ndarray:
        """An input that must be a compile-time constant (shapes, axes, indices)."""
        init = self.graph.initializers.get(name)
        v = self.env.get(name)
        if init is None and isinstance(v, self.tvm.ir.expr.Constant):
            return v.value.numpy()  # a value this lowering folded (Shape, Constant, ConstantOfShape)
        if init is None or isinstance(init, QuantWeight):
            raise LowbitError(f"TVM writer: node {node.name!r} ({node.op}) needs input {name!r} to be a "
                              "constant initializer (dynamic shapes are not supported)")
        return np.asarray(init)

    def emit(self, expr):
        return self.bb.emit(expr)

    def shape(self, x) -> List[int]:
        return [int(d) for d in x.ty.shape]

    def dtype(self, x) -> str:
        return str(x.ty.dtype)

    def emit_te(self, fn, *args, name: str, **kw):
        return self.bb.emit_te(fn, *args, primfunc_name_hint=name, **kw)

    # -- building --------------------------------------------------------------------------
    def build(self):
        relax = self.relax
        params = []
        for t in self.graph.inputs:
            shape = self.input_shapes.get(t.name)
            if shape is None:
                shape = [d if isinstance(d, int) else 1 for d in t.shape]
            v = relax.Var(t.name, relax.TensorType([int(d) for d in shape], t.dtype))
            params.append(v)
            self.env[t.name] = v
        with self.bb.function("main", params):
            with self.bb.dataflow():
                for node in self.graph.nodes:
                    key = node.op if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op}"
                    fn = _OPS.get(key)
                    if fn is None:
                        raise LowbitError(f"TVM writer: no lowering for op {key!r} (node {node.name!r}); "
                                          f"supported: {', '.join(supported_ops())}")
                    args = [None if not i else (self.graph.initializers[i] if isinstance(
                        self.graph.initializers.get(i), QuantWeight) and key in _QUANT_AWARE else self.value(i))
                        for i in node.inputs]
                    try:
                        out = fn(self, node, *args)
                    except LowbitError:
                        raise
                    except Exception as exc:
                        raise LowbitError(f"TVM writer: lowering node {node.name!r} ({node.op}) failed: {exc}") from exc
                    outs = out if isinstance(out, (list, tuple)) else [out]
                    for name, v in zip(node.outputs, outs):
                        if name:
                            self.env[name] = v
                results = [self.env[t.name] for t in self.graph.outputs]
                ret = results[0] if len(results) == 1 else relax.Tuple(results)
                gv = self.bb.emit_output(ret)
            self.bb.emit_func_output(gv)
        return self.bb.get()


def tvm_quant_weight_array(w: QuantWeight) -> np.ndarray:
    """Float weight for an op that has no quantized kernel here (e.g. Gather on a quantized table)."""
    deq = w.dequantize()  # [N, K]
    if w.layout == "kn":
        return np.ascontiguousarray(deq.T).reshape(w.orig_shape or deq.T.shape)
    return deq.reshape(w.orig_shape or deq.shape)


def _normalize_dtype(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.float64:
        return arr.astype(np.float32)
    if arr.dtype == np.bool_:
        return arr
    return np.ascontiguousarray(arr)


def lower(graph: Graph, input_shapes=None):
    """Relax IRModule for the graph, and the names of the fused decode-matmul kernels."""
    lw = Lowering(graph, input_shapes)
    mod = lw.build()
    return mod, lw.quant_kernels


# ------------------------------------------------------------------ activation quantization

def act_quant(lw: Lowering, node: Node, x, channel_axis: int):
    aq: Optional[ActQuant] = node.attrs.get("act_quant")
    if aq is None:
        return x
    from tvm import te, tirx as tir  # noqa: PLC0415

    R = lw.R
    if aq.smooth is not None:
        shape = [1] * len(lw.shape(x))
        shape[channel_axis] = -1
        x = lw.emit(R.divide(x, lw.relax.const(np.asarray(aq.smooth, np.float32).reshape(shape))))
    qmax = float(2 ** (aq.bits - 1) - 1)
    f32 = "float32"
    if aq.mode == "static":
        scale, zp = float(np.float32(aq.scale)), float(aq.zero_point)

        def fq(t):
            def f(*i):
                q = tir.nearbyint(t[i] / tir.const(scale, f32)) + tir.const(zp, f32)
                q = tir.max(tir.min(q, tir.const(qmax, f32)), tir.const(-qmax - 1, f32))
                return (q - tir.const(zp, f32)) * tir.const(scale, f32)
            return te.compute(t.shape, f, name="act_quant")

        return lw.emit_te(fq, x, name="act_quant_static")
    if aq.mode == "dynamic":
        nd = len(lw.shape(x))
        if aq.granularity == "row":
            amax = lw.emit(R.max(R.abs(x), axis=[nd - 1], keepdims=True))
        else:
            amax = lw.emit(R.max(R.abs(x), axis=list(range(nd)), keepdims=True))

        def fq(t, m):
            def f(*i):
                mi = tuple(0 if int(m.shape[d]) == 1 else i[d] for d in range(nd))
                s = tir.max(m[mi] / tir.const(qmax, f32), tir.const(1e-12, f32))
                q = tir.nearbyint(t[i] / s)
                q = tir.max(tir.min(q, tir.const(qmax, f32)), tir.const(-qmax, f32))
                return q * s
            return te.compute(t.shape, f, name="act_quant")

        return lw.emit_te(fq, x, amax, name="act_quant_dynamic")
    raise LowbitError(f"unknown activation quantization mode {aq.mode!r} (node {node.name!r})")


# ------------------------------------------------------------------ quantized kernels

def _quant_matmul(lw: Lowering, node: Node, a, w: QuantWeight, trans: bool):
    """a [..., I] @ W_src [I, J], W_src = source-layout weight (transposed first when ``trans``)."""
    pw = tvm_quant.pack(w)
    n, k = pw.n, pw.k
    src = tuple(w.orig_shape) if w.orig_shape else ((k, n) if w.layout == "kn" else (n, k))
    if len(src) != 2:
        raise LowbitError(f"TVM writer: MatMul weight of node {node.name!r} has shape {src}; only 2-D is supported")
    rows, cols = src

    def flat(i, j):
        if w.layout == "kn":
            return j, i  # source [K, N]: element (i=k, j=n)
        f = i * cols + j
        return f // k, f % k

    if trans:  # Gemm transB: the contracted index is the source column
        src_map = lambda i, j: flat(j, i)  # noqa: E731
        contracted, out = cols, rows
    else:
        src_map = flat
        contracted, out = rows, cols
    if pw.out_idx is not None:
        # The correction table is per quantized row n; valid when output j is row n and i is k.
        direct = (w.layout == "kn" and not trans) or (w.layout == "nk" and trans and src == (n, k))
        if not direct:
            raise LowbitError(f"TVM writer: sparse outliers on node {node.name!r} need a [K, N] MatMul or a "
                              "transB Gemm weight")
    name = f"q{w.fmt}_matmul"
    build = tvm_quant.matmul_te(pw, tuple(lw.shape(a)), src_map, name)
    consts = [lw.relax.const(arr) for arr in pw.arrays()]
    lw.quant_kernels.append(name)
    return lw.emit_te(build, a, *consts, name=name, src_shape=(contracted, out))


@op("MatMul")
def _matmul(lw, node, a, b):
    a = act_quant(lw, node, a, -1)
    if isinstance(b, QuantWeight):
        return _quant_matmul(lw, node, a, b, trans=False)
    return lw.emit(lw.R.matmul(a, b))


@op("Gemm")
def _gemm(lw, node, a, b, c=None):
    R = lw.R
    a = act_quant(lw, node, a, -1)
    if node.attrs.get("transA", 0):
        a = lw.emit(R.permute_dims(a))
    trans_b = bool(node.attrs.get("transB", 0))
    if isinstance(b, QuantWeight):
        y = _quant_matmul(lw, node, a, b, trans=trans_b)
    else:
        if trans_b:
            b = lw.emit(R.permute_dims(b))
        y = lw.emit(R.matmul(a, b))
    alpha = float(node.attrs.get("alpha", 1.0))
    if alpha != 1.0:
        y = lw.emit(R.multiply(y, lw.relax.const(np.float32(alpha))))
    if c is not None:
        beta = float(node.attrs.get("beta", 1.0))
        if beta != 1.0:
            c = lw.emit(R.multiply(c, lw.relax.const(np.float32(beta))))
        y = lw.emit(R.add(y, c))
    return y


def _conv_params(node, x_shape, k):
    """(strides, dilations, pads) with auto_pad resolved: the reference executor's rule, so both agree."""
    _, strides, dil, pads = refexec.conv_params(node, x_shape, (0, 0, *k))
    return strides, dil, pads


@op("Conv")
def _conv(lw, node, x, w, b=None):
    R = lw.R
    x = act_quant(lw, node, x, 1)
    xs = lw.shape(x)
    if len(xs) != 4:
        raise LowbitError(f"TVM writer: only 2-D Conv is supported (node {node.name!r})")
    qw = w
    wshape = list(qw.orig_shape) if isinstance(qw, QuantWeight) else lw.shape(w)
    k = wshape[2:]
    strides, dil, pads = _conv_params(node, xs, k)
    groups = int(node.attrs.get("group", 1))
    if isinstance(qw, QuantWeight):
        if qw.outliers is not None and len(qw.outliers[0]):
            raise LowbitError(f"TVM writer: sparse outliers on Conv node {node.name!r} are not supported")
        if qw.layout != "nk" or qw.shape != (wshape[0], int(np.prod(wshape[1:]))):
            raise LowbitError(f"TVM writer: Conv weight of node {node.name!r} must be [O, I*kh*kw] ('nk')")
        pw = tvm_quant.pack(qw)
        name = f"q{qw.fmt}_conv2d"
        build = tvm_quant.conv2d_te(pw, strides, pads, dil, groups, tuple(k), name)
        consts = [lw.relax.const(arr) for arr in pw.arrays()]
        lw.quant_kernels.append(name)
        y = lw.emit_te(build, x, *consts, name=name, out_channels=wshape[0])
    else:
        y = lw.emit(R.nn.conv2d(x, w, strides=strides, padding=pads, dilation=dil, groups=groups))
    if b is not None:
        y = lw.emit(R.add(y, R.reshape(b, [1, -1, 1, 1])))
    return y


# ------------------------------------------------------------------ elementwise and shapes

def _bin(fn_name):
    def f(lw, node, a, b):
        return lw.emit(getattr(lw.R, fn_name)(a, b))
    return f


for _onnx, _relax in (("Add", "add"), ("Sub", "subtract"), ("Mul", "multiply"), ("Div", "divide"),
                      ("Pow", "power"), ("Max", "maximum"), ("Min", "minimum"), ("Equal", "equal"),
                      ("Less", "less"), ("Greater", "greater"), ("GreaterOrEqual", "greater_equal"),
                      ("LessOrEqual", "less_equal"), ("And", "logical_and"), ("Or", "logical_or"),
                      ("Xor", "logical_xor")):
    op(_onnx)(_bin(_relax))


@op("Sum")
def _sum_n(lw, node, *xs):
    y = xs[0]
    for x in xs[1:]:
        y = lw.emit(lw.R.add(y, x))
    return y


@op("Mod")
def _mod(lw, node, a, b):
    if node.attrs.get("fmod", 0):
        return lw.emit(lw.R.subtract(a, lw.R.multiply(lw.R.trunc(lw.R.divide(a, b)), b)))
    return lw.emit(lw.R.floor_mod(a, b))


def _un(fn):
    def f(lw, node, x):
        return lw.emit(fn(lw.R)(x))
    return f


for _onnx, _fn in (("Relu", lambda R: R.nn.relu), ("Sigmoid", lambda R: R.sigmoid), ("Tanh", lambda R: R.tanh),
                   ("Exp", lambda R: R.exp), ("Log", lambda R: R.log), ("Sqrt", lambda R: R.sqrt),
                   ("Erf", lambda R: R.erf), ("Abs", lambda R: R.abs), ("Neg", lambda R: R.negative),
                   ("Reciprocal", lambda R: (lambda x: R.divide(R.ones_like(x), x))),
                   ("Floor", lambda R: R.floor), ("Ceil", lambda R: R.ceil), ("Not", lambda R: R.logical_not),
                   ("Sign", lambda R: R.sign), ("Sin", lambda R: R.sin), ("Cos", lambda R: R.cos),
                   ("Softplus", lambda R: R.nn.softplus), ("Round", lambda R: R.round)):
    op(_onnx)(_un(_fn))


@op("Identity", "Dropout")
def _identity(lw, node, x, *rest):
    return x


@op("Gelu", "com.microsoft::Gelu", "lowbit::Gelu")
def _gelu(lw, node, x):
    if node.attrs.get("approximate", "none") in ("tanh", b"tanh"):
        return lw.emit(lw.R.nn.gelu_tanh(x))
    return lw.emit(lw.R.nn.gelu(x))


@op("HardSigmoid")
def _hsig(lw, node, x):
    R, c = lw.R, lw.relax.const
    a, b = float(node.attrs.get("alpha", 0.2)), float(node.attrs.get("beta", 0.5))
    return lw.emit(R.clip(R.add(R.multiply(x, c(np.float32(a))), c(np.float32(b))), 0.0, 1.0))


@op("HardSwish")
def _hswish(lw, node, x):
    R, c = lw.R, lw.relax.const
    h = R.clip(R.add(R.multiply(x, c(np.float32(1 / 6))), c(np.float32(0.5))), 0.0, 1.0)
    return lw.emit(R.multiply(x, h))


@op("LeakyRelu")
def _lrelu(lw, node, x):
    return lw.emit(lw.R.nn.leakyrelu(x, float(node.attrs.get("alpha", 0.01))))


@op("Clip")
def _clip(lw, node, x, lo=None, hi=None):
    lo_v = float(lw.const_array(node.inputs[1], node)) if lo is not None else float(node.attrs.get("min", -3.4e38))
    hi_v = float(lw.const_array(node.inputs[2], node)) if hi is not None else float(node.attrs.get("max", 3.4e38))
    return lw.emit(lw.R.clip(x, lo_v, hi_v))


@op("Where")
def _where(lw, node, c, a, b):
    return lw.emit(lw.R.where(c, a, b))


@op("Cast")
def _cast(lw, node, x):
    from onnx import helper  # noqa: PLC0415

    to = helper.tensor_dtype_to_np_dtype(int(node.attrs["to"]))
    return lw.emit(lw.R.astype(x, np.dtype(to).name))


@op("Reshape")
def _reshape(lw, node, x, shape):
    tgt = [int(v) for v in lw.const_array(node.inputs[1], node)]
    src = lw.shape(x)
    tgt = [src[i] if v == 0 and not node.attrs.get("allowzero", 0) else v for i, v in enumerate(tgt)]
    return lw.emit(lw.R.reshape(x, tgt))


@op("Flatten")
def _flatten(lw, node, x):
    axis = int(node.attrs.get("axis", 1))
    s = lw.shape(x)
    axis = axis + len(s) if axis < 0 else axis
    return lw.emit(lw.R.reshape(x, [int(np.prod(s[:axis])), int(np.prod(s[axis:]))]))


@op("Transpose")
def _transpose(lw, node, x):
    perm = node.attrs.get("perm")
    return lw.emit(lw.R.permute_dims(x, list(perm) if perm is not None else None))


def _axes(lw, node, idx):
    if len(node.inputs) > idx and node.inputs[idx]:
        return [int(v) for v in lw.const_array(node.inputs[idx], node)]
    a = node.attrs.get("axes")
    return None if a is None else [int(v) for v in a]


@op("Squeeze")
def _squeeze(lw, node, x, axes=None):
    return lw.emit(lw.R.squeeze(x, _axes(lw, node, 1)))


@op("Unsqueeze")
def _unsqueeze(lw, node, x, axes=None):
    ax = _axes(lw, node, 1)
    out_nd = len(lw.shape(x)) + len(ax)
    return lw.emit(lw.R.expand_dims(x, sorted(a + out_nd if a < 0 else a for a in ax)))


@op("Concat")
def _concat(lw, node, *xs):
    return lw.emit(lw.R.concat([x for x in xs if x is not None], axis=int(node.attrs["axis"])))


@op("Split")
def _split(lw, node, x, split=None):
    axis = int(node.attrs.get("axis", 0))
    dim = lw.shape(x)[axis]
    if split is not None:
        sizes = [int(v) for v in lw.const_array(node.inputs[1], node)]
    elif node.attrs.get("split") is not None:
        sizes = [int(v) for v in node.attrs["split"]]
    else:
        cnt = len(node.outputs)
        sizes = [dim // cnt] * cnt
    idx = list(np.cumsum(sizes)[:-1])
    t = lw.emit(lw.R.split(x, [int(i) for i in idx], axis=axis))
    return [lw.emit(lw.relax.TupleGetItem(t, i)) for i in range(len(sizes))]


@op("Slice")
def _slice(lw, node, x, starts=None, ends=None, axes=None, steps=None):
    st = [int(v) for v in lw.const_array(node.inputs[1], node)]
    en = [int(v) for v in lw.const_array(node.inputs[2], node)]
    nd = len(lw.shape(x))
    ax = _axes(lw, node, 3) or list(range(len(st)))
    sp = [int(v) for v in lw.const_array(node.inputs[4], node)] if len(node.inputs) > 4 and node.inputs[4] else [1] * len(st)
    shape = lw.shape(x)
    b, e = [], []
    for a, s0, e0, step in zip(ax, st, en, sp):
        d = shape[a + nd if a < 0 else a]
        s0 = max(min(s0 + d if s0 < 0 else s0, d), 0) if step > 0 else max(min(s0 + d if s0 < 0 else s0, d - 1), -1)
        e0 = max(min(e0 + d if e0 < 0 else e0, d), 0) if step > 0 else max(min(e0 + d if e0 < 0 else e0, d - 1), -1)
        b.append(s0)
        e.append(e0)
    return lw.emit(lw.R.strided_slice(x, [a + nd if a < 0 else a for a in ax], b, e, sp, assume_inbound=True))


@op("Gather")
def _gather(lw, node, x, idx):
    axis = int(node.attrs.get("axis", 0))
    d = lw.shape(x)[axis]
    if node.inputs[1] in lw.graph.initializers:
        iv = np.asarray(lw.const_array(node.inputs[1], node)).astype(np.int64)
        iv = np.where(iv < 0, iv + d, iv)
        if iv.ndim == 0:
            t = lw.emit(lw.R.take(x, lw.relax.const(iv.reshape(1)), axis=axis))
            return lw.emit(lw.R.squeeze(t, [axis]))
        idx = lw.relax.const(iv)
    return lw.emit(lw.R.take(x, idx, axis=axis, mode="wrap"))  # ONNX allows negative indices


@op("Expand")
def _expand(lw, node, x, shape):
    tgt = [int(v) for v in lw.const_array(node.inputs[1], node)]
    src = lw.shape(x)
    nd = max(len(tgt), len(src))
    src = [1] * (nd - len(src)) + src
    tgt = [1] * (nd - len(tgt)) + tgt
    out = [max(a, b) for a, b in zip(src, tgt)]
    return lw.emit(lw.R.broadcast_to(x, out))


@op("Tile")
def _tile(lw, node, x, reps):
    return lw.emit(lw.R.tile(x, [int(v) for v in lw.const_array(node.inputs[1], node)]))


@op("Pad")
def _pad(lw, node, x, pads=None, value=None, axes=None):
    p = [int(v) for v in lw.const_array(node.inputs[1], node)] if pads is not None else list(node.attrs["pads"])
    val = float(lw.const_array(node.inputs[2], node)) if value is not None else 0.0
    mode = node.attrs.get("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode != "constant":
        raise LowbitError(f"TVM writer: Pad mode {mode!r} is not supported (node {node.name!r})")
    nd = len(lw.shape(x))
    ax = _axes(lw, node, 3) or list(range(nd))
    full = [0] * (2 * nd)
    for i, a in enumerate(ax):
        a = a + nd if a < 0 else a
        full[a], full[a + nd] = p[i], p[i + len(ax)]
    # relax pad_width: [before_0, after_0, before_1, after_1, ...]
    width = []
    for a in range(nd):
        width += [full[a], full[a + nd]]
    return lw.emit(lw.R.nn.pad(x, width, pad_value=val))


def _reduce(fn_name):
    def f(lw, node, x, axes=None):
        ax = _axes(lw, node, 1)
        keep = bool(node.attrs.get("keepdims", 1))
        if ax is None or len(ax) == 0:
            if node.attrs.get("noop_with_empty_axes", 0):
                return x
            ax = list(range(len(lw.shape(x))))
        return lw.emit(getattr(lw.R, fn_name)(x, axis=ax, keepdims=keep))
    return f


for _onnx, _relax in (("ReduceMean", "mean"), ("ReduceSum", "sum"), ("ReduceMax", "max"), ("ReduceMin", "min"),
                      ("ReduceProd", "prod")):
    op(_onnx)(_reduce(_relax))


@op("ReduceL2")
def _reduce_l2(lw, node, x, axes=None):
    sq = lw.emit(lw.R.multiply(x, x))
    s = _reduce("sum")(lw, node, sq, axes)
    return lw.emit(lw.R.sqrt(s))


@op("CastLike")
def _castlike(lw, node, x, like):
    return lw.emit(lw.R.astype(x, lw.dtype(like)))


@op("Shape")
def _shape(lw, node, x):
    s = np.array(lw.shape(x), np.int64)[node.attrs.get("start", 0):node.attrs.get("end", None)]
    return lw.relax.const(s)


@op("Constant")
def _constant(lw, node):
    for k in ("value", "value_float", "value_int", "value_floats", "value_ints"):
        if k in node.attrs:
            v = np.asarray(node.attrs[k])
            if k in ("value_float", "value_floats"):
                v = v.astype(np.float32)
            elif k in ("value_int", "value_ints"):
                v = v.astype(np.int64)
            return lw.relax.const(v)
    raise LowbitError(f"TVM writer: Constant node {node.name!r} has no supported value attribute")


@op("ConstantOfShape")
def _const_of_shape(lw, node, shape):
    val = node.attrs.get("value")
    val = np.zeros(1, np.float32) if val is None else np.asarray(val).reshape(-1)
    dims = [int(d) for d in lw.const_array(node.inputs[0], node)]
    return lw.relax.const(np.full(dims, val[0], dtype=val.dtype))


@op("GatherElements")
def _gather_el(lw, node, x, idx):
    return lw.emit(lw.R.gather_elements(x, idx, axis=int(node.attrs.get("axis", 0))))


@op("PRelu")
def _prelu(lw, node, x, slope):
    R = lw.R
    return lw.emit(R.where(R.greater(x, lw.relax.const(np.float32(0))), x, R.multiply(x, slope)))


@op("Softmax")
def _softmax(lw, node, x):
    return lw.emit(lw.R.nn.softmax(x, axis=int(node.attrs.get("axis", -1))))


@op("LayerNormalization")
def _layernorm(lw, node, x, scale, bias=None):
    axis = int(node.attrs.get("axis", -1))
    nd = len(lw.shape(x))
    axis = axis + nd if axis < 0 else axis
    if bias is None:
        bias = lw.relax.const(np.zeros(lw.shape(scale), np.float32))
    return lw.emit(lw.R.nn.layer_norm(x, scale, bias, axes=list(range(axis, nd)),
                                      epsilon=float(node.attrs.get("epsilon", 1e-5))))


@op("BatchNormalization")
def _batchnorm(lw, node, x, scale, bias, mean, var):
    R, c = lw.R, lw.relax.const
    eps = float(node.attrs.get("epsilon", 1e-5))
    shape = [1, -1] + [1] * (len(lw.shape(x)) - 2)
    g = lw.const_array(node.inputs[1], node) / np.sqrt(lw.const_array(node.inputs[4], node) + eps)
    sh = lw.const_array(node.inputs[2], node) - lw.const_array(node.inputs[3], node) * g
    return lw.emit(R.add(R.multiply(x, c(g.astype(np.float32).reshape(shape))), c(sh.astype(np.float32).reshape(shape))))


@op("GlobalAveragePool")
def _gap(lw, node, x):
    return lw.emit(lw.R.mean(x, axis=list(range(2, len(lw.shape(x)))), keepdims=True))


@op("GlobalMaxPool")
def _gmp(lw, node, x):
    return lw.emit(lw.R.max(x, axis=list(range(2, len(lw.shape(x)))), keepdims=True))


def _pool(kind):
    def f(lw, node, x):
        k = [int(v) for v in node.attrs["kernel_shape"]]
        if len(k) != 2:
            raise LowbitError(f"TVM writer: only 2-D pooling is supported (node {node.name!r})")
        strides, dil, pads = _conv_params(node, lw.shape(x), k)
        ceil = bool(node.attrs.get("ceil_mode", 0))
        if kind == "max":
            return lw.emit(lw.R.nn.max_pool2d(x, k, strides, pads, dil, ceil_mode=ceil))
        return lw.emit(lw.R.nn.avg_pool2d(x, k, strides, pads, dil, ceil_mode=ceil,
                                          count_include_pad=bool(node.attrs.get("count_include_pad", 0))))
    return f


op("MaxPool")(_pool("max"))
op("AveragePool")(_pool("avg"))


@op("Resize")
def _resize(lw, node, x, roi=None, scales=None, sizes=None):
    s = lw.shape(x)
    if sizes is not None:
        out = [int(v) for v in lw.const_array(node.inputs[3], node)][2:]
    else:
        sc = lw.const_array(node.inputs[2], node)
        out = [int(np.floor(s[2 + i] * float(sc[2 + i]))) for i in range(2)]
    mode = node.attrs.get("mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    ctm = node.attrs.get("coordinate_transformation_mode", "half_pixel")
    ctm = ctm.decode() if isinstance(ctm, bytes) else ctm
    nm = node.attrs.get("nearest_mode", "round_prefer_floor")
    nm = nm.decode() if isinstance(nm, bytes) else nm
    method = {"nearest": "nearest_neighbor", "linear": "linear", "cubic": "cubic"}[mode]
    return lw.emit(lw.R.image.resize2d(x, out, method=method, coordinate_transformation_mode=ctm,
                                       rounding_method=nm if mode == "nearest" else ""))
