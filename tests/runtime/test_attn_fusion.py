"""Transformer fusions of the exporter (exporters/lbpk_attn.py) and the fused attention op
(native/src/ops/ops_attn.cpp): the BERT-style MatMul/Mul/Add/Softmax/MatMul chain with its Reshape/Transpose
copies becomes one attention_f32 op, x*0.5*(1+Erf(x/sqrt2)) becomes gelu_f32, and bias Adds fold into the
GEMM, a residual Add becomes the LayerNorm's skip input, constant MatMul weights are stored in the GEMM's
panel layout. Outputs are checked against ONNX Runtime on the unfused ONNX graph, on the AVX2 and on the portable
(LOWBIT_ISA=scalar) path, bitwise equal for 1 and 2 threads; a pattern with an intermediate graph output
stays unfused."""
from __future__ import annotations


import numpy as np
import pytest

from runtime_helpers import assert_rel_close, fp32_graph_case, run_scalar_path

# name: (B, S, heads, head size, mask shape or None, scale op)
CASES = {
    "bert": (1, 16, 4, 8, (1, 1, 1, 16), "Mul"),
    "tails": (2, 13, 3, 5, (2, 1, 13, 13), "Div"),  # S and D not multiples of 8: vector tails, edge panels
    "nomask": (1, 9, 2, 16, None, "Mul"),
    "headmask": (2, 9, 2, 4, (1, 2, 9, 9), "Mul"),  # a mask per head, broadcast over the batch; N = 8
    # MiniLM's head size on the AVX2 small-head path: a 6-row tile with 1 row left, 37 keys (8x8 K^T blocks + 5)
    "head32": (1, 37, 2, 32, (1, 1, 1, 37), "Mul"),
}


def _graph(case, extra_outputs=()):
    from onnx import TensorProto, helper

    B, S, H, D, mshape, scale_op = case
    E = H * D
    rng = np.random.default_rng(3)
    inits = {"two": np.array(np.sqrt(2.0), np.float32), "one": np.array(1.0, np.float32),
             "half": np.array(0.5, np.float32), "scale": np.array(np.sqrt(D) if scale_op == "Div" else 1 / np.sqrt(D),
                                                                  np.float32),
             "shape4": np.array([B, S, -1, D], np.int64), "shape3": np.array([B, S, -1], np.int64)}
    nodes = []
    for t in "qkv":
        inits[f"W{t}"] = (rng.standard_normal((E, E)) / np.sqrt(E)).astype(np.float32)
        inits[f"b{t}"] = rng.standard_normal(E).astype(np.float32) * 0.1
        perm = [0, 2, 3, 1] if t == "k" else [0, 2, 1, 3]
        nodes += [helper.make_node("MatMul", ["x", f"W{t}"], [f"{t}m"]),
                  helper.make_node("Add", [f"b{t}", f"{t}m"], [f"{t}a"]),
                  helper.make_node("Reshape", [f"{t}a", "shape4"], [f"{t}r"]),
                  helper.make_node("Transpose", [f"{t}r"], [f"{t}t"], perm=perm)]
    nodes += [helper.make_node("MatMul", ["qt", "kt"], ["s"]),
              helper.make_node(scale_op, ["s", "scale"], ["ss"])]
    sm_in = "ss"
    inputs = [("x", [B, S, E])]
    if mshape is not None:
        nodes.append(helper.make_node("Add", ["ss", "mask"], ["sm"]))
        inputs.append(("mask", list(mshape)))
        sm_in = "sm"
    nodes += [helper.make_node("Softmax", [sm_in], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "vt"], ["o"]),
              helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ot", "shape3"], ["att"]),
              # GELU (erf form, as torch exports it)
              helper.make_node("Div", ["att", "two"], ["g0"]), helper.make_node("Erf", ["g0"], ["g1"]),
              helper.make_node("Add", ["g1", "one"], ["g2"]), helper.make_node("Mul", ["att", "g2"], ["g3"]),
              helper.make_node("Mul", ["g3", "half"], ["y"]),
              # a dense layer with GELU (Mul by 1/sqrt2 this time): the GELU becomes the MatMul's epilogue
              helper.make_node("MatMul", ["att", "Wo"], ["dm"]), helper.make_node("Add", ["dm", "bo"], ["d"]),
              helper.make_node("Mul", ["d", "rsqrt2"], ["h0"]), helper.make_node("Erf", ["h0"], ["h1"]),
              helper.make_node("Add", ["one", "h1"], ["h2"]), helper.make_node("Mul", ["h2", "d"], ["h3"]),
              helper.make_node("Mul", ["half", "h3"], ["z"]),
              # residual Add + LayerNormalization: the Add becomes the LayerNorm's skip input
              helper.make_node("Add", ["att", "x"], ["r"]),
              helper.make_node("LayerNormalization", ["r", "lnw", "lnb"], ["n"], axis=-1, epsilon=1e-5)]
    inits["lnw"] = rng.standard_normal(E).astype(np.float32)
    inits["lnb"] = rng.standard_normal(E).astype(np.float32)
    inits["Wo"] = (rng.standard_normal((E, 2 * E)) / np.sqrt(E) * 3).astype(np.float32)  # wide range into GELU
    inits["bo"] = rng.standard_normal(2 * E).astype(np.float32)
    inits["rsqrt2"] = np.array(1 / np.sqrt(2.0), np.float32)
    return nodes, inputs, inits, ("y", "z", "n") + tuple(extra_outputs)


