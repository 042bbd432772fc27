"""fp32 convolutions of the session-3 runtime and later: the direct convolution (padded,
column-phase-split input read in place by the GEMM tile: every Conv that is neither 1x1 stride-1
nor depthwise), the stems' output-channel tile, the channel-blocked depthwise kernel, the NCHW
depthwise kernels for wide rows (3x3 stride 1, 3x3 / 5x5 stride 2), the GEMM's row blocks for
few-panel shapes, ConvTranspose's parallel col2im, batched MatMul split by whole GEMMs and
GlobalAveragePool on small maps. Each case runs on the AVX2 path with 1, 2 and 3 threads (bitwise
identical), against ONNX Runtime (1e-4 relative), and on the portable path (LOWBIT_ISA=scalar)
against ONNX Runtime. Shapes hit partial 16-column tiles, partial 6-row weight tiles, several K
chunks, strides 2 and 3, dilation, groups, asymmetric pads and every fused activation."""

import numpy as np
import pytest

import lowbit
from runtime_helpers import assert_rel_close, fp32_graph_case, run_scalar_path

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

RTOL = 1e-4


def _w(*shape, seed=1, scale=0.2):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _conv(x_shape, w_shape, act=None, bias=True, **attrs):
    nodes = [helper.make_node("Conv", ["x", "w", "b"] if bias else ["x", "w"], ["c" if act else "y"],
                              kernel_shape=list(w_shape[2:]), **attrs)]
    inits = {"w": _w(*w_shape)}
    if bias:
        inits["b"] = _w(w_shape[0], seed=2)
    if act == "Clip":
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["y"]))
        inits["lo"], inits["hi"] = np.array(0, np.float32), np.array(6, np.float32)
    elif act == "HardSwish":
        nodes.append(helper.make_node("HardSwish", ["c"], ["y"]))
    elif act:
        nodes.append(helper.make_node(act, ["c"], ["y"]))
    return nodes, [("x", x_shape)], inits


