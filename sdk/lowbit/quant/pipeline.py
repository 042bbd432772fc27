"""Quantize an IR graph with a scheme: pick the layers, calibrate, smooth, quantize the weights
(RTN / GPTQ / codebooks / ternary, optional dense-and-sparse), choose per-layer bits for a budget,
and attach activation quantization. Returns a new graph; the float graph is left untouched.

A layer is a MatMul whose second input is a constant 2-D weight, or a Conv / ConvTranspose with a
constant weight. Its weight becomes a ``QuantWeight`` ([N, K] = output channels x reduction; for
ConvTranspose, input channels x the rest) and its activation input gets ``attrs["act_quant"]``.
"""
from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Union

import numpy as np

from lowbit import LowbitError
from lowbit.ir import ActQuant, Graph, Node, QuantWeight
from lowbit.quant import calibrate as cal
from lowbit.quant import weights as wq
from lowbit.quant.gptq import gptq_per_row, gptq_quantize
from lowbit.quant.schemes import Scheme, parse_scheme

log = logging.getLogger("lowbit.quant")
QUANT_OPS = ("MatMul", "Conv", "ConvTranspose")
# smooth="auto" smooths a MatMul input only when it has outlier channels (max over channels of |x|max
# / median): elsewhere smoothing gains little and, by flattening the channel ranges, makes inputs
# beyond the calibrated range clip sooner.
AUTO_SMOOTH_MIN_RATIO = 8.0


@dataclass
class QuantOptions:
    # "auto" (default, static per-tensor int8 activations only, i.e. w8a8): the MatMul inputs with
    # outlier channels (transformers) and the signed inputs of group-1 convs (a CNN's residual stream);
    # smoothing costs nothing at run time. True / "all": every layer's input (--smooth); False / "off": none.
    smooth: Union[bool, str] = "auto"
    smooth_alpha: Optional[float] = None  # None: 0.8 for int8 weights, 0.5 below 8 bits
    sparse_outliers: float = 0.0  # percent
    keep_float: List[str] = field(default_factory=list)
    budget_bits: Optional[float] = None
    calib_method: str = "minmax"
    # int8 weights in [-63, 63] (lowbit.quant.weights.QMAX_INT8_7BIT): the exact u8 x s8 AVX2 GEMM
    # (fewer instructions per multiply-add than the int16 one) for x86 without VNNI; rounded like 8-bit
    # weights (GPTQ, error compensation) within +-63; accuracy in docs/quantization.md ("7-bit weights")
    weight_bits7: bool = False
    gptq_damp: float = 0.01
    act_order: bool = True
    gptq_block: int = 128
    progress: bool = True
    bias_correction: bool = True
    # int8 layers with a reduction of at most this many inputs (depthwise convs, an image model's
    # first conv) get GPTQ rounding even in RTN schemes when there is calibration data: it costs
    # next to nothing there and those layers' errors are the ones a network amplifies (see
    # docs/quantization.md, EfficientNet-Lite0). 0 turns it off.
    gptq_max_k: int = 32
    # error-compensating sequential quantization (seqcomp.py): each layer's weights fitted to the float
    # layer's output given the quantized model's actual input. "auto": w8a8 (static int8 activations).
    error_comp: Union[bool, str] = "auto"


def _weight_nk(node: Node, w: np.ndarray):
    """(W [N, K] float32, layout, orig_shape) for a layer's weight."""
    if node.op == "MatMul":
        return np.ascontiguousarray(w.T), "kn", tuple(w.shape)
    return w.reshape(w.shape[0], -1), "nk", tuple(w.shape)


def _matches(node: Node, patterns: List[str]) -> bool:
    names = [node.name, node.op] + [i for i in node.inputs[1:2]]
    return any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names if n)


def find_layers(graph: Graph, keep_float: List[str]) -> List[Node]:
    layers = []
    for n in graph.nodes:
        if n.domain or n.op not in QUANT_OPS or len(n.inputs) < 2:
            continue
        w = graph.initializers.get(n.inputs[1])
        if not isinstance(w, np.ndarray) or w.dtype != np.float32:
            continue
        if n.op == "MatMul" and w.ndim != 2:
            continue
        if n.op != "MatMul" and w.ndim != 4:
            continue
        if keep_float and _matches(n, keep_float):
            continue
        layers.append(n)
    return layers


