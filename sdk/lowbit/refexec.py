"""Reference executor for lowbit's graph IR, in numpy.

It defines what a quantized graph computes: weights are ``QuantWeight.dequantize()`` (exactly the
values the kernels multiply with) and activations are quantized as ``Node.attrs["act_quant"]`` says,
with round-half-to-even like ONNX ``QuantizeLinear``. Every quantization pass and every writer is
checked against it. It is written for clarity and small graphs, not speed; the importer also uses
it to fold constant subgraphs.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional

import numpy as np

from lowbit import LowbitError
from lowbit.ir import ActQuant, Graph, Node, QuantWeight

_OPS: Dict[str, Callable] = {}


def op(*names):
    def deco(fn):
        for n in names:
            _OPS[n] = fn
        return fn
    return deco


def supported_ops() -> List[str]:
    return sorted(_OPS)


# ------------------------------------------------------------------ quantization semantics

def weight_array(w: QuantWeight) -> np.ndarray:
    """The float32 weight in the source graph's layout that a quantized kernel computes with."""
    deq = w.dequantize()  # [N, K]
    if w.layout == "kn":
        return np.ascontiguousarray(deq.T).reshape(w.orig_shape or deq.T.shape)
    return deq.reshape(w.orig_shape or deq.shape)


def quantize_activation(x: np.ndarray, aq: ActQuant, channel_axis: int) -> np.ndarray:
    """Fake-quantize an activation exactly as the kernels quantize it (returns float32 values on the grid)."""
    x = np.asarray(x, np.float32)
    if aq.smooth is not None:
        shape = [1] * x.ndim
        shape[channel_axis] = -1
        x = x / aq.smooth.astype(np.float32).reshape(shape)
    qmax = float(2 ** (aq.bits - 1) - 1)
    if aq.mode == "static":
        scale = np.float32(aq.scale)
        q = np.clip(np.round(x / scale) + np.float32(aq.zero_point), -qmax - 1, qmax)
        return ((q - np.float32(aq.zero_point)) * scale).astype(np.float32)
    if aq.mode == "dynamic":
        if aq.granularity == "row":
            amax = np.max(np.abs(x), axis=-1, keepdims=True)
        else:
            amax = np.max(np.abs(x), keepdims=True)
        scale = np.maximum(amax / np.float32(qmax), np.float32(1e-12)).astype(np.float32)
        q = np.clip(np.round(x / scale), -qmax, qmax)
        return (q * scale).astype(np.float32)
    raise LowbitError(f"unknown activation quantization mode {aq.mode!r}")


# ------------------------------------------------------------------ executor

class RefExecutor:
    """Runs a :class:`Graph` on numpy inputs. ``run(feeds, outputs=None, keep=None)``."""

    def __init__(self, graph: Graph):
        self.graph = graph
        missing = sorted({n.op for n in graph.nodes if _key(n) not in _OPS})
        if missing:
            bad = next(n for n in graph.nodes if _key(n) in missing)
            raise LowbitError(f"the reference executor has no {missing[0]!r} op (node {bad.name!r})")

    def run(self, feeds: Dict[str, np.ndarray], outputs: Optional[List[str]] = None,
            keep: Optional[List[str]] = None) -> Dict[str, np.ndarray]:
        env: Dict[str, object] = {"": None}
        for name, v in self.graph.initializers.items():
            env[name] = v
        for t in self.graph.inputs:
            if t.name not in feeds:
                raise LowbitError(f"missing input {t.name!r}")
            env[t.name] = np.asarray(feeds[t.name])
        want = list(outputs) if outputs else [t.name for t in self.graph.outputs]
        keep_set = set(keep or [])
        for node in self.graph.nodes:
            run_node(node, env)
        res = {k: np.asarray(env[k]) for k in want}
        for k in keep_set:
            res[k] = np.asarray(env[k])
        return res


def _key(n: Node) -> str:
    return n.op if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op}"