CASES = {
    # direct convolution
    "direct3x3_k_chunks_relu": _conv([1, 40, 11, 37], [13, 40, 3, 3], "Relu", pads=[1, 1, 1, 1]),  # K=360: 2 chunks
    "direct3x3_s2_sigmoid": _conv([1, 5, 19, 50], [8, 5, 3, 3], "Sigmoid", strides=[2, 2], pads=[1, 1, 1, 1]),
    "direct5x5_s3_hardswish": _conv([1, 3, 23, 61], [7, 3, 5, 5], "HardSwish", strides=[3, 3], pads=[2, 1, 2, 3]),
    "direct3x3_dilation2_clip": _conv([1, 6, 17, 40], [9, 6, 3, 3], "Clip", dilations=[2, 2], pads=[2, 2, 2, 2]),
    "direct_grouped_nobias": _conv([1, 12, 15, 18], [9, 4, 3, 3], None, bias=False, group=3, pads=[1, 1, 1, 1]),
    # 8/16/24 output channels and K >= 64: the kernel vectorized over output channels (row tails of
    # 1..J-1 pixels)
    "direct3x3_oc24_relu": _conv([1, 40, 11, 37], [24, 40, 3, 3], "Relu", pads=[1, 1, 1, 1]),
    "direct3x3_s2_oc16_hardswish": _conv([1, 8, 19, 50], [16, 8, 3, 3], "HardSwish", strides=[2, 2], pads=[1, 1, 1, 1]),
    "direct5x5_oc8_dilated_sigmoid": _conv([1, 4, 16, 29], [8, 4, 5, 5], "Sigmoid", bias=False, dilations=[2, 1],
                                           pads=[4, 2, 4, 2]),
    "direct1x7_7x1_pads": _conv([1, 8, 9, 33], [6, 8, 1, 7], "HardSigmoid", pads=[0, 3, 0, 3]),
    "direct2x2_s2_nopad": _conv([1, 16, 14, 14], [20, 16, 2, 2], None, strides=[2, 2]),
    # stems (K <= 32 taps, 8..32 output channels): channels in lanes, input read in place, border
    # tiles through a zero-filled patch, rows moved to the planes by 8x8 transposes (OW not a
    # multiple of 8 or of the tile width)
    "stem3x3_s2_oc32_clip": _conv([1, 3, 30, 41], [32, 3, 3, 3], "Clip", strides=[2, 2], pads=[0, 0, 1, 1]),
    "stem3x3_s2_oc16_hardswish": _conv([1, 3, 20, 35], [16, 3, 3, 3], "HardSwish", strides=[2, 2], pads=[1, 1, 1, 1]),
    "stem3x3_oc24_sigmoid": _conv([1, 2, 9, 19], [24, 2, 3, 3], "Sigmoid", pads=[1, 1, 1, 1]),
    "stem3x3_oc8_dilated_nobias": _conv([1, 3, 14, 26], [8, 3, 3, 3], None, bias=False, dilations=[2, 2],
                                        pads=[2, 2, 2, 2]),
    # channel-blocked depthwise (partial channel blocks, small and wide maps, strides 1/2)
    "dw3x3_7x7_c20_relu": _conv([1, 20, 7, 7], [20, 1, 3, 3], "Relu", group=20, pads=[1, 1, 1, 1]),
    "dw5x5_14x14_c13_clip": _conv([1, 13, 14, 14], [13, 1, 5, 5], "Clip", group=13, pads=[2, 2, 2, 2]),
    "dw5x5_s2_15x15_c9": _conv([1, 9, 15, 15], [9, 1, 5, 5], None, group=9, strides=[2, 2], pads=[2, 2, 2, 2]),
    # a strip of fewer than 8 output pixels (masked stores), rows shorter than 8 (masked fill)
    "dw3x3_s2_tiny_map_sigmoid": _conv([1, 11, 3, 3], [11, 1, 3, 3], "Sigmoid", group=11, strides=[2, 2],
                                       pads=[1, 1, 1, 1]),
    "dw5x5_7x7_c16_hardswish": _conv([1, 16, 7, 7], [16, 1, 5, 5], "HardSwish", group=16, pads=[2, 2, 2, 2]),
    "dw3x3_s2_odd_hardswish": _conv([1, 11, 21, 29], [11, 1, 3, 3], "HardSwish", group=11, strides=[2, 2],
                                    pads=[0, 1, 1, 0]),
    # maps over ~56x56: the channel-blocked kernel in strips of output rows (3 strips each)
    "dw3x3_large_map_strips": _conv([1, 3, 150, 90], [3, 1, 3, 3], "Relu", group=3, pads=[1, 1, 1, 1]),
    "dw3x3_s2_large_map_strips": _conv([1, 10, 130, 97], [10, 1, 3, 3], "HardSwish", group=10, strides=[2, 2],
                                       pads=[1, 0, 1, 1]),
    # 3x3 stride 1 with rows of >= 100 outputs: NCHW, weights in registers, 48 outputs per step, then
    # 8-vectors and an overlapping last vector
    "dw3x3_wide_rows_sigmoid": _conv([1, 5, 9, 101], [5, 1, 3, 3], "Sigmoid", group=5, pads=[1, 1, 1, 1]),
    "dw3x3_wide_rows_asym_hardswish": _conv([1, 4, 6, 130], [4, 1, 3, 3], "HardSwish", group=4, pads=[0, 1, 1, 0]),
    # 3x3 / 5x5 stride 2 with rows of >= 48 outputs: NCHW, each padded row split into even / odd
    # columns once (odd and even left pads, a masked last chunk of 5 inputs, OW not a multiple of 8)
    "dw3x3_s2_wide_rows_sigmoid": _conv([1, 5, 7, 101], [5, 1, 3, 3], "Sigmoid", group=5, strides=[2, 2],
                                        pads=[0, 1, 1, 0]),
    "dw5x5_s2_wide_rows_clip": _conv([1, 9, 12, 112], [9, 1, 5, 5], "Clip", group=9, strides=[2, 2],
                                     pads=[2, 2, 2, 2]),
    "dw3x3_s2_wide_rows_hardswish": _conv([1, 3, 5, 130], [3, 1, 3, 3], "HardSwish", group=3, strides=[2, 2],
                                          pads=[1, 0, 1, 1]),
    # more than 64 taps: the row kernel (each channel padded, 32 outputs per step)
    "dw9x9_row_path": _conv([1, 5, 20, 45], [5, 1, 9, 9], "Clip", group=5, pads=[4, 4, 4, 4]),
    "dw3x3_dilation2_nobias": _conv([1, 8, 12, 12], [8, 1, 3, 3], None, bias=False, group=8, dilations=[2, 2],
                                    pads=[2, 2, 2, 2]),
    # GEMM row blocks (few panels: 7x7 map, 100 rows = 48 + 48 + 4, K = 400: two K blocks), Relu fused
    "pointwise_7x7_row_blocks": _conv([1, 400, 7, 7], [100, 400, 1, 1], "Relu"),
    # ConvTranspose: col2im split over output channels
    "convtranspose2x2_s2": ([helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[2, 2],
                                              strides=[2, 2])],
                            [("x", [1, 12, 9, 13])], {"w": _w(12, 10, 2, 2), "b": _w(10, seed=2)}),
    "convtranspose3x3_s2_pads": ([helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[3, 3],
                                                   strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])],
                                 [("x", [1, 6, 8, 11])], {"w": _w(6, 7, 3, 3)}),
    # GlobalAveragePool on maps of fewer than 64 values (8 partial sums; 49 = 6 x 8 + 1, and 5)
    "gap_7x7": ([helper.make_node("GlobalAveragePool", ["x"], ["y"])], [("x", [2, 20, 7, 7])], {}),
    "gap_1x5": ([helper.make_node("GlobalAveragePool", ["x"], ["y"])], [("x", [1, 9, 1, 5])], {}),
    # batched MatMul (attention scores): whole GEMMs per thread
    "matmul_batched_heads": ([helper.make_node("MatMul", ["x", "k"], ["y"])],
                             [("x", [1, 5, 33, 24])], {"k": _w(1, 5, 24, 40)}),
}


def _build(tmp_path, name):
    pkg, feeds, ref = fp32_graph_case(tmp_path, name, *CASES[name])
    return pkg, feeds, ref["y"]


def _close(got, ref, what):
    assert_rel_close(got, ref, RTOL, what)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fp32_conv_matches_ort_bitwise_threads(tmp_path, name):
    pkg, feeds, ref = _build(tmp_path, name)
    runs = {t: lowbit.load(pkg, threads=t).run(feeds)["y"] for t in (1, 2, 3)}
    _close(runs[1], ref, name)
    for t in (2, 3):
        assert np.array_equal(runs[1], runs[t]), f"{name}: {t} threads differ from 1 thread"


def test_fp32_conv_portable_path(tmp_path):
    """LOWBIT_ISA=scalar runs the portable direct/depthwise code (what a non-x86 build runs)."""
    for name in sorted(CASES):
        pkg, feeds, ref = _build(tmp_path, name)
        got, isa = run_scalar_path(pkg, feeds, tmp_path)
        assert "avx2" not in isa, f"{name}: the scalar run reported {isa}"
        _close(got["y"], ref, f"scalar {name}")
