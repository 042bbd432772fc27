"""conv2d_pw_f32 (session 4): float 1x1 stride-1 one-group convs on maps of at most 256 pixels
(784 since session 11) are exported with their weight blocked by 8 output channels ([ceil(O/8), K, 8],
exporters/lbpk_fpw.py) and run with the output channels in the vector lanes (native/src/ops/ops_conv.cpp). Each case:
the exported kernel, ONNX Runtime within 1e-4 relative, bitwise identity for 1/2/3 threads, bitwise
equality with the GEMM path of conv2d_f32 (same per-element order), and the portable path
(LOWBIT_ISA=scalar) against ONNX Runtime. Shapes hit every channel-tile split (O = 8, 16, 24, 40,
13: a partial block, 80: a 3+3+2+2 split), K blocks of 128 (K = 130, 300), partial 4-pixel panels,
batch 2, every fused activation and no bias."""

import numpy as np
import pytest

import lowbit
from lowbit.exporters import lbpk_fpw
from runtime_helpers import assert_rel_close, fp32_graph_case, pw_conv_case, rand_w, run_scalar_path

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

RTOL = 1e-4


CASES = {
    "o8_k3_7x7_relu": pw_conv_case([1, 3, 7, 7], 8, "Relu"),
    "o16_k130_5x3_clip": pw_conv_case([1, 130, 5, 3], 16, "Clip"),  # K: 128 + 2; 15 pixels: a partial panel
    "o24_k300_7x7_hardswish": pw_conv_case([1, 300, 7, 7], 24, "HardSwish"),  # K: 128 + 128 + 44
    "o40_k64_14x14_sigmoid": pw_conv_case([1, 64, 14, 14], 40, "Sigmoid"),  # tiles 3 + 2
    "o13_k40_1x1_hardsigmoid": pw_conv_case([1, 40, 1, 1], 13, "HardSigmoid"),  # a partial block, one pixel
    "o80_k200_16x16_nobias": pw_conv_case([1, 200, 16, 16], 80, None, bias=False),  # 256 pixels; tiles 3 + 3 + 2 + 2
    "o24_k33_6x6_batch2": pw_conv_case([2, 33, 6, 6], 24, "Relu"),
}


def _build(tmp_path, name):
    pkg, feeds, ref = fp32_graph_case(tmp_path, name, *CASES[name])
    return pkg, feeds, ref["y"]


def _kernels(pkg):
    return [o["kernel"] for o in lowbit.load(pkg).manifest["ops"]]


@pytest.mark.parametrize("name", sorted(CASES))
def test_pw_matches_ort_threads_and_gemm_path(tmp_path, monkeypatch, name):
    pkg, feeds, ref = _build(tmp_path, name)
    assert "conv2d_pw_f32" in _kernels(pkg) and "conv2d_f32" not in _kernels(pkg)
    runs = {t: lowbit.load(pkg, threads=t).run(feeds)["y"] for t in (1, 2, 3)}
    assert_rel_close(runs[1], ref, RTOL, name)
    for t in (2, 3):
        assert np.array_equal(runs[1], runs[t]), f"{name}: {t} threads differ from 1 thread"
    monkeypatch.setattr(lbpk_fpw, "PW_MAX_PIXELS", 0)  # the same conv through conv2d_f32 (the NCHW GEMM)
    (tmp_path / "gemm").mkdir()
    gemm_pkg, _, _ = fp32_graph_case(tmp_path / "gemm", name, *CASES[name])
    assert _kernels(gemm_pkg).count("conv2d_f32") == 1
    gemm = lowbit.load(gemm_pkg, threads=1).run(feeds)["y"]
    assert np.array_equal(runs[1], gemm), f"{name}: conv2d_pw_f32 differs from the GEMM path"