def check_supported(graph: Graph, keep_float: List[str]) -> None:
    """Every node must be a standard ONNX op (or com.microsoft) that lowbit knows, unless kept float."""
    try:
        import onnx.defs  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return
    for n in graph.nodes:
        dom = n.domain or ""
        ok = dom in ("", "ai.onnx", "com.microsoft") and onnx.defs.has(n.op, dom)
        if not ok and not _matches(n, keep_float):
            raise LowbitError(
                f"lowbit cannot quantize or run op {((dom + '::') if dom else '') + n.op!r} (node {n.name!r}); "
                f"keep it in float with --keep-float {n.name!r} (keep_float=[...]) or replace it in the model")


def _layer_format(scheme: Scheme, k: int, bits_override: Optional[int]):
    """(fmt, group) for a layer with reduction size k; groups that do not divide k fall back to int8."""
    fmt, g = scheme.wfmt, scheme.group
    if bits_override == 8:
        return "int8", 0
    if fmt == "ternary":
        g = g or (64 if k % 64 == 0 else 0)
    if g and (k % g or k < g):
        return "int8", 0
    return fmt, g


def quantize_graph(graph: Graph, scheme, feeds: List[Dict[str, np.ndarray]],
                   options: Optional[QuantOptions] = None) -> Graph:
    opts = options or QuantOptions()
    scheme = parse_scheme(scheme) if isinstance(scheme, str) else scheme
    check_supported(graph, opts.keep_float)
    q = graph.clone()
    q.metadata["scheme"] = scheme.name
    if scheme.is_float:
        return q
    layers = find_layers(q, opts.keep_float)
    if not layers:
        log.warning("no layer with constant weights to quantize")
    shared: Dict[str, List[Node]] = {}
    for n in layers:
        shared.setdefault(n.inputs[0], []).append(n)
    need_stats = scheme.act_mode == "static" or scheme.algo in ("gptq", "kmeans") or smooth_mode(opts.smooth) == "all" \
        or opts.budget_bits is not None or (opts.bias_correction and bool(feeds))
    need_hessian = scheme.algo in ("gptq", "kmeans") or opts.budget_bits is not None
    small_k = {n.name for n in layers if _small_k_gptq(n, q, scheme, opts)} if feeds else set()
    if need_stats and not feeds:
        raise LowbitError(f"scheme {scheme.name}" + (" with --smooth" if smooth_mode(opts.smooth) == "all" else "") +
                          " needs calibration data (calib=... / --calib PATH)")

    # 1. smoothing factors from the per-channel activation maxima (one pass), folded into the weights
    smooth: Dict[str, np.ndarray] = {}
    st0: Dict[str, cal.TensorStats] = {}
    smode = smooth_mode(opts.smooth)
    if smode == "auto":
        smode = "auto" if scheme.act_mode == "static" else "off"
    elif smode == "all" and scheme.act_mode is None:
        log.warning("--smooth only helps with quantized activations; ignored for %s", scheme.name)
        smode = "off"
    if smode != "off" and layers:
        cand = [n for n in layers if smode == "all" or n.op == "MatMul" or
                (n.op == "Conv" and n.attrs.get("group", 1) == 1 and not _model_input(q, n.inputs[0]))]
        st0 = cal.collect(graph, feeds, cand, want_chanmax=True, show_progress=opts.progress) if cand else {}
        for tensor, nodes in shared.items():
            if tensor not in st0 or nodes[0].op == "ConvTranspose" or any(n.op != nodes[0].op for n in nodes):
                continue
            if smode == "auto" and not _auto_smooth(nodes[0], st0[tensor]):
                continue
            wmax = None
            for n in nodes:
                wnk = _weight_nk(n, q.initializers[n.inputs[1]])[0]
                if n.op == "Conv":
                    w = q.initializers[n.inputs[1]]
                    grp = n.attrs.get("group", 1)
                    if grp == 1:
                        cm = np.abs(w).max(axis=(0, 2, 3))
                    elif w.shape[1] == 1 and w.shape[0] == grp:  # depthwise: input channel c -> output c
                        cm = np.abs(w).max(axis=(1, 2, 3))
                    else:
                        wmax = None
                        break
                else:
                    cm = np.abs(wnk).max(axis=0)
                wmax = cm if wmax is None else np.maximum(wmax, cm)
            if wmax is None:
                continue
            amax = st0[tensor].chanmax
            a = opts.smooth_alpha if opts.smooth_alpha is not None else (0.8 if scheme.wbits >= 8 else 0.5)
            s = np.power(np.maximum(amax, 1e-5), a) / np.power(np.maximum(wmax, 1e-5), 1 - a)
            s = np.clip(s, 1e-2, 1e2).astype(np.float32)
            smooth[tensor] = s
            for n in nodes:
                w = q.initializers[n.inputs[1]]
                depthwise = n.op == "Conv" and n.attrs.get("group", 1) > 1
                shape = (-1, 1) if n.op == "MatMul" else (-1, 1, 1, 1) if depthwise else (1, -1, 1, 1)
                q.initializers[n.inputs[1]] = (w * s.reshape(shape)).astype(np.float32)

    # 2. statistics (on the smoothed activations) + Hessians
    stats: Dict[str, cal.TensorStats] = {}
    if need_stats and layers:
        hess = {n.inputs[0] for n in layers if n.op == "MatMul" or (n.op == "Conv" and n.attrs.get("group", 1) == 1)
                or (scheme.algo == "gptq" and cal.is_depthwise(n, q))} if need_hessian else set()
        hess |= {n.inputs[0] for n in layers if n.name in small_k}
        stats = cal.collect(graph, feeds, layers, want_hessian=hess, transforms=smooth, show_progress=opts.progress)

    # raw (unsmoothed) per-channel maxima: how bad the activation outliers of each layer are
    st0_all = {**stats, **st0}

    # 3. mixed precision for a bits budget
    bits_of: Dict[str, int] = {}
    if opts.budget_bits is not None:
        from lowbit.quant.mixed import choose_bits  # noqa: PLC0415

        bits_of = choose_bits(q, layers, scheme, stats, opts.budget_bits)

    # 4. activation quantizers (from the float statistics; the weights do not change them)
    float_inputs = _attach_act_quant(q, layers, scheme, stats, smooth, opts)

    def quantize_weight(n: Node, wnk: np.ndarray, H, Hdw, compensated: bool = False) -> QuantWeight:
        fmt, g = _layer_format(scheme, wnk.shape[1], bits_of.get(n.name))
        if H is not None and H.shape[0] != wnk.shape[1]:
            H = None
        if Hdw is not None and (fmt != "int8" or not cal.is_depthwise(n, q)):
            Hdw = None
        gptq = scheme.algo == "gptq" or compensated
        int8_qmax = wq.QMAX_INT8_7BIT if opts.weight_bits7 else None
        if Hdw is not None and Hdw.shape == (wnk.shape[0], wnk.shape[1], wnk.shape[1]) and opts.sparse_outliers <= 0 \
                and (gptq or n.name in small_k):
            return gptq_per_row(wnk, Hdw, damp=opts.gptq_damp, act_order=opts.act_order,
                                qmax=int8_qmax or wq.QMAX["int8"])
        if H is not None and (gptq or (n.name in small_k and fmt == "int8")):
            return gptq_quantize(wnk, H, fmt, g, damp=opts.gptq_damp, act_order=opts.act_order,
                                 block=opts.gptq_block, sparse_pct=opts.sparse_outliers, int8_qmax=int8_qmax)
        hdiag = np.diag(H).astype(np.float32) if H is not None else None
        return wq.quantize_rtn(wnk, fmt, g, hdiag=hdiag, sparse_pct=opts.sparse_outliers, int8_qmax=int8_qmax)

    # 5. weights: error-compensating sequential quantization (seqcomp.py), else layer by layer
    wfloat: Dict[str, np.ndarray] = {}  # the (smoothed) float [N, K] each QuantWeight approximates
    for n in layers:
        wfloat.setdefault(n.inputs[1], _weight_nk(n, q.initializers[n.inputs[1]])[0])
    done: Dict[str, QuantWeight] = {}
    if layers and feeds and _use_error_comp(opts, scheme, q):
        from lowbit.quant.seqcomp import sequential_quantize  # noqa: PLC0415

        done = sequential_quantize(graph, q, layers, feeds,
                                   lambda n, w, H, Hdw: quantize_weight(n, w, H, Hdw, compensated=True),
                                   smooth, damp=opts.gptq_damp, bias_correction=opts.bias_correction,
                                   progress=opts.progress)
    compensated = set(done)
    report_layers, reported = [], set()
    for n in cal.progress(layers, "quantizing weights" + (" (GPTQ)" if scheme.algo == "gptq" else ""),
                          len(layers), opts.progress):
        wname = n.inputs[1]
        if wname in reported:
            continue
        reported.add(wname)
        wnk = wfloat[wname]
        _, layout, orig = _weight_nk(n, graph.initializers[wname])
        if wname in done:
            qw = done[wname]
        else:
            st = stats.get(n.inputs[0])
            qw = quantize_weight(n, wnk, st.hessian if st is not None else None,
                                 st.dw_hessian if st is not None else None)
        qw.layout, qw.orig_shape = layout, orig
        qw.float_ref = graph.initializers[wname] if isinstance(graph.initializers.get(wname), np.ndarray) else None
        q.initializers[wname] = qw
        done[wname] = qw
        report_layers.append({"node": n.name, "op": n.op, "weight": wname, "fmt": qw.fmt,
                              "group": qw.group_size or wnk.shape[1],
                              "algo": qw.algo + ("+comp" if wname in compensated else ""), "shape": list(wnk.shape),
                              "smooth": n.inputs[0] in smooth,
                              "act_outlier_ratio": _outlier_ratio(st0_all.get(n.inputs[0])),
                              "outliers": 0 if qw.outliers is None else int(qw.outliers[0].size)})

    # 6. bias correction (Nagel et al., data-free quantization): the mean output shift that the
    #    weight error causes, E[dW x] = dW E[x], is subtracted from the layer's bias. It matters for
    #    BatchNorm-folded depthwise convs, whose output mean is cancelled by a large bias.
    if opts.bias_correction and stats:
        for n in layers:
            st = stats.get(n.inputs[0])
            qw = q.initializers[n.inputs[1]]
            if n.inputs[1] in compensated:  # corrected with the quantized input's mean in the pass
                continue
            if n.op != "Conv" or st is None or st.chanmean is None or len(n.inputs) < 3 or not n.inputs[2]:
                continue
            bias = q.initializers.get(n.inputs[2])
            if not isinstance(bias, np.ndarray) or len(graph.consumers(n.inputs[2])) != 1:
                continue
            w_used = wfloat[n.inputs[1]]  # statistics were taken on the smoothed input, matching it
            dq = qw.dequantize()  # [O, C/g * kh * kw]
            err = (dq - w_used).reshape(qw.orig_shape)  # [O, C/g, kh, kw]
            grp = n.attrs.get("group", 1)
            mean = st.chanmean.astype(np.float64)  # [C]
            o, cg = err.shape[:2]
            per_in = err.sum(axis=(2, 3))  # [O, C/g]
            mean_g = mean.reshape(grp, cg)  # group gi feeds outputs [gi*og, (gi+1)*og)
            og = o // grp
            shift = np.einsum("goc,gc->go", per_in.reshape(grp, og, cg), mean_g).reshape(o)
            q.initializers[n.inputs[2]] = (bias - shift).astype(np.float32)

    for r in report_layers:
        r["act"] = "float" if r["node"] in float_inputs else (scheme.act_mode or "float")
    q.metadata["quantized_layers"] = report_layers
    q.metadata["kept_float"] = [n.name for n in graph.nodes if n.op in QUANT_OPS and
                                n.name not in {r["node"] for r in report_layers}]
    if bits_of:
        q.metadata["budget_bits"] = {"budget": opts.budget_bits, "bits": bits_of,
                                     "average": average_bits(q)}
    return q


