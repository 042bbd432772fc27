"""The fp32 conv kernels of the AVX-512 path (session 10; lb_isa_active() == avx512vnni, AVX-512F/VL part of it):
the 8-pixel conv2d_pw_f32 tiles (maps of >= 128 pixels, K > 128; NCHW or blocked input and output), the
16-lane stride-2 depthwise (3x3 / 5x5, rows of >= 48 outputs) and the 16-lane 3x3 stride-1 depthwise (rows of
>= 48 outputs); session 11: the 7-pixel conv2d_pw_f32 tiles (pixel counts a multiple of 7 but not of 8, any
K), the channel-blocked depthwise's row tiles (blocked output) and the 8-row tiles of the 1x1 convs on
large NCHW maps (K <= 160; session 12: zmm tiles for O <= 24). Each keeps the AVX2 kernel's per-element order (bias, then the taps / k in order),
so each case runs in child processes under LOWBIT_ISA=avx512vnni and avx2 and must be bitwise equal, 1 and 2
threads bitwise identical, with the AVX-512 kernel reported, and within 1e-4 relative (the named float
tolerance) of ONNX Runtime and of the scalar path (LOWBIT_ISA=scalar). Shapes hit partial 8-pixel panels,
1/2/3-block channel tiles, several K blocks, odd and even left pads, rows whose width is and is not a multiple
of 32 (the deinterleave's masked tail), overlapping last vectors and every fused activation. Skipped on CPUs
without AVX-512."""
import numpy as np
import pytest

import lowbit
from runtime_helpers import assert_rel_close, fp32_graph_case, pw_conv_case, rand_w, run_isa_path, run_scalar_path
from test_fp32_conv_blocked import _block

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

RTOL = 1e-4


def _dw(x_shape, k, stride, act, pads):
    c = x_shape[1]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if act else "y"], kernel_shape=[k, k], pads=pads,
                              strides=[stride, stride], group=c)]
    inits = {"w": rand_w(c, 1, k, k), "b": rand_w(c, seed=2)}
    if act == "Clip":
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["y"]))
        inits["lo"], inits["hi"] = np.array(0, np.float32), np.array(6, np.float32)
    elif act:
        nodes.append(helper.make_node(act, ["c"], ["y"]))
    return nodes, [("x", x_shape)], inits, ("y",)


def _pw(x_shape, o, act=None, bias=True):
    return (*pw_conv_case(x_shape, o, act, bias), ("y",))


