"""Float conv epilogue fusion: elementwise tails folded into the float conv before them.

PaddleOCR's PP-LCNetV3 backbone (PP-OCRv5 det) exports every conv as a bias-less Conv followed by
``Add(bias [1,C,1,1])``, a "learnable affine block" ``Mul(scalar) -> Add(scalar)``, HardSwish as
``HardSigmoid(alpha=1/6, beta=0.5) -> Mul(x, .)`` and a second affine block after it: seven passes
over the map after each conv. On the lowered op list (``lbpk._Lowering.ops``), for a
``conv2d_f32`` / ``conv_transpose2d_f32`` whose output has exactly one consumer (two for the
HardSwish pair) and is no graph output, this pass folds, repeatedly:

* ``Add(y, c)`` with a constant ``c`` of one value or one per output channel (``[1,O,1,1]``,
  ``[O,1,1]``) into the bias;
* ``Mul(y, c)`` (same constants; ``conv2d_f32`` only) into the weight rows and the bias;
* ``BatchNormalization`` (constant parameters; a ConvTranspose of one group too) likewise;
* ``Relu`` / ``Sigmoid`` / ``HardSigmoid`` / ``Clip`` (constant bounds) into the activation (``act``);
* ``HardSigmoid(y; 1/6, 0.5)`` + ``Mul(y, that)`` into ``act = hardswish``;
* after ``act = hardswish``: ``Mul(., scalar)`` / ``Add(., scalar)`` into
  ``act = hardswish_affine`` (``act_scale``, ``act_shift``: ``y = s * hardswish(z) + t``).

The folded weight and bias are new constants (``<weight>.ff<n>``); the rounding differs from the
unfused graph by a few ulp (the 1e-4 tolerance against ONNX Runtime holds). Runs before
``float_pointwise`` so the 1x1 convs it converts carry the folded weights.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

CONVS = ("conv2d_f32", "conv_transpose2d_f32")
HSWISH_ALPHA = 1.0 / 6.0


def _per_channel(c: Optional[np.ndarray], o: int) -> Optional[np.ndarray]:
    """``c`` as an ``[o]`` float32 vector if it broadcasts over NCHW as one value or one per channel."""
    if c is None or c.dtype != np.float32:
        return None
    if c.size == 1 and c.ndim <= 4:
        return np.full(o, float(c.reshape(-1)[0]), np.float32)
    if c.shape in ((1, o, 1, 1), (o, 1, 1)):
        return c.reshape(o).astype(np.float32)
    return None


def _scalar(c: Optional[np.ndarray]) -> Optional[float]:
    if c is None or c.dtype != np.float32 or c.size != 1 or c.ndim > 4:
        return None
    return float(c.reshape(-1)[0])


class _Fuser:
    def __init__(self, low):
        self.low = low
        self.n = 0
        self.outputs = {t.name for t in low.g.outputs}

    def consumers(self) -> Dict[str, List[Dict[str, Any]]]:
        users: Dict[str, List[Dict[str, Any]]] = {}
        for op in self.low.ops:
            for i in op["inputs"]:
                if i:
                    users.setdefault(i, []).append(op)
        return users

    def new_const(self, base: str, arr: np.ndarray) -> str:
        self.n += 1
        name = f"{base}.ff{self.n}"
        while name in self.low.consts:
            self.n += 1
            name = f"{base}.ff{self.n}"
        self.low.consts[name] = np.ascontiguousarray(arr, np.float32)
        return name

    def other_const(self, op: Dict[str, Any], y: str) -> Optional[np.ndarray]:
        """The constant operand of a binary ``op`` whose other operand is ``y``."""
        ins = op["inputs"]
        if len(ins) != 2 or ins.count(y) != 1:
            return None
        return self.low.const(ins[1] if ins[0] == y else ins[0])

    def bias(self, conv: Dict[str, Any], o: int) -> np.ndarray:
        ins = conv["inputs"]
        b = self.low.const(ins[2]) if len(ins) > 2 and ins[2] else None
        return np.zeros(o, np.float32) if b is None else np.asarray(b, np.float32).reshape(o)

    def set_bias(self, conv: Dict[str, Any], b: np.ndarray) -> None:
        ins = conv["inputs"]
        base = ins[2] if len(ins) > 2 and ins[2] else f"{ins[1]}.bias"
        conv["inputs"] = ins[:2] + [self.new_const(base, b)] + ins[3:]

    def fold_one(self, conv: Dict[str, Any], users) -> Optional[Dict[str, Any]]:
        """Folds the next elementwise op into ``conv``; returns the op removed, or None."""
        y = conv["outputs"][0]
        if y in self.outputs:
            return None
        w = self.low.const(conv["inputs"][1])
        if w is None or w.dtype != np.float32 or w.ndim != 4:
            return None
        transpose = conv["kernel"] == "conv_transpose2d_f32"
        o = int(w.shape[1]) * int(conv["attrs"].get("group", 1)) if transpose else int(w.shape[0])
        act = conv["attrs"].get("act")
        us = users.get(y, [])
        if len(us) == 2 and act is None and not transpose:
            return self.hardswish(conv, us, users)
        if len(us) != 1:
            return None
        u = us[0]
        k = u["kernel"]
        if act is None and k in ("add", "mul"):
            c = _per_channel(self.other_const(u, y), o)
            if c is None or (k == "mul" and transpose):
                return None
            b = self.bias(conv, o)
            if k == "add":
                self.set_bias(conv, b + c)
            else:
                conv["inputs"][1] = self.new_const(conv["inputs"][1], w * c.reshape(o, 1, 1, 1))
                self.set_bias(conv, b * c)
            return u
        if act is None and k == "batch_norm_f32" and len(u["inputs"]) == 5 and u["inputs"][0] == y:
            prm = [self.low.const(i) for i in u["inputs"][1:]]  # [O] each
            prm = [v.astype(np.float32) if v is not None and v.shape == (o,) else None for v in prm]
            if any(v is None for v in prm) or (transpose and int(conv["attrs"].get("group", 1)) != 1):
                return None
            g, beta, mean, var = (v.astype(np.float64) for v in prm)
            c = g / np.sqrt(var + float(u["attrs"].get("epsilon", 1e-5)))
            shape = (1, o, 1, 1) if transpose else (o, 1, 1, 1)
            conv["inputs"][1] = self.new_const(conv["inputs"][1], (w * c.reshape(shape)).astype(np.float32))
            self.set_bias(conv, (self.bias(conv, o) * c + beta - mean * c).astype(np.float32))
            return u
        if act is None and k in ("relu_f32", "sigmoid_f32", "hardsigmoid_f32", "clip_f32"):
            a = conv["attrs"]
            if k in ("relu_f32", "sigmoid_f32"):
                a["act"] = k[:-4]
            elif k == "hardsigmoid_f32":
                a.update(act="hardsigmoid", act_alpha=float(u["attrs"].get("alpha", 0.2)),
                         act_beta=float(u["attrs"].get("beta", 0.5)))
            else:
                lo, hi = u["attrs"].get("min", -np.inf), u["attrs"].get("max", np.inf)
                for j, key in ((1, "lo"), (2, "hi")):
                    if len(u["inputs"]) > j and u["inputs"][j]:
                        v = _scalar(self.low.const(u["inputs"][j]))
                        if v is None:
                            return None
                        lo, hi = (v, hi) if key == "lo" else (lo, v)
                a["act"] = "clip"
                if np.isfinite(lo):
                    a["act_min"] = float(lo)
                if np.isfinite(hi):
                    a["act_max"] = float(hi)
            return u
        if act in ("hardswish", "hardswish_affine") and k in ("add", "mul"):
            v = _scalar(self.other_const(u, y))
            if v is None:
                return None
            a = conv["attrs"]
            s, t = float(a.get("act_scale", 1.0)), float(a.get("act_shift", 0.0))
            s, t = (s * v, t * v) if k == "mul" else (s, t + v)
            a.update(act="hardswish_affine", act_scale=s, act_shift=t)
            return u
        return None

    def hardswish(self, conv, us, users) -> Optional[Dict[str, Any]]:
        y = conv["outputs"][0]
        hs = [u for u in us if u["kernel"] == "hardsigmoid_f32" and u["inputs"][:1] == [y]]
        if len(hs) != 1:
            return None
        h = hs[0]
        alpha, beta = float(h["attrs"].get("alpha", 0.2)), float(h["attrs"].get("beta", 0.5))
        m = [u for u in us if u is not h]
        hy = h["outputs"][0]
        if abs(alpha - HSWISH_ALPHA) > 1e-6 or beta != 0.5 or hy in self.outputs or len(users.get(hy, [])) != 1 \
                or m[0]["kernel"] != "mul" or sorted(m[0]["inputs"]) != sorted([y, hy]):
            return None
        conv["attrs"]["act"] = "hardswish"
        self.low.ops.remove(h)
        return m[0]

    def run(self) -> int:
        count = 0
        changed = True
        while changed:
            changed = False
            users = self.consumers()
            for conv in list(self.low.ops):
                if conv["kernel"] not in CONVS or len(conv["inputs"]) < 2:
                    continue
                gone = self.fold_one(conv, users)
                if gone is None:
                    continue
                conv["outputs"] = [gone["outputs"][0]]
                self.low.ops.remove(gone)
                count += 1
                changed = True
                users = self.consumers()
        return count


def fuse_float_epilogues(low) -> int:
    """Folds elementwise tails into the float convs of ``low`` (an ``lbpk._Lowering``) in place;
    returns how many ops were removed."""
    return _Fuser(low).run()
