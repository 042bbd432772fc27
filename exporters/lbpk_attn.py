"""Transformer fusions on the lowered op list of exporters/lbpk.py (run after lowering, before the
int8 NHWC pass):

* **attention**: per head ``MatMul(Q, K^T) -> Mul/Div(scale) -> [Add(mask)] -> Softmax -> MatMul(., V)`` with
  the Reshape/Transpose copies around it (Q, V: Reshape [B, S, H, D] + Transpose 0,2,1,3; K: Reshape +
  Transpose 0,2,3,1; the output: Transpose 0,2,1,3 + Reshape [B, S, H*D]) becomes one ``attention_f32`` op
  that reads Q, K, V as [B, S, H*D] in place (native/src/ops/ops_attn.cpp);
* **GELU**: ``x * 0.5 * (1 + Erf(x / sqrt(2)))`` (Div or Mul by 1/sqrt(2), either operand order) becomes
  the epilogue (attr ``post: "gelu"``) of the ``qlinear_f32`` / ``matmul_f32`` that produces x, or else a
  ``gelu_f32`` op;
* **bias**: ``Add(const [N])`` after a ``qlinear_f32`` or a ``matmul_f32`` with a constant 2-D B becomes
  that op's bias input (the GEMM starts from it or adds it in its epilogue);
* **residual**: ``Add(a, b) -> LayerNormalization`` (last axis) becomes ``layer_norm_f32`` with b as its
  skip input (input 3: it normalises a + b in one pass; the runtime checks that b has a's shape);
* **one Q/K/V GEMM**: the three projections that feed an ``attention_f32`` read the same input; they become one
  ``qlinear_f32`` (int8 weights) or ``matmul_f32`` (fp32) with the weights (and biases) concatenated along N, and
  the attention op reads q, k and v as column blocks of its output (attr ``cols``): one activation quantization
  and one bigger GEMM instead of three (see _fuse_qkv);
* **bool mask**: ``Where(cond, a, b)`` (scalar constants) that only feeds attention ops as their mask becomes the
  attention's bool mask input with attrs ``mask_true`` / ``mask_false`` (a no-op ``Expand`` in between is dropped;
  see _fold_mask);
* **weights in panels**: a constant fp32 MatMul weight is stored in the GEMM's panel layout (read in place,
  no per-run packing; see _pack_matmul_weights).
* **int8 embedding tables**: in a package with int8 activations (a quantized ``qlinear_f32``), a constant fp32
  Gather table [V, E] of at least 64 Ki values becomes int8 codes with one scale per row (``gather_q8``,
  native/src/ops/ops_gather.cpp, dequantizes only the looked-up rows): MiniLM's 30522 x 384 word embedding
  47 MB -> 11.8 MB (see _quantize_embeddings).

A pattern is rewritten only when every intermediate value has exactly one consumer and is not a graph
output; anything else is left as it was (the unfused ops still run).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

_SQRT2 = float(np.sqrt(2.0))


class _Graph:
    def __init__(self, low):
        self.low = low
        self.outputs = {t.name for t in low.g.outputs}
        self.prod: Dict[str, Dict[str, Any]] = {}
        self.users: Dict[str, List[Dict[str, Any]]] = {}
        for op in low.ops:
            for o in op["outputs"]:
                self.prod[o] = op
            for i in op["inputs"]:
                if i:
                    self.users.setdefault(i, []).append(op)

    def only_user(self, value: str, kernel: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """The single consumer of `value` (of kernel `kernel` if given), or None."""
        us = self.users.get(value, [])
        if len(us) != 1 or value in self.outputs:
            return None
        if kernel is not None and us[0]["kernel"] != kernel:
            return None
        return us[0]

    def scalar(self, value: str) -> Optional[float]:
        c = self.low.const(value)
        if c is None or np.asarray(c).size != 1 or np.asarray(c).dtype.kind != "f":
            return None
        return float(np.asarray(c).reshape(-1)[0])

    def ints(self, value: str) -> Optional[List[int]]:
        c = self.low.const(value)
        if c is None or np.asarray(c).dtype.kind not in "iu":
            return None
        return [int(x) for x in np.asarray(c).reshape(-1)]

    def other(self, op: Dict[str, Any], value: str) -> Optional[str]:
        """The other input of a two-input op that has `value` as one input."""
        ins = op["inputs"]
        if len(ins) != 2:
            return None
        if ins[0] == value and ins[1] != value:
            return ins[1]
        if ins[1] == value and ins[0] != value:
            return ins[0]
        return None


def _close(a: Optional[float], b: float) -> bool:
    return a is not None and abs(a - b) <= 1e-6 * abs(b)


def _fold_bias(low) -> int:
    g = _Graph(low)
    drop = set()
    for op in low.ops:
        if id(op) in drop or op["kernel"] not in ("qlinear_f32", "matmul_f32"):
            continue
        if op["kernel"] == "matmul_f32" and op["attrs"].get("act"):  # (qlinear's "act" is its activation mode)
            continue
        if op["kernel"] == "qlinear_f32":
            n = int(op["attrs"]["n"])
            if len(op["inputs"]) > 2 and op["inputs"][2]:
                continue
        else:
            b = low.const(op["inputs"][1]) if len(op["inputs"]) == 2 else None
            if b is None or b.ndim != 2 or b.dtype != np.float32:
                continue
            n = int(b.shape[1])
        add = g.only_user(op["outputs"][0], "add")
        if add is None:
            continue
        bias_name = g.other(add, op["outputs"][0])
        bias = low.const(bias_name) if bias_name else None
        if bias is None or bias.dtype != np.float32 or bias.ndim != 1 or bias.shape[0] != n:
            continue
        ins = list(op["inputs"]) + [""] * max(0, 3 - len(op["inputs"]))
        ins[2] = bias_name
        op["inputs"] = ins
        op["outputs"] = list(add["outputs"])
        drop.add(id(add))
    low.ops = [op for op in low.ops if id(op) not in drop]
    return len(drop)


def _fuse_gelu(low) -> int:
    g = _Graph(low)
    drop = set()
    fused = 0
    for op in list(low.ops):
        if op["kernel"] not in ("div", "mul") or id(op) in drop:
            continue
        x = next((i for i in op["inputs"] if g.scalar(i) is None), None)
        c = g.scalar(g.other(op, x)) if x else None
        if x is None or c is None or (op["kernel"] == "div" and (op["inputs"][0] != x or not _close(c, _SQRT2))) \
                or (op["kernel"] == "mul" and not _close(c, 1.0 / _SQRT2)):
            continue
        erf = g.only_user(op["outputs"][0], "erf_f32")
        add = g.only_user(erf["outputs"][0], "add") if erf else None
        if add is None or not _close(g.scalar(g.other(add, erf["outputs"][0]) or ""), 1.0):
            continue
        m1 = g.only_user(add["outputs"][0], "mul")
        if m1 is None or g.other(m1, add["outputs"][0]) != x:
            continue
        m2 = g.only_user(m1["outputs"][0], "mul")
        if m2 is None or not _close(g.scalar(g.other(m2, m1["outputs"][0]) or ""), 0.5):
            continue
        chain = [op, erf, add, m1, m2]
        prod = g.prod.get(x)
        if prod is not None and prod["kernel"] in ("qlinear_f32", "matmul_f32") and "post" not in prod["attrs"] \
                and not (prod["kernel"] == "matmul_f32" and prod["attrs"].get("act")) and x not in g.outputs \
                and {id(u) for u in g.users.get(x, [])} == {id(op), id(m1)}:
            prod["attrs"]["post"] = "gelu"  # the GEMM's epilogue (native/src/ops/gelu_fast.h)
            prod["outputs"] = list(m2["outputs"])
            drop.update(id(o) for o in chain)
        else:
            m2.update({"name": m2["name"] + "/gelu", "op": "Gelu", "kernel": "gelu_f32", "inputs": [x], "attrs": {}})
            drop.update(id(o) for o in chain[:-1])
        fused += 1
    low.ops = [op for op in low.ops if id(op) not in drop]
    return fused


def _head_split(g: _Graph, value: str, perm: List[int]):
    """value -> Reshape [t0, t1, H, D] -> Transpose perm: (transpose op, reshape op, t0, t1, H, D) or None."""
    rs = g.only_user(value, "reshape")
    if rs is None or rs["inputs"][0] != value:
        return None
    t = g.ints(rs["inputs"][1]) if len(rs["inputs"]) > 1 else None
    if t is None or len(t) != 4 or min(t[2], t[3]) < -1 or 0 in (t[2], t[3]) or t[2] == t[3] == -1 or t[0] < 0 \
            or t[1] < -1 or (t[1] == -1 and -1 in t[2:]):
        return None
    tr = g.only_user(rs["outputs"][0], "transpose")
    if tr is None or list(tr["attrs"].get("perm", [])) != perm:
        return None
    return tr, rs, t[0], t[1], t[2], t[3]


def _fuse_attention(low) -> int:
    g = _Graph(low)
    drop = set()
    fused = 0
    for sm in list(low.ops):
        if sm["kernel"] != "softmax_f32" or sm["attrs"].get("legacy_2d") or int(sm["attrs"].get("axis", -1)) not in (-1, 3):
            continue
        # backwards from the Softmax: [Add(mask)] <- Mul/Div(scale) <- MatMul(Qt, Kt)
        src = g.prod.get(sm["inputs"][0])
        mask, add = None, None
        if src is not None and src["kernel"] == "add" and g.only_user(src["outputs"][0]) is sm:
            add = src
            ins = add["inputs"]
            for a, b in ((ins[0], ins[1]), (ins[1], ins[0])):
                p = g.prod.get(a)
                if p is not None and p["kernel"] in ("mul", "div") and g.only_user(a) is add:
                    src, mask = p, b
                    break
            else:
                continue
        sc = src
        if sc is None or sc["kernel"] not in ("mul", "div") or g.only_user(sc["outputs"][0]) is not (add or sm):
            continue
        mm1 = g.prod.get(sc["inputs"][0])
        c = g.scalar(sc["inputs"][1])
        if sc["kernel"] == "mul" and (mm1 is None or mm1["kernel"] != "matmul_f32"):
            mm1, c = g.prod.get(sc["inputs"][1]), g.scalar(sc["inputs"][0])
        if mm1 is None or mm1["kernel"] != "matmul_f32" or c is None or c == 0.0 or len(mm1["inputs"]) != 2 \
                or mm1["attrs"].get("act") or g.only_user(mm1["outputs"][0]) is not sc:
            continue
        scale = c if sc["kernel"] == "mul" else 1.0 / c
        # Q and K^T: Transpose(Reshape(x)) of single use
        tq, tk = g.prod.get(mm1["inputs"][0]), g.prod.get(mm1["inputs"][1])
        if tq is None or tk is None or tq["kernel"] != "transpose" or tk["kernel"] != "transpose":
            continue
        rq, rk = g.prod.get(tq["inputs"][0]), g.prod.get(tk["inputs"][0])
        if rq is None or rk is None or rq["kernel"] != "reshape" or rk["kernel"] != "reshape":
            continue
        qs, ks = _head_split(g, rq["inputs"][0], [0, 2, 1, 3]), _head_split(g, rk["inputs"][0], [0, 2, 3, 1])
        if qs is None or ks is None or qs[0] is not tq or ks[0] is not tk or g.only_user(tq["outputs"][0]) is not mm1 \
                or g.only_user(tk["outputs"][0]) is not mm1:
            continue
        # P.V, then Transpose back and Reshape [t0, t1, H*D]
        mm2 = g.only_user(sm["outputs"][0], "matmul_f32")
        if mm2 is None or mm2["inputs"][0] != sm["outputs"][0] or len(mm2["inputs"]) != 2 or mm2["attrs"].get("act"):
            continue
        tv = g.prod.get(mm2["inputs"][1])
        rv = g.prod.get(tv["inputs"][0]) if tv is not None and tv["kernel"] == "transpose" else None
        vs = _head_split(g, rv["inputs"][0], [0, 2, 1, 3]) if rv is not None and rv["kernel"] == "reshape" else None
        if vs is None or vs[0] is not tv or g.only_user(tv["outputs"][0]) is not mm2:
            continue
        to = g.only_user(mm2["outputs"][0], "transpose")
        if to is None or list(to["attrs"].get("perm", [])) != [0, 2, 1, 3]:
            continue
        ro = g.only_user(to["outputs"][0], "reshape")
        t = g.ints(ro["inputs"][1]) if ro is not None and len(ro["inputs"]) > 1 else None
        if t is None or len(t) != 3 or t[2] == 0 or t[2] < -1 or [t[0], t[1]] != [qs[2], qs[3]]:
            continue
        # heads / head size: each Reshape target may leave one of them to -1; the known ones must agree
        heads = {s_[4] for s_ in (qs, ks, vs) if s_[4] > 0}
        dims = {s_[5] for s_ in (qs, ks, vs) if s_[5] > 0}
        if len(heads) > 1 or len(dims) > 1 or (t[2] > 0 and heads and dims and heads != {t[2] // min(dims)}):
            continue
        inputs = [rq["inputs"][0], rk["inputs"][0], rv["inputs"][0]] + ([mask] if mask else [])
        attrs = {"scale": float(scale), "lead": [qs[2], qs[3], ks[2], ks[3], vs[2], vs[3]]}
        if heads:
            attrs["heads"] = heads.pop()
        if dims:
            attrs["head_dim"] = dims.pop()
        ro.update({"name": sm["name"].rsplit("/", 1)[0] + "/attention", "op": "Attention", "kernel": "attention_f32",
                   "inputs": inputs, "attrs": attrs})
        drop.update(id(o) for o in (tq, rq, tk, rk, tv, rv, mm1, sc, add, sm, mm2, to) if o is not None)
        fused += 1
    low.ops = [op for op in low.ops if id(op) not in drop]
    return fused


def _static_shape(low, value: str):
    """The static shape of a value from the graph's shape inference (None when unknown or dynamic)."""
    info = (getattr(low.g, "value_info", None) or {}).get(value)
    if info is None:
        info = next((t for t in low.g.inputs if t.name == value), None)
    shape = getattr(info, "shape", None)
    if shape is None or any(not isinstance(d, (int, np.integer)) or d < 0 for d in shape):
        return None
    return tuple(int(d) for d in shape)


