"""Schemes, weight quantizers, GPTQ, the importer and the reference executor on small models."""
from __future__ import annotations

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.quant.schemes import parse_scheme
from lowbit.quant import weights as wq
from lowbit.quant.gptq import gptq_quantize


def test_scheme_names():
    s = parse_scheme("w4a8-g64-gptq")
    assert (s.wfmt, s.group, s.act_mode, s.algo) == ("int4", 64, "dynamic", "gptq")
    assert parse_scheme("w8a8").act_mode == "static"
    assert parse_scheme("w8a8d").act_mode == "dynamic"
    assert parse_scheme("w4a16-g128").act_mode is None
    assert parse_scheme("cb4a8-g64").algo == "kmeans"
    assert parse_scheme("t2a8").wfmt == "ternary"
    assert parse_scheme("fp32").is_float
    for bad in ("w3a8", "w4a8-g33", "int8", "w8a8-g32"):
        with pytest.raises(LowbitError):
            parse_scheme(bad)


@pytest.mark.parametrize("fmt,group,lo,hi", [("int8", 0, -127, 127), ("int4", 32, -8, 7), ("nf4", 64, 0, 15),
                                             ("fp4", 32, 0, 15), ("cb4", 64, 0, 15), ("ternary", 64, -1, 1)])
def test_rtn_codes_and_dequantize(fmt, group, lo, hi):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((48, 128)).astype(np.float32)
    qw = wq.quantize_rtn(w, fmt, group)
    assert qw.q.dtype == np.int8 and qw.q.shape == w.shape
    assert qw.q.min() >= lo and qw.q.max() <= hi
    deq = qw.dequantize()
    snr = 10 * np.log10((w ** 2).sum() / ((w - deq) ** 2).sum())
    floor = {"int8": 38, "int4": 15, "nf4": 15, "fp4": 13, "cb4": 15, "ternary": 3}[fmt]
    assert snr > floor, (fmt, snr)
    # the dequantized value is exactly the documented formula
    g = group or w.shape[1]
    vals = qw.codebook[qw.q.astype(int)] if qw.codebook is not None else qw.q.astype(np.float32)
    manual = (vals.reshape(48, -1, g) * qw.scale[:, :, None]).reshape(w.shape)
    np.testing.assert_array_equal(manual, deq)


def test_sparse_outliers_kept_exactly():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((32, 64)).astype(np.float32)
    w[3, 5] = 40.0
    qw = wq.quantize_rtn(w, "int4", 32, sparse_pct=1.0)
    idx, val = qw.outliers
    assert idx.size == round(w.size * 0.01) and 3 * 64 + 5 in idx
    assert qw.dequantize()[3, 5] == np.float16(40.0)
    plain = wq.quantize_rtn(w, "int4", 32)
    err = lambda q: ((q.dequantize() - w) ** 2).sum()  # noqa: E731
    assert err(qw) < 0.5 * err(plain)


def test_gptq_beats_rtn_on_correlated_inputs():
    rng = np.random.default_rng(2)
    k, n, s = 128, 64, 2048
    mix = rng.standard_normal((k, k)).astype(np.float32) / np.sqrt(k)
    x = rng.standard_normal((s, k)).astype(np.float32) @ mix + 0.1 * rng.standard_normal((s, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    h = 2 * x.T.astype(np.float64) @ x / s
    y = x @ w.T
    for fmt, g in (("int4", 32), ("nf4", 64)):
        rtn = wq.quantize_rtn(w, fmt, g)
        gq = gptq_quantize(w, h, fmt, g)
        e_rtn = np.mean((x @ rtn.dequantize().T - y) ** 2)
        e_gptq = np.mean((x @ gq.dequantize().T - y) ** 2)
        assert e_gptq < 0.8 * e_rtn, (fmt, e_gptq, e_rtn)
        assert gq.algo == "gptq" and gq.q.min() >= -8


def test_import_folds_bn_and_gemm(convnet_onnx, convnet_feeds):
    import onnxruntime as ort

    from lowbit.importers import import_onnx
    from lowbit.refexec import RefExecutor

    g = import_onnx(convnet_onnx)
    assert "BatchNormalization" not in g.op_types() and "Gemm" not in g.op_types()
    ref = ort.InferenceSession(str(convnet_onnx), providers=["CPUExecutionProvider"])
    for f in convnet_feeds[:3]:
        want = ref.run(None, f)[0]
        got = RefExecutor(g).run(f)["logits"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_import_fixes_shapes_and_folds_shape_subgraphs(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from lowbit.importers import import_onnx

    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Reshape", ["x", "s"], ["y"])]
    g = helper.make_graph(nodes, "shp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    p = tmp_path / "shape.onnx"
    onnx.save(m, str(p))
    ir = import_onnx(p, {"x": (3, 4)})
    assert [n.op for n in ir.nodes] == ["Reshape"]
    assert list(ir.initializers["s"]) == [3, 4]
    assert ir.inputs[0].shape == (3, 4)
    with pytest.raises(LowbitError, match="rank"):
        import_onnx(p, {"x": (3, 4, 1)})