def _build(tmp_path, name, extra_outputs=()):
    nodes, inputs, inits, outs = _graph(CASES[name], extra_outputs)
    pkg, feeds, ref = fp32_graph_case(tmp_path, name, nodes, inputs, inits, outs=outs)
    if "mask" in feeds:  # an additive mask as BERT builds it: 0 or a large negative value
        feeds["mask"] = np.where(feeds["mask"] > 0.5, np.float32(-1e4), np.float32(0)).astype(np.float32)
        from runtime_helpers import ort_run

        ref = ort_run(tmp_path / f"{name}.onnx", feeds)
    return pkg, feeds, ref


def _kernels(pkg):
    import lowbit

    return [op["kernel"] for op in lowbit.load(pkg).manifest["ops"]]


@pytest.mark.parametrize("name", sorted(CASES))
def test_attention_fused_matches_ort(tmp_path, name):
    import lowbit

    pkg, feeds, ref = _build(tmp_path, name)
    s = lowbit.load(pkg)
    ks = [op["kernel"] for op in s.manifest["ops"]]
    assert ks.count("attention_f32") == 1 and ks.count("gelu_f32") == 1, ks
    for k in ("softmax_f32", "transpose", "erf_f32", "add", "mul", "div"):
        assert k not in ks, f"{name}: {k} left after the fusions: {ks}"
    # Q, K and V: one GEMM over the concatenated weights, the attention reads its column blocks
    assert [op["attrs"].get("post") for op in s.manifest["ops"] if op["kernel"] == "matmul_f32"] == [None, "gelu"]
    E = CASES[name][2] * CASES[name][3]
    att = next(op for op in s.manifest["ops"] if op["kernel"] == "attention_f32")
    assert att["attrs"]["cols"] == [0, E, 2 * E] and att["attrs"]["width"] == E and len(set(att["inputs"][:3])) == 1
    assert [len(op["inputs"]) for op in s.manifest["ops"] if op["kernel"] == "layer_norm_f32"] == [4]
    B, S = CASES[name][:2]  # weights stored in panels when A has >= 16 rows (else the few-rows GEMM)
    panels = [op["attrs"].get("b_panels") for op in s.manifest["ops"] if op["kernel"] == "matmul_f32"]
    assert panels == ([3 * E, 2 * E] if B * S >= 16 else [None] * 2), panels
    outs = {}
    for t in (1, 2):
        outs[t] = lowbit.load(pkg, threads=t).run(feeds)
        for k in ("y", "z", "n"):
            assert_rel_close(outs[t][k], ref[k], 1e-4, f"{name} {k} threads={t}")
            assert np.array_equal(outs[1][k], outs[t][k]), f"{name}: 1 and 2 threads differ"