def test_pw_only_for_small_unstrided_maps(tmp_path):
    """Over PW_MAX_PIXELS (784) pixels, a stride, a pad or a group keeps conv2d_f32."""
    cases = {
        "big_map": pw_conv_case([1, 8, 29, 29], 16),  # 841 pixels (the limit is 784 since session 11)
        "strided": ([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1], strides=[2, 2])],
                    [("x", [1, 8, 8, 8])], {"w": rand_w(16, 8, 1, 1)}),
        "padded": ([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1], pads=[1, 1, 1, 1])],
                   [("x", [1, 8, 8, 8])], {"w": rand_w(16, 8, 1, 1)}),
        "grouped": ([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1], group=2)],
                    [("x", [1, 8, 8, 8])], {"w": rand_w(16, 4, 1, 1)}),
    }
    for name, case in cases.items():
        pkg, feeds, ref = fp32_graph_case(tmp_path, name, *case)
        assert _kernels(pkg) == ["conv2d_f32"], name
        assert_rel_close(lowbit.load(pkg).run(feeds)["y"], ref["y"], RTOL, name)


def test_blocked_weight_layout():
    w = np.arange(13 * 5, dtype=np.float32).reshape(13, 5, 1, 1)
    b = lbpk_fpw.blocked_weight(w)
    assert b.shape == (2, 5, 8)
    for o in range(16):
        for k in range(5):
            assert b[o // 8, k, o % 8] == (w[o, k, 0, 0] if o < 13 else 0.0)


def test_pw_weight_that_does_not_match_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(lbpk_fpw, "blocked_weight", lambda w: np.zeros((1, w.shape[1], 8), np.float32))
    pkg, feeds, _ = fp32_graph_case(tmp_path, "bad", *pw_conv_case([1, 8, 4, 4], 24))
    with pytest.raises(lowbit.LowbitError, match=r"Conv_0.*out_channels 24 \(expected \[3, 8, 8\]\)"):
        lowbit.load(pkg).run(feeds)


def test_pw_portable_path(tmp_path):
    """LOWBIT_ISA=scalar runs the portable conv2d_pw_f32 (what a non-x86 build runs)."""
    for name in sorted(CASES):
        pkg, feeds, ref = _build(tmp_path, name)
        got, isa = run_scalar_path(pkg, feeds, tmp_path)
        assert "avx2" not in isa, f"{name}: the scalar run reported {isa}"
        assert_rel_close(got["y"], ref, RTOL, f"scalar {name}")


def test_one_row_matmul_weight_in_panels(tmp_path):
    """A one-row Gemm (a classifier head) gets B in 16-column panels (b_panels = N, N not a multiple of 16);
    a two-row one keeps B [K, N] (the few-rows GEMM). Both: ONNX Runtime within 1e-4, 1 and 2 threads
    bitwise identical, and the portable path."""
    for rows, panels in ((1, 37), (2, None)):
        inits = {"B": rand_w(300, 37), "b": rand_w(37, seed=2)}
        pkg, feeds, ref = fp32_graph_case(tmp_path, f"gemm{rows}", [helper.make_node("Gemm", ["x", "B", "b"], ["y"])],
                                          [("x", [rows, 300])], inits)
        s = lowbit.load(pkg, threads=1)
        ops = [op for op in s.manifest["ops"] if op["kernel"] == "matmul_f32"]
        assert len(ops) == 1 and ops[0]["attrs"].get("b_panels") == panels, ops
        out = {t: lowbit.load(pkg, threads=t).run(feeds)["y"] for t in (1, 2)}
        assert_rel_close(out[1], ref["y"], RTOL, f"gemm rows={rows}")
        assert np.array_equal(out[1], out[2]), f"rows={rows}: 1 and 2 threads differ"
        got, _ = run_scalar_path(pkg, feeds, tmp_path)
        assert_rel_close(got["y"], ref["y"], RTOL, f"scalar gemm rows={rows}")


@pytest.mark.qemu
def test_pw_on_aarch64(native_aarch64, tmp_path):
    """The aarch64 build runs conv2d_pw_f32 (its portable path) within float rounding of ONNX Runtime."""
    from lowbit_testutil import run

    pkg, feeds, ref = _build(tmp_path, "o40_k64_14x14_sigmoid")
    np.save(tmp_path / "x.npy", feeds["x"])
    r = run(["qemu-aarch64", "-cpu", "max", native_aarch64 / "lowbit-run", "run", pkg, "--input",
             f"x={tmp_path / 'x.npy'}", "--output", tmp_path])
    assert r.returncode == 0, r.stdout + r.stderr
    assert_rel_close(np.load(tmp_path / "y.npy"), ref, RTOL, "aarch64")
