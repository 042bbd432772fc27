"""Float conv epilogue fusion (exporters/lbpk_ffuse.py, session 5): bias Adds, per-channel / scalar
Muls and Adds, Relu / Clip / HardSigmoid, HardSwish written as HardSigmoid(1/6, 0.5) * x, and the
scalar affine block after a HardSwish (PP-LCNetV3's learnable affine block: ``act =
hardswish_affine``) folded into the conv before them. Each case: the ops left in the package,
ONNX Runtime within 1e-4 relative, 1 vs 2 threads bitwise, the portable path (LOWBIT_ISA=scalar);
the direct conv, depthwise, conv2d_pw_f32, the NCHW GEMM (1x1 on a large map) and ConvTranspose
epilogues all see the new activation. Cases where folding would be wrong stay unfused."""

import numpy as np
import pytest

import lowbit
from runtime_helpers import assert_rel_close, fp32_graph_case, run_scalar_path

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

RTOL = 1e-4


def _w(*shape, seed=1, scale=0.3):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


class _G:
    """A small ONNX graph builder: every helper appends nodes and returns the output name."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], {}, 0

    def name(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def const(self, arr):
        k = self.name("c")
        self.inits[k] = np.asarray(arr, np.float32)
        return k

    def op(self, kind, ins, out=None, **attrs):
        out = out or self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, ins, [out], **attrs))
        return out

    def conv(self, x, o, c, k, group=1, stride=1, out=None):
        w = self.const(_w(o, c // group, k, k, seed=self.n + 3))
        return self.op("Conv", [x, w], out, kernel_shape=[k, k], pads=[k // 2] * 4, group=group,
                       strides=[stride, stride])

    def bias(self, x, o):
        return self.op("Add", [x, self.const(_w(1, o, 1, 1, seed=self.n + 5))])

    def affine(self, x, s, t, out=None):  # PP-LCNetV3's learnable affine block: scalar Mul then Add
        return self.op("Add", [self.op("Mul", [self.const([s]), x]), self.const([t])], out)

    def hswish(self, x, alpha=1.0 / 6.0):
        return self.op("Mul", [self.op("HardSigmoid", [x], alpha=alpha, beta=0.5), x])


def _lcnet_block():
    """3x3 conv -> bias -> affine -> HardSwish -> affine -> depthwise 3x3 -> bias -> affine ->
    1x1 (8x8 map: conv2d_pw_f32) -> bias -> Relu -> ConvTranspose 2x2 s2 -> bias -> BatchNorm -> Relu -> ConvTranspose -> bias -> Sigmoid
    (PP-OCR det's DB head)."""
    g = _G()
    y = g.affine(g.hswish(g.affine(g.bias(g.conv("x", 24, 16, 3, stride=2), 24), 1.21, 0.47)), 0.83, -0.12)
    y = g.affine(g.bias(g.conv(y, 24, 24, 3, group=24), 24), 1.1, 0.05)
    y = g.op("Relu", [g.bias(g.conv(y, 32, 24, 1), 32)])
    w = g.const(_w(32, 16, 2, 2, seed=11))
    y = g.op("ConvTranspose", [y, w], kernel_shape=[2, 2], strides=[2, 2])
    bn = [g.const(_w(16, seed=s) + 1.0) for s in (12, 13)] + [g.const(_w(16, seed=14)), g.const(_w(16, seed=15) ** 2 + 0.5)]
    y = g.op("Relu", [g.op("BatchNormalization", [g.bias(y, 16)] + bn, epsilon=1e-3)])
    w = g.const(_w(16, 4, 2, 2, seed=16))
    g.op("Sigmoid", [g.bias(g.op("ConvTranspose", [y, w], kernel_shape=[2, 2], strides=[2, 2]), 4)], "y")
    return g.nodes, [("x", [1, 16, 16, 16])], g.inits


def _gemm_map():
    """1x1 conv on a 30x30 map (the NCHW GEMM: over PW_MAX_PIXELS), per-channel Mul, bias, HardSwish,
    affine; a 3x3 16->8 conv (the output-channel tile) with Clip."""
    g = _G()
    y = g.op("Mul", [g.conv("x", 40, 24, 1), g.const(_w(1, 40, 1, 1, seed=4) - 0.5)])
    y = g.affine(g.hswish(g.bias(y, 40)), -0.7, 0.31)
    y = g.conv(y, 8, 40, 3)
    g.op("Clip", [g.bias(y, 8), g.const(-0.5), g.const(0.75)], "y")
    return g.nodes, [("x", [2, 24, 30, 30])], g.inits


def _not_foldable():
    """Nothing to fold: the conv output also feeds a residual Add; an Add of a per-column [W] vector;
    HardSigmoid with alpha 0.2 times x (not HardSwish); a Mul whose other operand is a tensor."""
    g = _G()
    c = g.conv("x", 8, 8, 3)
    r = g.op("Add", [c, "x"])
    a = g.op("Add", [g.conv(r, 8, 8, 3), g.const(_w(12, seed=9))])  # broadcasts over W, not channels
    h = g.hswish(g.conv(a, 8, 8, 1), alpha=0.2)
    c2 = g.conv(h, 8, 8, 3)
    g.op("Mul", [c2, r], "y")
    return g.nodes, [("x", [1, 8, 10, 12])], g.inits


CASES = {
    "lcnet_block": (_lcnet_block, ["conv2d_f32", "conv2d_f32", "conv2d_pw_f32", "conv_transpose2d_f32",
                                   "conv_transpose2d_f32"]),
    "gemm_map": (_gemm_map, ["conv2d_f32", "conv2d_f32"]),
    "not_foldable": (_not_foldable, ["conv2d_f32", "add", "conv2d_f32", "add", "conv2d_pw_f32", "hardsigmoid_f32",
                                     "mul", "conv2d_f32", "mul"]),
}


def _build(tmp_path, name):
    (tmp_path / name).mkdir(exist_ok=True)
    pkg, feeds, ref = fp32_graph_case(tmp_path / name, name, *CASES[name][0]())
    return pkg, feeds, ref["y"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_epilogues_match_ort(tmp_path, name):
    pkg, feeds, ref = _build(tmp_path, name)
    ops = lowbit.load(pkg).manifest["ops"]
    assert [o["kernel"] for o in ops] == CASES[name][1]
    runs = {t: lowbit.load(pkg, threads=t).run(feeds)["y"] for t in (1, 2)}
    assert_rel_close(runs[1], ref, RTOL, name)
    assert np.array_equal(runs[1], runs[2]), f"{name}: 2 threads differ from 1 thread"
    got, isa = run_scalar_path(pkg, feeds, tmp_path)
    assert "avx2" not in isa
    assert_rel_close(got["y"], ref, RTOL, f"scalar {name}")


def test_fused_attributes(tmp_path):
    pkg, _, _ = _build(tmp_path, "lcnet_block")
    ops = lowbit.load(pkg).manifest["ops"]
    a = ops[0]["attrs"]
    assert a["act"] == "hardswish_affine"
    assert a["act_scale"] == pytest.approx(0.83) and a["act_shift"] == pytest.approx(-0.12)
    assert len(ops[0]["inputs"]) == 3  # the bias Add became the conv's bias
    assert "act" not in ops[1]["attrs"] and ops[2]["attrs"]["act"] == "relu" and ops[3]["attrs"]["act"] == "relu"
    assert ops[4]["attrs"]["act"] == "sigmoid"
    pkg, _, _ = _build(tmp_path, "gemm_map")
    ops = lowbit.load(pkg).manifest["ops"]
    assert ops[0]["attrs"]["act"] == "hardswish_affine" and ops[1]["attrs"]["act"] == "clip"
    assert ops[1]["attrs"]["act_min"] == -0.5 and ops[1]["attrs"]["act_max"] == 0.75


@pytest.mark.qemu
def test_fused_epilogues_on_aarch64(native_aarch64, tmp_path):
    """The aarch64 build runs the folded package (hardswish_affine in the portable epilogues)."""
    from lowbit_testutil import run

    pkg, feeds, ref = _build(tmp_path, "lcnet_block")
    np.save(tmp_path / "x.npy", feeds["x"])
    r = run(["qemu-aarch64", "-cpu", "max", native_aarch64 / "lowbit-run", "run", pkg, "--input",
             f"x={tmp_path / 'x.npy'}", "--output", tmp_path])
    assert r.returncode == 0, r.stdout + r.stderr
    assert_rel_close(np.load(tmp_path / "y.npy"), ref, RTOL, "aarch64")