def _attach_act_quant(q: Graph, layers: List[Node], scheme: Scheme, stats, smooth, opts: QuantOptions) -> List[str]:
    """Set each layer's ``act_quant``; returns the layers whose input stays float (the model's input)."""
    float_inputs = []
    for n in layers:
        s = smooth.get(n.inputs[0])
        if scheme.act_mode == "static":
            lo, hi = cal.act_range(stats[n.inputs[0]], opts.calib_method)
            aq = cal.static_act_quant(lo, hi, s)
            if _model_input(q, n.inputs[0]) and s is None and not cal.on_grid(stats[n.inputs[0]], aq):
                aq = cal.grid_act_quant(stats[n.inputs[0]])  # the data's own grid, when min/max missed it
            if aq is None:
                # the model's own input (an image) that int8 cannot hold exactly stays float into
                # its first layer (int8 weights, float activations): rounding it is the one error
                # no later layer can undo, and first layers are small (see docs/quantization.md)
                float_inputs.append(n.name)
                continue
            n.attrs["act_quant"] = aq
        elif scheme.act_mode == "dynamic":
            gran = "row" if n.op == "MatMul" else "tensor"
            n.attrs["act_quant"] = ActQuant("dynamic", 8, None, 0, gran, 0, s)
    return float_inputs