def _pw_pair(x_shape, c2, o):
    """1x1 (C -> c2) then 1x1 (c2 -> o) + Relu: the first output, read only by the second, stays blocked (NCHW8c)."""
    c = x_shape[1]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["a", "w2", "b2"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    inits = {"w1": rand_w(c2, c, 1, 1), "b1": rand_w(c2, seed=2), "w2": rand_w(o, c2, 1, 1, seed=3), "b2": rand_w(o, seed=4)}
    return nodes, [("x", x_shape)], inits, ("y",)


# (graph, kernel the AVX-512 path must report)
CASES = {
    # conv2d_pw_f32, 8-pixel tiles: 13x13 = 169 pixels (21 panels + 1 pixel), O = 40 (tiles 3 + 2), K = 300
    "pw_13x13_k300_o40_relu": (_pw([1, 300, 13, 13], 40, "Relu"), "conv2d_pw_f32"),
    "pw_12x12_k136_o13_sigmoid": (_pw([1, 136, 12, 12], 13, "Sigmoid"), "conv2d_pw_f32"),  # a partial block
    "pw_16x16_k200_o80_nobias_batch2": (_pw([2, 200, 16, 16], 80, None, bias=False), "conv2d_pw_f32"),
    "pw_11x14_k260_o8_hardswish": (_pw([1, 260, 11, 14], 8, "HardSwish"), "conv2d_pw_f32"),  # 154 pixels
    # a blocked chain (expand -> depthwise -> project on 12x12; the project reads NCHW8c with K = 144)
    "chain_12x12_k3_e144": (_block([1, 40, 12, 12], 144, 3), "conv2d_pw_f32"),
    # 7-pixel tiles (session 11: pixel counts a multiple of 7, not of 8; any K): 7x7 with K = 200 (two K
    # blocks, tiles 3 + 2), 14x14 with K <= 128 and a partial block, one panel (1x7) with three K blocks,
    # 3x7 on a batch of 2 without bias, and a blocked chain on 7x7 (NCHW8c in and out)
    "pw7_7x7_k200_o40_relu": (_pw([1, 200, 7, 7], 40, "Relu"), "conv2d_pw_f32"),
    "pw7_14x14_k96_o13_sigmoid": (_pw([1, 96, 14, 14], 13, "Sigmoid"), "conv2d_pw_f32"),
    "pw7_1x7_k300_o24_hardswish": (_pw([1, 300, 1, 7], 24, "HardSwish"), "conv2d_pw_f32"),
    "pw7_3x7_k64_o8_nobias_batch2": (_pw([2, 64, 3, 7], 8, None, bias=False), "conv2d_pw_f32"),
    "chain_7x7_k5_e192": (_block([1, 32, 7, 7], 192, 5), "conv2d_pw_f32"),
    # zmm 7-pixel tiles (session 15: O > K, an even number of 8-channel blocks; 6-block tiles, a remainder of 2
    # split 4 + 4): O = 96 (6 + 6) with one K block, 80 on 14x14 (6 + 4), 112 with K = 104 (6 + 4 + 4),
    # 60 (8 blocks, the last partial: 4 + 4) with K = 9, 208 with two K blocks (6 x 3 + 4 + 4), 16 (one 2-block
    # tile) on a 1x7 batch of 2 without bias; a blocked input (a projection read only by an expansion)
    "pwz_7x7_k40_o96_clip": (_pw([1, 40, 7, 7], 96, "Clip"), "conv2d_pw_f32"),
    "pwz_14x14_k24_o80_relu": (_pw([1, 24, 14, 14], 80, "Relu"), "conv2d_pw_f32"),
    "pwz_7x7_k104_o112_hardswish": (_pw([1, 104, 7, 7], 112, "HardSwish"), "conv2d_pw_f32"),
    "pwz_7x7_k9_o60_sigmoid": (_pw([1, 9, 7, 7], 60, "Sigmoid"), "conv2d_pw_f32"),
    "pwz_7x7_k200_o208_hardsigmoid": (_pw([1, 200, 7, 7], 208, "HardSigmoid"), "conv2d_pw_f32"),
    "pwz_1x7_k12_o16_nobias_batch2": (_pw([2, 12, 1, 7], 16, None, bias=False), "conv2d_pw_f32"),
    "pwz_7x7_blocked_in_k16_o96": (_pw_pair([1, 64, 7, 7], 16, 96), "conv2d_pw_f32"),
    # channel-blocked depthwise rows with a blocked output (session 11): tiles of 14 outputs (OW = 20: a
    # last tile overlapping the first; OW = 28, 14) or 7 (OW = 10: overlapping; OW = 7), 3x3 / 5x5,
    # stride 1 / 2, a 40x40 NCHW input (expand over 784 pixels) into a blocked output, every activation
    "dwb_20x20_k3_s1_clip": (_block([1, 16, 20, 20], 48, 3), "conv2d_f32"),
    "dwb_10x10_k5_s1_sigmoid": (_block([1, 8, 10, 10], 32, 5, act="Sigmoid"), "conv2d_f32"),
    "dwb_28x28_k5_s2_hardswish": (_block([1, 16, 28, 28], 40, 5, stride=2, act="HardSwish", residual=False),
                                  "conv2d_f32"),
    "dwb_13x13_k3_s2_relu": (_block([1, 8, 13, 13], 24, 3, stride=2, act="Relu", residual=False), "conv2d_f32"),
    # the blocked input read in place, edge tiles for the padding (session 15): TF "same" pads of stride 2
    # (3x3 [0, 0, 1, 1]: R only; 5x5 [1, 1, 2, 2]), no padding, asymmetric pads, 11 / 17 / 9-wide rows (an
    # overlapping middle tile without edges), a batch of 2, a non-square map; 5x5 with pads of 3 (more than
    # the edge tiles take: the padded copy)
    "dwb_in_14x14_k3_s2_tfpad": (_block([1, 16, 14, 14], 32, 3, stride=2, residual=False, pads=[0, 0, 1, 1]),
                                 "conv2d_f32"),
    "dwb_in_14x14_k5_s2_tfpad_relu": (_block([1, 16, 14, 14], 40, 5, stride=2, act="Relu", residual=False,
                                             pads=[1, 1, 2, 2]), "conv2d_f32"),
    "dwb_in_9x9_k3_nopad": (_block([1, 8, 9, 9], 24, 3, residual=False, pads=[0, 0, 0, 0]), "conv2d_f32"),
    "dwb_in_11x11_k3_asym_sigmoid": (_block([1, 8, 11, 11], 16, 3, act="Sigmoid", residual=False,
                                            pads=[1, 0, 0, 2]), "conv2d_f32"),
    "dwb_in_17x17_k5_hardswish": (_block([1, 8, 17, 17], 24, 5, act="HardSwish"), "conv2d_f32"),
    "dwb_in_9x16_k3_s2_batch2": (_block([2, 8, 9, 16], 16, 3, stride=2, residual=False), "conv2d_f32"),
    "dwb_in_23x23_k5_s2": (_block([1, 8, 23, 23], 16, 5, stride=2, residual=False, pads=[2, 1, 1, 2]), "conv2d_f32"),
    "dwb_in_9x9_k5_pad3_copy": (_block([1, 8, 9, 9], 16, 5, residual=False, pads=[3, 3, 3, 3]), "conv2d_f32"),
    # 1x1 convs with K <= 160 on maps of >= 1024 pixels (NCHW, mode 0), 8-row tiles (O > 16, session 11):
    # O = 40 (5 x 8), 27 (3 x 8 + 3), 33x33 = 1089 pixels (a 1-pixel tail), K = 24 / 160, batch 2
    "pw1_32x32_k24_o40_clip": (_pw([1, 24, 32, 32], 40, "Clip"), "conv2d_f32"),
    "pw1_33x33_k160_o27_sigmoid": (_pw([1, 160, 33, 33], 27, "Sigmoid"), "conv2d_f32"),
    "pw1_40x30_k7_o17_hardswish_batch2": (_pw([2, 7, 40, 30], 17, "HardSwish", bias=False), "conv2d_f32"),
    # O <= 24 (session 12): 8 rows x 3 zmm vectors (48 pixels) with the next chunk's prefetch, 16-pixel tiles,
    # then the 8-pixel ymm step and the scalar tail: O = 16, 13 (partial row group), 17 (above), 24 with K = 144
    # (48-pixel chunks, tail 46 = 16 + 16 + 8 + 6), 20 = 8 + 8 + 4 with K = 12 (tail 17 = 16 + 1)
    "pw1_36x36_k32_o16_clip": (_pw([1, 32, 36, 36], 16, "Clip"), "conv2d_f32"),
    "pw1_35x30_k20_o13_sigmoid": (_pw([1, 20, 35, 30], 13, "Sigmoid"), "conv2d_f32"),
    "pw1_34x31_k144_o24_relu": (_pw([1, 144, 34, 31], 24, "Relu"), "conv2d_f32"),
    "pw1_37x29_k12_o20_nobias_batch2": (_pw([2, 12, 37, 29], 20, None, bias=False), "conv2d_f32"),
    "dwb_40x40_nchw_in_k3_s2_hardsigmoid": (_block([1, 8, 40, 40], 16, 3, stride=2, act="HardSigmoid",
                                                   residual=False), "conv2d_f32"),
    # stride-2 depthwise on wide rows: W = 101 (masked tail, pl odd), W = 128 (no tail), 5x5, asymmetric pads
    "dws2_3x3_w101_sigmoid": (_dw([1, 5, 7, 101], 3, 2, "Sigmoid", [0, 1, 1, 0]), "conv2d_f32"),
    "dws2_3x3_w128_clip": (_dw([1, 6, 9, 128], 3, 2, "Clip", [1, 1, 1, 1]), "conv2d_f32"),
    "dws2_5x5_w112_hardswish": (_dw([1, 9, 12, 112], 5, 2, "HardSwish", [2, 2, 2, 2]), "conv2d_f32"),
    "dws2_3x3_w130_relu_asym": (_dw([1, 3, 5, 130], 3, 2, "Relu", [1, 0, 1, 1]), "conv2d_f32"),
    # rows of 96 / 112 outputs: 6 = 4 + 2 and 7 = 4 + 3 vector positions (padded to quads; a last single
    # position runs alone since session 11: w130 above, 5 = 4 + 1)
    "dws2_3x3_w192_relu": (_dw([1, 3, 5, 192], 3, 2, "Relu", [1, 1, 1, 1]), "conv2d_f32"),
    "dws2_5x5_w224_clip": (_dw([1, 2, 6, 224], 5, 2, "Clip", [2, 2, 2, 2]), "conv2d_f32"),
    # 3x3 stride-1 depthwise on rows of 48..: 48 (3 vectors), 56 (overlapping last), 101, 130; two output rows
    # at a time (odd OH: an overlapping last pair; OH = 1 and 2)
    "dw3_w48_hardsigmoid": (_dw([1, 4, 5, 48], 3, 1, "HardSigmoid", [1, 1, 1, 1]), "conv2d_f32"),
    "dw3_w56_clip": (_dw([1, 7, 6, 56], 3, 1, "Clip", [1, 1, 1, 1]), "conv2d_f32"),
    "dw3_w101_sigmoid": (_dw([1, 5, 9, 101], 3, 1, "Sigmoid", [1, 1, 1, 1]), "conv2d_f32"),
    "dw3_w130_hardswish_asym": (_dw([1, 4, 6, 130], 3, 1, "HardSwish", [0, 1, 1, 0]), "conv2d_f32"),
    "dw3_w64_one_row_relu": (_dw([1, 3, 1, 64], 3, 1, "Relu", [1, 1, 1, 1]), "conv2d_f32"),  # OH = 1
    "dw3_w57_h2_nopad_sigmoid": (_dw([1, 2, 4, 59], 3, 1, "Sigmoid", [0, 0, 0, 0]), "conv2d_f32"),  # OH = 2
    # rows of 700 outputs: 44 vector positions (a fixed table of 40 overflowed past 640 until the stop-10 review)
    "dw3_w700_relu": (_dw([1, 2, 3, 700], 3, 1, "Relu", [1, 1, 1, 1]), "conv2d_f32"),
    # a last group of 2 vector positions (6 = 4 + 2; session 11: the last group is no longer padded to 4)
    "dw3_w96_clip": (_dw([1, 3, 5, 96], 3, 1, "Clip", [1, 1, 1, 1]), "conv2d_f32"),
}



def _has_avx512():
    return "avx512vnni" in lowbit.native().isa_usable()  # the path LOWBIT_ISA=avx512vnni selects


@pytest.mark.parametrize("name", sorted(CASES))
def test_avx512_fp32_conv_bitwise_avx2(tmp_path, name):
    if not _has_avx512():
        pytest.skip("this CPU has no AVX-512 VNNI path")
    (nodes, inputs, inits, outs), kernel = CASES[name]
    pkg, feeds, ref = fp32_graph_case(tmp_path, name, nodes, inputs, inits, outs=outs)
    z1, isas = run_isa_path(pkg, feeds, tmp_path, "avx512vnni", 1)
    z2, _ = run_isa_path(pkg, feeds, tmp_path, "avx512vnni", 2)
    a1, isas2 = run_isa_path(pkg, feeds, tmp_path, "avx2", 1)
    sc, _ = run_scalar_path(pkg, feeds, tmp_path)
    assert f"{kernel}:avx512vnni" in isas, f"{name}: the AVX-512 kernel did not run ({isas})"
    assert not any(i.endswith(":avx512vnni") for i in isas2), isas2
    for k in outs:
        assert_rel_close(z1[k], ref[k], RTOL, f"{name} avx512 vs ORT")
        assert_rel_close(z1[k], sc[k], RTOL, f"{name} avx512 vs the scalar path")
        assert np.array_equal(z1[k], a1[k]), f"{name}: AVX-512 and AVX2 paths differ"
        assert np.array_equal(z1[k], z2[k]), f"{name}: 2 threads differ from 1 thread"
