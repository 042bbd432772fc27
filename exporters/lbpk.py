"""Graph IR -> .lbpk device package (see docs/package-format.md, section 4).

``write_package`` lowers a :class:`lowbit.ir.Graph` to runtime ops (one kernel name per op),
fuses activations into Conv/MatMul, refuses at export every op the runtime has no kernel for,
stores the weights 64-byte aligned, and records golden vectors so ``lowbit verify`` can check the
package on the device.
"""
from __future__ import annotations

import dataclasses
import platform
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from lowbit.exporters import lbpk_attn, lbpk_nhwc
from lowbit.exporters.lbpk_container import DTYPES, PackageWriter
from lowbit.exporters.lbpk_fpw import float_pointwise
from lowbit.exporters.lbpk_ffuse import fuse_float_epilogues
from lowbit.exporters.lbpk_fpwdw import fuse_depthwise_project, fuse_expand_depthwise

PRODUCER = "lowbit"

# ONNX op -> runtime kernel (float path). Must be a subset of lowbit._native.runtime_kernels()
# (tests/runtime checks it), so that what exports also loads.
KERNELS: Dict[str, str] = {
    "Conv": "conv2d_f32", "ConvTranspose": "conv_transpose2d_f32",
    "MatMul": "matmul_f32", "Gemm": "gemm_f32",
    "Relu": "relu_f32", "Clip": "clip_f32", "Sigmoid": "sigmoid_f32", "HardSigmoid": "hardsigmoid_f32",
    "HardSwish": "hardswish_f32", "Tanh": "tanh_f32", "Erf": "erf_f32", "Gelu": "gelu_f32", "Sqrt": "sqrt_f32",
    "Exp": "exp_f32", "Neg": "neg_f32", "Reciprocal": "reciprocal_f32", "Abs": "abs_f32", "Log": "log_f32",
    "Floor": "floor_f32", "Ceil": "ceil_f32", "Not": "not_bool",
    "Identity": "identity", "Cast": "cast",
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Max": "max", "Min": "min",
    "Equal": "equal", "Less": "less", "Greater": "greater", "And": "and_bool", "Where": "where",
    "GlobalAveragePool": "global_avg_pool_f32", "AveragePool": "avg_pool2d_f32", "MaxPool": "max_pool2d_f32",
    "ReduceMean": "reduce_mean_f32", "ReduceSum": "reduce_sum_f32", "ReduceMax": "reduce_max_f32", "ReduceL2": "reduce_l2_f32",
    "Softmax": "softmax_f32", "LayerNormalization": "layer_norm_f32", "BatchNormalization": "batch_norm_f32",
    "Reshape": "reshape", "Flatten": "flatten", "Squeeze": "squeeze", "Unsqueeze": "unsqueeze",
    "Transpose": "transpose", "Concat": "concat", "Slice": "slice", "Gather": "gather", "Shape": "shape",
    "Expand": "expand", "ConstantOfShape": "constant_of_shape", "Split": "split", "Pad": "pad",
    "Resize": "resize_f32",
}
# MatMul/Gemm with a lowbit.ir.QuantWeight become "qlinear_f32" (packed with lowbit.packing); Conv with
# one becomes "qconv2d_f32" (group 1 / depthwise) or "qdq_f32" + the float op (see _Lowering._qconv).
# Ops that are dropped (their output is their first input).
ALIASES = {"Identity", "Dropout"}
# Activations that fold into the Conv / MatMul before them (attrs "act", "act_*").
FUSABLE_ACTS = {"Relu": "relu", "Clip": "clip", "HardSwish": "hardswish", "HardSigmoid": "hardsigmoid",
                "Sigmoid": "sigmoid"}
# ONNX TensorProto element type -> package dtype (Cast "to", ConstantOfShape).
ONNX_TYPES = {1: "f32", 2: "u8", 3: "i8", 5: "i16", 6: "i32", 7: "i64", 9: "bool", 10: "f16"}


class ExportError(ValueError):
    """The graph cannot be packaged for this runtime (the message lists every problem)."""


def _lowbit_error(msg: str) -> Exception:
    try:
        from lowbit import LowbitError  # noqa: PLC0415

        return LowbitError(msg)
    except ImportError:  # pragma: no cover
        return ExportError(msg)


def _dim(d) -> Any:
    return int(d) if isinstance(d, (int, np.integer)) and d >= 0 else (str(d) if d is not None else "?")


