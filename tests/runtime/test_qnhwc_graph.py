"""int8 NHWC through the neck and head of a quantized CNN (resize_nearest_nhwc_q8, concat_nhwc_q8,
conv_transpose_nhwc_q8: docs/runtime.md "int8 NHWC chains", docs/package-format.md section 6.2).

A PP-OCRv5-det-like graph: a chain of static-int8 convs, float "SE" tails, nearest Resizes
(asymmetric/floor scales, half_pixel sizes) into a channel Concat that a smoothed 3x3 conv reads,
then the DB head: ConvTranspose 2x2/2 -> Add (a Reshape'd bias) -> BatchNormalization -> Relu ->
ConvTranspose 2x2/2 -> Add -> Sigmoid, each transposed conv after its activation quantizer.

* Resize/Concat on int8 values, and the requantization of a chain conv's f32 NHWC output with
  another scale (quantize_f32nhwc_q8), are exact (quantization is elementwise): the 3x3 conv's output (a
  graph output) has the bits of the package without int8 NHWC (int8_nhwc=False), on every ISA path.
* The transposed convs multiply the dequantized int8 input in float (their weight scales are per
  input channel): within float rounding of qdq_f32 + conv_transpose2d_f32, and as close to ONNX
  Runtime on the exported QDQ ONNX as the unchanged package; their AVX2 kernels give the bits of
  their scalar reference.
* 1 and 2 threads agree bitwise.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import lowbit
from lowbit.exporters.lbpk import runtime_ops, write_package
from lowbit.ir import ActQuant, Graph, Node, TensorInfo
from lowbit.quant import weights as wq


class _Head:
    def __init__(self, seed):
        self.r = np.random.default_rng(seed)
        self.nodes, self.inits, self.k, self.vi = [], {}, 0, {}

    def _aq(self, C=None, smooth=False):
        r = self.r
        return ActQuant("static", 8, float(np.float32(r.uniform(0.02, 0.05))), int(r.integers(-20, 21)),
                        smooth=r.uniform(0.5, 2.0, C).astype(np.float32) if smooth else None)

    def conv(self, x, C, O, k, stride=1, relu=True, smooth=False):
        self.k += 1
        n = f"c{self.k}"
        w = (self.r.standard_normal((O, C, k, k)) / np.sqrt(C * k * k)).astype(np.float32)
        qw = wq.quantize_rtn(w.reshape(O, -1), "int8", 0)
        qw.orig_shape = w.shape
        self.inits[f"{n}.w"] = qw
        self.inits[f"{n}.b"] = (0.1 * self.r.standard_normal(O)).astype(np.float32)
        self.nodes.append(Node("Conv", n, [x, f"{n}.w", f"{n}.b"], [f"{n}.y"],
                               {"kernel_shape": [k, k], "strides": [stride] * 2, "pads": [k // 2] * 4,
                                "group": 1, "act_quant": self._aq(C, smooth)}))
        if not relu:
            return f"{n}.y"
        self.nodes.append(Node("Relu", f"{n}.relu", [f"{n}.y"], [f"{n}.a"]))
        return f"{n}.a"

    def op(self, kind, ins, attrs=None, shape=None):
        self.k += 1
        y = f"{kind.lower()}{self.k}"
        self.nodes.append(Node(kind, y, ins, [y], attrs or {}))
        if shape is not None:
            self.vi[y] = TensorInfo(y, "float32", shape)
        return y

    def const(self, name, v):
        self.inits[name] = np.asarray(v)
        return name

    def se(self, x, C, shape):  # x + x * g (a per-channel float gate): float ops the QDQ graph keeps float
        g = self.const(f"g{self.k}", self.r.uniform(0.2, 1.0, (1, C, 1, 1)).astype(np.float32))
        return self.op("Add", [x, self.op("Mul", [x, g])], shape=shape)

    def convt(self, x, C, O, k=(2, 2)):
        self.k += 1
        n = f"t{self.k}"
        w = (self.r.standard_normal((C, O) + tuple(k)) / np.sqrt(C)).astype(np.float32)
        qw = wq.quantize_rtn(w.reshape(C, -1), "int8", 0)  # per input channel, as the quantizer does
        qw.orig_shape = w.shape
        self.inits[f"{n}.w"] = qw
        self.nodes.append(Node("ConvTranspose", n, [x, f"{n}.w"], [f"{n}.y"],
                               {"kernel_shape": list(k), "strides": list(k), "pads": [0] * 4, "dilations": [1, 1],
                                "group": 1, "act_quant": self._aq()}))
        return f"{n}.y"


def _det_head(H=32, W=48, seed=0):
    b = _Head(seed)
    C = 24
    y = b.conv("x", 3, C, 3, stride=2)                                 # H/2
    p2 = b.se(b.conv(y, C, C, 1, relu=False), C, (1, C, H // 2, W // 2))
    p3 = b.se(b.conv(b.conv(y, C, C, 3, stride=2), C, C, 1, relu=False), C, (1, C, H // 4, W // 4))
    p4 = b.conv(b.conv(p3, C, C, 3, stride=2), C, C, 1, relu=False)
    b.vi[p4] = TensorInfo(p4, "float32", (1, C, H // 8, W // 8))
    roi = b.const("roi", np.zeros(0, np.float32))
    up3 = b.op("Resize", [p3, roi, b.const("s2", np.array([1, 1, 2, 2], np.float32))],
               {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
               shape=(1, C, H // 2, W // 2))
    up4 = b.op("Resize", [p4, roi, b.const("none", np.zeros(0, np.float32)),
                          b.const("sz", np.array([1, C, H // 2, W // 2], np.int64))],
               {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
                "nearest_mode": "round_prefer_floor"}, shape=(1, C, H // 2, W // 2))
    cat = b.op("Concat", [up4, p2, up3], {"axis": 1}, shape=(1, 3 * C, H // 2, W // 2))
    f = b.conv(cat, 3 * C, C, 3, smooth=True)                       # the concat's reader, smoothed
    t = b.convt(f, C, 16)
    bias = b.op("Reshape", [b.const("tb", (0.1 * b.r.standard_normal(16)).astype(np.float32)),
                            b.const("tshape", np.array([1, 16, 1, 1], np.int64))])
    t = b.op("Add", [t, bias])
    bn = [b.const(f"bn{i}", v.astype(np.float32)) for i, v in
          enumerate([b.r.uniform(0.5, 1.5, 16), 0.1 * b.r.standard_normal(16), 0.1 * b.r.standard_normal(16),
                     b.r.uniform(0.5, 1.5, 16)])]
    t = b.op("Relu", [b.op("BatchNormalization", [t] + bn, {"epsilon": 1e-5})])
    t = b.op("Sigmoid", [b.op("Add", [b.convt(t, 16, 1), b.const("tb2", np.array([[[[0.3]]]], np.float32))])])
    g = Graph("det_head", b.nodes, [TensorInfo("x", "float32", (1, 3, H, W))],
              [TensorInfo(t, "float32", (1, 1, 2 * H, 2 * W)), TensorInfo(f, "float32", (1, C, H // 2, W // 2))], b.inits)
    g.value_info = b.vi
    return g


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _new_and_old(tmp_path_factory, tag, g, seed, hw=(32, 48)):
    """g exported with the int8 NHWC lowering (new) and without it (old), an input, the folder."""
    d = tmp_path_factory.mktemp(tag)
    new = write_package(g, d / "new.lbpk", target="x86-64-avx2", scheme="w8a8")
    old = write_package(g, d / "old.lbpk", target="x86-64-avx2", scheme="w8a8", int8_nhwc=False)
    x = np.random.default_rng(seed).standard_normal((1, 3) + tuple(hw)).astype(np.float32)
    return g, new, old, x, d


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    return _new_and_old(tmp_path_factory, "qnhwc_graph", _det_head(), 1)


def test_lowering_keeps_the_neck_and_head_int8(head):
    g = head[0]
    kernels = [o["kernel"] for o in runtime_ops(g)]
    assert kernels.count("resize_nearest_nhwc_q8") == 2 and kernels.count("concat_nhwc_q8") == 1
    assert kernels.count("conv_transpose_nhwc_q8") == 2
    # a chain conv's f32 output read only by quantizers with other scales: f32 NHWC + quantize_f32nhwc_q8
    assert kernels.count("quantize_f32nhwc_q8") == 2
    for gone in ("resize_f32", "concat", "qdq_f32", "conv_transpose2d_f32", "batch_norm_f32", "relu_f32",
                 "sigmoid_f32", "reshape"):
        assert gone not in kernels, (gone, kernels)
    ops = {o["name"]: o for o in runtime_ops(g)}
    t1 = next(o for o in ops.values() if o["kernel"] == "conv_transpose_nhwc_q8")
    assert t1["attrs"]["outs"] == ["q8"]  # requantized to the second transposed conv's input
    assert [s[0] for s in t1["attrs"]["post"]] == ["add_c", "mul_c", "add_c", "relu"]
    # without value_info (channel counts unknown) the Concat stays float; the transposed convs do not need it
    g.value_info, vi = {}, g.value_info
    try:
        kernels = [o["kernel"] for o in runtime_ops(g)]
    finally:
        g.value_info = vi
    assert "concat" in kernels and "concat_nhwc_q8" not in kernels and kernels.count("conv_transpose_nhwc_q8") == 2


def test_outputs_match_the_float_islands_and_ort(head):
    g, new, old, x, d = head
    ref = lowbit.load(old, threads=1).run({"x": x})
    names = [t.name for t in g.outputs]
    runs = [lowbit.load(new, threads=t).run({"x": x}) for t in (1, 2)]
    for k in ref:
        assert np.array_equal(runs[0][k], runs[1][k]), k  # 1 and 2 threads: same bits
    # the int8 Resize/Concat path is exact: the concat reader's output has the unchained bits
    assert np.array_equal(runs[0][names[1]], ref[names[1]])
    # the transposed convs: float rounding (their sums' order differs from the float GEMM's: 1-ulp
    # differences) and now and then a flipped int8 step in between (a pixel moves by ~1/256)
    p, q = runs[0][names[0]], ref[names[0]]
    assert p.shape == q.shape == (1, 1, 64, 96)
    dev = np.abs(p - q)
    assert np.max(dev) < 0.02 and np.mean(dev > 1e-6) < 0.05, (np.max(dev), np.mean(dev > 1e-6))
    ort = pytest.importorskip("onnxruntime")
    from lowbit.exporters.onnx_writer import write_onnx

    onnx = write_onnx(g, d / "head.qdq.onnx")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    o = ort.InferenceSession(str(onnx), so, providers=["CPUExecutionProvider"]).run(names, {"x": x})
    # docs/runtime.md tolerance: as close to ORT as the package without int8 NHWC (float islands)
    for k, want in zip(names, o):
        assert _rel(runs[0][k], want) <= 2 * _rel(ref[k], want) + 0.02, (k, _rel(runs[0][k], want), _rel(ref[k], want))
    assert np.mean((runs[0][names[0]] > 0.5) == (o[0] > 0.5)) > 0.98


def test_scalar_path_gives_the_same_results(head):
    _, new, _, x, d = head
    np.save(d / "x.npy", x)
    code = ("import sys, numpy as np, lowbit; s = lowbit.load(sys.argv[1], threads=1); "
            "r = s.run({'x': np.load(sys.argv[2])}); np.savez(sys.argv[3], **r)")
    outs = {}
    for isa in ("scalar", "avx2"):
        env = dict(os.environ, LOWBIT_ISA=isa)
        subprocess.run([sys.executable, "-c", code, str(new), str(d / "x.npy"), str(d / f"{isa}.npz")], env=env,
                       check=True)
        outs[isa] = dict(np.load(d / f"{isa}.npz"))
    for k, v in outs["avx2"].items():
        if k.startswith("sigmoid"):  # float GEMM of the transposed convs: FMA vs scalar rounding
            assert np.max(np.abs(v - outs["scalar"][k])) < 0.02
        else:
            assert np.array_equal(v, outs["scalar"][k]), k


def _isa_runs(pkg, x, d):
    """Outputs of pkg on x with LOWBIT_ISA=scalar and =avx2 (one subprocess each)."""
    np.save(d / "x.npy", x)
    code = ("import sys, numpy as np, lowbit; s = lowbit.load(sys.argv[1], threads=1); "
            "r = s.run({'x': np.load(sys.argv[2])}); np.savez(sys.argv[3], **r)")
    outs = {}
    for isa in ("scalar", "avx2"):
        subprocess.run([sys.executable, "-c", code, str(pkg), str(d / "x.npy"), str(d / f"{isa}.npz")],
                       env=dict(os.environ, LOWBIT_ISA=isa), check=True)
        outs[isa] = dict(np.load(d / f"{isa}.npz"))
    return outs


@pytest.mark.parametrize("C,O,k,O2,k2", [
    (24, 24, (2, 2), 1, (2, 2)),  # det's head: 96 columns (int8 stores in the kernel), then the 4-column dot form
    (40, 8, (3, 3), 5, (2, 1)),   # 9 column vectors (a tail block), Cs 64; then 10 columns (16 in the lanes)
    (12, 3, (2, 2), 2, (1, 2)),   # Cs = C = 12 (a partial 8-channel load), O % 8 != 0 (int8 via the row quantizer)
])
def test_transposed_conv_kernels_scalar_and_avx2_same_bits(tmp_path, C, O, k, O2, k2):
    """conv_transpose_nhwc_q8's AVX2 kernels (broadcast form, dot form, int8 stores) against their scalar
    reference (LOWBIT_ISA=scalar: the same multiplies, fused multiply-adds and sums in the same order):
    the same bits, through an int8 output into a second transposed conv and its f32 NCHW output."""
    b = _Head(5)
    y = b.conv("x", 3, C, 3)
    t = b.op("Relu", [b.convt(y, C, O, k)])
    t = b.convt(t, O, O2, k2)
    H, W = 9, 7  # odd pixel counts: the dot form's last pixel pair is half empty
    shape = (1, O2, H * k[0] * k2[0], W * k[1] * k2[1])
    g = Graph("t", b.nodes, [TensorInfo("x", "float32", (1, 3, H, W))], [TensorInfo(t, "float32", shape)], b.inits)
    assert [o["kernel"] for o in runtime_ops(g)].count("conv_transpose_nhwc_q8") == 2
    new = write_package(g, tmp_path / "new.lbpk", target="x86-64-avx2", scheme="w8a8")
    old = write_package(g, tmp_path / "old.lbpk", target="x86-64-avx2", scheme="w8a8", int8_nhwc=False)
    x = np.random.default_rng(2).standard_normal((1, 3, H, W)).astype(np.float32)
    outs = _isa_runs(new, x, tmp_path)
    (name, got), = outs["avx2"].items()
    assert got.shape == shape
    np.testing.assert_array_equal(got, outs["scalar"][name])
    ref = lowbit.load(old, threads=1).run({"x": x})[name]
    assert _rel(got, ref) < 0.02, _rel(got, ref)  # float rounding, now and then a flipped int8 step


def test_transposed_conv_other_shapes_stay_float():
    b = _Head(3)
    y = b.conv("x", 3, 8, 3)
    y = b.convt(y, 8, 4)
    b.nodes[-1].attrs["strides"] = [1, 1]  # overlapping windows: not the kernel == stride case
    g = Graph("t", b.nodes, [TensorInfo("x", "float32", (1, 3, 8, 8))], [TensorInfo(y, "float32", None)], b.inits)
    kernels = [o["kernel"] for o in runtime_ops(g)]
    assert "conv_transpose2d_f32" in kernels and "conv_transpose_nhwc_q8" not in kernels


@pytest.mark.qemu
def test_aarch64_gives_the_x86_results(head, native_host, native_aarch64):
    """One package on x86 (AVX2) and aarch64 (qemu): the int8 Resize/Concat path and the chain convs
    give the same bits; the transposed convs' float GEMM rounds per platform (FMA order)."""
    from lowbit_testutil import run

    g, new, _, x, d = head
    np.save(d / "xa.npy", x)
    outs = {}
    for name, cmd in (("x86", [native_host / "lowbit-run"]),
                      ("arm", ["qemu-aarch64", "-cpu", "max", native_aarch64 / "lowbit-run"])):
        o = d / f"out_{name}"
        o.mkdir(exist_ok=True)
        r = run(cmd + ["run", new, "--input", f"x={d / 'xa.npy'}", "--output", o])
        assert r.returncode == 0, r.stdout + r.stderr
        outs[name] = {p.stem: np.load(p) for p in sorted(o.glob("*.npy"))}
    names = [t.name for t in g.outputs]
    assert sorted(outs["x86"]) == sorted(outs["arm"]) == sorted(names)
    np.testing.assert_array_equal(outs["arm"][names[1]], outs["x86"][names[1]])
    assert np.max(np.abs(outs["arm"][names[0]] - outs["x86"][names[0]])) < 0.02


