"""conv_stem_nhwc_q8: a float stem conv and the int8 NHWC chain's entry quantizer in one op
(docs/runtime.md "int8 NHWC chains", session 9; docs/package-format.md 6.1).

A quantized CNN whose model input stays float (EfficientNet-Lite0 w8a8) starts with a float KxK conv
(conv2d_f32) whose output only the chain's entry quantizer (quantize_nhwc_q8) reads. The exporter's
`_stem_entry` pass turns the pair into one op that computes the conv's float operations (conv2d_f32's
direct path: bias, then the taps in (c, ky, kx) order) and the quantizer's on each element in registers:
the package must give bitwise the outputs of the two-op package, at 1 and 2 threads, batch 2, on the AVX2
path, on the AVX-512 path (O = 32, LB_ISA_AVX512VNNI: its own tile, the same FMAs) and on the scalar path
(LOWBIT_ISA=avx2 / scalar). Cases: EfficientNet's 3 -> 32 3x3 s2 with bottom/right padding and Clip, O = 32 with
Relu and multipliers or a dilated 5x5, O = 16 / 24 (output channel stride 32: padding bytes), O = 8 (stride 8), one
input channel 5x5 (25 taps), dilation, Relu / no act, smoothing multipliers on the quantizer, maps narrower than a
tile, NaN / inf pixels, and the cases the pass must leave alone.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import lowbit
from lowbit.exporters import lbpk_nhwc
from lowbit.exporters.lbpk import runtime_ops, write_package
from lowbit.ir import ActQuant, Graph, Node, QuantWeight, TensorInfo  # noqa: F401
from lowbit.quant import weights as wq


def _stem_graph(C=3, O=32, k=3, stride=2, pad=(0, 0, 1, 1), dil=1, act="clip", smooth=False, seed=0,
                stem_is_output=False):
    """Float stem conv (+ act) -> quantized depthwise 3x3 -> quantized 1x1 (an int8 NHWC chain)."""
    r = np.random.default_rng(seed)
    nodes, inits = [], {}
    inits["s.w"] = (r.standard_normal((O, C, k, k)) / np.sqrt(C * k * k)).astype(np.float32)
    inits["s.b"] = (0.2 * r.standard_normal(O)).astype(np.float32)
    nodes.append(Node("Conv", "stem", ["x", "s.w", "s.b"], ["s.y"],
                      {"kernel_shape": [k, k], "strides": [stride, stride], "pads": list(pad),
                       "dilations": [dil, dil], "group": 1}))
    y = "s.y"
    if act == "relu":
        nodes.append(Node("Relu", "s.relu", [y], ["s.a"]))
        y = "s.a"
    elif act == "clip":
        inits["zero6"], inits["six"] = np.array(0, np.float32), np.array(6, np.float32)
        nodes.append(Node("Clip", "s.clip", [y, "zero6", "six"], ["s.a"]))
        y = "s.a"

    def qconv(n, x, cin, cout, kk, dw):
        w = (r.standard_normal((cout, 1 if dw else cin, kk, kk)) / np.sqrt(kk * kk * (1 if dw else cin))).astype(
            np.float32)
        qw = wq.quantize_rtn(w.reshape(cout, -1), "int8", 0, int8_qmax=63)
        qw.orig_shape = w.shape
        aq = ActQuant("static", 8, float(np.float32(r.uniform(0.02, 0.05))), int(r.integers(-20, 21)),
                      smooth=r.uniform(0.5, 2.0, cin).astype(np.float32) if smooth else None)
        inits[f"{n}.w"], inits[f"{n}.b"] = qw, (0.1 * r.standard_normal(cout)).astype(np.float32)
        nodes.append(Node("Conv", n, [x, f"{n}.w", f"{n}.b"], [f"{n}.y"],
                          {"kernel_shape": [kk, kk], "strides": [1, 1], "pads": [kk // 2] * 4, "dilations": [1, 1],
                           "group": cin if dw else 1, "act_quant": aq}))
        return f"{n}.y"

    z = qconv("pw", qconv("dw", y, O, O, 3, True), O, 16, 1, False)
    outs = [z] + ([y] if stem_is_output else [])
    return Graph("stem", nodes, [TensorInfo("x", "float32", ("N", C, "H", "W"))],
                 [TensorInfo(o, "float32", None) for o in outs], inits), z


def _packages(gr, tmp_path, monkeypatch):
    new = write_package(gr, tmp_path / "stem.lbpk", target="x86-64-avx2", scheme="w8a8")
    with monkeypatch.context() as m:  # the same graph without the fusion: conv2d_f32 + quantize_nhwc_q8
        m.setattr(lbpk_nhwc, "_stem_entry", lambda low: None)
        old = write_package(gr, tmp_path / "two_ops.lbpk", target="x86-64-avx2", scheme="w8a8")
    return new, old


_CHILD = r"""
import sys, numpy as np, lowbit
x = np.load(sys.argv[3])
res = {}
for tag, path in (("new", sys.argv[1]), ("old", sys.argv[2])):
    s = lowbit.load(path, threads=2)
    for k, v in s.run({"x": x}).items():
        res[tag + ":" + k] = v
    s.enable_profiling(True); s.run({"x": x})
    print(tag, sorted({e["kernel"] + "/" + e["isa"] for e in s.profile_events() if "stem" in e["kernel"]}))