def _pkg_dtype(name: str) -> str:
    if name in DTYPES:
        return DTYPES[name]
    if name in DTYPES.values():
        return name
    raise _lowbit_error(f"dtype {name!r} is not supported by the runtime")


def _json_attr(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, (list, tuple)):
        return [_json_attr(x) for x in v]
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return None  # ActQuant and other objects are handled by the lowering, not stored as is


class _Lowering:
    def __init__(self, graph):
        self.g = graph
        self.consts: Dict[str, np.ndarray] = {}
        self.ops: List[Dict[str, Any]] = []
        self.alias: Dict[str, str] = {}
        self.problems: List[str] = []
        self.packed_meta: Dict[str, Dict[str, Any]] = {}
        self.qconv_weights: Dict[str, Any] = {}  # gemm-mode qconv op name -> its QuantWeight (NHWC repacking)

    def name(self, v: str) -> str:
        while v in self.alias:
            v = self.alias[v]
        return v

    def const(self, v: str) -> Optional[np.ndarray]:
        v = self.name(v)
        c = self.consts.get(v)
        return c

    def run(self) -> None:
        from lowbit.ir import QuantWeight  # noqa: PLC0415

        self.quant: Dict[str, Any] = {}
        for k, v in self.g.initializers.items():
            if isinstance(v, QuantWeight):
                self.quant[k] = v
                continue
            arr = np.asarray(v)
            if arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            self.consts[k] = arr
        outputs = {t.name for t in self.g.outputs}
        consumers: Dict[str, int] = {}
        for n in self.g.nodes:
            for i in n.inputs:
                consumers[i] = consumers.get(i, 0) + 1
        users: Dict[str, List[Any]] = {}
        for n in self.g.nodes:
            for i in n.inputs:
                users.setdefault(i, []).append(n)
        pad_into_conv: Dict[str, List[int]] = {}  # Conv input value -> spatial pads [t, l, b, r] to add
        producer_op: Dict[str, Dict[str, Any]] = {}
        for n in self.g.nodes:
            if n.domain not in ("", "ai.onnx", "com.microsoft"):
                self.problems.append(f"{n.op} ({n.domain}) in node {n.name!r}")
                continue
            if n.op == "Constant":
                self.consts[n.outputs[0]] = self._constant_value(n)
                continue
            if n.op in ALIASES and n.outputs[0] not in outputs:
                self.alias[n.outputs[0]] = n.inputs[0]
                continue
            if n.op == "Pad" and n.outputs[0] not in outputs and len(users.get(n.outputs[0], [])) == 1 \
                    and users[n.outputs[0]][0].op == "Conv":
                sp = self._zero_spatial_pads(n)
                if sp is not None:  # a zero Pad before a Conv becomes the Conv's own padding
                    pad_into_conv[n.outputs[0]] = sp
                    self.alias[n.outputs[0]] = n.inputs[0]
                    continue
            ins = [self.name(i) if i else "" for i in n.inputs]
            # fuse an activation into the Conv/MatMul that produced its only input
            if n.op in FUSABLE_ACTS and ins and ins[0] in producer_op and consumers.get(n.inputs[0], 0) == 1 \
                    and n.inputs[0] not in outputs and "act" not in producer_op[ins[0]]["attrs"]:
                prod = producer_op[ins[0]]
                if prod["op"] in ("Conv", "ConvTranspose") and self._fuse(prod, n, ins):
                    self.alias[n.outputs[0]] = prod["outputs"][0]
                    continue
            qins = [i for i in n.inputs if i in self.quant]
            if qins:
                if n.op in ("Conv", "ConvTranspose"):
                    ops = self._qconv(n, ins, qins, pad_into_conv.get(n.inputs[0]))
                else:
                    op = self._qlinear(n, ins, qins)
                    ops = [op] if op is not None else []
                self.ops.extend(ops)
                if ops:
                    for o in n.outputs:
                        producer_op[o] = ops[-1]
                continue
            kernel = KERNELS.get(n.op)
            if n.op == "Gelu" and n.attrs.get("approximate", "none") == "tanh":
                kernel = "gelu_tanh_f32"
            if kernel is None:
                self.problems.append(f"{n.op} in node {n.name!r}")
                continue
            attrs = {}
            for k, v in n.attrs.items():
                if k == "act_quant":
                    continue
                jv = _json_attr(v)
                if jv is not None:
                    attrs[k] = jv
            if n.op == "Cast":
                attrs["to"] = ONNX_TYPES.get(int(n.attrs.get("to", 1)), "unsupported")
                if attrs["to"] == "unsupported":
                    self.problems.append(f"Cast to ONNX type {n.attrs.get('to')} in node {n.name!r}")
            if n.op == "ConstantOfShape":
                val = np.asarray(n.attrs.get("value", np.zeros(1, np.float32)))
                attrs["value"] = float(val.reshape(-1)[0]) if val.size else 0.0
                attrs["dtype"] = DTYPES.get(val.dtype.name, "f32")
            if n.op == "Conv" and n.inputs[0] in pad_into_conv:
                self._merge_pads(n, attrs, pad_into_conv[n.inputs[0]])
            if n.op == "Softmax" and int(self.g.metadata.get("opset", 13)) < 13:
                attrs["legacy_2d"] = 1
            op = {"name": n.name, "op": n.op, "kernel": kernel, "inputs": ins, "outputs": list(n.outputs),
                  "attrs": attrs}
            self.ops.append(op)
            for o in n.outputs:
                producer_op[o] = op

    def _qlinear(self, n, ins: List[str], qins: List[str]) -> Optional[Dict[str, Any]]:
        """MatMul/Gemm with a quantized weight -> one qlinear op on the packed bytes (lowbit.packing)."""
        from lowbit import packing  # noqa: PLC0415

        qw = self.quant[qins[0]]
        ok = (n.op == "MatMul" and len(n.inputs) == 2 and n.inputs[1] == qins[0]) or \
             (n.op == "Gemm" and n.inputs[1] == qins[0] and int(n.attrs.get("transA", 0)) == 0
              and float(n.attrs.get("alpha", 1.0)) == 1.0 and float(n.attrs.get("beta", 1.0)) == 1.0)
        if not ok:
            self.problems.append(f"{n.op} in node {n.name!r} with a quantized weight ({qw.fmt}): the runtime has "
                                 "quantized kernels for MatMul/Gemm only (quantized Conv: not yet)")
            return None
        try:
            # q is [N, K] in every layout ("kn" only records that the source MatMul stored W as [K, N])
            blob, meta = packing.pack(dataclasses.replace(qw, layout="nk"))
        except ValueError as exc:
            self.problems.append(f"{n.op} in node {n.name!r}: cannot pack weight {qins[0]!r}: {exc}")
            return None
        wname = self.name(qins[0])
        self.consts[wname] = blob
        self.packed_meta[wname] = {k: v for k, v in meta.items() if k in ("format", "wfmt", "n", "k", "group")}
        attrs: Dict[str, Any] = {"wfmt": int(meta["wfmt"]), "n": int(meta["n"]), "k": int(meta["k"]),
                                 "group": int(meta["group"]), "format": meta["format"], "wfmt_ir": qw.fmt}
        aq = n.attrs.get("act_quant")
        if aq is None:
            attrs["act"] = "float" if meta["format"] in ("q4", "q4a") else "dynamic"
        elif aq.mode == "static":
            attrs.update({"act": "static", "act_scale": float(aq.scale), "act_zero": int(aq.zero_point)})
        else:
            attrs["act"] = "dynamic_row" if aq.granularity == "row" else "dynamic"
        inputs = [ins[0], wname] + ([ins[2]] if n.op == "Gemm" and len(ins) > 2 and ins[2] else [])
        if aq is not None and aq.smooth is not None:  # --smooth: x * (1 / smooth[k]) before quantizing
            mul = f"{n.name}.act_mul"
            self.consts[mul] = (np.float32(1.0) / np.asarray(aq.smooth, np.float32).reshape(-1)).astype(np.float32)
            inputs = inputs + [""] * (3 - len(inputs)) + [mul]
        return {"name": n.name, "op": n.op, "kernel": "qlinear_f32", "inputs": inputs, "outputs": list(n.outputs),
                "attrs": attrs}

    def _merge_pads(self, n, attrs: Dict[str, Any], extra: List[int]) -> None:
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            self.problems.append(f"Conv {n.name!r} with auto_pad after a Pad")
        base = attrs.get("pads", [0, 0, 0, 0])
        attrs["pads"] = [int(a) + int(b) for a, b in zip(base, extra)]
        attrs["auto_pad"] = "NOTSET"

    def _qconv(self, n, ins: List[str], qins: List[str], extra_pads: Optional[List[int]]) -> List[Dict[str, Any]]:
        """Conv/ConvTranspose with a quantized weight (see docs/package-format.md, "Quantized Conv").

        * group-1 Conv -> ``qconv2d_f32`` mode "gemm": the [O, C*kh*kw] weight packed with
          lowbit.packing (the bytes qlinear reads), im2col rows [OH*OW, K] through lb::qlinear;
        * depthwise Conv (group == C == O, per-channel int8) -> ``qconv2d_f32`` mode "depthwise":
          int8 codes [O, kh*kw] + f32 scales [O], a direct int8 kernel;
        * anything else (other grouped convs, ConvTranspose, float activations with int8
          weights) -> ``qdq_f32`` (the activation quantized and dequantized exactly as the kernels
          do) + the float op on the dequantized weight: slower, same numbers as ONNX Runtime's QDQ.
        """
        from lowbit import packing  # noqa: PLC0415

        qw = self.quant[qins[0]]
        if len(n.inputs) < 2 or n.inputs[1] != qins[0] or len(qw.orig_shape) != 4:
            self.problems.append(f"{n.op} in node {n.name!r}: the quantized weight {qins[0]!r} must be its 4-D "
                                 "second input")
            return []
        attrs: Dict[str, Any] = {}
        for k, v in n.attrs.items():
            jv = _json_attr(v) if k != "act_quant" else None
            if jv is not None:
                attrs[k] = jv
        if extra_pads and n.op == "Conv":
            self._merge_pads(n, attrs, extra_pads)
        o_ch, cin_g, kh, kw = (int(d) for d in qw.orig_shape)
        attrs["kernel_shape"] = [kh, kw]
        grp = int(attrs.get("group", 1))
        aq = n.attrs.get("act_quant")
        if aq is not None and (aq.bits != 8 or aq.mode not in ("static", "dynamic")):
            self.problems.append(f"{n.op} in node {n.name!r}: activation quantization {aq.mode}/{aq.bits} bits "
                                 "(the runtime has int8 static or dynamic)")
            return []
        wname = self.name(qins[0])
        bias = ins[2] if len(ins) > 2 and ins[2] else ""
        plain_int8 = (qw.fmt == "int8" and qw.group_size == qw.q.shape[1] and qw.zero is None
                      and qw.minimum is None and qw.codebook is None and qw.outliers is None)
        pfmt = packing.IR_FORMATS.get(qw.fmt)
        smooth = None if aq is None else aq.smooth
        aq_attrs: Dict[str, Any] = {}
        if aq is not None and aq.mode == "static":
            aq_attrs = {"aq": "static", "aq_scale": float(aq.scale), "aq_zero": int(aq.zero_point)}
        elif aq is not None:
            aq_attrs = {"aq": "dynamic_tensor"}
        base = {"name": n.name, "op": n.op, "kernel": "qconv2d_f32", "outputs": list(n.outputs)}

        def act_mul(reps: int) -> str:
            if smooth is None:
                return ""
            name = f"{n.name}.act_mul"
            self.consts[name] = np.repeat(np.float32(1.0) / np.asarray(smooth, np.float32), reps).astype(np.float32)
            return name

        def trim(inputs: List[str]) -> List[str]:
            while inputs and not inputs[-1]:
                inputs.pop()
            return inputs

        if n.op == "Conv" and grp == 1 and pfmt is not None and qw.outliers is None and \
                (aq is not None and (aq.mode == "dynamic" or pfmt == "q8") or aq is None and pfmt in ("q4", "q4a")):
            try:
                blob, meta = packing.pack(dataclasses.replace(qw, layout="nk"))
            except ValueError as exc:
                self.problems.append(f"Conv in node {n.name!r}: cannot pack weight {qins[0]!r}: {exc}")
                return []
            self.consts[wname] = blob
            self.packed_meta[wname] = {k: v for k, v in meta.items() if k in ("format", "wfmt", "n", "k", "group")}
            self.qconv_weights[n.name] = qw
            attrs.update({"mode": "gemm", "wfmt": int(meta["wfmt"]), "n": int(meta["n"]), "k": int(meta["k"]),
                          "group_k": int(meta["group"]), "format": meta["format"], "wfmt_ir": qw.fmt})
            attrs.update(aq_attrs)
            if aq is None:
                attrs["aq"] = "float"
            elif aq.mode == "dynamic" and pfmt != "q8":
                attrs["aq"] = "dynamic_block"  # the kernels' per-(row, group) scales; see docs
            return [dict(base, inputs=trim([ins[0], wname, bias, "", act_mul(kh * kw)]), attrs=attrs)]
        if n.op == "Conv" and grp == o_ch and cin_g == 1 and plain_int8 and aq is not None:
            codes = f"{wname}.dw_codes"
            scales = f"{wname}.dw_scale"
            self.consts[codes] = np.ascontiguousarray(qw.q.reshape(o_ch, kh * kw).astype(np.int8))
            self.consts[scales] = np.ascontiguousarray(qw.scale.reshape(o_ch).astype(np.float32))
            attrs.update({"mode": "depthwise"})
            attrs.update(aq_attrs)
            return [dict(base, inputs=trim([ins[0], codes, bias, scales, act_mul(1)]), attrs=attrs)]
        # fallback: fake-quantized activation + float op on the dequantized weight
        ops: List[Dict[str, Any]] = []
        x = ins[0]
        if aq is not None:
            qx = f"{n.name}.qdq"
            sm = ""
            if smooth is not None:
                sm = f"{n.name}.act_smooth"
                self.consts[sm] = np.asarray(smooth, np.float32).reshape(-1)
            ops.append({"name": qx, "op": "QuantizeDequantize", "kernel": "qdq_f32", "inputs": trim([x, sm]),
                        "outputs": [qx], "attrs": dict(aq_attrs, axis=1)})
            x = qx
        dq = f"{wname}.dequant"
        self.consts[dq] = qw.dequantize().reshape(qw.orig_shape).astype(np.float32)
        attrs.pop("kernel_shape", None) if "kernel_shape" not in n.attrs else None
        ops.append(dict(base, kernel=KERNELS[n.op], inputs=[x, dq] + ([bias] if bias else []), attrs=attrs))
        return ops

    def _fuse(self, prod: Dict[str, Any], act, ins: List[str]) -> bool:
        a = prod["attrs"]
        kind = FUSABLE_ACTS[act.op]
        if kind == "clip":
            lo = act.attrs.get("min", -np.inf)
            hi = act.attrs.get("max", np.inf)
            if len(ins) > 1 and ins[1]:
                c = self.const(ins[1])
                if c is None:
                    return False
                lo = float(np.asarray(c).reshape(-1)[0])
            if len(ins) > 2 and ins[2]:
                c = self.const(ins[2])
                if c is None:
                    return False
                hi = float(np.asarray(c).reshape(-1)[0])
            if np.isfinite(lo):
                a["act_min"] = float(lo)
            if np.isfinite(hi):
                a["act_max"] = float(hi)
        if kind == "hardsigmoid":
            a["act_alpha"] = float(act.attrs.get("alpha", 0.2))
            a["act_beta"] = float(act.attrs.get("beta", 0.5))
        a["act"] = kind
        prod["fused"] = act.name
        return True

    def _zero_spatial_pads(self, n) -> Optional[List[int]]:
        """[top, left, bottom, right] if ``n`` is a 4-D constant-zero Pad on H/W only, else None."""
        if n.attrs.get("mode", "constant") not in ("constant", b"constant"):
            return None
        pads = n.attrs.get("pads")
        if pads is None and len(n.inputs) > 1 and n.inputs[1]:
            pads = self.const(n.inputs[1])
        if pads is None:
            return None
        pads = [int(v) for v in np.asarray(pads).reshape(-1)]
        if len(n.inputs) > 2 and n.inputs[2]:
            v = self.const(n.inputs[2])
            if v is None or np.any(np.asarray(v) != 0):
                return None
        if float(n.attrs.get("value", 0.0)) != 0.0 or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) \
                or any(p < 0 for p in pads):
            return None
        return [pads[2], pads[3], pads[6], pads[7]]

    @staticmethod
    def _constant_value(n) -> np.ndarray:
        a = n.attrs
        if "value" in a:
            return np.asarray(a["value"])
        if "value_float" in a:
            return np.asarray(a["value_float"], np.float32)
        if "value_floats" in a:
            return np.asarray(a["value_floats"], np.float32)
        if "value_int" in a:
            return np.asarray(a["value_int"], np.int64)
        if "value_ints" in a:
            return np.asarray(a["value_ints"], np.int64)
        raise _lowbit_error(f"Constant node {n.name!r} has no supported value attribute")