def _use_error_comp(opts: QuantOptions, scheme: Scheme, graph: Graph) -> bool:
    """error_comp=True, or "auto": static int8 activations with int8 weights (w8a8), when the
    reference executor runs every op of the graph (it runs the quantized model during the pass)."""
    if opts.error_comp == "auto":
        if not (scheme.act_mode == "static" and scheme.wfmt == "int8"
                and opts.sparse_outliers <= 0 and opts.budget_bits is None):
            return False
        from lowbit import refexec  # noqa: PLC0415

        missing = sorted({n.op for n in graph.nodes if refexec._key(n) not in refexec._OPS})
        if missing:
            log.info("error-compensating quantization off: the reference executor has no %s", ", ".join(missing))
        return not missing
    if opts.error_comp not in (True, False):
        raise LowbitError(f"error_comp={opts.error_comp!r}: use True, False or 'auto'")
    return opts.error_comp


def _model_input(graph: Graph, tensor: str) -> bool:
    """A graph input, or a graph input after a Pad (the padding of a first conv)."""
    names = {t.name for t in graph.inputs}
    if tensor in names:
        return True
    p = graph.producer(tensor)
    return p is not None and p.op == "Pad" and bool(p.inputs) and p.inputs[0] in names


def _auto_smooth(node: Node, st) -> bool:
    """smooth="auto" (static int8 activations): MatMul inputs with outlier channels, and the inputs of
    group-1 convs that take negative values (not behind a ReLU: the residual stream of a CNN, whose
    per-channel ranges differ; measured on EfficientNet-Lite0, docs/quantization.md)."""
    if node.op == "MatMul":
        # the channel maxima of fewer rows than channels (a classifier after global pooling: one row
        # per image) are sampling noise, not outlier channels (docs/quantization.md, session 12)
        enough = st.chancount >= st.chanmax.size
        return enough and (_outlier_ratio(st) or 0) >= AUTO_SMOOTH_MIN_RATIO
    return node.op == "Conv" and st.lo < 0