def run_node(node: Node, env: Dict[str, object]) -> None:
    fn = _OPS.get(_key(node))
    if fn is None:
        raise LowbitError(f"the reference executor has no {node.op!r} op (node {node.name!r})")
    args = [env[i] if i else None for i in node.inputs]
    try:
        out = fn(node, *args)
    except LowbitError:
        raise
    except Exception as exc:
        raise LowbitError(f"reference executor failed on node {node.name!r} ({node.op}): {exc}") from exc
    if not isinstance(out, (tuple, list)):
        out = (out,)
    for name, v in zip(node.outputs, out):
        if name:
            env[name] = v


def _f(x):
    """A float32 array from an initializer that may be a QuantWeight."""
    if isinstance(x, QuantWeight):
        return weight_array(x)
    return x


def _act(node: Node, x: np.ndarray, channel_axis: int) -> np.ndarray:
    aq = node.attrs.get("act_quant")
    if aq is None:
        return x
    return quantize_activation(x, aq, channel_axis)


# ------------------------------------------------------------------ elementwise

def _binary(fn):
    return lambda node, a, b: np.asarray(fn(_f(a), _f(b)))


op("Add")(_binary(np.add))
op("Sub")(_binary(np.subtract))
op("Mul")(_binary(np.multiply))
op("Pow")(lambda node, a, b: np.power(a, b).astype(np.asarray(a).dtype))
op("Equal")(_binary(np.equal))
op("Less")(_binary(np.less))
op("Greater")(_binary(np.greater))
op("GreaterOrEqual")(_binary(np.greater_equal))
op("LessOrEqual")(_binary(np.less_equal))
op("And")(_binary(np.logical_and))
op("Or")(_binary(np.logical_or))
op("Max")(lambda node, *xs: _reduce_n(np.maximum, xs))
op("Min")(lambda node, *xs: _reduce_n(np.minimum, xs))
op("Sum")(lambda node, *xs: _reduce_n(np.add, xs))


def _reduce_n(fn, xs):
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return np.asarray(out)


@op("Div")
def _div(node, a, b):
    a, b = np.asarray(a), np.asarray(b)
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)  # ONNX integer division truncates
    return (a / b).astype(a.dtype)


@op("Mod")
def _mod(node, a, b):
    return np.fmod(a, b) if node.attrs.get("fmod", 0) else np.mod(a, b)


op("Neg")(lambda node, x: -x)
op("Abs")(lambda node, x: np.abs(x))
op("Sqrt")(lambda node, x: np.sqrt(x))
op("Exp")(lambda node, x: np.exp(x))
op("Log")(lambda node, x: np.log(x))
op("Reciprocal")(lambda node, x: (1.0 / x).astype(x.dtype))
op("Floor")(lambda node, x: np.floor(x))
op("Ceil")(lambda node, x: np.ceil(x))
op("Round")(lambda node, x: np.round(x))
op("Not")(lambda node, x: np.logical_not(x))
op("Relu")(lambda node, x: np.maximum(x, 0).astype(x.dtype))


@op("Sigmoid")
def _sigmoid(node, x):
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -88 (float32) gives the exact 0
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype)


op("Tanh")(lambda node, x: np.tanh(x))
op("Identity")(lambda node, x: x)
op("Sign")(lambda node, x: np.sign(x))


@op("Erf")
def _erf(node, x):
    v = np.vectorize(math.erf, otypes=[np.float64])
    return v(x).astype(x.dtype)


@op("Gelu")
def _gelu(node, x):
    if node.attrs.get("approximate", "none") == "tanh":
        return (0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))).astype(x.dtype)
    return (0.5 * x * (1 + _erf(node, x / np.sqrt(2).astype(x.dtype)))).astype(x.dtype)


@op("HardSigmoid")
def _hsig(node, x):
    a, b = node.attrs.get("alpha", 0.2), node.attrs.get("beta", 0.5)
    return np.clip(np.float32(a) * x + np.float32(b), 0, 1).astype(x.dtype)


