"""Quantized Conv (qconv2d_f32 / qdq_f32) on small synthetic convs against the numpy reference
executor (lowbit.refexec: fake-quantized activation, conv on the dequantized weight).

Tolerances (docs/runtime.md, "Quantized Conv"): with int8 activations quantized the same way
(static scale/zero point, or one dynamic scale for the tensor), the native op differs from the
reference only by float summation order: QCONV_RTOL relative to the output's largest magnitude.
4-bit group-1 convs quantize activations per (row, group) in the kernels instead of per tensor:
INT4_BLOCK_RTOL.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lowbit
from lowbit.exporters.lbpk import write_package
from lowbit.ir import ActQuant, Graph, Node, QuantWeight, TensorInfo
from lowbit.quant import weights as wq
from lowbit.refexec import RefExecutor
from lowbit_testutil import ISA_INCLUDES

QCONV_RTOL = 2e-6
INT4_BLOCK_RTOL = 3e-2


def _graph(C, O, H, W, k, stride=1, pad=0, dil=1, group=1, fmt="int8", g=0, aq="static", act=None, seed=0,
           smooth=False, kw=None, auto_pad=None):
    rng = np.random.default_rng(seed)
    kw = kw or k
    w = rng.standard_normal((O, C // group, k, kw)).astype(np.float32)
    qw = wq.quantize_rtn(w.reshape(O, -1), fmt, g)
    qw.orig_shape = w.shape
    x = rng.standard_normal((1, C, H, W)).astype(np.float32)
    sm = rng.uniform(0.5, 2.0, C).astype(np.float32) if smooth else None
    a = {"static": ActQuant("static", 8, float(np.float32(6 / 255)), -5, smooth=sm),
         "dyn": ActQuant("dynamic", 8, None, 0, "tensor", smooth=sm), None: None}[aq]
    attrs = {"kernel_shape": [k, kw], "strides": [stride, stride], "pads": [pad] * 4, "dilations": [dil, dil],
             "group": group}
    if auto_pad is not None:  # the runtime derives the pads (docs: ONNX auto_pad)
        del attrs["pads"]
        attrs["auto_pad"] = auto_pad
    if a is not None:
        attrs["act_quant"] = a
    nodes = [Node("Conv", "conv", ["x", "w", "b"], ["y0"], attrs)]
    out = "y0"
    if act == "relu":
        nodes.append(Node("Relu", "relu", ["y0"], ["y"]))
        out = "y"
    elif act == "hardswish":
        nodes.append(Node("HardSwish", "hs", ["y0"], ["y"]))
        out = "y"
    elif act == "clip":
        nodes.append(Node("Clip", "clip", ["y0", "lo", "hi"], ["y"]))
        out = "y"
    inits = {"w": qw, "b": rng.standard_normal(O).astype(np.float32), "lo": np.array(0, np.float32),
             "hi": np.array(6, np.float32)}
    gr = Graph("c", nodes, [TensorInfo("x", "float32", x.shape)], [TensorInfo(out, "float32", None)], inits)
    return gr, x, out


CASES = {  # id: (args, kwargs, expected mode)
    "pointwise": ((16, 24, 9, 11, 1), {}, "gemm"),
    "3x3_stride2_pad": ((16, 24, 9, 11, 3, 2, 1), {}, "gemm"),
    "3x3_dilation2_tail": ((13, 21, 7, 10, 3, 1, 2, 2), {}, "gemm"),
    "1x3_kernel": ((8, 16, 6, 9, 1, 1, 0), {"kw": 3}, "gemm"),
    "3x3_dynamic_tensor": ((32, 24, 9, 11, 3, 1, 1), {"aq": "dyn"}, "gemm"),
    "pointwise_smooth_relu": ((16, 24, 9, 11, 1), {"smooth": True, "act": "relu"}, "gemm"),
    "pointwise_tiled_hardswish": ((16, 24, 48, 50, 1), {"act": "hardswish"}, "gemm"),
    "3x3_tiled_tail_clip": ((16, 24, 21, 23, 3, 1, 1), {"act": "clip"}, "gemm"),
    "5x5_stride2_tiled_dyn": ((8, 16, 61, 67, 5, 2, 2), {"aq": "dyn"}, "gemm"),
    "dw3_stride1": ((16, 16, 9, 37, 3, 1, 1), {"group": 16}, "depthwise"),
    "dw3_stride2_clip": ((24, 24, 9, 37, 3, 2, 1), {"group": 24, "act": "clip"}, "depthwise"),
    "dw5_stride2_dyn": ((16, 16, 20, 21, 5, 2, 2), {"group": 16, "aq": "dyn"}, "depthwise"),
    "dw5_smooth_relu": ((8, 8, 20, 35, 5, 1, 2), {"group": 8, "smooth": True, "act": "relu"}, "depthwise"),
    "dw3_dilation2": ((8, 8, 12, 17, 3, 1, 2, 2), {"group": 8}, "depthwise"),
    "4x4_stride2_same_upper": ((8, 16, 13, 18, 4, 2), {"auto_pad": "SAME_UPPER"}, "gemm"),
    "4x4_stride2_same_lower": ((8, 16, 13, 18, 4, 2), {"auto_pad": "SAME_LOWER"}, "gemm"),
    "dw4_stride2_same_lower": ((8, 8, 13, 18, 4, 2), {"group": 8, "auto_pad": "SAME_LOWER"}, "depthwise"),
    "grouped_fallback": ((16, 8, 9, 11, 3, 1, 1), {"group": 4}, None),
}


def _run(gr, x, out, tmp_path, threads=1, name="c", nhwc=False):  # qconv2d_f32 (int8 NHWC: test_qnhwc_chain.py)
    p = write_package(gr, tmp_path / f"{name}.lbpk", target="x86-64-avx2", scheme="w8a8", int8_nhwc=nhwc)
    s = lowbit.load(p, threads=threads)
    return s, s.run({"x": x})[out]


@pytest.mark.parametrize("case", list(CASES))
def test_qconv_matches_reference(tmp_path, case):
    args, kw, mode = CASES[case]
    gr, x, out = _graph(*args, **kw)
    ref = RefExecutor(gr).run({"x": x})[out]
    s, y = _run(gr, x, out, tmp_path, threads=2)
    ops = s.manifest["ops"]
    if mode is None:
        assert [o["kernel"] for o in ops][:2] == ["qdq_f32", "conv2d_f32"]
    else:
        assert ops[0]["kernel"] == "qconv2d_f32" and ops[0]["attrs"]["mode"] == mode
        if kw.get("act"):
            assert ops[0]["attrs"]["act"] == kw["act"]  # fused into the quantized conv
    assert y.shape == ref.shape
    err = np.max(np.abs(y - ref)) / np.max(np.abs(ref))
    assert err < QCONV_RTOL, f"{case}: {err}"
    _, y1 = _run(gr, x, out, tmp_path, threads=1, name="c1")
    assert np.array_equal(y, y1), "1 and 2 threads must agree bitwise"


@pytest.mark.parametrize("hw", [(9, 11), (40, 41)])  # whole image / tiles
def test_qconv_int4_group_dynamic_block(tmp_path, hw):
    gr, x, out = _graph(64, 24, *hw, 1, fmt="int4", g=32, aq="dyn")
    s, y = _run(gr, x, out, tmp_path, threads=2)
    assert s.manifest["ops"][0]["attrs"]["aq"] == "dynamic_block"
    assert s.manifest["tensors"]["w"]["dtype"] == "u8"
    ref = RefExecutor(gr).run({"x": x})[out]
    assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < INT4_BLOCK_RTOL
    s.enable_profiling(True)
    s.run({"x": x})
    ev = s.profile_events()[0]
    assert ev["kernel"] == "qconv2d_f32" and ev["isa"] in ISA_INCLUDES[lowbit.native().isa_best()]


_SCALAR_CHILD = r"""
import sys, numpy as np, lowbit
s = lowbit.load(sys.argv[1], threads=1)
x = np.load(sys.argv[2])
np.save(sys.argv[3], s.run({"x": x})[sys.argv[4]])
s.enable_profiling(True); s.run({"x": x})
print(s.profile_events()[0]["isa"])
"""


@pytest.mark.parametrize("case", ["dw3_stride2_clip", "dw5_smooth_relu", "3x3_stride2_pad", "3x3_tiled_tail_clip"])
def test_qconv_scalar_path_bitwise_equal(tmp_path, case):
    """The scalar reference of the depthwise kernel (LOWBIT_ISA=scalar) and the AVX2 path agree bitwise."""
    args, kw, _ = CASES[case]
    gr, x, out = _graph(*args, **kw)
    p = write_package(gr, tmp_path / "c.lbpk", target="x86-64-avx2", scheme="w8a8", int8_nhwc=False)
    np.save(tmp_path / "x.npy", x)
    isas = {}
    for isa in ("scalar", None):
        env = dict(os.environ)
        env.pop("LOWBIT_ISA", None)
        if isa:
            env["LOWBIT_ISA"] = isa
        r = subprocess.run([sys.executable, "-c", _SCALAR_CHILD, str(p), str(tmp_path / "x.npy"),
                            str(tmp_path / f"y_{isa}.npy"), out], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        isas[isa] = r.stdout.strip()
    assert isas["scalar"] == "scalar"
    ys, yv = np.load(tmp_path / "y_scalar.npy"), np.load(tmp_path / "y_None.npy")
    assert np.array_equal(ys, yv), np.max(np.abs(ys - yv))


def test_qconv_bad_package_attrs_fail_cleanly(tmp_path):
    gr, x, out = _graph(16, 16, 9, 11, 3, 1, 1, group=16)
    p = write_package(gr, tmp_path / "c.lbpk", target="x86-64-avx2", scheme="w8a8")
    s = lowbit.load(p)
    with pytest.raises(lowbit.LowbitError, match="input"):
        s.run({"x": np.zeros((1, 16, 9), np.float32)})
    assert json.dumps(s.manifest["ops"][0]["attrs"])  # plain JSON attributes


def test_qlinear_smooth_multipliers(tmp_path):
    """A MatMul whose act_quant carries --smooth divisors (the quantizer's default "auto" smoothing
    for w8a8 MatMuls) gets them as qlinear's act_mul input; without them the result is far off."""
    rng = np.random.default_rng(3)
    k, n = 64, 24
    qw = wq.quantize_rtn(rng.standard_normal((n, k)).astype(np.float32), "int8", 0)
    qw.orig_shape, qw.layout = (k, n), "kn"
    sm = rng.uniform(0.25, 4.0, k).astype(np.float32)
    aq = ActQuant("static", 8, float(np.float32(4 / 255)), 3, smooth=sm)
    gr = Graph("m", [Node("MatMul", "mm", ["x", "w"], ["y"], {"act_quant": aq})],
               [TensorInfo("x", "float32", (1, 7, k))], [TensorInfo("y", "float32", (1, 7, n))], {"w": qw})
    x = rng.standard_normal((1, 7, k)).astype(np.float32)
    ref = RefExecutor(gr).run({"x": x})["y"]
    p = write_package(gr, tmp_path / "m.lbpk", target="x86-64-avx2", scheme="w8a8")
    s = lowbit.load(p)
    assert s.manifest["ops"][0]["inputs"][3] == "mm.act_mul"
    y = s.run({"x": x})["y"]
    assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < 1e-2  # a rounding flip moves one step
