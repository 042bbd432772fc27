"""conv2d_dwpw_f32 (session 14): a large-map depthwise conv and the 1x1 projection that reads it, fused by
exporters/lbpk_fpwdw.py (fuse_depthwise_project) and run in row strips (native/src/ops/ops_conv.cpp). The fused op
keeps the two ops' per-element arithmetic, so on every ISA path (LOWBIT_ISA=scalar / avx2 / avx512vnni) its outputs
must be bitwise equal to the unfused package's, 1 and 2 threads bitwise identical, and within 1e-4 relative (the
named float tolerance) of ONNX Runtime. Shapes: stride 1 / 2, 3x3 / 5x5, odd H and W, asymmetric pads, several
strips (a last short strip), projections of 16 / 24 / 5 channels (the zmm tiles' 8-row groups and a tail, pixel
tails past the 48- and 16-pixel tiles), no biases, batch 2, every depthwise activation (none / relu / clip) and a
projection activation."""
import numpy as np
import pytest

import lowbit
from runtime_helpers import assert_rel_close, fp32_graph_case, rand_w, run_isa_path

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

RTOL = 1e-4


def _dwpw(x_shape, o, k, stride, pads, dw_act="Clip", pj_act=None, bias=True):
    """x -> depthwise k x k (stride, pads, dw_act) -> 1x1 (o channels, pj_act) -> y."""
    c = x_shape[1]
    inits = {"w1": rand_w(c, 1, k, k), "w2": rand_w(o, c, 1, 1, seed=3),
             "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    i1, i2 = ["x", "w1"], ["d1", "w2"]
    if bias:
        inits["b1"], inits["b2"] = rand_w(c, seed=2), rand_w(o, seed=4)
        i1.append("b1")
        i2.append("b2")
    nodes = [helper.make_node("Conv", i1, ["d0"], kernel_shape=[k, k], pads=pads, strides=[stride, stride], group=c)]
    if dw_act == "Clip":
        nodes.append(helper.make_node("Clip", ["d0", "lo", "hi"], ["d1"]))
    elif dw_act:
        nodes.append(helper.make_node(dw_act, ["d0"], ["d1"]))
    else:
        i2[0] = "d0"
    nodes.append(helper.make_node("Conv", i2, ["p" if pj_act else "y"], kernel_shape=[1, 1]))
    if pj_act:
        nodes.append(helper.make_node(pj_act, ["p"], ["y"]))
    return nodes, [("x", x_shape)], inits


CASES = {
    # EfficientNet's first block: 32x112x112 dw 3x3 s1 (relu6) -> 16, here on 61 x 112 (7 strips, a short last one)
    "s1_k3_o16_effnet_like": _dwpw([1, 32, 61, 112], 16, 3, 1, [1, 1, 1, 1]),
    # odd W (pixel tails past the 48- and 16-pixel tiles), O = 24 (three 8-row groups), relu, no biases
    "s1_k3_o24_odd_w_nobias": _dwpw([1, 40, 37, 101], 24, 3, 1, [1, 1, 1, 1], "Relu", bias=False),
    # 3x3 s2 with asymmetric pads (EfficientNet's [0, 0, 1, 1]), O = 5 (one short row group), no dw activation
    "s2_k3_asym_o5": _dwpw([1, 24, 99, 130], 5, 3, 2, [0, 0, 1, 1], None),
    # 5x5 s2, batch 2, a sigmoid after the projection
    "s2_k5_batch2_sigmoid": _dwpw([2, 16, 70, 110], 12, 5, 2, [2, 2, 2, 2], "Clip", "Sigmoid"),
    # 5x5 s1 (the generic AVX2 depthwise rows), K = 144
    "s1_k5_k144": _dwpw([1, 144, 33, 50], 24, 5, 1, [2, 2, 2, 2], "Relu"),
}


def _run(pkg, feeds, tmp_path, isa, threads):
    got, isas = run_isa_path(pkg, feeds, tmp_path, isa, threads)
    return got["y"], isas


def _isas():
    usable = lowbit.native().isa_usable()
    return [i for i in ("scalar", "avx2", "avx512vnni") if i in usable]


@pytest.mark.parametrize("name", sorted(CASES))
def test_dwpw_bitwise_equals_unfused(tmp_path, monkeypatch, name):
    import lowbit.exporters.lbpk_fpwdw as fpwdw

    nodes, inputs, inits = CASES[name]
    fused, feeds, ref = fp32_graph_case(tmp_path, name, nodes, inputs, inits)
    monkeypatch.setattr(fpwdw, "FUSE", False)
    plain, _, _ = fp32_graph_case(tmp_path, name + "_unfused", nodes, inputs, inits)
    for isa in _isas():
        f1, kf = _run(fused, feeds, tmp_path, isa, 1)
        f2, _ = _run(fused, feeds, tmp_path, isa, 2)
        u1, ku = _run(plain, feeds, tmp_path, isa, 1)
        assert f"conv2d_dwpw_f32:{isa}" in kf, f"{name}: not fused or {isa} path not reported ({kf})"
        assert not any(k.startswith("conv2d_dwpw_f32:") for k in ku), ku
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


def test_dwpw_fuses_only_eligible_pairs(tmp_path):
    """Narrow rows (OW < 48), small maps (< 1024 pixels), projections to more than 24 channels, a hardswish
    depthwise and a depthwise output with a second reader stay two ops; the EfficientNet-like pair fuses."""
    nodes, inputs, inits = _dwpw([1, 32, 40, 112], 16, 3, 1, [1, 1, 1, 1])
    assert _ops(nodes, inputs, inits, tmp_path, "ok") == ["conv2d_dwpw_f32"]
    nodes, inputs, inits = _dwpw([1, 32, 60, 60], 16, 3, 2, [0, 0, 1, 1])  # OW = 30
    assert "conv2d_dwpw_f32" not in _ops(nodes, inputs, inits, tmp_path, "narrow")
    nodes, inputs, inits = _dwpw([1, 32, 16, 56], 16, 3, 1, [1, 1, 1, 1])  # 896 pixels
    assert "conv2d_dwpw_f32" not in _ops(nodes, inputs, inits, tmp_path, "small")
    nodes, inputs, inits = _dwpw([1, 32, 40, 112], 32, 3, 1, [1, 1, 1, 1])  # O = 32
    assert "conv2d_dwpw_f32" not in _ops(nodes, inputs, inits, tmp_path, "wide_o")
    nodes, inputs, inits = _dwpw([1, 32, 40, 112], 16, 3, 1, [1, 1, 1, 1], "HardSwish")
    assert "conv2d_dwpw_f32" not in _ops(nodes, inputs, inits, tmp_path, "hswish")
    nodes, inputs, inits = _dwpw([1, 16, 40, 112], 16, 3, 1, [1, 1, 1, 1])
    nodes[-1] = helper.make_node("Conv", ["d1", "w2", "b2"], ["y0"], kernel_shape=[1, 1])
    nodes.append(helper.make_node("Add", ["y0", "d1"], ["y"]))  # the depthwise output read twice
    assert "conv2d_dwpw_f32" not in _ops(nodes, inputs, inits, tmp_path, "two_readers")


@pytest.mark.qemu
def test_dwpw_aarch64_bitwise_equals_unfused(native_aarch64, tmp_path, monkeypatch):
    """The aarch64 build (the portable depthwise and the projection through the GEMM, lowbit-run under qemu)
    gives the unfused package's bits and ONNX Runtime's values within 1e-4."""
    import lowbit.exporters.lbpk_fpwdw as fpwdw
    from lowbit.exporters.lbpk_container import PackageReader
    from lowbit_testutil import run

    nodes, inputs, inits = _dwpw([1, 16, 30, 100], 16, 3, 1, [1, 1, 1, 1])
    fused, feeds, ref = fp32_graph_case(tmp_path, "arm_fused", nodes, inputs, inits)
    monkeypatch.setattr(fpwdw, "FUSE", False)
    plain, _, _ = fp32_graph_case(tmp_path, "arm_plain", nodes, inputs, inits)
    assert "conv2d_dwpw_f32" in PackageReader(fused).manifest["kernels"]
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
