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

from runtime_helpers import assert_fused_bitwise, assert_fused_bitwise_aarch64, lowered_kernels, rand_w

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


@pytest.mark.parametrize("name", sorted(CASES))
def test_dwpw_bitwise_equals_unfused(tmp_path, monkeypatch, name):
    assert_fused_bitwise(tmp_path, monkeypatch, name, CASES[name], "conv2d_dwpw_f32", RTOL)


def test_dwpw_fuses_only_eligible_pairs(tmp_path):
    """Narrow rows (OW < 48), small maps (< 1024 pixels), projections to more than 24 channels, a hardswish
    depthwise and a depthwise output with a second reader stay two ops; the EfficientNet-like pair fuses."""
    nodes, inputs, inits = _dwpw([1, 32, 40, 112], 16, 3, 1, [1, 1, 1, 1])
    assert lowered_kernels(nodes, inputs, inits, tmp_path, "ok") == ["conv2d_dwpw_f32"]
    nodes, inputs, inits = _dwpw([1, 32, 60, 60], 16, 3, 2, [0, 0, 1, 1])  # OW = 30
    assert "conv2d_dwpw_f32" not in lowered_kernels(nodes, inputs, inits, tmp_path, "narrow")
    nodes, inputs, inits = _dwpw([1, 32, 16, 56], 16, 3, 1, [1, 1, 1, 1])  # 896 pixels
    assert "conv2d_dwpw_f32" not in lowered_kernels(nodes, inputs, inits, tmp_path, "small")
    nodes, inputs, inits = _dwpw([1, 32, 40, 112], 32, 3, 1, [1, 1, 1, 1])  # O = 32
    assert "conv2d_dwpw_f32" not in lowered_kernels(nodes, inputs, inits, tmp_path, "wide_o")
    nodes, inputs, inits = _dwpw([1, 32, 40, 112], 16, 3, 1, [1, 1, 1, 1], "HardSwish")
    assert "conv2d_dwpw_f32" not in lowered_kernels(nodes, inputs, inits, tmp_path, "hswish")
    nodes, inputs, inits = _dwpw([1, 16, 40, 112], 16, 3, 1, [1, 1, 1, 1])
    nodes[-1] = helper.make_node("Conv", ["d1", "w2", "b2"], ["y0"], kernel_shape=[1, 1])
    nodes.append(helper.make_node("Add", ["y0", "d1"], ["y"]))  # the depthwise output read twice
    assert "conv2d_dwpw_f32" not in lowered_kernels(nodes, inputs, inits, tmp_path, "two_readers")


@pytest.mark.qemu
def test_dwpw_aarch64_bitwise_equals_unfused(native_aarch64, tmp_path, monkeypatch):
    """The aarch64 build (the portable depthwise and the projection through the GEMM, lowbit-run under qemu)
    gives the unfused package's bits and ONNX Runtime's values within 1e-4."""
    case = _dwpw([1, 16, 30, 100], 16, 3, 1, [1, 1, 1, 1])
    assert_fused_bitwise_aarch64(native_aarch64, tmp_path, monkeypatch, case, "conv2d_dwpw_f32", RTOL)