def test_attention_not_fused_with_an_intermediate_output(tmp_path):
    """The Softmax output is a graph output: the chain must stay as it is (and still be right)."""
    import lowbit

    pkg, feeds, ref = _build(tmp_path, "bert", extra_outputs=("p",))
    ks = _kernels(pkg)
    assert "attention_f32" not in ks and "softmax_f32" in ks, ks
    out = lowbit.load(pkg).run(feeds)
    for k in ("y", "z", "n", "p"):
        assert_rel_close(out[k], ref[k], 1e-4, k)


def test_attention_portable_path(tmp_path):
    """LOWBIT_ISA=scalar runs the portable softmax row and GEMM (what a non-x86 build runs)."""
    for name in ("tails", "headmask", "head32"):
        pkg, feeds, ref = _build(tmp_path, name)
        got, isa = run_scalar_path(pkg, feeds, tmp_path, kernel="attention_f32")
        assert isa == "scalar", f"{name}: attention ran {isa}"
        for k in ("y", "z", "n"):
            assert_rel_close(got[k], ref[k], 1e-4, f"scalar {name} {k}")


def test_attention_lowered_attrs(tmp_path):
    """The fused op keeps what the Reshapes fixed: head size (heads left to -1), scale, the leading dims."""
    from lowbit.exporters import lbpk, lbpk_attn
    from lowbit.importers.onnx_import import import_onnx

    _build(tmp_path, "tails")
    _, inputs, _, _ = _graph(CASES["tails"])
    low = lbpk._Lowering(import_onnx(str(tmp_path / "tails.onnx"), {n: s_ for n, s_ in inputs}))
    low.run()
    counts = lbpk_attn.fuse_transformer(low)
    assert counts == {"attention": 1, "mask": 0, "gelu": 2, "bias": 4, "qkv": 1, "residual": 1, "packed": 2,
                      "embedding": 0}, counts
    att = next(op for op in low.ops if op["kernel"] == "attention_f32")
    assert att["attrs"]["head_dim"] == 5 and "heads" not in att["attrs"]
    assert att["attrs"]["lead"] == [2, 13, 2, 13, 2, 13]
    assert abs(att["attrs"]["scale"] - 1 / np.sqrt(5)) < 1e-7


def _bool_mask_case(tmp_path, name, extra_user=False):
    """CASES[name] with its additive mask built as BERT exports do: Where(Expand(cond), 0, -FLT_MAX) from a bool
    input (Expand to the same shape: a no-op). With extra_user the Where output is also a graph output."""
    from onnx import TensorProto, helper, numpy_helper

    from lowbit.exporters.lbpk import write_package
    from lowbit.importers.onnx_import import import_onnx

    from runtime_helpers import ort_run

    nodes, inputs, inits, outs = _graph(CASES[name])
    mshape = list(CASES[name][4])
    inits.update({"mzero": np.array(0.0, np.float32), "mneg": np.array(np.finfo(np.float32).min, np.float32),
                  "mshape": np.array(mshape, np.int64)})
    nodes = [helper.make_node("Expand", ["cond", "mshape"], ["cond_e"]),
             helper.make_node("Where", ["cond_e", "mzero", "mneg"], ["mask"])] + nodes
    outs = outs + (("mask",) if extra_user else ())
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, inputs[0][1]),
                                        helper.make_tensor_value_info("cond", TensorProto.BOOL, mshape)],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outs],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    onnx_path = tmp_path / f"{name}_bool.onnx"
    onnx_path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    rng = np.random.default_rng(5)
    feeds = {"x": rng.standard_normal(inputs[0][1]).astype(np.float32), "cond": rng.random(mshape) > 0.3}
    feeds["cond"][..., 0] = True  # every row keeps a key
    shapes = {"x": inputs[0][1], "cond": mshape}
    pkg = tmp_path / f"{name}_bool.lbpk"
    write_package(import_onnx(str(onnx_path), shapes), pkg, target="x86-64-avx2", scheme="fp32")
    return onnx_path, pkg, feeds, ort_run(onnx_path, feeds), shapes


