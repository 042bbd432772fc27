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

from lowbit.exporters.lbpk_container import DTYPES, PackageWriter

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

    def int8_nhwc(self, only_chains: bool = False) -> None:
        """Rewrites chains of quantized convs with static int8 activations into int8 NHWC ops.

        A ``qconv2d_f32`` (static ``aq``; gemm mode with int8 weights, or depthwise; an ``act_mul`` is
        applied by whoever makes its int8 input: attr ``oq_mul`` / quantize_nhwc_q8's input 1)
        that reads the output of another such conv, or whose output another one reads, becomes a
        ``qconv2d_nhwc_q8``: int8 NHWC in; out, per attr ``outs``, the int8 NHWC input of the next
        convs (requantized in the epilogue to their ``aq_scale``/``aq_zero``), f32 NHWC for a residual
        Add folded into a later conv, and/or the original f32 NCHW value for every other reader. An
        ``add`` of such a conv's output (read by nothing else) and another chain conv's output is
        folded into the first conv (input 4). A chain whose input comes from elsewhere starts with a
        ``quantize_nhwc_q8``. Values keep their names; the int8 copy is ``<v>.q8``, the f32 NHWC copy
        ``<v>.nhwc``. With ``only_chains=False`` (the default) a KxK group-1 conv that chains with no
        other one is rewritten too (entry quantization + f32 NCHW output; lone 1x1 and depthwise convs
        are as fast in qconv2d_f32). Every element gets the same float operations as the unchained ops, so the
        results are unchanged (docs/package-format.md, section 6).
        """
        from lowbit import packing  # noqa: PLC0415

        ops = self.ops
        outs = {self.name(t.name) for t in self.g.outputs}

        def is_cand(op) -> bool:
            a = op["attrs"]
            if op["kernel"] != "qconv2d_f32" or a.get("aq") != "static":
                return False
            if a.get("mode") == "depthwise":
                return True
            return a.get("mode") == "gemm" and a.get("wfmt_ir") == "int8" and a.get("format") == "q8" \
                and op["name"] in self.qconv_weights

        def out_ch(op) -> int:
            if op["attrs"].get("mode") == "depthwise":
                return int(np.asarray(self.consts[op["inputs"][1]]).shape[0])
            return int(op["attrs"]["n"])

        cand = {i for i, op in enumerate(ops) if is_cand(op)}
        if not cand:
            return
        prod: Dict[str, int] = {}
        users: Dict[str, List[int]] = {}
        for i, op in enumerate(ops):
            for v in op["inputs"]:
                if v:
                    users.setdefault(v, []).append(i)
        # elementwise ops after a conv that run on its output alone fold into its epilogue ("post"):
        # Add/Mul with a scalar or per-channel constant, HardSigmoid + Mul (x * hardsigmoid(x)), Relu
        post: Dict[int, Tuple[List[Any], List[str]]] = {}
        absorbed: Dict[int, List[int]] = {}
        orig_out: Dict[int, List[str]] = {}
        removed = set()
        for i in sorted(cand):
            v, o_ch = ops[i]["outputs"][0], out_ch(ops[i])
            steps: List[Any] = []
            pins: List[str] = []
            mine: List[int] = []
            while v not in outs:
                us = users.get(v, [])
                u = ops[us[0]] if len(us) == 1 else None
                if u is not None and u["kernel"] in ("add", "mul") and len(u["inputs"]) == 2 and not u["attrs"]:
                    other = [x for x in u["inputs"] if x != v]
                    c = self.const(other[0]) if len(other) == 1 else None
                    if c is None or c.dtype != np.float32 or c.ndim > 4:
                        break
                    kind = "add" if u["kernel"] == "add" else "mul"
                    if c.size == 1:
                        steps.append([kind + "_s", float(c.reshape(-1)[0])])
                    elif c.size == o_ch and c.ndim >= 3 and c.shape[-3] == o_ch:  # [(1,) O, 1, 1]
                        cname = f"{other[0]}.chan"
                        self.consts[cname] = np.ascontiguousarray(c.reshape(-1))
                        steps.append([kind + "_c", 5 + len(pins)])
                        pins.append(cname)
                    else:
                        break
                    mine.append(us[0])
                    v = u["outputs"][0]
                    continue
                if u is not None and u["kernel"] in ("relu_f32", "hardsigmoid_f32") and len(u["outputs"]) == 1:
                    a = u["attrs"]
                    steps.append(["relu"] if u["kernel"] == "relu_f32" else
                                 ["hsig", float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))])
                    mine.append(us[0])
                    v = u["outputs"][0]
                    continue
                if len(us) == 2 and sorted(ops[k]["kernel"] for k in us) == ["hardsigmoid_f32", "mul"]:
                    h = next(k for k in us if ops[k]["kernel"] == "hardsigmoid_f32")
                    mm = next(k for k in us if k != h)
                    hs = ops[h]["outputs"][0]
                    if sorted(ops[mm]["inputs"]) == sorted([v, hs]) and users.get(hs) == [mm] and hs not in outs:
                        a = ops[h]["attrs"]
                        steps.append(["hswish", float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))])
                        mine += [h, mm]
                        v = ops[mm]["outputs"][0]
                        continue
                break
            if steps:
                post[i] = (steps, pins)
                absorbed[i] = mine
                orig_out[i] = ops[i]["outputs"]
                ops[i]["outputs"] = [v]
                removed |= set(mine)
        residual: Dict[int, str] = {}  # conv index -> residual value (f32 NHWC) added in its epilogue
        for i, op in enumerate(ops):
            if i in removed:
                continue
            if op["kernel"] == "add" and len(op["inputs"]) == 2 and not op["attrs"]:
                for a, b in (op["inputs"], op["inputs"][::-1]):
                    pa, pb = prod.get(a), prod.get(b)
                    if pa in cand and pb in cand and pa != pb and pa not in residual and users.get(a) == [i] \
                            and a not in outs and out_ch(ops[pa]) == out_ch(ops[pb]):
                        residual[pa] = b
                        ops[pa]["outputs"] = list(op["outputs"])
                        removed.add(i)
                        for o in op["outputs"]:
                            prod[o] = pa
                        break
                if i in removed:
                    continue
            for o in op["outputs"]:
                prod[o] = i
        chained = set()
        for i in cand:
            p = prod.get(ops[i]["inputs"][0])
            if p in cand:
                chained |= {i, p}
        for i, b in residual.items():
            chained |= {i, prod[b]}
        if not only_chains:  # a lone KxK group-1 conv too: an int8 NHWC im2col is far cheaper than the float one
            chained |= {i for i in cand if ops[i]["attrs"]["mode"] == "gemm"
                        and int(np.prod(ops[i]["attrs"]["kernel_shape"])) > 1}
        for i in set(post) - chained:  # a lone conv keeps qconv2d_f32 and its elementwise ops
            ops[i]["outputs"] = orig_out[i]
            removed -= set(absorbed[i])
            del post[i]
        if not chained:
            return
        users = {}
        for i, op in enumerate(ops):
            if i not in removed:
                for j, v in enumerate(op["inputs"]):
                    if v:
                        users.setdefault(v, []).append((i, j))
        def qkey(k: int) -> Tuple[float, int, str]:
            """How conv k quantizes its input: scale, zero point, per-channel smoothing multipliers
            (its act_mul, 1 / smooth, as a [C] constant; "" for none)."""
            a, ins = ops[k]["attrs"], ops[k]["inputs"]
            mul = ""
            if len(ins) > 4 and ins[4]:
                mul = f"{ins[4]}.chan"
                if mul not in self.consts:
                    kk = int(np.prod(a["kernel_shape"])) if a["mode"] == "gemm" else 1
                    self.consts[mul] = np.ascontiguousarray(np.asarray(self.consts[ins[4]], np.float32)
                                                            .reshape(-1, kk)[:, 0])
            return float(a["aq_scale"]), int(a["aq_zero"]), mul

        qparams: Dict[int, Tuple[float, int, str]] = {}  # conv -> how its int8 output is quantized
        for i in sorted(chained):
            x = ops[i]["inputs"][0]
            p = prod.get(x)
            if p in chained:
                qparams.setdefault(p, qkey(i))
        res_values = set(residual.values())
        new_ops: List[Dict[str, Any]] = []
        quantized: Dict[Tuple[str, float, int, str], str] = {}
        for i, op in enumerate(ops):
            if i in removed:
                continue
            if i not in chained:
                new_ops.append(op)
                continue
            a = dict(op["attrs"])
            x = op["inputs"][0]
            p = prod.get(x)
            mine = qkey(i)
            if p in chained and qparams.get(p) == mine:
                xq = f"{x}.q8"
            else:
                key = (x,) + mine
                if key not in quantized:
                    qn = f"{x}.q8" if p not in chained else f"{x}.q8_{len(quantized)}"
                    quantized[key] = qn
                    new_ops.append({"name": f"{qn}.quantize", "op": "QuantizeLinear", "kernel": "quantize_nhwc_q8",
                                    "inputs": [x] + ([mine[2]] if mine[2] else []), "outputs": [qn],
                                    "attrs": {"scale": mine[0], "zero": mine[1]}})
                xq = quantized[key]
            v = op["outputs"][0]
            kinds, names = [], []
            if i in qparams:
                kinds.append("q8")
                names.append(f"{v}.q8")
                a["oq_scale"], a["oq_zero"] = qparams[i][:2]
            if v in res_values:
                kinds.append("f32_nhwc")
                names.append(f"{v}.nhwc")
            other = v in outs or any(
                not (k in chained and j == 0 and qparams.get(i) == qkey(k))
                and not (j == 4 and k in residual)
                for k, j in users.get(v, []))
            if other or not kinds:
                kinds.append("f32")
                names.append(v)
            a["outs"] = kinds
            w = op["inputs"][1]
            kh, kw = (int(d) for d in a["kernel_shape"])
            if a["mode"] == "gemm" and kh * kw > 1:  # K order (ky, kx, c): the order of an NHWC im2col row
                qw = self.qconv_weights[op["name"]]
                o_ch, cin = int(qw.orig_shape[0]), int(qw.orig_shape[1])
                q2 = np.ascontiguousarray(np.asarray(qw.q).reshape(o_ch, cin, kh, kw).transpose(0, 2, 3, 1)
                                          .reshape(o_ch, cin * kh * kw))
                blob, meta = packing.pack(dataclasses.replace(qw, q=q2, layout="nk", float_ref=None))
                w = f"{w}.nhwc"
                self.consts[w] = blob
                self.packed_meta[w] = {k: v2 for k, v2 in meta.items() if k in ("format", "wfmt", "n", "k", "group")}
            ins = [xq, w, op["inputs"][2] if len(op["inputs"]) > 2 else "",
                   op["inputs"][3] if len(op["inputs"]) > 3 else "", f"{residual[i]}.nhwc" if i in residual else ""]
            if i in post:  # inputs 5...: the per-channel constants of the folded elementwise ops
                a["post"] = post[i][0]
                ins += post[i][1]
            if i in qparams and qparams[i][2]:  # the next convs' smoothing multipliers, before requantizing
                a["oq_mul"] = len(ins) if len(ins) >= 5 else 5
                ins += [""] * (5 - len(ins)) + [qparams[i][2]]
            while ins and not ins[-1]:
                ins.pop()
            new_ops.append(dict(op, kernel="qconv2d_nhwc_q8", inputs=ins, outputs=names, attrs=a))
        self.ops = new_ops

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


def runtime_ops(graph, *, int8_nhwc: bool = True) -> List[Dict[str, Any]]:
    """The lowered op list (for tests and `lowbit inspect` of IR graphs); raises like write_package."""
    low = _Lowering(graph)
    low.run()
    _raise_problems(low.problems)
    if int8_nhwc:
        low.int8_nhwc()
    return low.ops


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
    low = _Lowering(graph)
    low.run()
    _raise_problems(low.problems)
    if int8_nhwc:  # chains of static-int8 convs stay int8 NHWC (docs/package-format.md, section 6)
        low.int8_nhwc()
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
