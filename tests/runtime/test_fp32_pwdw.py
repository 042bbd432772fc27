"""conv2d_pwdw_f32 (session 13): a large-map 1x1 expansion and the depthwise conv that reads it, fused by
exporters/lbpk_fpwdw.py and run in row strips (native/src/ops/ops_conv.cpp). The fused op keeps the two ops'
per-element arithmetic, so on every ISA path (LOWBIT_ISA=scalar / avx2 / avx512vnni) its outputs must be bitwise
equal to the unfused package's, 1 and 2 threads bitwise identical, and within 1e-4 relative (the named float
tolerance) of ONNX Runtime. Shapes: stride 1 / 2, 3x3 / 5x5, odd H and W, symmetric and asymmetric pads,
several strips (a strip boundary, the first strip in the top padding), channel groups with a tail (O not a
multiple of 8), no expansion bias, batch 2, every expansion activation (none / relu / clip)."""
import numpy as np
import pytest

import lowbit
from runtime_helpers import assert_rel_close, fp32_graph_case, rand_w, run_isa_path

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

RTOL = 1e-4


def _pwdw(x_shape, o, k, stride, pads, pw_act="Clip", dw_act="Clip", pw_bias=True):
    """x -> 1x1 (o channels, pw_act) -> depthwise k x k (stride, pads, dw_act) -> y."""
    kin = x_shape[1]
    inits = {"w1": rand_w(o, kin, 1, 1), "w2": rand_w(o, 1, k, k, seed=3), "b2": rand_w(o, seed=4),
             "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    ins = ["x", "w1"]
    if pw_bias:
        inits["b1"] = rand_w(o, seed=2)
        ins.append("b1")
    nodes = [helper.make_node("Conv", ins, ["e0"], kernel_shape=[1, 1])]
    e = "e0"
    if pw_act == "Clip":
        nodes.append(helper.make_node("Clip", ["e0", "lo", "hi"], ["e1"]))
        e = "e1"
    elif pw_act:
        nodes.append(helper.make_node(pw_act, ["e0"], ["e1"]))
        e = "e1"
    nodes.append(helper.make_node("Conv", [e, "w2", "b2"], ["d" if dw_act else "y"], kernel_shape=[k, k], pads=pads,
                                  strides=[stride, stride], group=o))
    if dw_act == "Clip":
        nodes.append(helper.make_node("Clip", ["d", "lo", "hi"], ["y"]))
    elif dw_act:
        nodes.append(helper.make_node(dw_act, ["d"], ["y"]))
    return nodes, [("x", x_shape)], inits


CASES = {
    # EfficientNet's 16 -> 96 + 3x3 s2 [0, 0, 1, 1] shape family: 2 strips, O = 20 (groups 8 + 8 + 4)
    "s2_k3_asym_two_strips_o20": _pwdw([1, 16, 97, 100], 20, 3, 2, [0, 0, 1, 1]),
    # 3x3 s1 on an odd 61 x 57 map, K = 120 (5 strips of rows), no expansion bias, relu / no dw activation
    "s1_k3_five_strips_nobias": _pwdw([1, 120, 61, 57], 36, 3, 1, [1, 1, 1, 1], "Relu", None, pw_bias=False),
    # 5x5 s2, batch 2, no expansion activation, a sigmoid after the depthwise
    "s2_k5_batch2_sigmoid": _pwdw([2, 12, 41, 101], 16, 5, 2, [2, 2, 2, 2], None, "Sigmoid"),
    # 5x5 s1 (the generic AVX2 depthwise rows), hardswish
    "s1_k5_hardswish": _pwdw([1, 8, 30, 64], 8, 5, 1, [2, 2, 2, 2], "Clip", "HardSwish"),
    # 3x3 s2 with top padding, odd W, K = 64: strips of 8 output rows
    "s2_k3_pad1_odd_w_many_strips": _pwdw([1, 64, 59, 99], 24, 3, 2, [1, 1, 1, 1], "Relu", "Relu"),
}

def _run(pkg, feeds, tmp_path, isa, threads):
    got, isas = run_isa_path(pkg, feeds, tmp_path, isa, threads)
    return got["y"], isas


def _isas():
    usable = lowbit.native().isa_usable()
    return [i for i in ("scalar", "avx2", "avx512vnni") if i in usable]


@pytest.mark.parametrize("name", sorted(CASES))
def test_pwdw_bitwise_equals_unfused(tmp_path, monkeypatch, name):
    import lowbit.exporters.lbpk_fpwdw as fpwdw

    nodes, inputs, inits = CASES[name]
    fused, feeds, ref = fp32_graph_case(tmp_path, name, nodes, inputs, inits)
    monkeypatch.setattr(fpwdw, "FUSE", False)
    plain, _, _ = fp32_graph_case(tmp_path, name + "_unfused", nodes, inputs, inits)
    for isa in _isas():
        f1, kf = _run(fused, feeds, tmp_path, isa, 1)
        f2, _ = _run(fused, feeds, tmp_path, isa, 2)
        u1, ku = _run(plain, feeds, tmp_path, isa, 1)
        assert any(k.startswith("conv2d_pwdw_f32:") for k in kf), f"{name}: not fused ({kf})"
        assert not any(k.startswith("conv2d_pwdw_f32:") for k in ku), ku
        assert f"conv2d_pwdw_f32:{isa}" in kf, f"{name}: {isa} path not reported ({kf})"
        assert np.array_equal(f1, u1), f"{name} {isa}: fused differs from the two ops (max {np.abs(f1 - u1).max()})"
        assert np.array_equal(f1, f2), f"{name} {isa}: 2 threads differ from 1 thread"
        assert_rel_close(f1, ref["y"], RTOL, f"{name} {isa} vs ORT")


def _ops(nodes, inputs, inits, tmp_path, name):
    from onnx import TensorProto, numpy_helper

    from lowbit.exporters.lbpk import runtime_ops
    from lowbit.importers.onnx_import import import_onnx

    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y",)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return [op["kernel"] for op in runtime_ops(import_onnx(str(path), {n: s for n, s in inputs}))]


def test_pwdw_fuses_only_eligible_pairs(tmp_path):
    """Narrow outputs (OW < 48: the channel-blocked chains of lbpk_fpw.py), an expansion with a second reader,
    and a hardswish expansion stay two ops; the EfficientNet-like pair fuses."""
    nodes, inputs, inits = _pwdw([1, 16, 97, 100], 20, 3, 2, [0, 0, 1, 1])
    assert _ops(nodes, inputs, inits, tmp_path, "ok") == ["conv2d_pwdw_f32"]
    nodes, inputs, inits = _pwdw([1, 16, 60, 60], 24, 3, 2, [0, 0, 1, 1])  # OW = 30
    assert "conv2d_pwdw_f32" not in _ops(nodes, inputs, inits, tmp_path, "narrow")
    nodes, inputs, inits = _pwdw([1, 16, 50, 64], 16, 3, 1, [1, 1, 1, 1], "HardSwish")
    assert "conv2d_pwdw_f32" not in _ops(nodes, inputs, inits, tmp_path, "hswish")
    nodes, inputs, inits = _pwdw([1, 16, 50, 64], 16, 3, 1, [1, 1, 1, 1])
    nodes[-1] = helper.make_node("Clip", ["d", "lo", "hi"], ["y0"])
    nodes.append(helper.make_node("Add", ["y0", "e1"], ["y"]))  # the expansion read twice
    assert "conv2d_pwdw_f32" not in _ops(nodes, inputs, inits, tmp_path, "two_readers")


@pytest.mark.qemu
def test_pwdw_aarch64_bitwise_equals_unfused(native_aarch64, tmp_path, monkeypatch):
    """The aarch64 build (its portable expansion through the GEMM and the portable depthwise, lowbit-run under
    qemu) gives the unfused package's bits and ONNX Runtime's values within 1e-4."""
    import lowbit.exporters.lbpk_fpwdw as fpwdw
    from lowbit.exporters.lbpk_container import PackageReader
    from lowbit_testutil import run

    nodes, inputs, inits = _pwdw([1, 8, 20, 100], 16, 3, 2, [0, 0, 1, 1])
    fused, feeds, ref = fp32_graph_case(tmp_path, "arm_fused", nodes, inputs, inits)
    monkeypatch.setattr(fpwdw, "FUSE", False)
    plain, _, _ = fp32_graph_case(tmp_path, "arm_plain", nodes, inputs, inits)
    assert "conv2d_pwdw_f32" in PackageReader(fused).manifest["kernels"]
    np.save(tmp_path / "x.npy", feeds["x"])
    outs = {}
    for pkg in (fused, plain):
        d = tmp_path / pkg.stem
        d.mkdir()
        r = run(["qemu-aarch64", "-cpu", "max", native_aarch64 / "lowbit-run", "run", pkg, "--input",
                 f"x={tmp_path / 'x.npy'}", "--output", d])
        assert r.returncode == 0, r.stdout + r.stderr
        outs[pkg.stem] = np.load(d / "y.npy")
    assert np.array_equal(outs["arm_fused"], outs["arm_plain"]), "aarch64: fused differs from the two ops"
    assert_rel_close(outs["arm_fused"], ref["y"], RTOL, "aarch64 fused vs ORT")