@pytest.mark.parametrize("name", ["bert", "head32", "headmask"])
def test_attention_bool_mask(tmp_path, name, monkeypatch):
    """Where(Expand(cond), 0, -FLT_MAX) feeding the attention: the attention reads the bool cond (attrs
    mask_true / mask_false), no where / expand op is left; outputs match ORT, and are bitwise those of the
    package that keeps the Where as an f32 mask (AVX2, 1 and 2 threads; the portable path against ORT)."""
    import lowbit
    from lowbit.exporters import lbpk_attn
    from lowbit.exporters.lbpk import write_package
    from lowbit.importers.onnx_import import import_onnx

    onnx_path, pkg, feeds, ref, shapes = _bool_mask_case(tmp_path, name)
    ops = lowbit.load(pkg).manifest["ops"]
    ks = [op["kernel"] for op in ops]
    assert "where" not in ks and "expand" not in ks, ks
    att = next(op for op in ops if op["kernel"] == "attention_f32")
    assert att["inputs"][3] == "cond" and att["attrs"]["mask_true"] == 0.0, att
    assert att["attrs"]["mask_false"] == float(np.finfo(np.float32).min), att
    monkeypatch.setattr(lbpk_attn, "_fold_mask", lambda low: 0)
    plain = tmp_path / f"{name}_plain.lbpk"
    write_package(import_onnx(str(onnx_path), shapes), plain, target="x86-64-avx2", scheme="fp32")
    assert "where" in [op["kernel"] for op in lowbit.load(plain).manifest["ops"]]
    for t in (1, 2):
        got, want = lowbit.load(pkg, threads=t).run(feeds), lowbit.load(plain, threads=t).run(feeds)
        for k in ("y", "z", "n"):
            assert_rel_close(got[k], ref[k], 1e-4, f"{name} {k} threads={t}")
            assert np.array_equal(got[k], want[k]), f"{name} {k}: bool mask differs from the f32 mask"
    got, isa = run_scalar_path(pkg, feeds, tmp_path, kernel="attention_f32")
    assert isa == "scalar", isa
    for k in ("y", "z", "n"):
        assert_rel_close(got[k], ref[k], 1e-4, f"scalar {name} {k}")


def test_attention_bool_mask_kept_when_where_is_an_output(tmp_path):
    import lowbit

    _, pkg, feeds, ref, _ = _bool_mask_case(tmp_path, "bert", extra_user=True)
    ks = [op["kernel"] for op in lowbit.load(pkg).manifest["ops"]]
    assert "where" in ks and "attention_f32" in ks, ks
    out = lowbit.load(pkg).run(feeds)
    for k in ("y", "z", "n", "mask"):
        assert_rel_close(out[k], ref[k], 1e-4, k)


def test_attention_mask_dtype_checked(tmp_path, monkeypatch):
    """A bool mask without mask_true / mask_false is refused with an error that names the mask."""
    import lowbit
    from lowbit.exporters import lbpk_attn

    fold = lbpk_attn._fold_mask

    def fold_without_values(low):
        n = fold(low)
        for op in low.ops:
            op["attrs"].pop("mask_true", None)
            op["attrs"].pop("mask_false", None)
        return n

    monkeypatch.setattr(lbpk_attn, "_fold_mask", fold_without_values)
    _, pkg, feeds, _, _ = _bool_mask_case(tmp_path, "bert")
    with pytest.raises(Exception, match="mask"):
        lowbit.load(pkg).run(feeds)