def _lowered(graph, int8_nhwc: bool) -> "_Lowering":
    """``graph`` lowered to runtime ops with every fusion pass applied; raises on ops without a kernel."""
    low = _Lowering(graph)
    low.run()
    _raise_problems(low.problems)
    lbpk_attn.fuse_transformer(low)  # attention, GELU, bias Adds into the GEMM (exporters/lbpk_attn.py)
    if int8_nhwc:  # chains of static-int8 convs stay int8 NHWC (docs/package-format.md, section 6)
        lbpk_nhwc.int8_nhwc(low)
    fuse_float_epilogues(low)  # bias/affine/activation tails into float convs (exporters/lbpk_ffuse.py)
    fuse_expand_depthwise(low)  # large-map 1x1 expansion + depthwise -> conv2d_pwdw_f32 (exporters/lbpk_fpwdw.py)
    fuse_depthwise_project(low)  # large-map depthwise + 1x1 projection -> conv2d_dwpw_f32 (same file)
    float_pointwise(low)  # float 1x1 convs on small maps -> conv2d_pw_f32 (exporters/lbpk_fpw.py)
    return low


def runtime_ops(graph, *, int8_nhwc: bool = True) -> List[Dict[str, Any]]:
    """The lowered op list (for tests and `lowbit inspect` of IR graphs); raises like write_package."""
    return _lowered(graph, int8_nhwc).ops