def _dtype(low, value: str) -> Optional[str]:
    info = (getattr(low.g, "value_info", None) or {}).get(value)
    if info is None:
        info = next((t for t in low.g.inputs if t.name == value), None)
    return getattr(info, "dtype", None)


def _fold_mask(low) -> int:
    """The attention mask as BERT exports build it, ``Where(Expand(cond), a, b)`` with scalar constants a and b,
    when every user of the Where is an ``attention_f32`` reading it as its mask: the attention reads the bool
    ``cond`` itself with attrs ``mask_true: a, mask_false: b`` (it adds the same float values, so the output is
    bitwise the same). An ``Expand`` whose static output shape equals its input's (MiniLM's is [1, 1, 128, 128]
    -> the same) is dropped on the way. Two ops of per-element index arithmetic (MiniLM: 0.33 ms per run) become
    a select of 16 Ki values per attention op."""
    g = _Graph(low)
    drop = set()
    done = 0
    for wh in low.ops:
        if wh["kernel"] != "where" or len(wh["inputs"]) != 3 or wh["outputs"][0] in g.outputs:
            continue
        cond, ta, fa = wh["inputs"]
        t, f = g.scalar(ta), g.scalar(fa)
        us = g.users.get(wh["outputs"][0], [])
        if t is None or f is None or not np.isfinite([t, f]).all() or not us \
                or any(u["kernel"] != "attention_f32" or u["inputs"].index(wh["outputs"][0]) != 3
                       or u["inputs"].count(wh["outputs"][0]) != 1 for u in us):
            continue
        ex = g.prod.get(cond)
        if ex is not None and ex["kernel"] == "expand" and g.only_user(cond) is wh \
                and _static_shape(low, ex["inputs"][0]) is not None \
                and _static_shape(low, ex["inputs"][0]) == _static_shape(low, cond):
            cond = ex["inputs"][0]
        else:
            ex = None
        if _dtype(low, cond) != "bool":
            continue
        if ex is not None:
            drop.add(id(ex))
        for u in us:
            u["inputs"][3] = cond
            u["attrs"].update({"mask_true": t, "mask_false": f})
        drop.add(id(wh))
        done += 1
    low.ops = [op for op in low.ops if id(op) not in drop]
    return done