@pytest.mark.parametrize("kernel,attr,value,words", [
    ("concat_nhwc_q8", "channels", [24, 24], "channels"),
    ("quantize_f32nhwc_q8", "scale", 0.0, "scale > 0"),
    ("resize_nearest_nhwc_q8", "channels", 40, "channels"),
    ("resize_nearest_nhwc_q8", "mode", "linear", "nearest only"),
    ("conv_transpose_nhwc_q8", "strides", [1, 1], "strides == kernel_shape"),
    ("conv_transpose_nhwc_q8", "post", [["gelu"]], "post step"),
    ("conv_transpose_nhwc_q8", "outs", ["q8"], "oq_scale"),
])
def test_bad_attributes_are_refused_by_name(tmp_path, monkeypatch, kernel, attr, value, words):
    from lowbit.exporters import lbpk_nhwc

    real = lbpk_nhwc.int8_nhwc

    def corrupt(low, **kw):
        real(low, **kw)
        op = next(o for o in low.ops if o["kernel"] == kernel)
        op["attrs"][attr] = value
        if attr == "outs":
            op["attrs"].pop("oq_scale", None)
        corrupt.name = op["name"]

    monkeypatch.setattr(lbpk_nhwc, "int8_nhwc", corrupt)
    pkg = write_package(_det_head(), tmp_path / "bad.lbpk", target="x86-64-avx2", scheme="w8a8")
    x = np.zeros((1, 3, 32, 48), np.float32)
    with pytest.raises(lowbit.LowbitError) as e:  # shapes are planned at load or at the first run
        lowbit.load(pkg).run({"x": x})
    msg = str(e.value)
    assert corrupt.name in msg and words in msg, msg


