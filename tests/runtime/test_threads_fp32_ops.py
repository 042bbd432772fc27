"""The fp32 runtime's fast paths (register-tiled GEMM with partial tiles, small-M GEMV, im2col
gathered per panel, depthwise blocks, vector exp/erf/sigmoid/softmax, Resize tables) on graphs big
enough to be split over the session's thread pool: outputs are bitwise identical for 1, 2 and 3
threads, match ONNX Runtime within 1e-4 relative, and the portable path (LOWBIT_ISA=scalar) matches
too."""
import os
import subprocess
import sys

import numpy as np
import pytest

import lowbit
from runtime_helpers import assert_rel_close, fp32_graph_case

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

RTOL = 1e-4


def _w(*shape, seed=1, scale=0.2):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _cases():
    c = {}
    c["conv3x3_partial_tiles_relu"] = (
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])],
        [("x", [1, 16, 20, 37])], {"w": _w(13, 16, 3, 3), "b": _w(13, seed=2)})
    c["conv3x3_stride2_hardsigmoid"] = (
        [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
         helper.make_node("HardSigmoid", ["c"], ["y"])],
        [("x", [1, 8, 33, 35])], {"w": _w(7, 8, 3, 3)})
    c["conv3x3_stride2_wide_rows"] = (  # 16 output columns inside one row: the stride-2 gather fast path
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        [("x", [1, 3, 20, 130])], {"w": _w(32, 3, 3, 3), "b": _w(32, seed=8)})
    c["depthwise5x5_stride2_clip"] = (
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[5, 5], strides=[2, 2], pads=[2, 2, 2, 2],
                          group=24),
         helper.make_node("Clip", ["c", "lo", "hi"], ["y"])],
        [("x", [1, 24, 45, 70])],
        {"w": _w(24, 1, 5, 5), "b": _w(24, seed=3), "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)})
    c["depthwise3x3_long_rows"] = (
        [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=16)],
        [("x", [1, 16, 30, 75])], {"w": _w(16, 1, 3, 3)})
    for ap in ("SAME_UPPER", "SAME_LOWER"):  # odd total padding: the two modes put the extra row apart
        c[f"conv4x4_stride2_{ap.lower()}"] = (
            [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[4, 4], strides=[2, 2], auto_pad=ap)],
            [("x", [1, 6, 21, 26])], {"w": _w(9, 6, 4, 4), "b": _w(9, seed=9)})
    c["pointwise_sigmoid"] = (
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[1, 1]),
         helper.make_node("Sigmoid", ["c"], ["y"])],
        [("x", [1, 20, 30, 30])], {"w": _w(40, 20, 1, 1), "b": _w(40, seed=4)})
    for m in (1, 3, 37):
        c[f"matmul_m{m}_bias"] = (
            [helper.make_node("MatMul", ["x", "w"], ["t"]), helper.make_node("Add", ["t", "b"], ["y"])],
            [("x", [m, 300])], {"w": _w(300, 1000), "b": _w(1000, seed=5)})
    for m in (2, 9):
        c[f"gemm_transb_m{m}"] = (
            [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
            [("x", [m, 203])], {"w": _w(517, 203), "b": _w(517, seed=6)})
    c["erf_gelu_chain"] = (
        [helper.make_node("Div", ["x", "s2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
         helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["x", "a"], ["m"]),
         helper.make_node("Mul", ["m", "half"], ["y"])],
        [("x", [4, 128, 383])],
        {"s2": np.array(np.sqrt(2), np.float32), "one": np.array(1, np.float32), "half": np.array(0.5, np.float32)})
    c["softmax_exp"] = (
        [helper.make_node("Softmax", ["x"], ["y"], axis=-1), helper.make_node("Exp", ["x"], ["z"])],
        [("x", [2, 6, 33, 77])], {})
    c["resize_nearest_linear"] = (
        [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest"),
         helper.make_node("Resize", ["x", "", "sc"], ["z"], mode="linear")],
        [("x", [1, 8, 20, 30])], {"sc": np.array([1, 1, 2, 2], np.float32)})
    return c


CASES = _cases()


def _outputs(nodes):
    produced = [o for n in nodes for o in n.output]
    return [o for o in produced if o in ("y", "z")]


def _build(tmp_path, name):
    nodes, inputs, inits = CASES[name]
    outs = _outputs(nodes)
    pkg, feeds, ref = fp32_graph_case(tmp_path, name, nodes, inputs, inits, outs)
    return pkg, feeds, ref, outs


def _close(got, ref, what):
    assert_rel_close(got, ref, RTOL, what)


@pytest.mark.parametrize("name", sorted(CASES))
def test_threads_fp32_op_bitwise_and_matches_ort(tmp_path, name):
    pkg, feeds, ref, outs = _build(tmp_path, name)
    runs = {t: lowbit.load(pkg, threads=t).run(feeds) for t in (1, 2, 3)}
    for k in outs:
        _close(runs[1][k], ref[k], f"{name}/{k}")
        for t in (2, 3):
            assert np.array_equal(runs[1][k], runs[t][k]), f"{name}/{k}: {t} threads differ from 1 thread"


_SCALAR_CHILD = r"""
import sys, numpy as np, lowbit
feeds = dict(np.load(sys.argv[2]))
out = lowbit.load(sys.argv[1], threads=2).run(feeds)
np.savez(sys.argv[3], **out)
"""


def test_threads_fp32_ops_portable_path(tmp_path):
    """LOWBIT_ISA=scalar: the portable GEMM/im2col/depthwise/vector-math fallbacks (the paths a
    non-x86 build runs) on the same graphs, against ONNX Runtime."""
    for name in ("conv3x3_stride2_hardsigmoid", "conv3x3_stride2_wide_rows", "depthwise5x5_stride2_clip", "matmul_m3_bias", "erf_gelu_chain",
                 "softmax_exp", "gemm_transb_m2"):
        pkg, feeds, ref, outs = _build(tmp_path, name)
        np.savez(tmp_path / "feeds.npz", **feeds)
        env = dict(os.environ, LOWBIT_ISA="scalar")
        r = subprocess.run([sys.executable, "-c", _SCALAR_CHILD, str(pkg), str(tmp_path / "feeds.npz"),
                            str(tmp_path / "out.npz")], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        got = dict(np.load(tmp_path / "out.npz"))
        for k in outs:
            _close(got[k], ref[k], f"scalar {name}/{k}")