@op("HardSwish")
def _hswish(node, x):
    return (x * np.clip(x / np.float32(6) + np.float32(0.5), 0, 1)).astype(x.dtype)


@op("LeakyRelu")
def _lrelu(node, x):
    return np.where(x >= 0, x, x * np.float32(node.attrs.get("alpha", 0.01))).astype(x.dtype)


@op("Clip")
def _clip(node, x, lo=None, hi=None):
    lo = node.attrs.get("min", lo) if lo is None else lo
    hi = node.attrs.get("max", hi) if hi is None else hi
    out = x
    if lo is not None:
        out = np.maximum(out, np.asarray(lo, x.dtype))
    if hi is not None:
        out = np.minimum(out, np.asarray(hi, x.dtype))
    return out.astype(x.dtype)


@op("Where")
def _where(node, c, a, b):
    return np.where(c, a, b)


_ONNX_DT = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64,
            9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


@op("Cast")
def _cast(node, x):
    return np.asarray(x).astype(_ONNX_DT[int(node.attrs["to"])])


@op("CastLike")
def _castlike(node, x, like):
    return np.asarray(x).astype(np.asarray(like).dtype)


# ------------------------------------------------------------------ shapes

op("Shape")(lambda node, x: _shape(node, x))


def _shape(node, x):
    s = np.array(np.shape(_f(x)), np.int64)
    start = node.attrs.get("start", 0)
    end = node.attrs.get("end", None)
    return s[start:end]


op("Size")(lambda node, x: np.array(np.size(x), np.int64))