# ---- squeeze-excitation gates and FPN merges on f32 NHWC (global_avg_pool_nhwc_f32, se_gate_nhwc_q8) ----
def _gate(b, x, C):
    """PP-OCRv5's SE gate: GlobalAveragePool -> 1x1 conv + Relu -> 1x1 conv -> HardSigmoid (float g)."""
    p = b.op("GlobalAveragePool", [x])
    h = b.conv(b.conv(p, C, max(C // 4, 2), 1), max(C // 4, 2), C, 1, relu=False)
    return b.op("HardSigmoid", [h], {"alpha": 0.2, "beta": 0.5})


def _se_neck(H=32, W=48, seed=5, C=40):
    """A backbone SE (x * g read by a conv) and a two-level RSE FPN (x + x * g; the lower level
    + nearest x2 Resize of the upper one, read by a 3x3 conv; the upper one also read by a conv),
    C = 40 channels (channel stride 64)."""
    b = _Head(seed)
    y = b.conv(b.conv("x", 3, 16, 3, stride=2), 16, 16, 3, stride=2)          # H/4
    x1 = b.conv(y, 16, 16, 1, relu=False)
    c4 = b.conv(b.op("Mul", [x1, _gate(b, x1, 16)]), 16, C, 3, stride=2)       # H/8
    c5 = b.conv(c4, C, C, 3, stride=2)                                         # H/16
    t5 = b.conv(c5, C, C, 1, relu=False)
    t5 = b.op("Add", [t5, b.op("Mul", [t5, _gate(b, t5, C)])])
    t4 = b.conv(c4, C, C, 1, relu=False)
    t4 = b.op("Add", [b.op("Mul", [_gate(b, t4, C), t4]), t4])
    up = b.op("Resize", [t5, b.const("roi", np.zeros(0, np.float32)), b.const("s2", np.array([1, 1, 2, 2], np.float32))],
              {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"})
    m4 = b.op("Add", [up, t4])
    o1 = b.conv(m4, C, 8, 3, relu=False, smooth=True)
    o2 = b.conv(t5, C, 8, 3, relu=False)
    return Graph("se_neck", b.nodes, [TensorInfo("x", "float32", (1, 3, H, W))],
                 [TensorInfo(o1, "float32", None), TensorInfo(o2, "float32", None)], b.inits)


@pytest.fixture(scope="module")
def neck(tmp_path_factory):
    return _new_and_old(tmp_path_factory, "qnhwc_se", _se_neck(), 2)


def test_se_gates_and_fpn_merges_are_fused_with_the_same_bits(neck):
    g, new, old, x, d = neck
    kernels = [o["kernel"] for o in runtime_ops(g)]
    assert kernels.count("global_avg_pool_nhwc_f32") == 3 and kernels.count("se_gate_nhwc_q8") == 3, kernels
    for gone in ("global_avg_pool_f32", "mul", "add", "resize_f32", "hardsigmoid_f32"):
        assert gone not in kernels, (gone, kernels)
    se = [o for o in runtime_ops(g) if o["kernel"] == "se_gate_nhwc_q8"]
    assert sorted(o["attrs"]["residual"] for o in se) == [0, 1, 1]
    merge = next(o for o in se if len(o["inputs"]) > 4 and o["inputs"][2])  # the FPN level with the upsampling
    assert merge["attrs"]["outs"] == ["q8"] and merge["attrs"]["mode"] == "nearest"
    assert any(o["attrs"]["outs"] == ["q8", "f32_nhwc"] for o in se)  # the upper level: its conv's input + the merge's
    ref = lowbit.load(old, threads=1).run({"x": x})
    for t in (1, 2):
        got = lowbit.load(new, threads=t).run({"x": x})
        for k in ref:
            assert np.array_equal(got[k], ref[k]), (t, k, np.max(np.abs(got[k] - ref[k])))
    np.save(d / "x.npy", x)
    code = ("import sys, numpy as np, lowbit; s = lowbit.load(sys.argv[1], threads=1); "
            "r = s.run({'x': np.load(sys.argv[2])}); np.savez(sys.argv[3], **r)")
    subprocess.run([sys.executable, "-c", code, str(new), str(d / "x.npy"), str(d / "scalar.npz")],
                   env=dict(os.environ, LOWBIT_ISA="scalar"), check=True)
    for k, v in np.load(d / "scalar.npz").items():
        assert np.array_equal(v, ref[k]), k


def test_se_gate_pools_of_8_to_63_values_keep_the_unfused_bits(tmp_path_factory):
    """global_avg_pool_nhwc_f32 sums in global_avg_pool_f32's order, which takes 8 partial sums for maps
    of fewer than 64 values (else 32): fused and unfused give the same outputs with a 7 x 8 = 56-value
    pooled level (the others 224 and 896)."""
    g, new, old, x, _ = _new_and_old(tmp_path_factory, "qnhwc_se56", _se_neck(H=112, W=128), 3, hw=(112, 128))
    ref = lowbit.load(old, threads=1).run({"x": x})
    got = lowbit.load(new, threads=1).run({"x": x})
    for k in ref:
        assert np.array_equal(got[k], ref[k]), (k, np.max(np.abs(got[k] - ref[k])))


def _head_pool(H, W, O, seed):
    """A classifier head: a 3x3 stride-2 conv, a 1x1 conv (int8 out), a 1x1 conv + Relu to O channels read only by a
    GlobalAveragePool."""
    b = _Head(seed)
    h = b.conv(b.conv(b.conv("x", 3, 16, 3, stride=2), 16, 24, 1), 24, O, 1)
    p = b.op("GlobalAveragePool", [h])
    return Graph("head_pool", b.nodes, [TensorInfo("x", "float32", (1, 3, H, W))], [TensorInfo(p, "float32", None)],
                 b.inits)


@pytest.mark.parametrize("H,W,O", [(14, 14, 20), (32, 48, 44)])  # 49 pixels: 8 partial sums; 384: 32
def test_head_pool_reads_f32_nhwc_with_the_unfused_bits(tmp_path, H, W, O):
    """A GlobalAveragePool that is the only reader of a chain conv's f32 output: the conv writes f32 NHWC
    and the pool is global_avg_pool_nhwc_f32 (EfficientNet's head), the bits of the package without int8
    NHWC on every ISA path and thread count (O % 8 != 0: vector channels and a scalar tail; at 2 threads
    channel blocks of 24 and O - 24). The 7x7 map's 1x1 tiles (13 pixels at 1 thread, 25 at 2) end in a 1-pixel
    tail that runs as blocks of 4 + 3, int8 and float out."""
    g = _head_pool(H, W, O, 7)
    new = write_package(g, tmp_path / "new.lbpk", target="auto", scheme="w8a8")
    old = write_package(g, tmp_path / "old.lbpk", target="auto", scheme="w8a8", int8_nhwc=False)
    ops = runtime_ops(g)
    kernels = [o["kernel"] for o in ops]
    assert "global_avg_pool_nhwc_f32" in kernels and "global_avg_pool_f32" not in kernels, kernels
    conv = next(o for o in ops if o["kernel"] == "qconv2d_nhwc_q8" and "f32_nhwc" in o["attrs"]["outs"])
    assert conv["attrs"]["outs"] == ["f32_nhwc"], conv["attrs"]
    x = np.random.default_rng(3).standard_normal((1, 3, H, W)).astype(np.float32)
    ref = lowbit.load(old, threads=1).run({"x": x})
    for t in (1, 2):
        got = lowbit.load(new, threads=t).run({"x": x})
        for k in ref:
            assert np.array_equal(got[k], ref[k]), (t, k, np.max(np.abs(got[k] - ref[k])))
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, numpy as np, lowbit; s = lowbit.load(sys.argv[1], threads=int(sys.argv[4])); "
            "r = s.run({'x': np.load(sys.argv[2])}); np.savez(sys.argv[3], **r)")
    for isa in ("scalar", "avx2"):
        for t in (1, 2):
            out = tmp_path / f"{isa}{t}.npz"
            subprocess.run([sys.executable, "-c", code, str(new), str(tmp_path / "x.npy"), str(out), str(t)],
                           env=dict(os.environ, LOWBIT_ISA=isa), check=True)
            for k, v in np.load(out).items():
                assert np.array_equal(v, ref[k]), (isa, t, k)


@pytest.mark.qemu
def test_se_gates_on_aarch64_give_the_x86_bits(neck, native_host, native_aarch64):
    from lowbit_testutil import run

    g, new, _, x, d = neck
    np.save(d / "xa.npy", x)
    outs = {}
    for name, cmd in (("x86", [native_host / "lowbit-run"]),
                      ("arm", ["qemu-aarch64", "-cpu", "max", native_aarch64 / "lowbit-run"])):
        o = d / f"out_{name}"
        o.mkdir(exist_ok=True)
        r = run(cmd + ["run", new, "--input", f"x={d / 'xa.npy'}", "--output", o])
        assert r.returncode == 0, r.stdout + r.stderr
        outs[name] = {p.stem: np.load(p) for p in sorted(o.glob("*.npy"))}
    assert sorted(outs["x86"]) == sorted(outs["arm"]) == sorted(t.name for t in g.outputs)
    for k in outs["x86"]:
        np.testing.assert_array_equal(outs["arm"][k], outs["x86"][k])


@pytest.mark.parametrize("attr,value,words", [
    ("residual", 2, "residual"),
    ("outs", ["f64"], "unknown"),
    ("scale", -1.0, "scale > 0"),
    ("sizes", None, "pixels"),
])
def test_se_gate_bad_attributes_are_refused_by_name(tmp_path, monkeypatch, attr, value, words):
    from lowbit.exporters import lbpk_nhwc

    real = lbpk_nhwc.int8_nhwc

    def corrupt(low, **kw):
        real(low, **kw)
        op = next(o for o in low.ops if o["kernel"] == "se_gate_nhwc_q8" and len(o["inputs"]) > 4)
        if value is None:  # the upsampling's scales replaced by ones that do not reach input 0's size
            low.consts[op["inputs"][5]] = np.array([1, 1, 3, 3], np.float32)
        else:
            op["attrs"][attr] = value
        corrupt.name = op["name"]

    monkeypatch.setattr(lbpk_nhwc, "int8_nhwc", corrupt)
    pkg = write_package(_se_neck(), tmp_path / "bad.lbpk", target="x86-64-avx2", scheme="w8a8")
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.load(pkg).run({"x": np.zeros((1, 3, 32, 48), np.float32)})
    msg = str(e.value)
    assert corrupt.name in msg and words in msg, msg
