"""int8 NHWC chains of quantized convs (quantize_nhwc_q8 / qconv2d_nhwc_q8, docs/runtime.md
"Quantized Conv: int8 NHWC chains").

The exporter rewrites chains of static-int8 convs so activations stay int8 NHWC between them; the
epilogue of each conv computes the same float value as qconv2d_f32 and requantizes it exactly as
the next conv's quantizer does, so a chained package must give bitwise the same outputs as the
unchained one (int8_nhwc=False), for 1 and 2 threads, and the scalar references (LOWBIT_ISA=scalar)
bitwise the same as the AVX2 kernels. The graphs cover: a 3-channel stem (im2col, channel stride
3), depthwise 3x3/5x5 at strides 1/2 with asymmetric pads and dilation, 1x1 convs read in place
(C = 16, 20, 40: padded channel stride) and through the im2col path (C = 8), odd channel counts
(20, 37), odd spatial sizes, fused Relu/Clip/HardSwish, residual Adds folded into the conv, a value
read by convs with different scales, and a chain value that is also a graph output.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import lowbit
from lowbit.exporters.lbpk import runtime_ops, write_package
from lowbit.ir import ActQuant, Graph, Node, QuantWeight, TensorInfo  # noqa: F401
from lowbit.quant import weights as wq


class _Builder:
    def __init__(self, seed, qmax=None):
        self.rng = np.random.default_rng(seed)
        self.qmax = qmax  # 63: 7-bit weight codes (the gemm_q7 kernels)
        self.smooth = False  # convs marked smooth=True get --smooth divisors (act_mul) when set
        self.nodes, self.inits, self.k = [], {}, 0

    def conv(self, x, C, O, k, stride=1, pad=None, dil=1, dw=False, act=None, scale=None, zero=None, smooth=False):
        r = self.rng
        self.k += 1
        n = f"c{self.k}"
        cin = 1 if dw else C
        w = (r.standard_normal((O, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        qw = wq.quantize_rtn(w.reshape(O, -1), "int8", 0, int8_qmax=self.qmax)
        qw.orig_shape = w.shape
        pads = pad if isinstance(pad, list) else [k // 2 * dil] * 4 if pad is None else [pad] * 4
        aq = ActQuant("static", 8, float(np.float32(scale or r.uniform(0.02, 0.06))),
                      int(zero if zero is not None else r.integers(-20, 21)),
                      smooth=r.uniform(0.5, 2.0, C).astype(np.float32) if smooth and self.smooth else None)
        self.inits[f"{n}.w"] = qw
        self.inits[f"{n}.b"] = (0.1 * r.standard_normal(O)).astype(np.float32)
        self.nodes.append(Node("Conv", n, [x, f"{n}.w", f"{n}.b"], [f"{n}.y"],
                               {"kernel_shape": [k, k], "strides": [stride, stride], "pads": pads,
                                "dilations": [dil, dil], "group": C if dw else 1, "act_quant": aq}))
        y = f"{n}.y"
        if act == "relu":
            self.nodes.append(Node("Relu", f"{n}.relu", [y], [f"{n}.a"]))
            y = f"{n}.a"
        elif act == "clip":
            self.inits.setdefault("zero6", np.array(0, np.float32))
            self.inits.setdefault("six", np.array(6, np.float32))
            self.nodes.append(Node("Clip", f"{n}.clip", [y, "zero6", "six"], [f"{n}.a"]))
            y = f"{n}.a"
        elif act == "hardswish":
            self.nodes.append(Node("HardSwish", f"{n}.hs", [y], [f"{n}.a"]))
            y = f"{n}.a"
        return y

    def add(self, a, b):
        self.k += 1
        self.nodes.append(Node("Add", f"add{self.k}", [a, b], [f"add{self.k}.y"]))
        return f"add{self.k}.y"

    def graph(self, x_shape, outs):
        return Graph("chain", self.nodes, [TensorInfo("x", "float32", x_shape)],
                     [TensorInfo(o, "float32", None) for o in outs], self.inits)


def _mobile_chain(H=23, W=19, seed=0, qmax=None, smooth=False):
    b = _Builder(seed, qmax)
    b.smooth = smooth  # act_mul on the stem, a 1x1, a depthwise, the 3x3 gemm and the other-scale conv
    y = b.conv("x", 3, 24, 3, stride=2, pad=[0, 0, 1, 1], act="clip", smooth=True)  # stem, channel stride 3
    y = b.conv(y, 24, 24, 3, dw=True, act="clip")                            # dw 3x3 s1
    r0 = b.conv(y, 24, 16, 1)                                                # 1x1, padded stride in place
    y = b.conv(r0, 16, 48, 1, act="clip", smooth=True)
    y = b.conv(y, 48, 48, 3, dw=True, act="clip", smooth=True)
    y = b.add(b.conv(y, 48, 16, 1), r0)                                      # residual
    y2 = b.add(b.conv(b.conv(b.conv(y, 16, 40, 1, act="hardswish"), 40, 40, 5, dw=True, act="relu"), 40, 16, 1), y)
    y = b.conv(y2, 16, 20, 1, act="relu")                                    # odd channels (stride 32)
    y = b.conv(y, 20, 20, 3, stride=2, pad=[1, 0, 1, 1], dw=True, act="clip")  # asymmetric pads, s2
    y = b.conv(y, 20, 8, 1)                                                  # C = 8: channel stride 8
    y = b.conv(y, 8, 8, 3, dil=2, dw=True)                                   # dilation 2, narrow dw
    y = b.conv(y, 8, 37, 1, act="clip")                                      # 1x1 through im2col
    y = b.conv(y, 37, 37, 5, stride=2, dw=True, act="relu")
    z = b.conv(y, 37, 24, 3, stride=1, act="hardswish", smooth=True)         # 3x3 gemm on NHWC im2col
    w = b.conv(y, 37, 12, 1, scale=0.11, zero=3, smooth=True)                # same input, other scale
    return b.graph(("N", 3, "H", "W"), [z, w, y2]), (1, 3, H, W)


def _packages(gr, tmp_path):
    new = write_package(gr, tmp_path / "chain.lbpk", target="x86-64-avx2", scheme="w8a8")
    old = write_package(gr, tmp_path / "plain.lbpk", target="x86-64-avx2", scheme="w8a8", int8_nhwc=False)
    return new, old


@pytest.mark.parametrize("hw", [(23, 19, None, False), (64, 70, 63, False), (31, 29, None, True)])  # 7-bit, smooth
def test_chain_bitwise_equal_to_unchained(tmp_path, hw):
    gr, shape = _mobile_chain(hw[0], hw[1], qmax=hw[2], smooth=hw[3])
    if hw[3]:  # --smooth multipliers: applied where the int8 input is made (producer epilogue / entry)
        ops = runtime_ops(gr)
        assert any("oq_mul" in o["attrs"] for o in ops) and len(ops[0]["inputs"]) == 2
    new, old = _packages(gr, tmp_path)
    kernels = [o["kernel"] for o in lowbit.load(new).manifest["ops"]]
    assert kernels.count("qconv2d_nhwc_q8") == 17 and "qconv2d_f32" not in kernels, kernels
    # the stem's input and the 12-channel conv's other scale (from the producer's f32 NHWC output)
    assert kernels.count("quantize_nhwc_q8") == 1 and kernels.count("quantize_f32nhwc_q8") == 1
    assert "add" not in kernels  # both residual Adds folded into their convs
    x = np.random.default_rng(1).standard_normal((2,) + shape[1:]).astype(np.float32)  # batch 2
    ref = lowbit.load(old, threads=1).run({"x": x})
    for threads in (1, 2):
        got = lowbit.load(new, threads=threads).run({"x": x})
        assert got.keys() == ref.keys()
        for k in ref:
            assert got[k].shape == ref[k].shape
            assert np.array_equal(got[k], ref[k]), (k, threads, np.max(np.abs(got[k] - ref[k])))
    assert max(np.abs(v).max() for v in ref.values()) > 0.5  # the chain did not saturate to nothing


def test_chain_outputs_and_folding(tmp_path):
    gr, _ = _mobile_chain()
    ops = runtime_ops(gr)
    by_out = {o: op for op in ops for o in op["outputs"]}
    # a residual value is kept as f32 NHWC for the Add folded into a later conv, plus int8 for the next conv
    r0 = by_out["c3.y.q8"]
    assert r0["attrs"]["outs"] == ["q8", "f32_nhwc"]
    # the graph output read by a later conv: int8 for the conv, f32 NCHW under its own name
    assert by_out["add11.y"]["attrs"]["outs"] == ["q8", "f32"]
    folded = [op for op in ops if op["kernel"] == "qconv2d_nhwc_q8" and len(op["inputs"]) == 5]
    assert len(folded) == 2 and all(op["inputs"][4].endswith(".nhwc") for op in folded)
    # 3x3 gemm weights are repacked in (ky, kx, c) order under a new name
    stem = [op for op in ops if op["name"] == "c1"][0]
    assert stem["inputs"][1] == "c1.w.nhwc" and stem["inputs"][0] == "x.q8"
    assert runtime_ops(gr, int8_nhwc=False)[0]["kernel"] == "qconv2d_f32"


_CHILD = r"""
import sys, numpy as np, lowbit
s = lowbit.load(sys.argv[1], threads=int(sys.argv[4]))
x = np.load(sys.argv[2])
np.savez(sys.argv[3], **s.run({"x": x}))
s.enable_profiling(True); s.run({"x": x})
print(sorted({e["isa"] for e in s.profile_events() if "nhwc" in e["kernel"]}))
"""


def test_chain_scalar_path_bitwise_equal(tmp_path):
    """The scalar references (LOWBIT_ISA=scalar: depthwise, requantization, quantize, GEMM) and the
    AVX2 path give the same bits."""
    gr, shape = _mobile_chain(41, 37, seed=3, qmax=63, smooth=True)
    new, _ = _packages(gr, tmp_path)
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res, isas = {}, {}
    for isa in ("scalar", None):
        env = dict(os.environ)
        env.pop("LOWBIT_ISA", None)
        if isa:
            env["LOWBIT_ISA"] = isa
        out = tmp_path / f"y_{isa}.npz"
        r = subprocess.run([sys.executable, "-c", _CHILD, str(new), str(tmp_path / "x.npy"), str(out), "2"], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        isas[isa] = r.stdout.strip()
        res[isa] = dict(np.load(out))
    assert isas["scalar"] == "['scalar']", isas
    for k in res[None]:
        assert np.array_equal(res["scalar"][k], res[None][k]), k


def test_chain_bad_input_fails_cleanly(tmp_path):
    gr, shape = _mobile_chain()
    new, _ = _packages(gr, tmp_path)
    s = lowbit.load(new)
    with pytest.raises(lowbit.LowbitError, match="input"):
        s.run({"x": np.zeros((1, 3, 23), np.float32)})
    with pytest.raises(lowbit.LowbitError, match="shape|empty"):  # too small for the stem's 3x3 window
        s.run({"x": np.zeros((1, 3, 1, 1), np.float32)})


@pytest.mark.parametrize("case", [dict(C=13, O=21, k=3, stride=2, pad=[1, 0, 1, 1]), dict(C=32, O=24, k=3, dil=2),
                                  dict(C=8, O=16, k=5, stride=2, pad=2, act="clip"), dict(C=16, O=8, k=3, smooth=True)])
def test_lone_kxk_conv_goes_nhwc(tmp_path, case):
    """A KxK group-1 conv with no chain neighbour is rewritten too (quantize_nhwc_q8 + int8 im2col):
    same bits as qconv2d_f32, which matches the numpy reference (tests/runtime/test_qconv_ops.py).
    C = 8 / 16 / 32 take the entry quantizer's 8-channel transposing AVX2 path (29 x 31 pixels: a tail of
    3; C = 16: padding channels to 32, and smoothing multipliers)."""
    from lowbit.refexec import RefExecutor

    b = _Builder(7)
    b.smooth = True  # only for the case marked smooth=True
    y = b.conv("x", **case)
    gr = b.graph(("N", case["C"], 29, 31), [y])
    assert [o["kernel"] for o in runtime_ops(gr)] == ["quantize_nhwc_q8", "qconv2d_nhwc_q8"]
    new, old = _packages(gr, tmp_path)
    x = np.random.default_rng(2).standard_normal((1, case["C"], 29, 31)).astype(np.float32)
    got, ref = lowbit.load(new, threads=2).run({"x": x})[y], lowbit.load(old).run({"x": x})[y]
    assert np.array_equal(got, ref)
    r = RefExecutor(gr).run({"x": x})[y]
    assert np.max(np.abs(got - r)) <= 2e-6 * np.max(np.abs(r))
    # a lone 1x1 or depthwise conv stays qconv2d_f32
    b = _Builder(8)
    gr = b.graph(("N", 8, 9, 9), [b.conv(b.conv("x", 8, 8, 3, dw=True), 8, 16, 1, scale=0.3)])
    assert "qconv2d_nhwc_q8" in [o["kernel"] for o in runtime_ops(gr)]  # ... unless they chain
    b = _Builder(9)
    gr = b.graph(("N", 8, 9, 9), [b.conv("x", 8, 8, 3, dw=True)])
    assert [o["kernel"] for o in runtime_ops(gr)] == ["qconv2d_f32"]


def _affine_chain(seed=5):
    """PP-OCR style: each conv is followed by float ops that fold into its epilogue."""
    b = _Builder(seed)
    r = b.rng

    def tail(y, C, k):
        b.inits[f"bias{k}"] = (0.3 * r.standard_normal((1, C, 1, 1))).astype(np.float32)
        b.inits[f"s{k}"] = np.array([r.uniform(0.5, 2)], np.float32)
        b.inits[f"t{k}"] = np.array([r.uniform(-0.5, 0.5)], np.float32)
        b.inits[f"cm{k}"] = r.uniform(0.5, 1.5, (C, 1, 1)).astype(np.float32)
        b.nodes += [Node("Add", f"ab{k}", [y, f"bias{k}"], [f"ab{k}.y"]),
                    Node("Mul", f"ms{k}", [f"s{k}", f"ab{k}.y"], [f"ms{k}.y"]),
                    Node("Add", f"at{k}", [f"ms{k}.y", f"t{k}"], [f"at{k}.y"]),
                    Node("HardSigmoid", f"hs{k}", [f"at{k}.y"], [f"hs{k}.y"], {"alpha": 1 / 6, "beta": 0.5}),
                    Node("Mul", f"sw{k}", [f"hs{k}.y", f"at{k}.y"], [f"sw{k}.y"]),
                    Node("Mul", f"cm{k}", [f"sw{k}.y", f"cm{k}"], [f"cm{k}.y"])]
        return f"cm{k}.y"

    y = tail(b.conv("x", 3, 16, 3, stride=2), 16, 1)
    y = tail(b.conv(y, 16, 16, 3, dw=True), 16, 2)
    y = b.conv(y, 16, 40, 1)
    b.inits["bias4"] = (0.3 * r.standard_normal((1, 40, 1, 1))).astype(np.float32)
    b.nodes.append(Node("Add", "ab4", ["bias4", y], ["ab4.y"]))
    b.nodes.append(Node("Relu", "relu", ["ab4.y"], ["relu.y"]))
    b.nodes.append(Node("HardSigmoid", "gate", ["relu.y"], ["gate.y"], {"alpha": 0.2, "beta": 0.5}))
    y = tail(b.conv("gate.y", 40, 24, 1), 24, 3)
    return b.graph(("N", 3, "H", "W"), [y]), y


def test_folded_elementwise_ops_bitwise(tmp_path):
    """Add/Mul by scalar and per-channel constants, x * HardSigmoid(x), Relu, HardSigmoid fold into
    the conv epilogues (no float op left) and give the unchained package's bits, AVX2 and scalar."""
    gr, y = _affine_chain()
    ops = runtime_ops(gr)
    assert [o["kernel"] for o in ops] == ["quantize_nhwc_q8"] + ["qconv2d_nhwc_q8"] * 4, [o["kernel"] for o in ops]
    assert ops[1]["attrs"]["post"][0] == ["add_c", 5] and ops[1]["attrs"]["post"][3][0] == "hswish"
    assert [s[0] for s in ops[3]["attrs"]["post"]] == ["add_c", "relu", "hsig"]
    new, old = _packages(gr, tmp_path)
    x = np.random.default_rng(6).standard_normal((1, 3, 30, 27)).astype(np.float32)
    ref = lowbit.load(old).run({"x": x})[y]
    np.save(tmp_path / "x.npy", x)
    for isa in ("scalar", None):
        env = dict(os.environ)
        env.pop("LOWBIT_ISA", None)
        if isa:
            env["LOWBIT_ISA"] = isa
        out = tmp_path / f"y_{isa}.npz"
        r = subprocess.run([sys.executable, "-c", _CHILD, str(new), str(tmp_path / "x.npy"), str(out), "1"], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        got = np.load(out)[y]
        assert np.array_equal(got, ref), (isa, np.max(np.abs(got - ref)))
    assert np.abs(ref).max() > 0.1


def test_small_k_1x1_convs_bitwise(tmp_path):
    """1x1 convs with K <= 64 and 7-bit weights run the small-K u8 x s8 path on AVX2 (ops_qnhwc.cpp, smallk_tile):
    K = 64 / 33 / 17 / 12 / 40 / 24 (3-16 quads, a partial last quad, channel strides 64 / 32 / 12 read in place),
    O = 9 / 17 / 12 / 3 / 112 / 129 (a lone or trailing panel, tails of 1-7 channels); K = 9 and K = 3 (channel
    stride < round_up(K, 4)), K = 65, 112 and 129 keep the GEMM. Same bits as the unchained package (qconv2d_f32:
    gemm_q7), as the scalar GEMM reference (LOWBIT_ISA=scalar), and at 1 and 2 threads."""
    b = _Builder(11, qmax=63)
    y = b.conv("x", 3, 64, 3, stride=2, act="relu")
    y = b.conv(y, 64, 9, 1, act="clip")            # K 64, O 9
    y = b.conv(y, 9, 33, 1)                        # K 9, stride 9: the GEMM path
    y = b.conv(y, 33, 17, 1, act="relu")           # K 33 (9 quads), O 17
    y = b.conv(y, 17, 12, 1, zero=-128)            # K 17, O 12
    y = b.conv(y, 12, 3, 1, act="hardswish")       # K 12, stride 12, O 3
    y = b.conv(y, 3, 65, 1, act="relu")            # K 3 (stride 3: a 4-byte quad would overrun): GEMM
    y = b.conv(y, 65, 40, 1, act="relu")           # K 65: the GEMM
    y = b.conv(y, 40, 112, 1)                      # K 40 (stride 64), O 112
    y = b.conv(y, 112, 24, 1)                      # K 112: the GEMM
    y = b.conv(y, 24, 129, 1, act="relu")          # K 24, O 129
    y = b.conv(y, 129, 33, 1)                      # K 129: the GEMM
    gr = b.graph(("N", 3, "H", "W"), [y])
    new, old = _packages(gr, tmp_path)
    x = np.random.default_rng(12).standard_normal((2, 3, 27, 22)).astype(np.float32)
    ref = lowbit.load(old, threads=1).run({"x": x})[y]
    assert np.abs(ref).max() > 0.1
    for threads in (1, 2):
        assert np.array_equal(lowbit.load(new, threads=threads).run({"x": x})[y], ref), threads
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, LOWBIT_ISA="scalar")
    r = subprocess.run([sys.executable, "-c", _CHILD, str(new), str(tmp_path / "x.npy"), str(tmp_path / "s.npz"), "1"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "s.npz")[y], ref)