@op("Reshape")
def _reshape(node, x, shape):
    x = _f(x)
    shape = [int(d) for d in shape]
    if not node.attrs.get("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return np.reshape(x, shape)


@op("Flatten")
def _flatten(node, x):
    ax = node.attrs.get("axis", 1)
    ax = ax if ax >= 0 else ax + x.ndim
    return x.reshape(int(np.prod(x.shape[:ax])), -1)


@op("Transpose")
def _transpose(node, x):
    perm = node.attrs.get("perm")
    return np.transpose(_f(x), perm)


def _axes(node, axes_in):
    if axes_in is not None:
        return [int(a) for a in np.asarray(axes_in).reshape(-1)]
    a = node.attrs.get("axes")
    return list(a) if a is not None else None


@op("Squeeze")
def _squeeze(node, x, axes=None):
    ax = _axes(node, axes)
    return np.squeeze(x, axis=tuple(ax)) if ax is not None else np.squeeze(x)


@op("Unsqueeze")
def _unsqueeze(node, x, axes=None):
    ax = _axes(node, axes)
    out_rank = np.ndim(x) + len(ax)
    out = np.asarray(x)
    for a in sorted(a if a >= 0 else a + out_rank for a in ax):
        out = np.expand_dims(out, a)
    return out


@op("Concat")
def _concat(node, *xs):
    return np.concatenate([np.asarray(_f(x)) for x in xs], axis=node.attrs["axis"])


@op("Split")
def _split(node, x, split=None):
    ax = node.attrs.get("axis", 0)
    split = split if split is not None else node.attrs.get("split")
    n = len(node.outputs)
    if split is None:
        size = -(-x.shape[ax] // n)
        split = [size] * (n - 1) + [x.shape[ax] - size * (n - 1)]
    idx = np.cumsum(split)[:-1]
    return tuple(np.split(x, idx, axis=ax))


@op("Slice")
def _slice(node, x, starts=None, ends=None, axes=None, steps=None):
    x = _f(x)
    if starts is None:
        starts, ends, axes = node.attrs["starts"], node.attrs["ends"], node.attrs.get("axes")
    starts = [int(v) for v in np.asarray(starts).reshape(-1)]
    ends = [int(v) for v in np.asarray(ends).reshape(-1)]
    axes = list(range(len(starts))) if axes is None else [int(v) for v in np.asarray(axes).reshape(-1)]
    steps = [1] * len(starts) if steps is None else [int(v) for v in np.asarray(steps).reshape(-1)]
    sl = [slice(None)] * np.ndim(x)
    for s, e, a, st in zip(starts, ends, axes, steps):
        dim = np.shape(x)[a]
        e = max(min(e, dim), -dim - 1) if abs(e) > dim else e
        sl[a] = slice(s, e, st)
    return np.asarray(x)[tuple(sl)]


@op("Gather")
def _gather(node, x, idx):
    return np.take(_f(x), np.asarray(idx).astype(np.int64), axis=node.attrs.get("axis", 0))


@op("GatherElements")
def _gather_el(node, x, idx):
    ax = node.attrs.get("axis", 0)
    idx = np.where(idx < 0, idx + x.shape[ax], idx)
    return np.take_along_axis(x, idx.astype(np.int64), axis=ax)


@op("Expand")
def _expand(node, x, shape):
    shape = [int(s) for s in shape]
    out_shape = np.broadcast_shapes(np.shape(x), tuple(shape))
    return np.broadcast_to(x, out_shape).copy()


@op("ConstantOfShape")
def _const_of_shape(node, shape):
    val = node.attrs.get("value")
    val = np.zeros(1, np.float32) if val is None else np.asarray(val).reshape(-1)
    return np.full([int(s) for s in shape], val[0], dtype=val.dtype)


@op("Constant")
def _constant(node):
    for k in ("value", "value_float", "value_int", "value_floats", "value_ints"):
        if k in node.attrs:
            v = np.asarray(node.attrs[k])
            if k in ("value_float", "value_floats"):
                v = v.astype(np.float32)
            elif k in ("value_int", "value_ints"):
                v = v.astype(np.int64)
            return v
    raise LowbitError(f"Constant node {node.name!r} has no supported value attribute")


@op("Range")
def _range(node, start, limit, delta):
    return np.arange(start, limit, delta).astype(np.asarray(start).dtype)


@op("Tile")
def _tile(node, x, reps):
    return np.tile(x, [int(r) for r in reps])


@op("Pad")
def _pad(node, x, pads=None, value=None, axes=None):
    pads = node.attrs.get("pads") if pads is None else [int(p) for p in pads]
    mode = node.attrs.get("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    r = x.ndim
    cfg = [(int(pads[i]), int(pads[i + r])) for i in range(r)]
    if mode == "constant":
        v = 0 if value is None else np.asarray(value).reshape(-1)[0] if np.size(value) else 0
        return np.pad(x, cfg, mode="constant", constant_values=v)
    return np.pad(x, cfg, mode={"reflect": "reflect", "edge": "edge"}[mode])


# ------------------------------------------------------------------ reductions / normalisation

def _reduce(fn):
    def run(node, x, axes=None):
        ax = _axes(node, axes)
        keep = bool(node.attrs.get("keepdims", 1))
        if ax is None or len(ax) == 0:
            if node.attrs.get("noop_with_empty_axes", 0) and ax is not None:
                return x
            ax = None
        return np.asarray(fn(x, axis=None if ax is None else tuple(ax), keepdims=keep)).astype(x.dtype)
    return run


op("ReduceMean")(_reduce(np.mean))
op("ReduceSum")(_reduce(np.sum))
op("ReduceMax")(_reduce(np.max))
op("ReduceMin")(_reduce(np.min))
op("ReduceProd")(_reduce(np.prod))
op("ReduceL2")(_reduce(lambda x, axis, keepdims: np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))))


@op("Softmax")
def _softmax(node, x):
    ax = node.attrs.get("axis", -1)
    e = np.exp(x - np.max(x, axis=ax, keepdims=True))
    return (e / np.sum(e, axis=ax, keepdims=True)).astype(x.dtype)


@op("LayerNormalization")
def _layernorm(node, x, scale, bias=None):
    ax = node.attrs.get("axis", -1)
    eps = np.float32(node.attrs.get("epsilon", 1e-5))
    axes = tuple(range(ax if ax >= 0 else ax + x.ndim, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps) * scale
    return (y + bias if bias is not None else y).astype(x.dtype)


@op("BatchNormalization")
def _batchnorm(node, x, scale, bias, mean, var):
    eps = np.float32(node.attrs.get("epsilon", 1e-5))
    shp = (1, -1) + (1,) * (x.ndim - 2)
    inv = scale / np.sqrt(var + eps)
    return (x * inv.reshape(shp) + (bias - mean * inv).reshape(shp)).astype(x.dtype)


@op("GlobalAveragePool")
def _gap(node, x):
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


@op("GlobalMaxPool")
def _gmp(node, x):
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


# ------------------------------------------------------------------ matmul / conv

@op("MatMul")
def _matmul(node, a, b):
    a = _act(node, np.asarray(a, np.float32) if np.asarray(a).dtype != np.float32 else a, -1)
    return np.matmul(a, _f(b)).astype(np.float32)


@op("Gemm")
def _gemm(node, a, b, c=None):
    a = _act(node, a, -1)
    b = _f(b)
    if node.attrs.get("transA", 0):
        a = a.T
    if node.attrs.get("transB", 0):
        b = b.T
    y = np.float32(node.attrs.get("alpha", 1.0)) * (a @ b)
    if c is not None:
        y = y + np.float32(node.attrs.get("beta", 1.0)) * c
    return y.astype(np.float32)


def conv_params(node, x_shape, w_shape):
    """(kernel, strides, dilations, pads) of a Conv/ConvTranspose/pool node on an input of ``x_shape``
    with a weight of ``w_shape`` ([O, I, *kernel]), auto_pad resolved. The TVM lowering uses it too."""
    nd = len(x_shape) - 2
    k = list(w_shape[2:])
    strides = list(node.attrs.get("strides", [1] * nd))
    dil = list(node.attrs.get("dilations", [1] * nd))
    pads = list(node.attrs.get("pads", [0] * (2 * nd)))
    auto = node.attrs.get("auto_pad", "NOTSET")
    if isinstance(auto, bytes):
        auto = auto.decode()
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nd)
        for i in range(nd):
            out = -(-x_shape[2 + i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (k[i] - 1) * dil[i] + 1 - x_shape[2 + i])
            lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pads[i], pads[i + nd] = lo, total - lo
    elif auto == "VALID":
        pads = [0] * (2 * nd)
    return k, strides, dil, pads


_conv_params = conv_params  # the old private name


def _im2col(x, k, strides, dil, pads):
    """x [N, C, H, W] -> cols [N, C, kh, kw, OH, OW] (a strided view over the padded input)."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - (k[0] - 1) * dil[0] - 1) // strides[0] + 1
    ow = (w + pads[1] + pads[3] - (k[1] - 1) * dil[1] - 1) // strides[1] + 1
    s = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, (n, c, k[0], k[1], oh, ow),
        (s[0], s[1], s[2] * dil[0], s[3] * dil[1], s[2] * strides[0], s[3] * strides[1]))


@op("Conv")
def _conv(node, x, w, b=None):
    x = _act(node, x, 1)
    w = _f(w)
    if x.ndim != 4:
        raise LowbitError(f"only 2-D Conv is in the reference executor (node {node.name!r})")
    k, strides, dil, pads = conv_params(node, x.shape, w.shape)
    group = node.attrs.get("group", 1)
    cols = _im2col(x.astype(np.float32), k, strides, dil, pads)
    n, c = x.shape[:2]
    o = w.shape[0]
    cg, og = c // group, o // group
    if group == 1:
        y = np.einsum("ncijhw,ocij->nohw", cols, w, optimize=True)
    elif og == 1 and cg == 1:  # depthwise: one multiply-add per kernel tap
        y = np.zeros((n, o) + cols.shape[4:], np.float32)
        for i in range(k[0]):
            for j in range(k[1]):
                y += cols[:, :, i, j] * w[None, :, 0, i, j, None, None]
    else:
        cols_g = cols.reshape(n, group, cg, k[0], k[1], *cols.shape[4:])
        wg = w.reshape(group, og, cg, k[0], k[1])
        y = np.einsum("ngcijhw,gocij->ngohw", cols_g, wg, optimize=True).reshape(n, o, *cols.shape[4:])
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y.astype(np.float32)


def _pool(node, x, fn, pad_val):
    k = list(node.attrs["kernel_shape"])
    k2 = k if len(k) == 2 else [1] + k
    nd = len(k)
    strides = list(node.attrs.get("strides", [1] * nd))
    pads = list(node.attrs.get("pads", [0] * (2 * nd)))
    _, strides, _, pads = conv_params(node, x.shape, (0, 0, *k))
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=pad_val)
    if node.attrs.get("ceil_mode", 0):
        extra = [(-(x.shape[2 + i] + pads[i] + pads[i + 2] - k2[i]) % strides[i]) for i in range(2)]
        xp = np.pad(xp, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])), constant_values=pad_val)
    cols = _im2col(xp, k2, strides, [1, 1], [0, 0, 0, 0])
    return cols, xp, pads


@op("MaxPool")
def _maxpool(node, x):
    cols, _, _ = _pool(node, x, np.max, -np.inf)
    return cols.max(axis=(2, 3)).astype(x.dtype)


@op("AveragePool")
def _avgpool(node, x):
    cols, _, pads = _pool(node, x, np.mean, 0.0)
    if node.attrs.get("count_include_pad", 0) or not any(pads):
        return cols.mean(axis=(2, 3)).astype(x.dtype)
    ones = np.ones((1, 1) + x.shape[2:], np.float32)
    ccols, _, _ = _pool(node, ones, np.mean, 0.0)
    return (cols.sum(axis=(2, 3)) / ccols.sum(axis=(2, 3))).astype(x.dtype)


@op("Resize")
def _resize(node, x, roi=None, scales=None, sizes=None):
    mode = node.attrs.get("mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if sizes is not None and np.size(sizes):
        out = [int(s) for s in sizes]
    else:
        out = [int(np.floor(d * s)) for d, s in zip(x.shape, np.asarray(scales).reshape(-1))]
    if mode != "nearest" or out[:2] != list(x.shape[:2]):
        raise LowbitError(f"Resize mode {mode!r} is not in the reference executor (node {node.name!r})")
    idx = [np.minimum((np.arange(o) * (x.shape[i] / o)).astype(np.int64), x.shape[i] - 1)
           for i, o in enumerate(out)]
    return x[:, :, idx[2][:, None], idx[3][None, :]]


@op("ConvTranspose")
def _conv_transpose(node, x, w, b=None):
    x = _act(node, x, 1)
    w = _f(w)  # [C_in, C_out / group, kh, kw]
    if x.ndim != 4 or any(d != 1 for d in node.attrs.get("dilations", [1, 1])):
        raise LowbitError(f"only 2-D undilated ConvTranspose is in the reference executor (node {node.name!r})")
    n, c, h, wd = x.shape
    group = node.attrs.get("group", 1)
    kh, kw = w.shape[2:]
    sh, sw = node.attrs.get("strides", [1, 1])
    pads = list(node.attrs.get("pads", [0, 0, 0, 0]))
    opad = list(node.attrs.get("output_padding", [0, 0]))
    cg, og = c // group, w.shape[1]
    full = np.zeros((n, og * group, (h - 1) * sh + kh + opad[0], (wd - 1) * sw + kw + opad[1]), np.float32)
    for g in range(group):
        xg = x[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                full[:, g * og:(g + 1) * og, i:i + (h - 1) * sh + 1:sh, j:j + (wd - 1) * sw + 1:sw] += \
                    np.einsum("nchw,co->nohw", xg, w[g * cg:(g + 1) * cg, :, i, j], optimize=True)
    out_h = full.shape[2] - pads[0] - pads[2]
    out_w = full.shape[3] - pads[1] - pads[3]
    y = full[:, :, pads[0]:pads[0] + out_h, pads[1]:pads[1] + out_w]
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return np.ascontiguousarray(y, np.float32)