np.savez(sys.argv[4], **res)
"""

CASES = [
    dict(),                                                          # EfficientNet-Lite0's stem
    dict(pad=(1, 1, 1, 1), act="relu", smooth=True),                 # O = 32 with the range guard, multipliers
    dict(C=1, k=5, stride=1, pad=(2, 2, 2, 2), dil=2, act=None),     # O = 32, one channel 5x5 dilated
    dict(O=16, stride=1, pad=(1, 1, 1, 1), act="relu", smooth=True),  # channel stride 32 (16 padding bytes)
    dict(O=24, k=3, stride=2, pad=(1, 0, 1, 1), dil=2, act=None),    # dilation, asymmetric pads
    dict(C=1, O=8, k=5, stride=2, pad=(2, 2, 2, 2)),                 # 25 taps, channel stride 8
]


@pytest.mark.parametrize("case", CASES)
def test_stem_bitwise_equal_to_conv_and_quantizer(tmp_path, monkeypatch, case):
    gr, z = _stem_graph(**case)
    new, old = _packages(gr, tmp_path, monkeypatch)
    kn = [o["kernel"] for o in lowbit.load(new).manifest["ops"]]
    ko = [o["kernel"] for o in lowbit.load(old).manifest["ops"]]
    assert kn[0] == "conv_stem_nhwc_q8" and "quantize_nhwc_q8" not in kn and "conv2d_f32" not in kn, kn
    assert ko[:2] == ["conv2d_f32", "quantize_nhwc_q8"], ko
    rng = np.random.default_rng(1)
    for H, W in ((37, 45), (9, 5), (20, 70)):  # 5 columns: every tile is a border tile narrower than J
        x = (2.0 * rng.standard_normal((2, case.get("C", 3), H, W))).astype(np.float32)  # batch 2
        if W == 70:  # NaN and +-inf pixels (a Clip maps NaN to its lower bound)
            x.reshape(-1)[rng.choice(x.size, 12, replace=False)] = [np.nan] * 4 + [np.inf] * 4 + [-np.inf] * 4
        ref = lowbit.load(old, threads=1).run({"x": x})[z]
        for threads in (1, 2):
            got = lowbit.load(new, threads=threads).run({"x": x})[z]
            assert np.array_equal(got, ref), (H, W, threads, np.max(np.abs(got - ref)))
        assert np.abs(ref).max() > 0.1
    s = lowbit.load(new)
    s.enable_profiling(True)
    s.run({"x": x})
    isa = {e["isa"] for e in s.profile_events() if e["kernel"] == "conv_stem_nhwc_q8"}
    o32 = case.get("O", 32) == 32 and lowbit.native().isa_active() == "avx512vnni"
    assert isa == ({"avx512vnni"} if o32 else {"avx2"}), isa  # O = 32: the AVX-512 tile
    # the AVX2 and scalar paths (LOWBIT_ISA) against the two ops on the same path
    x = rng.standard_normal((1, case.get("C", 3), 23, 30)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    for forced in ("avx2", "scalar"):
        env = dict(os.environ, LOWBIT_ISA=forced)
        r = subprocess.run([sys.executable, "-c", _CHILD, str(new), str(old), str(tmp_path / "x.npy"),
                            str(tmp_path / "y.npz")], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert f"new ['conv_stem_nhwc_q8/{forced}']" in r.stdout, r.stdout
        res = np.load(tmp_path / "y.npz")
        assert np.array_equal(res["new:" + z], res["old:" + z])


def test_stem_pass_leaves_other_convs(tmp_path):
    # the stem's float value is also a graph output: it stays conv2d_f32 + quantize_nhwc_q8
    gr, _ = _stem_graph(stem_is_output=True)
    assert [o["kernel"] for o in runtime_ops(gr)][:2] == ["conv2d_f32", "quantize_nhwc_q8"]
    for case in (dict(O=40), dict(C=4, k=3), dict(O=12), dict(k=1, stride=1, pad=(0, 0, 0, 0))):
        # 40 output channels, 36 taps, 12 channels, a 1x1 conv: not this op's shapes
        gr, _ = _stem_graph(**case)
        assert "conv_stem_nhwc_q8" not in [o["kernel"] for o in runtime_ops(gr)], case
    gr, _ = _stem_graph()
    assert [o["kernel"] for o in runtime_ops(gr, int8_nhwc=False)][0] == "conv2d_f32"


def test_stem_bad_input_fails_cleanly(tmp_path, monkeypatch):
    gr, z = _stem_graph()
    new, _ = _packages(gr, tmp_path, monkeypatch)
    s = lowbit.load(new)
    with pytest.raises(lowbit.LowbitError, match="input"):
        s.run({"x": np.zeros((1, 4, 16, 16), np.float32)})  # 4 channels for a 3-channel weight
    with pytest.raises(lowbit.LowbitError, match="shape|empty"):  # too small for the 3x3 window
        s.run({"x": np.zeros((1, 3, 1, 1), np.float32)})
    y = s.run({"x": np.zeros((1, 3, 16, 16), np.float32)})[z]
    assert y.shape == (1, 16, 8, 8) and np.isfinite(y).all()