def test_depthwise_int8_store_bitwise(tmp_path):
    """Depthwise convs whose epilogue is only Relu / Clip / nothing + requantization write int8 codes straight from
    the four-pixel AVX2 kernels (ops_qnhwc.cpp, DwQ8; C % 16 == 0): C = 16 / 32 / 48 / 64 (output channel stride 32
    / 32 / 64 / 64: zero padding bytes), 3x3 and 5x5, strides 1 and 2, interior and border pixels, odd tile tails,
    a zero point of -128 and a conv whose output is also a graph output (f32: the float path). Same bits as the
    unchained package, at 1 and 2 threads, and as the scalar depthwise (LOWBIT_ISA=scalar)."""
    b = _Builder(21, qmax=63)
    y = b.conv("x", 3, 16, 3, stride=2, act="relu")
    y = b.conv(y, 16, 16, 3, dw=True, act="clip")               # C 16, Os 32
    y = b.conv(y, 16, 32, 1, act="relu")
    y = b.conv(y, 32, 32, 5, stride=2, dw=True, act="relu")     # 5x5 s2, relu
    y = b.conv(y, 32, 48, 1)
    y = b.conv(y, 48, 48, 3, dw=True, zero=-128)                # no act, Os 64
    y = b.conv(y, 48, 64, 1, act="clip")
    y1 = b.conv(y, 64, 64, 5, dw=True, act="clip")              # 5x5 s1: mostly border pixels
    y = b.conv(y1, 64, 24, 1)
    gr = b.graph(("N", 3, "H", "W"), [y, y1])
    new, old = _packages(gr, tmp_path)
    x = np.random.default_rng(22).standard_normal((2, 3, 45, 38)).astype(np.float32)
    ref = lowbit.load(old, threads=1).run({"x": x})
    assert np.abs(ref[y]).max() > 0.1
    for threads in (1, 2):
        got = lowbit.load(new, threads=threads).run({"x": x})
        for k in ref:
            assert np.array_equal(got[k], ref[k]), (k, threads)
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, LOWBIT_ISA="scalar")
    r = subprocess.run([sys.executable, "-c", _CHILD, str(new), str(tmp_path / "x.npy"), str(tmp_path / "s.npz"), "1"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for k in ref:
        assert np.array_equal(np.load(tmp_path / "s.npz")[k], ref[k]), k


_CHILD_ISA = r"""
import sys, numpy as np, lowbit
s = lowbit.load(sys.argv[1], threads=int(sys.argv[4]))
x = np.load(sys.argv[2])
np.savez(sys.argv[3], **s.run({"x": x}))
s.enable_profiling(True); s.run({"x": x})
print(";".join(f"{e['op_name']}={e['isa']}" for e in s.profile_events() if e["kernel"] == "qconv2d_nhwc_q8"))
"""


def _has_vnni():
    return "avx512vnni" in lowbit.native().isa_usable()  # the path LOWBIT_ISA=avx512vnni selects


@pytest.mark.parametrize("qmax", [None, 63])  # 8-bit codes (the VNNI targets' w8a8) and 7-bit ones
def test_vnni_1x1_and_depthwise_bitwise(tmp_path, qmax):
    """The AVX-512 VNNI paths of ops_qnhwc.cpp (session 10): 1x1 convs read in place (pw_vnni_tile: 6 pixels x 4
    panels of vpdpbusd; K = 16 / 24 / 33 (a partial last quad) / 40 / 100 / 200 / 520, O = 9 (channel stride 9: the
    float tile + epilogue), 17 / 40 / 129 (partial panels, a lone trailing panel), 64; int8 out from registers with
    none / Relu / Clip, smoothing multipliers with and without Clip, a range guard that is needed (an output scale of
    1e-10: x / s past 2^31, codes saturate) and not; residual Adds and f32 NHWC copies from registers (pw_finish_res:
    with and without multipliers, O 100: a 4-channel last panel); the float tile for HardSwish and graph outputs) and
    depthwise
    (dw4_vnni: 4 taps per vpdpbusd; C = 16 / 48 (a 16-channel last block) / 64 / 96, 3x3, 5x5 stride 2, 3x3 dilation
    2, 7x7 (a one-tap last quad, session 12), 2x2 (a full one), odd maps, border pixels). Same bits as
    LOWBIT_ISA=avx2, scalar and the unchained package, at 1 and 2 threads; the ops report avx512vnni."""
    if not _has_vnni():
        pytest.skip("this CPU has no AVX-512 VNNI")
    b = _Builder(31, qmax=qmax)
    b.smooth = True
    y = b.conv("x", 3, 16, 3, stride=2, act="relu")
    y = b.conv(y, 16, 16, 3, dw=True, act="clip")                 # dw C 16
    y = b.conv(y, 16, 40, 1, act="clip", smooth=True)             # K 16, O 40: 4 + 1 panels (dw above: AVX2,
                                                                  # its output has multipliers)
    r0 = b.conv(y, 40, 40, 5, stride=2, dw=True, act="relu")      # dw C 40 (not % 16: AVX2), 5x5 s2
    y = b.conv(r0, 40, 24, 1, smooth=True)                        # K 40, O 24 (3 panels), multipliers
    y = b.conv(y, 24, 48, 1, act="clip", smooth=True)             # K 24, clip + multipliers (float clamp)
    y = b.conv(y, 48, 48, 3, dw=True, dil=2, act="clip")          # dw C 48, dilation 2
    g1 = b.conv(y, 48, 33, 1, act="relu", scale=1e-10)            # K 48; its input scale 1e-10: the dw's guard
    y = b.conv(g1, 33, 17, 1, act="relu")                         # K 33 (9 quads), O 17; the 1x1's guard (below)
    g2 = b.conv(y, 17, 64, 1, act="hardswish", scale=1e-10)       # float tile + epilogue
    y = g2
    y = b.conv(y, 64, 64, 7, dw=True, act="clip")                 # dw C 64, 7x7 (13 quads)
    r1 = b.conv(y, 64, 100, 1)                                    # also kept f32 NHWC for the residual
    y2 = b.add(b.conv(r1, 100, 100, 1), r1)                       # the residual Add folded into the conv
    y3 = b.add(b.conv(y2, 100, 100, 1), y2)                       # residual, kept f32 for the next residual too
    y3 = b.add(b.conv(y3, 100, 100, 1), y3)                       # residual, multipliers (the next conv's)
    y = b.conv(y3, 100, 96, 1, act="clip", smooth=True)           # K 100 (25 quads)
    y = b.conv(y, 96, 96, 3, dw=True, act="relu")                 # dw C 96
    y = b.conv(y, 96, 96, 2, dw=True, pad=[0, 0, 1, 1])          # dw 2x2: a full last quad (9, 25, 49 taps: one tap)
    y = b.conv(y, 96, 200, 1, act="relu")                         # K 96, O 200
    y = b.conv(y, 200, 129, 1)                                    # K 200, O 129: a 1-channel last group
    y = b.conv(y, 129, 520, 1, act="clip")                        # K 129
    y = b.conv(y, 520, 9, 1)                                      # K 520, O 9 (Os 9: float tile)
    z = b.conv(y, 9, 20, 1, act="relu")                           # K 9: channel stride 9 (GEMM / im2col)
    gr = b.graph(("N", 3, "H", "W"), [z, y2, g1, g2])  # g1 / g2: outputs that show the guarded codes (tiny values)
    new, old = _packages(gr, tmp_path)
    x = np.random.default_rng(32).standard_normal((2, 3, 53, 47)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ref = lowbit.load(old, threads=1).run({"x": x})
    assert np.abs(ref[z]).max() > 0.1
    isas = {}
    for isa, threads in (("avx512vnni", 1), ("avx512vnni", 2), ("avx2", 2), ("scalar", 1)):
        out = tmp_path / f"y_{isa}_{threads}.npz"
        r = subprocess.run([sys.executable, "-c", _CHILD_ISA, str(new), str(tmp_path / "x.npy"), str(out), str(threads)],
                           env=dict(os.environ, LOWBIT_ISA=isa), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        isas[isa] = dict(kv.split("=") for kv in r.stdout.strip().split(";"))
        got = dict(np.load(out))
        for k in ref:
            assert np.array_equal(got[k], ref[k]), (isa, threads, k, np.max(np.abs(got[k] - ref[k])))
    v = isas["avx512vnni"]
    ops = {o["name"]: o for o in runtime_ops(gr) if o["kernel"] == "qconv2d_nhwc_q8"}
    for name, op in ops.items():
        a = op["attrs"]
        one = a["mode"] == "gemm" and a["kernel_shape"] == [1, 1] and a["k"] >= 16  # in place: channel stride == kp
        dwq = a["mode"] == "depthwise" and a["group"] % 16 == 0 and a["outs"] == ["q8"] and "oq_mul" not in a
        if one or dwq:
            assert v[name] == "avx512vnni", (name, v[name])
    assert "avx512vnni" not in isas["avx2"].values()
