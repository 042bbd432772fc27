"""1x1 convs with few input channels on large maps (session 8b): conv2d_f32 with a 1x1 stride-1
one-group weight, K <= 160 input channels and >= 1024 pixels runs the AVX2 kernel that reads the
NCHW input in place (pw1_run_avx2 in native/src/ops/ops_conv.cpp) instead of packing it for the
GEMM. Each case: ONNX Runtime within 1e-4 relative, bitwise identity for 1/2/3 threads, the portable
path (LOWBIT_ISA=scalar) against ONNX Runtime, and bitwise equality with the GEMM (a MatMul of the
same weight and input: same per-element order). Shapes hit 4-channel groups with edges of 1-3
channels (O = 16, 13, 6, 96), 24- and 8-pixel tiles and a scalar tail (33 x 33 = 1089 = 45 x 24 + 8 + 1),
chunk sizes from K = 8 (384 pixels) to K = 160 (48), batch 2, fused activations and no bias; K = 161
and 31 x 33 pixels fall back to the GEMM."""

import numpy as np
import pytest

import lowbit
from runtime_helpers import assert_rel_close, fp32_graph_case, pw_conv_case, run_scalar_path

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

RTOL = 1e-4


CASES = {
    "o16_k32_33x33_nobias": pw_conv_case([1, 32, 33, 33], 16, None, bias=False),  # 1089 pixels: 24-, 8-pixel tiles, a tail
    "o13_k8_32x40_relu": pw_conv_case([1, 8, 32, 40], 13, "Relu"),  # 4 + 4 + 4 + 1 channels, 384-pixel chunks
    "o6_k160_32x32_clip": pw_conv_case([1, 160, 32, 32], 6, "Clip"),  # 4 + 2 channels, 48-pixel chunks
    "o96_k16_33x33_sigmoid": pw_conv_case([1, 16, 33, 33], 96, "Sigmoid"),
    "o24_k96_32x33_hardswish_batch2": pw_conv_case([2, 96, 32, 33], 24, "HardSwish"),  # 1056 pixels
    "o15_k161_32x32_gemm": pw_conv_case([1, 161, 32, 32], 15, "Relu"),  # K > 160: the GEMM
    "o16_k32_31x33_gemm": pw_conv_case([1, 32, 31, 33], 16, None),  # 1023 pixels: the GEMM
}


def _build(tmp_path, name):
    pkg, feeds, ref = fp32_graph_case(tmp_path, name, *CASES[name])
    return pkg, feeds, ref["y"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_pw1_matches_ort_bitwise_threads(tmp_path, name):
    pkg, feeds, ref = _build(tmp_path, name)
    runs = {t: lowbit.load(pkg, threads=t).run(feeds)["y"] for t in (1, 2, 3)}
    assert_rel_close(runs[1], ref, RTOL, name)
    for t in (2, 3):
        assert np.array_equal(runs[1], runs[t]), f"{name}: {t} threads differ from 1 thread"


def test_pw1_bitwise_equal_to_gemm(tmp_path):
    """No bias, no activation: the conv's sums are the GEMM's (W[O,K] @ X[K,P] as a MatMul), bit for bit."""
    name = "o16_k32_33x33_nobias"
    pkg, feeds, _ = _build(tmp_path, name)
    got = lowbit.load(pkg).run(feeds)["y"]
    k, hw = 32, 33 * 33
    w = CASES[name][2]["w"].reshape(16, k)
    mm = ([helper.make_node("MatMul", ["w", "x"], ["y"])], [("x", [k, hw])], {"w": w})
    mpkg, _, mref = fp32_graph_case(tmp_path, "pw1_as_matmul", *mm)
    want = lowbit.load(mpkg).run({"x": feeds["x"].reshape(k, hw)})["y"]
    assert np.array_equal(got.reshape(16, hw), want)


def test_pw1_portable_path(tmp_path):
    """LOWBIT_ISA=scalar runs the portable GEMM (what a non-x86 build runs) on the same shapes."""
    for name in sorted(CASES):
        pkg, feeds, ref = _build(tmp_path, name)
        got, isa = run_scalar_path(pkg, feeds, tmp_path)
        assert "avx2" not in isa, f"{name}: the scalar run reported {isa}"
        assert_rel_close(got["y"], ref, RTOL, f"scalar {name}")