def _raise_problems(problems: List[str]) -> None:
    if problems:
        lines = "\n  ".join(problems)
        raise _lowbit_error(
            f"the lowbit runtime has no kernel for {len(problems)} op(s)/weight(s) of this graph:\n  {lines}\n"
            "Keep those ops in float (`--keep-float NODE,...`), change the model, or export to ONNX instead.")


def write_package(graph, out: Path, *, target: str, scheme: str, golden: Optional[dict] = None,
                  report: Optional[dict] = None, int8_nhwc: bool = True) -> Path:
    """Lowers ``graph`` and writes a verified .lbpk at ``out`` (atomically: temp file + rename).

    ``golden``: ``{"inputs": {name: array}, "outputs": {name: array}, "rtol": float, "atol": float}``,
    stored so that ``lowbit verify`` can rerun them on the device.
    """
    import lowbit  # noqa: PLC0415

    out = Path(out)
    low = _lowered(graph, int8_nhwc)
    used = {i for op in low.ops for i in op["inputs"] if i}
    used |= {t.name for t in graph.outputs}
    value_info = getattr(graph, "value_info", {}) or {}

    def decl(t) -> Dict[str, Any]:
        shape = list(t.shape) if t.shape is not None else []
        dtype = t.dtype
        vi = value_info.get(t.name)
        if (not shape or any(d is None for d in shape)) and vi is not None and vi.shape:
            shape = list(vi.shape)
        if dtype in (None, "", "unknown") and vi is not None:
            dtype = vi.dtype
        return {"name": t.name, "dtype": _pkg_dtype(dtype or "float32"), "shape": [_dim(d) for d in shape]}

    outputs = []
    for t in graph.outputs:
        d = decl(t)
        src = low.name(t.name)
        if src != t.name:  # an output produced through an alias: keep its name with an identity op
            low.ops.append({"name": f"{t.name}__out", "op": "Identity", "kernel": "identity", "inputs": [src],
                            "outputs": [t.name], "attrs": {}})
        outputs.append(d)
    with PackageWriter(out) as w:
        for name, arr in low.consts.items():
            if name in used or any(name == o["name"] for o in outputs):
                w.add_tensor(name, arr, **({"packed": low.packed_meta[name]} if name in low.packed_meta else {}))
        man = w.manifest
        man["kind"] = "graph"
        man["model"] = graph.name
        man["target"] = target
        man["scheme"] = scheme
        man["producer"] = {"lowbit": lowbit.__version__, "numpy": np.__version__, "python": platform.python_version(),
                           "source": str(graph.metadata.get("source", ""))}
        man["inputs"] = [decl(t) for t in graph.inputs]
        man["outputs"] = outputs
        man["ops"] = low.ops
        man["kernels"] = sorted({op["kernel"] for op in low.ops})
        if report is not None:
            man["report"] = report
        if golden:
            g = {"inputs": {}, "outputs": {}, "rtol": float(golden.get("rtol", 1e-4)),
                 "atol": float(golden.get("atol", 1e-5))}
            order = {"inputs": [t.name for t in graph.inputs], "outputs": [t.name for t in graph.outputs]}
            for kind in ("inputs", "outputs"):
                given = golden.get(kind, {})
                names = [n for n in order[kind] if n in given] + [n for n in given if n not in order[kind]]
                for k, (name, arr) in enumerate((n, given[n]) for n in names):  # golden.in.K = K-th graph input
                    tname = f"golden.in.{k}" if kind == "inputs" else f"golden.out.{k}"
                    w.add_tensor(tname, np.asarray(arr))
                    g[kind][name] = tname
            man["golden"] = g
    return out
