"""conv2d_pwdw_f32 (session 13): a large-map 1x1 expansion and the depthwise conv that reads it, fused by
exporters/lbpk_fpwdw.py and run in row strips (native/src/ops/ops_conv.cpp). The fused op keeps the two ops'
per-element arithmetic, so on every ISA path (LOWBIT_ISA=scalar / avx2 / avx512vnni) its outputs must be bitwise
equal to the unfused package's, 1 and 2 threads bitwise identical, and within 1e-4 relative (the named float
tolerance) of ONNX Runtime. Shapes: stride 1 / 2, 3x3 / 5x5, odd H and W, symmetric and asymmetric pads,
several strips (a strip boundary, the first strip in the top padding), channel groups with a tail (O not a
multiple of 8), no expansion bias, batch 2, every expansion activation (none / relu / clip)."""
import numpy as np
import pytest

from runtime_helpers import assert_fused_bitwise, assert_fused_bitwise_aarch64, lowered_kernels, rand_w

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


@pytest.mark.parametrize("name", sorted(CASES))
def test_pwdw_bitwise_equals_unfused(tmp_path, monkeypatch, name):
    assert_fused_bitwise(tmp_path, monkeypatch, name, CASES[name], "conv2d_pwdw_f32", RTOL)


def test_pwdw_fuses_only_eligible_pairs(tmp_path):
    """Narrow outputs (OW < 48: the channel-blocked chains of lbpk_fpw.py), an expansion with a second reader,
    and a hardswish expansion stay two ops; the EfficientNet-like pair fuses."""
    nodes, inputs, inits = _pwdw([1, 16, 97, 100], 20, 3, 2, [0, 0, 1, 1])
    assert lowered_kernels(nodes, inputs, inits, tmp_path, "ok") == ["conv2d_pwdw_f32"]
    nodes, inputs, inits = _pwdw([1, 16, 60, 60], 24, 3, 2, [0, 0, 1, 1])  # OW = 30
    assert "conv2d_pwdw_f32" not in lowered_kernels(nodes, inputs, inits, tmp_path, "narrow")
    nodes, inputs, inits = _pwdw([1, 16, 50, 64], 16, 3, 1, [1, 1, 1, 1], "HardSwish")
    assert "conv2d_pwdw_f32" not in lowered_kernels(nodes, inputs, inits, tmp_path, "hswish")
    nodes, inputs, inits = _pwdw([1, 16, 50, 64], 16, 3, 1, [1, 1, 1, 1])
    nodes[-1] = helper.make_node("Clip", ["d", "lo", "hi"], ["y0"])
    nodes.append(helper.make_node("Add", ["y0", "e1"], ["y"]))  # the expansion read twice
    assert "conv2d_pwdw_f32" not in lowered_kernels(nodes, inputs, inits, tmp_path, "two_readers")


@pytest.mark.qemu
def test_pwdw_aarch64_bitwise_equals_unfused(native_aarch64, tmp_path, monkeypatch):
    """The aarch64 build (its portable expansion through the GEMM and the portable depthwise, lowbit-run under
    qemu) gives the unfused package's bits and ONNX Runtime's values within 1e-4."""
    case = _pwdw([1, 8, 20, 100], 16, 3, 2, [0, 0, 1, 1])
    assert_fused_bitwise_aarch64(native_aarch64, tmp_path, monkeypatch, case, "conv2d_pwdw_f32", RTOL)