def _fold_residual(low) -> int:
    """Add(a, b) -> LayerNormalization (its only user) becomes layer_norm_f32(a, scale, bias, skip=b)."""
    g = _Graph(low)
    drop = set()
    for ln in low.ops:
        if ln["kernel"] != "layer_norm_f32" or len(ln["inputs"]) > 3 or int(ln["attrs"].get("axis", -1)) != -1:
            continue
        add = g.prod.get(ln["inputs"][0])
        if add is None or add["kernel"] != "add" or g.only_user(add["outputs"][0]) is not ln:
            continue
        a, b = add["inputs"]
        sa, sb = _static_shape(low, a), _static_shape(low, b)
        if sa is None or sa != sb or low.const(a) is not None or low.const(b) is not None:
            continue  # only same-shape operands (no broadcasting): the skip input must have x's shape
        ins = list(ln["inputs"]) + [""] * (3 - len(ln["inputs"]))
        ln["inputs"] = [a] + ins[1:3] + [b]
        drop.add(id(add))
    low.ops = [op for op in low.ops if id(op) not in drop]
    return len(drop)


def _pack_matmul_weights(low, rows_ok=lambda m: m >= 16) -> int:
    """A constant float B [K, N] read only as the weight (input 1) of matmul_f32 ops, each with a number of rows
    of A that ``rows_ok`` accepts (default at least 16), is stored once in the GEMM's panel layout
    [ceil(N/16), K, 16] (zero-padded columns; attr b_panels = N) for all of them: the kernels read it in place
    instead of packing B on every run (native/src/ops/gemm_prepacked.h). A weight shared by several MatMuls
    (session 15: a repeated block, tied projections) is packed once too. Returns how many ops read panels."""
    users: Dict[str, List[Dict[str, Any]]] = {}
    for op in low.ops:
        for i in op["inputs"]:
            users.setdefault(i, []).append(op)
    outputs = {t.name for t in low.g.outputs}

    def eligible(op, bname) -> bool:
        if op["kernel"] != "matmul_f32" or len(op["inputs"]) < 2 or "b_panels" in op["attrs"]:
            return False
        if op["inputs"][1] != bname or bname in op["inputs"][:1] + op["inputs"][2:]:
            return False
        sa = _static_shape(low, op["inputs"][0])
        return sa is not None and len(sa) >= 2 and bool(rows_ok(int(np.prod(sa[:-1]))))

    packed = 0
    done = set()
    for op in low.ops:
        if op["kernel"] != "matmul_f32" or len(op["inputs"]) < 2:
            continue
        bname = op["inputs"][1]
        if bname in done or bname in outputs:
            continue
        b = low.const(bname)
        if b is None or b.dtype != np.float32 or b.ndim != 2 or not all(eligible(u, bname) for u in users[bname]):
            continue
        done.add(bname)
        k, n = b.shape
        p = -(-n // 16)
        pad = np.zeros((k, p * 16), np.float32)
        pad[:, :n] = b
        name = f"{bname}.panels16"
        low.consts[name] = np.ascontiguousarray(pad.reshape(k, p, 16).transpose(1, 0, 2))
        for u in users[bname]:
            u["inputs"] = [u["inputs"][0], name] + list(u["inputs"][2:])
            u["attrs"]["b_panels"] = int(n)
            packed += 1
    return packed


_Q8_PANEL, _Q8_KBLOCK = 8, 32  # LB_PANEL_ROWS, LB_KBLOCK of lowbit_blocks.h


def _q8_parts(blob: np.ndarray, n: int, k: int):
    """A packed Q8 weight (lowbit_blocks.h: panels of codes, then float row scales, then int32 row sums, each
    over N padded to 8 rows) -> (codes, scales, sums) bytes, or None when n is not a multiple of 8 (the padded
    rows would sit inside a concatenation)."""
    if n % _Q8_PANEL:
        return None
    kp = -(-k // _Q8_KBLOCK) * _Q8_KBLOCK
    b = np.asarray(blob).reshape(-1).view(np.uint8)
    if b.size != n * (kp + 8):
        return None
    return b[:n * kp], b[n * kp:n * kp + 4 * n], b[n * kp + 4 * n:]


def _fuse_qkv(low) -> int:
    """q, k, v of an attention_f32 made by three GEMMs of one input x (same kind, same activation quantization,
    no epilogue, each output used only by the attention) -> one GEMM over the concatenated weights writing
    [..., Nq + Nk + Nv]; the attention reads its column blocks (attr cols = [0, Nq, Nq + Nk]). int8 weights:
    the packed Q8 panels, row scales and row sums concatenated as they are (same bytes per row, N multiple of 8);
    fp32: B [K, N] concatenated along N (before the panel packing)."""
    g = _Graph(low)
    drop = set()
    fused = 0
    for att in low.ops:
        if att["kernel"] != "attention_f32" or "cols" in att["attrs"] or len(set(att["inputs"][:3])) != 3:
            continue
        prods = [g.prod.get(v) for v in att["inputs"][:3]]
        if any(p is None or g.only_user(p["outputs"][0]) is not att for p in prods):
            continue
        kind = prods[0]["kernel"]
        if kind not in ("qlinear_f32", "matmul_f32") or any(p["kernel"] != kind or "post" in p["attrs"] for p in prods):
            continue
        x = prods[0]["inputs"][0]
        if any(p["inputs"][0] != x for p in prods):
            continue
        ins = [list(p["inputs"]) + [""] * (4 - len(p["inputs"])) for p in prods]
        biases = [low.const(i[2]) if i[2] else None for i in ins]
        if any(i[2] and (b is None or b.dtype != np.float32 or b.ndim != 1) for i, b in zip(ins, biases)):
            continue
        if kind == "qlinear_f32":
            same = {k: v for k, v in prods[0]["attrs"].items() if k != "n"}
            muls = [low.const(i[3]) if i[3] else None for i in ins]  # --smooth multipliers: the same values
            if any({k: v for k, v in p["attrs"].items() if k != "n"} != same for p in prods) or same.get("wfmt") != 1 \
                    or any(bool(i[3]) != bool(ins[0][3]) for i in ins) \
                    or (ins[0][3] and any(m is None or not np.array_equal(m, muls[0]) for m in muls)):
                continue
            ns = [int(p["attrs"]["n"]) for p in prods]
            k = int(same["k"])
            parts = [_q8_parts(low.const(i[1]), n, k) if low.const(i[1]) is not None else None for i, n in zip(ins, ns)]
            if any(pt is None for pt in parts):
                continue
            w = np.concatenate([np.concatenate([pt[j] for pt in parts]) for j in range(3)])
            wname = f"{ins[0][1]}.qkv"
            low.consts[wname] = w
            low.packed_meta[wname] = dict(low.packed_meta.get(ins[0][1], {}), n=int(sum(ns)))
            attrs = dict(prods[0]["attrs"], n=int(sum(ns)))
        else:
            bs = [low.const(i[1]) for i in ins]
            if any(p["attrs"] or len(p["inputs"]) > 3 or b is None or b.dtype != np.float32 or b.ndim != 2
                   or b.shape[0] != bs[0].shape[0] or len(g.users.get(i[1], [])) != 1 for p, i, b in zip(prods, ins, bs)):
                continue
            ns = [int(b.shape[1]) for b in bs]
            wname = f"{ins[0][1]}.qkv"
            low.consts[wname] = np.ascontiguousarray(np.concatenate(bs, axis=1))
            attrs = {}
        if len(set(ns)) != 1 or any(int(b.shape[0]) != n for b, n in zip(biases, ns) if b is not None):
            continue
        new_ins = [x, wname]
        if any(b is not None for b in biases):
            bname = f"{ins[0][2] or wname}.qkv_bias"
            low.consts[bname] = np.concatenate([b if b is not None else np.zeros(n, np.float32)
                                                for b, n in zip(biases, ns)]).astype(np.float32)
            new_ins.append(bname)
        if ins[0][3]:
            new_ins += [""] * (3 - len(new_ins)) + [ins[0][3]]
        out = f"{att['name']}/qkv"
        prods[0].update({"name": prods[0]["name"] + "/qkv", "inputs": new_ins, "outputs": [out], "attrs": attrs})
        drop.update(id(p) for p in prods[1:])
        att["inputs"] = [out, out, out] + list(att["inputs"][3:])
        att["attrs"].update({"cols": [0, ns[0], ns[0] + ns[1]], "width": ns[0]})
        fused += 1
    low.ops = [op for op in low.ops if id(op) not in drop]
    return fused


_EMBED_MIN = 1 << 16  # values: smaller Gather tables (MiniLM's 2 x 384 token types) stay fp32


def embedding_q8(t: np.ndarray):
    """Symmetric per-row int8 codes of a table [V, E]: (codes i8, scale f32 [V]), scale = max|row| / 127, round to
    nearest. Idempotent on its own output: codes * scale quantizes back to the same codes and scales."""
    amax = np.abs(t).max(axis=1)
    scale = (amax / 127.0).astype(np.float32)
    div = np.where(scale > 0, scale, np.float32(1.0))[:, None]
    return np.clip(np.rint(t / div), -127, 127).astype(np.int8), scale


def _embedding_table(t, name: str, users, outputs, kind, ins, axis) -> bool:
    """Whether constant `t` is a table that gather_q8 serves: fp32 [V, E] of >= _EMBED_MIN values, not an output,
    read only as input 0 of axis-0 Gathers."""
    return t is not None and isinstance(t, np.ndarray) and t.dtype == np.float32 and t.ndim == 2 \
        and t.size >= _EMBED_MIN and name not in outputs and bool(users) \
        and all(kind(u) == "gather" and ins(u)[0] == name and name not in ins(u)[1:] and axis(u) in (0, -2)
                for u in users)


def round_embedding_tables(graph) -> List[str]:
    """On a quantized IR graph (lowbit.ir.Graph) whose linears take int8 activations: replaces every table that
    the package will store as gather_q8 codes by its dequantized values (codes * scale, float32), so that the
    accuracy report, the golden vectors and the QDQ ONNX see the table the device runs (export_api.prepare
    calls this before the report; _quantize_embeddings then finds the same codes and scales again). Returns
    the names of the rounded tables (also in graph.metadata["embedding_q8"])."""
    users: Dict[str, List[Any]] = {}
    for n in graph.nodes:
        for i in n.inputs:
            if i:
                users.setdefault(i, []).append(n)
    outputs = {t.name for t in graph.outputs}
    done = []
    for name, t in list(graph.initializers.items()):
        if _embedding_table(t, name, users.get(name, []), outputs, lambda n: "gather" if n.op == "Gather" and
                            not n.domain else n.op, lambda n: n.inputs, lambda n: int(n.attrs.get("axis", 0))):
            codes, scale = embedding_q8(t)
            graph.initializers[name] = codes.astype(np.float32) * scale[:, None]
            done.append(name)
    if done:
        graph.metadata["embedding_q8"] = done
    return done


def _quantize_embeddings(low) -> int:
    """Gather(const fp32 [V, E], indices) on axis 0 -> gather_q8(codes i8 [V, E], scale f32 [V], indices) with
    symmetric per-row codes (embedding_q8), only in packages whose linears take int8 activations (their input
    error is already of that order; fp32 packages keep exact tables). export_api.prepare has already replaced
    such a table by codes * scale in the quantized graph (round_embedding_tables): the codes found here are the
    same, and the accuracy report includes the rounding."""
    if not any(op["kernel"] == "qlinear_f32" and op["attrs"].get("act") != "float" for op in low.ops):
        return 0
    outputs = {t.name for t in low.g.outputs}
    users: Dict[str, List[Dict[str, Any]]] = {}
    for op in low.ops:
        for i in op["inputs"]:
            users.setdefault(i, []).append(op)
    done = 0
    for name in list(users):
        t = low.const(name)
        us = users[name]
        if not _embedding_table(t, name, us, outputs, lambda u: u["kernel"], lambda u: u["inputs"],
                                lambda u: int(u["attrs"].get("axis", 0))):
            continue
        low.consts[f"{name}.q8"], low.consts[f"{name}.q8_scale"] = embedding_q8(t)
        for u in us:
            u.update({"kernel": "gather_q8", "inputs": [f"{name}.q8", f"{name}.q8_scale", u["inputs"][1]], "attrs": {}})
        done += 1
    return done


def fuse_transformer(low) -> Dict[str, int]:
    """Runs the fusions on `low` (an exporters.lbpk._Lowering after run()); returns the counts."""
    counts = {"attention": _fuse_attention(low)}
    counts["mask"] = _fold_mask(low)
    counts["bias"] = _fold_bias(low)
    counts["gelu"] = _fuse_gelu(low)  # after the bias: a GELU right after a GEMM becomes its epilogue
    counts["qkv"] = _fuse_qkv(low)  # after the bias (concatenated too), before the panel packing
    counts["residual"] = _fold_residual(low)
    counts["packed"] = _pack_matmul_weights(low)  # last: the fusions above read B as [K, N]
    counts["embedding"] = _quantize_embeddings(low)
    return counts
