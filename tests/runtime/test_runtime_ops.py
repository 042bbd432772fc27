"""Single ops through ONNX -> IR -> .lbpk -> runtime, against ONNX Runtime on the same model."""
import numpy as np
import pytest

import lowbit
from runtime_helpers import ort_run

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RTOL = 1e-4


def _check(tmp_path, nodes, inputs, outputs, inits=None, opset=17, rtol=RTOL, feeds=None):
    from lowbit.exporters.lbpk import write_package
    from lowbit.importers.onnx_import import import_onnx

    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
                          [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    rng = np.random.default_rng(0)
    feeds = feeds or {n: rng.standard_normal(s).astype(np.float32) for n, s in inputs}
    ref = ort_run(path, feeds)
    ir = import_onnx(str(path), {n: s for n, s in inputs})
    write_package(ir, tmp_path / "m.lbpk", target="x86-64-avx2", scheme="fp32")
    got = lowbit.load(tmp_path / "m.lbpk", threads=2).run(feeds)
    for k in outputs:
        assert got[k].shape == ref[k].shape, k
        err = np.max(np.abs(got[k] - ref[k])) / max(np.max(np.abs(ref[k])), 1e-9)
        assert err < rtol, f"{k}: relative error {err}"


def _w(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("group,k,stride,pad,dil", [
    (1, 3, 1, 1, 1), (1, 3, 2, 1, 1), (8, 3, 1, 1, 1), (8, 5, 2, 2, 1), (2, 3, 1, 0, 2), (1, 1, 1, 0, 1), (8, 3, 2, 0, 1)])
def test_runtime_op_conv(tmp_path, group, k, stride, pad, dil):
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=group, kernel_shape=[k, k], strides=[stride, stride],
                            pads=[pad] * 4, dilations=[dil, dil])
    _check(tmp_path, [node], [("x", [1, 8, 13, 11])], ["y"], {"w": _w(8, 8 // group, k, k), "b": _w(8, seed=2)})


def test_runtime_op_conv_fused_clip(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["y"])]
    _check(tmp_path, nodes, [("x", [1, 4, 9, 9])], ["y"],
           {"w": _w(6, 4, 3, 3), "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)})


@pytest.mark.parametrize("k,stride,cout", [(2, 2, 3), (3, 2, 1), (4, 2, 5)])
def test_runtime_op_conv_transpose(tmp_path, k, stride, cout):
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[k, k], strides=[stride, stride])
    _check(tmp_path, [node], [("x", [1, 4, 6, 7])], ["y"], {"w": _w(4, cout, k, k), "b": _w(cout, seed=3)})


@pytest.mark.parametrize("mode,coord,nearest", [("nearest", "asymmetric", "floor"), ("linear", "half_pixel", "floor"),
                                                ("nearest", "half_pixel", "round_prefer_floor"),
                                                ("linear", "align_corners", "floor")])
def test_runtime_op_resize(tmp_path, mode, coord, nearest):
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode, coordinate_transformation_mode=coord,
                            nearest_mode=nearest)
    _check(tmp_path, [node], [("x", [1, 3, 5, 7])], ["y"], {"scales": np.array([1, 1, 2, 2], np.float32)})


def test_runtime_op_matmul_batched_softmax_layernorm(tmp_path):
    nodes = [helper.make_node("MatMul", ["a", "b"], ["m"]),
             helper.make_node("Softmax", ["m"], ["s"], axis=-1),
             helper.make_node("LayerNormalization", ["s", "g", "be"], ["y"], axis=-1, epsilon=1e-5)]
    _check(tmp_path, nodes, [("a", [2, 3, 17, 40]), ("b", [2, 3, 40, 19])], ["y"],
           {"g": _w(19), "be": _w(19, seed=4)})


def test_runtime_op_pools_and_reductions(tmp_path):
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("AveragePool", ["p"], ["q"], kernel_shape=[2, 2], strides=[1, 1]),
             helper.make_node("ReduceMean", ["q"], ["y"], axes=[2, 3], keepdims=1),
             helper.make_node("GlobalAveragePool", ["x"], ["z"])]
    _check(tmp_path, nodes, [("x", [1, 4, 11, 12])], ["y", "z"], opset=17)


def test_runtime_op_elementwise_broadcast(tmp_path):
    nodes = [helper.make_node("Mul", ["x", "c"], ["a"]), helper.make_node("Sub", ["a", "r"], ["b"]),
             helper.make_node("HardSigmoid", ["b"], ["h"], alpha=0.2, beta=0.5),
             helper.make_node("HardSwish", ["h"], ["s"]), helper.make_node("Sigmoid", ["b"], ["t"]),
             helper.make_node("Div", ["s", "t"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Pow", ["e", "two"], ["y"])]
    _check(tmp_path, nodes, [("x", [2, 3, 4, 5])], ["y"],
           {"c": _w(3, 1, 1), "r": _w(5, seed=5), "two": np.array(2, np.float32)})


def test_runtime_op_shape_ops(tmp_path):
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t", "shp"], ["r"]),
             helper.make_node("Slice", ["r", "st", "en", "ax"], ["s"]),
             helper.make_node("Concat", ["s", "s"], ["c"], axis=1),
             helper.make_node("Gather", ["c", "idx"], ["y"], axis=2)]
    _check(tmp_path, nodes, [("x", [1, 3, 4, 5])], ["y"],
           {"shp": np.array([1, 20, 3], np.int64), "st": np.array([2], np.int64), "en": np.array([17], np.int64),
            "ax": np.array([1], np.int64), "idx": np.array([2, 0], np.int64)})
