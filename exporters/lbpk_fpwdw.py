"""Float expansion + depthwise fusion: a 1x1 conv and the depthwise conv that reads it -> ``conv2d_pwdw_f32``.

On a large map the inverted-residual block's expansion (EfficientNet-Lite0's 16 -> 96 on 112x112, 24 -> 144 on
56x56) writes a map of several MB that the depthwise conv after it reads back; on the session-12 VM a write to
memory not in any cache costs ~60 us/MB and the arena is cold at every run, so the two ops were bound by those
bytes. ``conv2d_pwdw_f32`` (docs/package-format.md, section 7; native/src/ops/ops_conv.cpp) computes the
expansion in row strips into a per-thread buffer that stays in L2 and runs the depthwise conv on it: the
expanded map never goes to memory. Per element the same arithmetic as the two ops (bitwise equal).

On the lowered op list (``lbpk._Lowering.ops``), after the epilogue fusion (activations already folded), a
``conv2d_f32`` A that is 1x1, stride 1, unpadded, one group, with a constant float weight and act none / relu /
clip, whose output is no graph output and is read only by one depthwise ``conv2d_f32`` B (group = channels,
3x3 or 5x5, stride 1 or 2, no dilation, explicit pads smaller than the kernel) as its data input, with B's output
rows at least ``MIN_OW`` wide (the wide-row NCHW depthwise kernels; narrower maps keep the channel-blocked
chains of lbpk_fpw.py), becomes one op: inputs ``[x, w_A, b_A | "", w_B, b_B | ""]``, B's output and window
attributes and activation (``act``, ``act_min`` / ``act_max``, ...), A's activation as ``pw_act`` (``relu`` /
``clip``) with ``pw_act_min`` / ``pw_act_max``. Runs before ``float_pointwise``.

``fuse_depthwise_project`` (session 14): the other way round, a depthwise ``conv2d_f32`` A (the checks above,
act none / relu / clip) whose output is no graph output and is read only by a 1x1 ``conv2d_f32`` B (stride 1,
unpadded, one group, constant float weight, at most ``PROJ_MAX_O`` output and ``PROJ_MAX_K`` input channels,
a map of at least ``PROJ_MIN_P`` pixels: the native mode-0 1x1 tiles), becomes ``conv2d_dwpw_f32``: inputs
``[x, w_A, b_A | "", w_B, b_B | ""]``, A's window attributes, A's activation as ``dw_act`` (``relu`` / ``clip``)
with ``dw_act_min`` / ``dw_act_max``, B's activation (``act``, ...). EfficientNet-Lite0's first block (32x112x112
depthwise -> 16): the depthwise output (1.6 MB) stays in L2 in row strips. Runs after ``fuse_expand_depthwise``.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from lowbit.exporters.lbpk_fpw import _map_hw, _pointwise

FUSE = True  # tests turn it off to compare the fused op with the two ops
MIN_OW = 48  # native dw3 (AVX-512) / dws2 wide-row kernels; EfficientNet-Lite0's two 56-wide maps
PW_ACTS = (None, "relu", "clip")
PROJ_MAX_O, PROJ_MAX_K, PROJ_MIN_P = 24, 160, 1024  # native pw1_fits / the zmm projection tiles (ops_conv.cpp)


def _const_f32(low, name: str, ndim: int) -> Optional[np.ndarray]:
    w = low.const(name) if name else None
    return w if w is not None and w.dtype == np.float32 and w.ndim == ndim else None


def _depthwise(low, op: Dict[str, Any], expand: Dict[str, Any], o: int) -> bool:
    """``op`` is a depthwise conv2d_f32 over ``o`` channels that conv2d_pwdw_f32 runs (module docstring)."""
    if op["kernel"] != "conv2d_f32" or len(op["inputs"]) < 2:
        return False
    a = op["attrs"]
    w = _const_f32(low, op["inputs"][1], 4)
    if w is None or w.shape[0] != o or w.shape[1] != 1 or int(a.get("group", 1)) != o:
        return False
    kh, kw = int(w.shape[2]), int(w.shape[3])
    strides = [int(v) for v in a.get("strides", [1, 1])]
    pads = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
    if (kh, kw) not in ((3, 3), (5, 5)) or strides not in ([1, 1], [2, 2]) or len(pads) != 4:
        return False
    if any(int(v) != 1 for v in a.get("dilations", [1, 1])) or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return False
    if pads[0] >= kh or pads[2] >= kh or a.get("x_nchw8c") or a.get("y_nchw8c"):
        return False
    hw = _map_hw(low, op["inputs"][0]) or _map_hw(low, expand["inputs"][0])  # the expanded map = its input's
    return hw is not None and (hw[1] + pads[1] + pads[3] - kw) // strides[1] + 1 >= MIN_OW


def _sole_reader_pairs(low) -> Iterator[Tuple[Dict[str, Any], np.ndarray, Dict[str, Any]]]:
    """(A, A's weight, B) for each float conv A in ``low`` with a constant weight and an activation the fused
    ops run (``PW_ACTS``) whose output is no graph output and is read by one op B, once, as B's first input.
    Walks the op list as it was when called (the callers replace pairs while they walk)."""
    if not FUSE:
        return
    outputs = {t.name for t in low.g.outputs}
    readers: Dict[str, List[Dict[str, Any]]] = {}
    for op in low.ops:
        for t in op["inputs"]:
            if t:
                readers.setdefault(t, []).append(op)
    for a_op in list(low.ops):
        if a_op["kernel"] != "conv2d_f32" or len(a_op["inputs"]) < 2 or a_op["attrs"].get("act") not in PW_ACTS:
            continue
        w = _const_f32(low, a_op["inputs"][1], 4)
        y = a_op["outputs"][0]
        rs = readers.get(y, [])
        if w is None or y in outputs or len(rs) != 1 or rs[0]["inputs"][0] != y or rs[0]["inputs"].count(y) != 1:
            continue
        yield a_op, w, rs[0]


def _act_attrs(attrs: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    """A fused-away op's activation (``act``, ``act_min``, ``act_max``) under ``prefix``; empty when it has none."""
    if not attrs.get("act"):
        return {}
    return {prefix + k: attrs[k] for k in ("act", "act_min", "act_max") if k in attrs}


def _replace_pair(low, a_op: Dict[str, Any], b_op: Dict[str, Any], kernel: str, attrs: Dict[str, Any]) -> None:
    """Puts one ``kernel`` op in ``a_op``'s place and drops ``b_op`` (B reads A's output): inputs
    ``[x, w_A, b_A | "", w_B, b_B | ""]``, B's outputs, ``attrs``."""
    ins_a, ins_b = a_op["inputs"], b_op["inputs"]
    fused = {"name": f"{a_op['name']}+{b_op['name']}", "op": "Conv", "kernel": kernel,
             "inputs": [ins_a[0], ins_a[1], ins_a[2] if len(ins_a) > 2 else "", ins_b[1],
                        ins_b[2] if len(ins_b) > 2 else ""],
             "outputs": list(b_op["outputs"]), "attrs": attrs}
    fused["fused"] = ",".join(f for f in (a_op.get("fused"), b_op["name"], b_op.get("fused")) if f)
    low.ops[low.ops.index(a_op)] = fused
    low.ops.remove(b_op)


def fuse_expand_depthwise(low) -> int:
    """Fuses each eligible 1x1 expansion with its depthwise conv in ``low`` (an ``lbpk._Lowering``) in place
    (module docstring); returns how many pairs."""
    count = 0
    for a_op, w, b_op in _sole_reader_pairs(low):
        if not _pointwise(a_op["attrs"]) or w.shape[2:] != (1, 1) or not _depthwise(low, b_op, a_op, int(w.shape[0])):
            continue
        _replace_pair(low, a_op, b_op, "conv2d_pwdw_f32", {**b_op["attrs"], **_act_attrs(a_op["attrs"], "pw_")})
        count += 1
    return count


def _out_pixels(low, op: Dict[str, Any], w: np.ndarray) -> int:
    """OH * OW of the depthwise conv ``op`` (explicit pads; ``_depthwise`` checked them), 0 if its map is unknown."""
    hw = _map_hw(low, op["inputs"][0])
    if hw is None:
        return 0
    a = op["attrs"]
    s = [int(v) for v in a.get("strides", [1, 1])]
    pads = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
    oh = (hw[0] + pads[0] + pads[2] - int(w.shape[2])) // s[0] + 1
    ow = (hw[1] + pads[1] + pads[3] - int(w.shape[3])) // s[1] + 1
    return oh * ow




def fuse_depthwise_project(low) -> int:
    """Fuses each eligible depthwise conv with the 1x1 projection that reads it in ``low`` in place (module
    docstring); returns how many pairs."""
    count = 0
    for a_op, wa, b_op in _sole_reader_pairs(low):
        if not _depthwise(low, a_op, a_op, int(wa.shape[0])):
            continue
        if b_op["kernel"] != "conv2d_f32" or len(b_op["inputs"]) not in (2, 3) or not _pointwise(b_op["attrs"]):
            continue
        wb = _const_f32(low, b_op["inputs"][1], 4)
        if (wb is None or wb.shape[1:] != (wa.shape[0], 1, 1) or wb.shape[0] > PROJ_MAX_O
                or wb.shape[1] > PROJ_MAX_K or _out_pixels(low, a_op, wa) < PROJ_MIN_P):
            continue
        if any(k.endswith("nchw8c") for k in list(a_op["attrs"]) + list(b_op["attrs"])):
            continue
        attrs = {k: v for k, v in a_op["attrs"].items() if not k.startswith("act")}
        attrs.update(_act_attrs(a_op["attrs"], "dw_"))
        attrs.update({k: v for k, v in b_op["attrs"].items() if k.startswith("act")})
        _replace_pair(low, a_op, b_op, "conv2d_dwpw_f32", attrs)
        count += 1
    return count