def _small_k_gptq(n: Node, graph: Graph, scheme: Scheme, opts: QuantOptions) -> bool:
    """Whether an int8 layer of an RTN scheme gets GPTQ rounding for its small reduction size."""
    if scheme.algo != "rtn" or scheme.wfmt != "int8" or not opts.gptq_max_k or n.op != "Conv":
        return False
    w = graph.initializers[n.inputs[1]]
    return int(np.prod(w.shape[1:])) <= opts.gptq_max_k


def smooth_mode(v) -> str:
    """QuantOptions.smooth -> "auto", "all" or "off"."""
    if v is None or (isinstance(v, str) and v.lower() == "auto"):
        return "auto"
    if v is True or (isinstance(v, str) and v.lower() in ("all", "on", "true")):
        return "all"
    if v is False or (isinstance(v, str) and v.lower() in ("off", "none", "false")):
        return "off"
    raise LowbitError(f"smooth={v!r}: use True (every layer), False (none) or 'auto' (MatMul inputs of w8a8)")


def _outlier_ratio(st) -> Optional[float]:
    """max over channels of |x| / median over channels of |x|max: 1 for a flat range, 100+ for the
    outlier channels of transformer activations."""
    if st is None or st.chanmax is None or st.chanmax.size < 2:
        return None
    med = float(np.median(st.chanmax))
    return round(float(st.chanmax.max()) / med, 2) if med > 0 else None


def average_bits(graph: Graph) -> float:
    """Average weight bits over the quantized weights (codes only, scales not counted)."""
    total, bits = 0, 0.0
    for v in graph.initializers.values():
        if isinstance(v, QuantWeight):
            b = {"int8": 8, "ternary": 2}.get(v.fmt, 4)
            total += v.q.size
            bits += b * v.q.size
    return bits / total if total else 32.0
