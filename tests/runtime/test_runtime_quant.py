"""Quantized MatMul through qlinear: packed int8 / int4 / ternary weights in a .lbpk, int8 activations."""
import numpy as np
import pytest

import lowbit
from lowbit.exporters.lbpk import write_package
from lowbit.ir import ActQuant, Graph, Node, QuantWeight, TensorInfo
from lowbit_testutil import ISA_INCLUDES

# int8 activations (dynamic, per row) against float activations on the same dequantized weight
ACT_Q_RTOL = 2e-2
# float activations: only the packed fp16 group scales round (w4a16)
FP16_SCALE_RTOL = 1e-3


def _qw(fmt, w_nk, group):
    n, k = w_nk.shape
    qmax = {"int8": 127, "int4": 7, "ternary": 1}[fmt]
    w3 = w_nk.reshape(n, k // group, group)
    sc = np.maximum(np.abs(w3).max(2) / qmax, 1e-8).astype(np.float32)
    q = np.clip(np.round(w3 / sc[:, :, None]), -qmax - (fmt == "int4"), qmax).astype(np.int8).reshape(n, k)
    return QuantWeight(fmt, q, sc, group, orig_shape=(k, n))


@pytest.mark.parametrize("fmt,group,act", [("int8", 96, "row"), ("int4", 32, "block"), ("int4", 32, None),
                                           ("ternary", 32, "block")])
def test_runtime_qlinear_matmul(tmp_path, fmt, group, act):
    rng = np.random.default_rng(0)
    k, n = 96, 40
    qw = _qw(fmt, rng.standard_normal((n, k)).astype(np.float32), group)
    attrs = {} if act is None else {"act_quant": ActQuant("dynamic", granularity=act, block=group)}
    g = Graph("q", [Node("MatMul", "mm", ["x", "w"], ["y"], attrs)], [TensorInfo("x", "float32", (2, 5, k))],
              [TensorInfo("y", "float32", (2, 5, n))], {"w": qw})
    p = write_package(g, tmp_path / "q.lbpk", target="x86-64-avx2", scheme="w4a8-g32")
    s = lowbit.load(p, threads=2)
    op = s.manifest["ops"][0]
    assert op["kernel"] == "qlinear_f32" and op["attrs"]["n"] == n and op["attrs"]["k"] == k
    assert s.manifest["tensors"]["w"]["dtype"] == "u8"  # packed bytes, not floats
    x = rng.standard_normal((2, 5, k)).astype(np.float32)
    y = s.run({"x": x})["y"]
    ref = x @ qw.dequantize().T
    assert y.shape == (2, 5, n)
    assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < (FP16_SCALE_RTOL if act is None else ACT_Q_RTOL)
    s.enable_profiling(True)
    s.run({"x": x})
    assert s.profile_events()[0]["isa"] in ISA_INCLUDES[lowbit.native().isa_best()]


def test_runtime_quantized_conv_with_float_weight_input_is_refused(tmp_path):
    """A quantized Conv lowers to qconv2d_f32 (tests/runtime/test_qconv_ops.py); a QuantWeight that is
    not the Conv's weight input is refused at export, naming the node."""
    rng = np.random.default_rng(0)
    qw = _qw("int8", rng.standard_normal((4, 18)).astype(np.float32), 18)
    g = Graph("c", [Node("Conv", "conv", ["w", "x"], ["y"], {"kernel_shape": [3, 3]})],
              [TensorInfo("x", "float32", (4, 2, 3, 3))], [TensorInfo("y", "float32", (1, 4, 3, 3))], {"w": qw})
    with pytest.raises(lowbit.LowbitError, match="node 'conv'.*quantized"):
        write_package(g, tmp_path / "c.lbpk", target="x86-64-avx2", scheme="w8a8")
