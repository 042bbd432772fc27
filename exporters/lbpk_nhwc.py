"""int8 NHWC lowering of quantized CNN graphs (the ``int8_nhwc`` pass of ``write_package``).

Runs on the op list of ``lbpk._Lowering`` after it has mapped every node to a kernel:

* ``_conv_chains``: chains of quantized convs with static int8 activations become
  ``qconv2d_nhwc_q8`` ops whose epilogues requantize straight to the next conv's input
  (docs/package-format.md, section 6.1);
* ``_transposed_convs``: a ConvTranspose whose kernel equals its stride (PP-OCRv5 det's upsampling
  head) after its activation fake-quantization (``qdq_f32``) becomes ``conv_transpose_nhwc_q8``
  reading the int8 NHWC input, with the following Add / Mul / BatchNormalization / Relu / Sigmoid
  folded in and an int8 output for a following one (section 6.2);
* ``_requantize_nhwc``: a chain conv's f32 output read only by quantizers with other scales (the
  PP-OCRv5 det backbone stages its FPN reads) is written f32 NHWC and requantized by
  ``quantize_f32nhwc_q8`` from contiguous rows: no NCHW scatter, no transposing quantizer;
* ``_se_gates``: squeeze-excitation gates (GlobalAveragePool -> SE convs -> x * g, x + x * g) and the
  FPN top-down merges after them (+ nearest Resize of the level above) on f32 NHWC values:
  ``global_avg_pool_nhwc_f32`` and ``se_gate_nhwc_q8``, which also quantizes for the next conv;
* ``_concat_resize``: a channel Concat (of nearest Resizes) read only by a chain entry's quantizer
  is quantized per input before it: ``resize_nearest_nhwc_q8`` and ``concat_nhwc_q8`` on int8 NHWC
  values, the same bits (section 6.2);
* ``_pool_nhwc``: a GlobalAveragePool that is the only reader of a chain conv's f32 output (a
  classifier head: EfficientNet's 1x1 320 -> 1280) reads it f32 NHWC (``global_avg_pool_nhwc_f32``):
  the conv skips its NCHW transposition, the same bits;
* ``_stem_entry``: a float KxK conv (the stem: at most 32 taps, 8-32 output channels) read only by a
  chain entry's quantizer becomes one ``conv_stem_nhwc_q8`` that writes the int8 NHWC codes, the same
  bits (section 6.1).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import numpy as np


def int8_nhwc(low, only_chains: bool = False) -> None:
    """All int8 NHWC rewrites of ``low.ops`` (a ``lbpk._Lowering`` after ``run()``), in place."""
    _conv_chains(low, only_chains)
    _transposed_convs(low)
    _concat_resize(low)
    _requantize_nhwc(low)
    _se_gates(low)
    _pool_nhwc(low)
    _stem_entry(low)


def _conv_chains(low, only_chains: bool = False) -> None:
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

    ops = low.ops
    outs = {low.name(t.name) for t in low.g.outputs}

    def is_cand(op) -> bool:
        a = op["attrs"]
        if op["kernel"] != "qconv2d_f32" or a.get("aq") != "static":
            return False
        if a.get("mode") == "depthwise":
            return True
        return a.get("mode") == "gemm" and a.get("wfmt_ir") == "int8" and a.get("format") == "q8" \
            and op["name"] in low.qconv_weights

    def out_ch(op) -> int:
        if op["attrs"].get("mode") == "depthwise":
            return int(np.asarray(low.consts[op["inputs"][1]]).shape[0])
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
                c = low.const(other[0]) if len(other) == 1 else None
                if c is None or c.dtype != np.float32 or c.ndim > 4:
                    break
                kind = "add" if u["kernel"] == "add" else "mul"
                if c.size == 1:
                    steps.append([kind + "_s", float(c.reshape(-1)[0])])
                elif c.size == o_ch and c.ndim >= 3 and c.shape[-3] == o_ch:  # [(1,) O, 1, 1]
                    cname = f"{other[0]}.chan"
                    low.consts[cname] = np.ascontiguousarray(c.reshape(-1))
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
                # pb < pa: the conv whose epilogue adds b runs after b's producer (ops are in
                # topological order), so Add(conv_a(y), conv_b(y)) folds into the later conv
                if pa in cand and pb in cand and pb < pa and pa not in residual and users.get(a) == [i] \
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
            if mul not in low.consts:
                kk = int(np.prod(a["kernel_shape"])) if a["mode"] == "gemm" else 1
                low.consts[mul] = np.ascontiguousarray(np.asarray(low.consts[ins[4]], np.float32)
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
            qw = low.qconv_weights[op["name"]]
            o_ch, cin = int(qw.orig_shape[0]), int(qw.orig_shape[1])
            q2 = np.ascontiguousarray(np.asarray(qw.q).reshape(o_ch, cin, kh, kw).transpose(0, 2, 3, 1)
                                      .reshape(o_ch, cin * kh * kw))
            blob, meta = packing.pack(dataclasses.replace(qw, q=q2, layout="nk", float_ref=None))
            w = f"{w}.nhwc"
            low.consts[w] = blob
            low.packed_meta[w] = {k: v2 for k, v2 in meta.items() if k in ("format", "wfmt", "n", "k", "group")}
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
    low.ops = new_ops


# ---- helpers of the passes below --------------------------------------------------------------
def _index(ops: List[Dict[str, Any]]) -> Tuple[Dict[str, int], Dict[str, List[int]]]:
    """value -> producing op index, value -> reading op indices (once per reading input)."""
    prod: Dict[str, int] = {}
    users: Dict[str, List[int]] = {}
    for i, op in enumerate(ops):
        for v in op["outputs"]:
            prod[v] = i
        for v in op["inputs"]:
            if v:
                users.setdefault(v, []).append(i)
    return prod, users


def _fresh(name: str, ops: List[Dict[str, Any]]) -> str:
    taken = {v for op in ops for v in op["outputs"]}
    out, k = name, 0
    while out in taken:
        k += 1
        out = f"{name}_{k}"
    return out


def _const(low, v: str, ops, prod) -> Optional[np.ndarray]:
    """A constant value, or a reshape of one (the det head's `[1, C, 1, 1]` biases)."""
    c = low.const(v)
    if c is not None:
        return c
    i = prod.get(v)
    if i is None or ops[i]["kernel"] != "reshape" or len(ops[i]["inputs"]) != 2:
        return None
    src, shape = low.const(ops[i]["inputs"][0]), low.const(ops[i]["inputs"][1])
    if src is None or shape is None or ops[i]["attrs"].get("allowzero", 0):
        return None
    dims = [int(d) if int(d) != 0 else src.shape[k] for k, d in enumerate(np.asarray(shape).reshape(-1))]
    try:
        return np.asarray(src).reshape(dims)
    except ValueError:
        return None


def _q8_of(ops, v: str, scale: float, zero: int, outs) -> Tuple[str, Optional[Dict[str, Any]]]:
    """The int8 NHWC copy of f32 NCHW value ``v`` quantized with (scale, zero): a q8 output added
    to the int8 NHWC op that makes ``v`` (its epilogue requantizes), else a quantize_nhwc_q8 op
    (returned, for the caller to place before the reader)."""
    prod, users = _index(ops)
    p = prod.get(v)
    op = ops[p] if p is not None else None
    if op is not None and op["kernel"] in ("qconv2d_nhwc_q8", "conv_transpose_nhwc_q8") \
            and "q8" not in op["attrs"]["outs"] and "oq_mul" not in op["attrs"]:
        a = op["attrs"]
        k = a["outs"].index("f32")
        name = _fresh(f"{v}.q8", ops)
        a["oq_scale"], a["oq_zero"] = float(scale), int(zero)
        if v in outs or len(users.get(v, [])) > 1:  # someone else still reads the f32 value
            a["outs"] = ["q8"] + a["outs"]
            op["outputs"] = [name] + op["outputs"]
        else:
            a["outs"][k] = "q8"
            op["outputs"][k] = name
        return name, None
    name = _fresh(f"{v}.q8", ops)
    return name, {"name": f"{name}.quantize", "op": "QuantizeLinear", "kernel": "quantize_nhwc_q8", "inputs": [v],
                  "outputs": [name], "attrs": {"scale": float(scale), "zero": int(zero)}}


def _convt_ok(low, t: Dict[str, Any]) -> bool:
    a = t["attrs"]
    w = low.const(t["inputs"][1]) if len(t["inputs"]) > 1 else None
    if w is None or w.ndim != 4 or w.dtype != np.float32:
        return False
    ks = [int(d) for d in a.get("kernel_shape", w.shape[2:])]
    return (ks == [int(d) for d in w.shape[2:]] and [int(d) for d in a.get("strides", [1, 1])] == ks
            and not any(int(d) for d in a.get("pads", [0] * 4)) and all(int(d) == 1 for d in a.get("dilations", [1, 1]))
            and not any(int(d) for d in a.get("output_padding", [0, 0])) and "output_shape" not in a
            and a.get("auto_pad", "NOTSET") == "NOTSET" and int(a.get("group", 1)) == 1)


def _transposed_convs(low) -> None:
    """qdq_f32 (static, no smoothing) + conv_transpose2d_f32 with kernel == stride ->
    conv_transpose_nhwc_q8 on the int8 NHWC input (docs/package-format.md, section 6.2). The
    elementwise ops after it that read its output alone fold into it (``post``): Add / Mul by a
    scalar or per-channel constant (or a Reshape of one), BatchNormalization (as the multiply and
    add that batch_norm_f32 computes), Relu, Sigmoid."""
    outs = {low.name(t.name) for t in low.g.outputs}
    done = set()
    while True:
        ops = low.ops
        prod, users = _index(ops)
        ti = next((i for i, op in enumerate(ops) if op["kernel"] == "conv_transpose2d_f32" and op["name"] not in done
                   and op["inputs"][0] in prod and ops[prod[op["inputs"][0]]]["kernel"] == "qdq_f32"), None)
        if ti is None:
            return
        t = ops[ti]
        done.add(t["name"])
        qi = prod[t["inputs"][0]]
        qa = ops[qi]["attrs"]
        if qa.get("aq") != "static" or len(ops[qi]["inputs"]) != 1 or users.get(t["inputs"][0]) != [ti] \
                or t["inputs"][0] in outs or not _convt_ok(low, t):
            continue
        w = low.const(t["inputs"][1])
        o_ch = int(w.shape[1])
        steps: List[Any] = []
        pins: List[str] = []
        dead: List[int] = [qi]
        v = t["outputs"][0]
        while v not in outs and len(users.get(v, [])) == 1:
            ui = users[v][0]
            u = ops[ui]
            k = u["kernel"]
            if k in ("add", "mul") and len(u["inputs"]) == 2 and not u["attrs"] and u["inputs"].count(v) == 1:
                other = next(x for x in u["inputs"] if x != v)
                c = _const(low, other, ops, prod)
                if c is None or c.dtype != np.float32 or c.ndim > 4:
                    break
                if c.size == 1:
                    steps.append([k + "_s", float(c.reshape(-1)[0])])
                elif c.size == o_ch and c.ndim >= 3 and c.shape[-3] == o_ch:
                    steps.append([k + "_c", 3 + len(pins)])
                    pins.append(f"{other}.chan")
                    low.consts[pins[-1]] = np.ascontiguousarray(c.reshape(-1))
                else:
                    break
            elif k == "batch_norm_f32" and u["inputs"][0] == v:
                cs = [low.const(x) for x in u["inputs"][1:5]]
                if len(cs) != 4 or any(c is None or c.size != o_ch for c in cs):
                    break
                sc, bi, mu, va = (np.asarray(c, np.float32).reshape(-1) for c in cs)
                kk = sc / np.sqrt(va + np.float32(u["attrs"].get("epsilon", 1e-5)))  # batch_norm_f32: x * k + o
                for kind, val in (("mul_c", kk), ("add_c", bi - mu * kk)):
                    steps.append([kind, 3 + len(pins)])
                    pins.append(_fresh(f"{u['name']}.{kind}", [{"outputs": list(low.consts)}]))
                    low.consts[pins[-1]] = np.ascontiguousarray(val.astype(np.float32))
            elif k in ("relu_f32", "sigmoid_f32"):
                steps.append([k[:-4]])
            else:
                break
            dead.append(ui)
            v = u["outputs"][0]
        xq, qop = _q8_of(ops, ops[qi]["inputs"][0], qa["aq_scale"], qa["aq_zero"], outs)
        ks = [int(d) for d in w.shape[2:]]
        a = {"kernel_shape": ks, "strides": ks, "aq_scale": float(qa["aq_scale"]), "aq_zero": int(qa["aq_zero"]),
             "outs": ["f32"]}
        a.update({k: t["attrs"][k] for k in ("act", "act_min", "act_max", "act_alpha", "act_beta") if k in t["attrs"]})
        if steps:
            a["post"] = steps
        wk = _fresh(f"{t['inputs'][1]}.khwoc", [{"outputs": list(low.consts)}])  # [kh, kw, O, C]: GEMM rows (ky, kx, o)
        low.consts[wk] = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
        ins = [xq, wk, t["inputs"][2] if len(t["inputs"]) > 2 else ""] + pins
        while not ins[-1]:
            ins.pop()
        new = dict(t, kernel="conv_transpose_nhwc_q8", inputs=ins, outputs=[v], attrs=a)
        keep: List[Dict[str, Any]] = []
        for i, op in enumerate(ops):
            if i == ti:
                keep += ([qop] if qop else []) + [new]
            elif i not in dead:
                keep.append(op)
        low.ops = _drop_unread(keep, outs)


def _drop_unread(ops: List[Dict[str, Any]], outs) -> List[Dict[str, Any]]:
    """Without the reshape ops whose outputs nothing reads any more (constants folded into a post step)."""
    _, users = _index(ops)
    return [op for op in ops if not (op["kernel"] == "reshape" and not any(
        v in outs or users.get(v) for v in op["outputs"]))]


def _concat_resize(low) -> None:
    """A chain entry (quantize_nhwc_q8) of a channel Concat that nothing else reads: each Concat
    input (or, for a nearest Resize read only by the Concat, the Resize's input, at its lower
    resolution) is quantized with the entry's scale, zero point and slice of its smoothing
    multipliers, then resize_nearest_nhwc_q8 / concat_nhwc_q8 on int8 NHWC values. Quantization is
    elementwise, so the result has the bits of the float Resize/Concat then the quantizer. Needs the
    inputs' channel counts from the graph's value_info (skipped without them)."""
    outs = {low.name(t.name) for t in low.g.outputs}
    vinfo = getattr(low.g, "value_info", {}) or {}

    def channels(v: str) -> Optional[int]:
        vi = vinfo.get(v)
        shape = list(vi.shape) if vi is not None and vi.shape is not None else []
        return int(shape[1]) if len(shape) == 4 and isinstance(shape[1], (int, np.integer)) else None

    done = set()
    while True:
        ops = low.ops
        prod, users = _index(ops)
        qi = next((i for i, op in enumerate(ops) if op["kernel"] == "quantize_nhwc_q8" and op["name"] not in done
                   and op["inputs"][0] in prod and ops[prod[op["inputs"][0]]]["kernel"] == "concat"), None)
        if qi is None:
            return
        q = ops[qi]
        done.add(q["name"])
        v = q["inputs"][0]
        ci = prod[v]
        cat = ops[ci]
        chans = [channels(u) for u in cat["inputs"]]
        if v in outs or users.get(v) != [qi] or int(cat["attrs"].get("axis", 0)) not in (1, -3) or None in chans \
                or any(not u for u in cat["inputs"]):
            continue
        mul = low.const(q["inputs"][1]) if len(q["inputs"]) > 1 and q["inputs"][1] else None
        if mul is not None and mul.size != sum(chans):
            continue
        new: List[Dict[str, Any]] = []
        dead = {qi, ci}
        parts: List[str] = []
        off = 0
        for u, ch in zip(cat["inputs"], chans):
            ri = prod.get(u)
            r = ops[ri] if ri is not None else None
            src = u
            if r is not None and r["kernel"] == "resize_f32" and r["attrs"].get("mode", "nearest") == "nearest" \
                    and users.get(u) == [ci] and u not in outs and channels(r["inputs"][0]) == ch:
                src = r["inputs"][0]
                dead.add(ri)
            else:
                r = None
            qname = _fresh(f"{src}.q8", ops + new)
            qins = [src]
            if mul is not None:
                qins.append(f"{q['inputs'][1]}.{off}_{ch}")
                low.consts[qins[1]] = np.ascontiguousarray(mul.reshape(-1)[off:off + ch])
            new.append({"name": f"{qname}.quantize", "op": "QuantizeLinear", "kernel": "quantize_nhwc_q8",
                        "inputs": qins, "outputs": [qname], "attrs": dict(q["attrs"])})
            if r is not None:
                rname = _fresh(f"{u}.q8", ops + new)
                new.append(dict(r, kernel="resize_nearest_nhwc_q8", inputs=[qname] + r["inputs"][1:], outputs=[rname],
                                attrs=dict(r["attrs"], channels=ch)))
                qname = rname
            parts.append(qname)
            off += ch
        new.append(dict(cat, kernel="concat_nhwc_q8", inputs=parts, outputs=list(q["outputs"]),
                        attrs={"channels": chans}))
        keep: List[Dict[str, Any]] = []
        for i, op in enumerate(ops):
            if i == qi:
                keep += new
            elif i not in dead:
                keep.append(op)
        low.ops = keep


def _requantize_nhwc(low) -> None:
    """quantize_nhwc_q8 of a qconv2d_nhwc_q8's f32 NCHW output that only quantizers read ->
    the conv writes f32 NHWC instead and each quantizer becomes quantize_f32nhwc_q8 (the same
    float operations on the same values: the same bits)."""
    outs = {low.name(t.name) for t in low.g.outputs}
    ops = low.ops
    prod, users = _index(ops)
    for op in ops:
        a = op["attrs"]
        if op["kernel"] != "qconv2d_nhwc_q8" or "f32" not in a["outs"]:
            continue
        k = a["outs"].index("f32")
        v = op["outputs"][k]
        readers = users.get(v, [])
        if v in outs or not readers or any(ops[i]["kernel"] != "quantize_nhwc_q8" or ops[i]["inputs"][0] != v
                                           for i in readers):
            continue
        if "f32_nhwc" in a["outs"]:  # already written NHWC (a residual): drop the NCHW copy
            nhwc = op["outputs"][a["outs"].index("f32_nhwc")]
            del a["outs"][k], op["outputs"][k]
        else:
            nhwc = _fresh(f"{v}.nhwc", ops)
            a["outs"][k], op["outputs"][k] = "f32_nhwc", nhwc
        for i in readers:
            ops[i].update(kernel="quantize_f32nhwc_q8", inputs=[nhwc] + ops[i]["inputs"][1:])


def _trace_to(ops, prod, v: str, target: str, depth: int = 4) -> bool:
    """Whether value ``v`` is computed from ``target`` through at most ``depth`` single-input-chain ops."""
    for _ in range(depth):
        i = prod.get(v)
        if i is None or not ops[i]["inputs"]:
            return False
        v = ops[i]["inputs"][0]
        if v == target:
            return True
    return False


def _toposorted(ops: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """``ops`` in an order where every op comes after the producers of its inputs, as close to the
    given order as possible (a fused op placed where its last absorbed op was may read a value
    that another fused op, placed later, makes)."""
    made = {v for op in ops for v in op["outputs"]}
    have: set = set()
    left = list(ops)
    out: List[Dict[str, Any]] = []
    while left:
        k = next((k for k, op in enumerate(left) if all(not v or v not in made or v in have for v in op["inputs"])), 0)
        op = left.pop(k)
        out.append(op)
        have.update(op["outputs"])
    return out


def _se_gates(low) -> None:
    """Squeeze-excitation gates and FPN top-down merges on f32 NHWC (docs/package-format.md, 6.2).

    A GlobalAveragePool of a chain conv's f32 NCHW output ``x`` whose other readers are the gate's
    ``mul`` (x * g, g the f32 output of the SE's last conv) and optionally ``add`` (x + x * g): the
    conv writes f32 NHWC instead, the pool becomes ``global_avg_pool_nhwc_f32`` and the Mul / Add
    one ``se_gate_nhwc_q8``. If the result is read only by an Add with a nearest Resize of another
    such gate's result (an FPN top-down merge), the Resize and the Add fold in too (input 2 is the
    other gate's f32 NHWC result). A quantize_nhwc_q8 of the result becomes the op's q8 output;
    other readers get an f32 NCHW copy. The float operations are those of the ops replaced, in
    their order: the same bits."""
    outs = {low.name(t.name) for t in low.g.outputs}
    ops = low.ops
    prod, users = _index(ops)
    recs: List[Dict[str, Any]] = []
    for gi, gap in enumerate(ops):
        if gap["kernel"] != "global_avg_pool_f32":
            continue
        v = gap["inputs"][0]
        pi = prod.get(v)
        if pi is None or ops[pi]["kernel"] != "qconv2d_nhwc_q8" or "f32" not in ops[pi]["attrs"]["outs"] or v in outs:
            continue
        rd = sorted(set(users.get(v, [])))
        mi = next((i for i in rd if ops[i]["kernel"] == "mul"), None)
        if mi is None or len(ops[mi]["inputs"]) != 2 or ops[mi]["attrs"] or ops[mi]["inputs"].count(v) != 1:
            continue
        m = ops[mi]
        gate = next(x for x in m["inputs"] if x != v)
        gp = prod.get(gate)
        if gp is None or ops[gp]["kernel"] != "qconv2d_nhwc_q8" or ops[gp]["attrs"]["outs"] != ["f32"] \
                or not _trace_to(ops, prod, gate, gap["outputs"][0]) or gate in outs:
            continue
        r, res, absorbed = m["outputs"][0], 0, [mi]
        others = [i for i in rd if i not in (gi, mi)]
        if others:
            ai = others[0]
            a = ops[ai]
            if len(others) != 1 or a["kernel"] != "add" or a["attrs"] or sorted(a["inputs"]) != sorted([v, r]) \
                    or users.get(r) != [ai] or r in outs:
                continue
            r, res, absorbed = a["outputs"][0], 1, [mi, ai]
        if r in outs:
            continue
        recs.append({"conv": pi, "gap": gi, "x": v, "gate": gate, "res": res, "r": r, "absorbed": absorbed,
                     "up": None})
    if not recs:
        return
    by_r = {rec["r"]: rec for rec in recs}
    changed = True
    while changed:  # FPN merges: result + nearest Resize(another gate's final result)
        changed = False
        for rec in recs:
            r = rec["r"]
            if rec["up"] is not None or len(users.get(r, [])) != 1:
                continue
            ai = users[r][0]
            a = ops[ai]
            if a["kernel"] != "add" or a["attrs"] or len(a["inputs"]) != 2 or a["inputs"].count(r) != 1:
                continue
            rr = next(x for x in a["inputs"] if x != r)
            ri = prod.get(rr)
            if ri is None or ops[ri]["kernel"] != "resize_f32" or ops[ri]["attrs"].get("mode", "nearest") != "nearest" \
                    or users.get(rr) != [ai] or rr in outs:
                continue
            u = ops[ri]["inputs"][0]
            src = by_r.get(u)
            if src is None or src is rec or len(users.get(u, [])) == 1:  # the source's result must be final
                continue
            rec.update(up=(u, ri), r=a["outputs"][0], absorbed=rec["absorbed"] + [ri, ai])
            del by_r[r]
            by_r[rec["r"]] = rec
            changed = True
    dead = {i for rec in recs for i in rec["absorbed"]}
    up_of = {rec["up"][0] for rec in recs if rec["up"]}
    placed: Dict[int, Dict[str, Any]] = {}
    for rec in recs:
        r = rec["r"]
        qi = next((i for i in users.get(r, []) if ops[i]["kernel"] == "quantize_nhwc_q8" and ops[i]["inputs"][0] == r
                   and i not in dead), None)
        kinds, names, ins_q = [], [], ""
        attrs: Dict[str, Any] = {"residual": rec["res"]}
        if qi is not None:
            q = ops[qi]
            kinds.append("q8")
            names.append(q["outputs"][0])
            attrs.update(scale=float(q["attrs"]["scale"]), zero=int(q["attrs"]["zero"]))
            ins_q = q["inputs"][1] if len(q["inputs"]) > 1 else ""
            dead.add(qi)
        rest = [i for i in users.get(r, []) if i != qi and i not in dead]
        if r in up_of:
            kinds.append("f32_nhwc")
            names.append(f"{r}.nhwc")
        if rest or r in outs or not kinds:
            kinds.append("f32")
            names.append(r)
        attrs["outs"] = kinds
        ins = [f"{rec['x']}.nhwc", rec["gate"], "", ins_q]
        if rec["up"]:
            u, ri = rec["up"]
            ins[2] = f"{u}.nhwc"
            ins += ops[ri]["inputs"][1:]
            attrs.update(ops[ri]["attrs"])
        while not ins[-1]:
            ins.pop()
        last = max(rec["absorbed"] + ([qi] if qi is not None else []))
        placed[last] = {"name": f"{ops[rec['absorbed'][-1]]['name']}.se", "op": "SEGate", "kernel": "se_gate_nhwc_q8",
                        "inputs": ins, "outputs": names, "attrs": attrs}
        c = ops[rec["conv"]]  # the conv writes x as f32 NHWC; the pool reads it
        k = c["attrs"]["outs"].index("f32")
        if "f32_nhwc" in c["attrs"]["outs"]:
            ins[0] = c["outputs"][c["attrs"]["outs"].index("f32_nhwc")]
            del c["attrs"]["outs"][k], c["outputs"][k]
        else:
            c["attrs"]["outs"][k], c["outputs"][k] = "f32_nhwc", f"{rec['x']}.nhwc"
        ops[rec["gap"]].update(kernel="global_avg_pool_nhwc_f32", inputs=[ins[0]])
    new: List[Dict[str, Any]] = []
    for i, op in enumerate(ops):
        if i in placed:
            new.append(placed[i])
        elif i not in dead:
            new.append(op)
    low.ops = _drop_unread(_toposorted(new), outs)


def _pool_nhwc(low) -> None:
    """A ``global_avg_pool_f32`` that is the only reader of a ``qconv2d_nhwc_q8``'s f32 NCHW output (not a
    graph output) -> the conv writes that value f32 NHWC (its tile in place, no NCHW transposition) and
    the pool becomes ``global_avg_pool_nhwc_f32``, which sums in global_avg_pool_f32's order: the same
    bits (EfficientNet-Lite0's head 1x1 320 -> 1280 on 7x7 and its pool)."""
    outs = {low.name(t.name) for t in low.g.outputs}
    ops = low.ops
    prod, users = _index(ops)
    for gi, gap in enumerate(ops):
        if gap["kernel"] != "global_avg_pool_f32":
            continue
        v = gap["inputs"][0]
        pi = prod.get(v)
        if pi is None or ops[pi]["kernel"] != "qconv2d_nhwc_q8" or "f32" not in ops[pi]["attrs"]["outs"] \
                or v in outs or users.get(v) != [gi]:
            continue
        c = ops[pi]
        k = c["attrs"]["outs"].index("f32")
        if "f32_nhwc" in c["attrs"]["outs"]:  # already written NHWC (a residual): drop the NCHW copy
            nhwc = c["outputs"][c["attrs"]["outs"].index("f32_nhwc")]
            del c["attrs"]["outs"][k], c["outputs"][k]
        else:
            nhwc = _fresh(f"{v}.nhwc", ops)
            c["attrs"]["outs"][k], c["outputs"][k] = "f32_nhwc", nhwc
        gap.update(kernel="global_avg_pool_nhwc_f32", inputs=[nhwc])


def _stem_entry(low) -> None:
    """A ``conv2d_f32`` (group 1, not 1x1 stride 1 unpadded, C * kh * kw <= 32 taps, O in 8 / 16 / 24 /
    32, act none / relu / clip, no blocked layout) whose output only a ``quantize_nhwc_q8`` reads (not
    a graph output) -> one ``conv_stem_nhwc_q8`` (the conv's inputs, the quantizer's smoothing
    multipliers as input 3, the conv's attrs + the quantizer's ``scale`` / ``zero``; the quantizer's
    output name). The runtime computes the conv's float operations (conv2d_f32's direct path) and the
    quantizer's on each element: the same bits, without the f32 NCHW tensor between them."""
    outs = {low.name(t.name) for t in low.g.outputs}
    ops = low.ops
    prod, users = _index(ops)
    drop = set()
    for qi, q in enumerate(ops):
        if q["kernel"] != "quantize_nhwc_q8":
            continue
        v = q["inputs"][0]
        ci = prod.get(v)
        if ci is None or v in outs or users.get(v) != [qi]:
            continue
        conv = ops[ci]
        a = conv["attrs"]
        if conv["kernel"] != "conv2d_f32" or len(conv["outputs"]) != 1 or int(a.get("group", 1)) != 1 \
                or a.get("act", "none") not in ("none", "relu", "clip") or a.get("y_nchw8c") or a.get("x_nchw8c"):
            continue
        w = low.const(conv["inputs"][1]) if len(conv["inputs"]) > 1 else None
        if w is None or w.ndim != 4 or w.dtype != np.float32:
            continue
        o, c, kh, kw = w.shape
        pads = list(a.get("pads", [0, 0, 0, 0]))
        pointwise = kh == kw == 1 and list(a.get("strides", [1, 1])) == [1, 1] and not any(pads) \
            and a.get("auto_pad", "NOTSET") in ("NOTSET", "VALID")
        if c * kh * kw > 32 or o not in (8, 16, 24, 32) or pointwise:
            continue
        bias = conv["inputs"][2] if len(conv["inputs"]) > 2 else ""
        mul = q["inputs"][1] if len(q["inputs"]) > 1 else ""
        inputs = [conv["inputs"][0], conv["inputs"][1], bias, mul]
        while inputs[-1] == "":
            inputs.pop()
        conv.update(kernel="conv_stem_nhwc_q8", inputs=inputs, outputs=list(q["outputs"]),
                    attrs=dict(a, scale=q["attrs"]["scale"], zero=q["attrs"]["zero"]))
        drop.add(qi)
    if drop:
        low.ops = [op for i, op in enumerate(ops) if i not in drop]
