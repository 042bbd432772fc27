"""Conv window attributes that make no sense (a zero stride or dilation, a negative pad, a window
larger than the padded input) are refused with LB_ERR_SHAPE naming the op, on the float path
(conv2d_f32): one shared check (ops_common parse_conv_window / conv_output_hw) serves the float,
quantized and int8 NHWC convs. A zero stride used to reach an integer division."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowbit
from lowbit.exporters.lbpk import write_package
from lowbit.importers.onnx_import import import_onnx


def _conv_package(tmp_path, **attrs):
    w = np.ones((4, 3, 3, 3), np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(w, "w")])
    path = tmp_path / "conv.onnx"
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return write_package(import_onnx(str(path), {"x": (1, 3, 8, 8)}), tmp_path / "conv.lbpk", target="auto",
                         scheme="fp32")


@pytest.mark.parametrize("attrs,message", [
    ({"strides": [0, 1]}, "strides and dilations must be positive"),
    ({"dilations": [1, 0]}, "strides and dilations must be positive"),
    ({"pads": [0, -1, 0, 0]}, "pads must not be negative"),
    ({"dilations": [5, 5]}, "output would be empty"),
])
def test_bad_conv_window_is_a_clear_error(tmp_path, attrs, message):
    pkg = _conv_package(tmp_path, **attrs)
    with pytest.raises(lowbit.LowbitError, match=f"Conv_0.*{message}"):
        lowbit.load(pkg).run({"x": np.ones((1, 3, 8, 8), np.float32)})


def test_good_conv_window_still_runs(tmp_path):
    pkg = _conv_package(tmp_path, strides=[2, 2], pads=[1, 1, 1, 1])
    y = lowbit.load(pkg).run({"x": np.ones((1, 3, 8, 8), np.float32)})["y"]
    assert y.shape == (1, 4, 4, 4)
    assert y[0, 0, 1, 1] == 27.0  # an interior 3x3x3 window of ones
