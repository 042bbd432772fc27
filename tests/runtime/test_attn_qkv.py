"""One Q/K/V GEMM (exporters/lbpk_attn.py, _fuse_qkv): the three int8 projections that read the same input and
feed an attention_f32 become one qlinear_f32 over the concatenated packed weights; the attention reads q, k, v
as column blocks of its output (attrs cols/width, native/src/ops/ops_attn.cpp). The outputs must be bitwise those
of the unfused package (same activation quantization, same per-column sums) on the AVX2 and the portable path and
for 1 and 2 threads; projections that quantize their input differently stay separate. (The fp32 case is in
test_attn_fusion.py, against ONNX Runtime.)"""
from __future__ import annotations

import numpy as np
import pytest

from runtime_helpers import run_scalar_path

B, S, H, D = 2, 12, 3, 8  # N = 24: a multiple of the 8-row panels (the concatenation needs whole panels)
E = H * D


def _graph(tmp_path, act_scales, smooth=None, n_extra=0):
    """x -> 3 x (int8 MatMul + bias Add + Reshape/Transpose) -> attention (scale, mask, Softmax) -> y."""
    from onnx import TensorProto, helper, numpy_helper

    from lowbit.importers.onnx_import import import_onnx
    from lowbit.ir import ActQuant, QuantWeight

    rng = np.random.default_rng(11)
    inits = {"scale": np.array(1 / np.sqrt(D), np.float32), "shape4": np.array([B, S, -1, D], np.int64),
             "shape3": np.array([B, S, -1], np.int64)}
    nodes = []
    for t in "qkv":
        inits[f"W{t}"] = (rng.standard_normal((E, E)) / np.sqrt(E)).astype(np.float32)
        inits[f"b{t}"] = (rng.standard_normal(E) * 0.1).astype(np.float32)
        nodes += [helper.make_node("MatMul", ["x", f"W{t}"], [f"{t}m"], name=f"mm_{t}"),
                  helper.make_node("Add", [f"{t}m", f"b{t}"], [f"{t}a"]),
                  helper.make_node("Reshape", [f"{t}a", "shape4"], [f"{t}r"]),
                  helper.make_node("Transpose", [f"{t}r"], [f"{t}t"], perm=[0, 2, 3, 1] if t == "k" else [0, 2, 1, 3])]
    nodes += [helper.make_node("MatMul", ["qt", "kt"], ["s"]), helper.make_node("Mul", ["s", "scale"], ["ss"]),
              helper.make_node("Add", ["ss", "mask"], ["sm"]), helper.make_node("Softmax", ["sm"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "vt"], ["o"]),
              helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ot", "shape3"], ["y"])]
    inputs = [("x", [B, S, E]), ("mask", [B, 1, 1, S])]
    g = helper.make_graph(nodes, "qkv", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = tmp_path / "qkv.onnx"
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    ir = import_onnx(str(path), dict(inputs))
    for t, a_scale in zip("qkv", act_scales):
        w = inits[f"W{t}"].T  # [N, K]
        sc = (np.abs(w).max(1, keepdims=True) / 127).astype(np.float32)
        q = np.clip(np.round(w / sc), -127, 127).astype(np.int8)
        ir.initializers[f"W{t}"] = QuantWeight("int8", q, sc, E, orig_shape=(E, E))
        node = next(n for n in ir.nodes if n.name == f"mm_{t}")
        node.attrs["act_quant"] = ActQuant("static", scale=a_scale, zero_point=0, smooth=smooth)
    feeds = {"x": rng.standard_normal((B, S, E)).astype(np.float32),
             "mask": np.where(rng.random((B, 1, 1, S)) < 0.2, np.float32(-1e4), np.float32(0)).astype(np.float32)}
    return ir, feeds


def _packages(tmp_path, ir):
    """(fused package, the same graph exported with the Q/K/V fusion off)."""
    from lowbit.exporters import lbpk_attn
    from lowbit.exporters.lbpk import write_package

    fused = write_package(ir, tmp_path / "fused.lbpk", target="x86-64-avx2", scheme="w8a8")
    mp = pytest.MonkeyPatch()
    mp.setattr(lbpk_attn, "_fuse_qkv", lambda low: 0)
    try:
        plain = write_package(ir, tmp_path / "plain.lbpk", target="x86-64-avx2", scheme="w8a8")
    finally:
        mp.undo()
    return fused, plain


def _ops(pkg):
    import lowbit

    return lowbit.load(pkg).manifest["ops"]


@pytest.mark.parametrize("smooth", [False, True])
def test_qkv_fused_int8_bitwise_unfused(tmp_path, smooth):
    import lowbit

    sm = np.linspace(0.5, 2.0, E).astype(np.float32) if smooth else None
    ir, feeds = _graph(tmp_path, (0.03, 0.03, 0.03), smooth=sm)
    fused, plain = _packages(tmp_path, ir)
    ops = _ops(fused)
    q = [op for op in ops if op["kernel"] == "qlinear_f32"]
    att = next(op for op in ops if op["kernel"] == "attention_f32")
    assert len(q) == 1 and q[0]["attrs"]["n"] == 3 * E and len(q[0]["inputs"]) == (4 if smooth else 3), q
    assert att["attrs"]["cols"] == [0, E, 2 * E] and att["inputs"][:3] == q[0]["outputs"] * 3
    assert [op["kernel"] for op in _ops(plain)].count("qlinear_f32") == 3
    ref = lowbit.load(plain, threads=1).run(feeds)["y"]
    assert np.abs(ref).max() > 0.1  # a real output, not zeros
    for t in (1, 2):
        assert np.array_equal(lowbit.load(fused, threads=t).run(feeds)["y"], ref), f"threads={t}"
    if not smooth:  # the portable path (qlinear's scalar GEMM, the portable softmax) on both packages
        a, isa = run_scalar_path(fused, feeds, tmp_path, kernel="attention_f32")
        b, _ = run_scalar_path(plain, feeds, tmp_path, kernel="attention_f32")
        assert isa == "scalar" and np.array_equal(a["y"], b["y"])


def test_qkv_not_fused_when_the_inputs_quantize_differently(tmp_path):
    """V quantizes x with another static scale: the three GEMMs stay (and the result is still right)."""
    import lowbit

    ir, feeds = _graph(tmp_path, (0.03, 0.03, 0.05))
    fused, plain = _packages(tmp_path, ir)
    ops = _ops(fused)
    assert [op["kernel"] for op in ops].count("qlinear_f32") == 3
    assert "cols" not in next(op for op in ops if op["kernel"] == "attention_f32")["attrs"]
    assert np.array_equal(lowbit.load(fused).run(feeds)["y"], lowbit.load(plain).run(feeds)["y"])
