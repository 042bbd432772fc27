"""The ONNX writer (--format onnx): standard QDQ with per-channel axes, com.microsoft MatMulNBits for
int4 MatMuls, exact decode subgraphs for the other formats, validated by onnx.checker and run by
ONNX Runtime, built from the same QuantWeight objects the package holds."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from lowbit.exporters.onnx_writer import graph_to_model, ort_session, write_onnx  # noqa: E402
from lowbit.ir import ActQuant, Graph, Node, QuantWeight, TensorInfo  # noqa: E402
from lowbit.quant import weights as wq  # noqa: E402
from lowbit.refexec import RefExecutor  # noqa: E402


def _graph(w_kn: np.ndarray, qw: QuantWeight, aq=None, conv=False) -> Graph:
    k, n = w_kn.shape
    node = Node("MatMul", "mm", ["x", "w"], ["y"], {"act_quant": aq} if aq else {})
    return Graph("g", [node], [TensorInfo("x", "float32", (2, 5, k))], [TensorInfo("y", "float32", (2, 5, n))],
                 {"w": qw}, {}, {"opset": 17})


def _qw(w_kn, fmt, group, **kw):
    qw = wq.quantize_rtn(np.ascontiguousarray(w_kn.T), fmt, group, **kw)
    qw.layout, qw.orig_shape = "kn", w_kn.shape
    return qw


@pytest.mark.parametrize("fmt,group,op", [("int8", 0, "DequantizeLinear"), ("int4", 32, "MatMulNBits"),
                                          ("nf4", 64, "Gather"), ("fp4", 32, "Gather"), ("cb4", 64, "Gather"),
                                          ("ternary", 64, "Cast")])
def test_weight_formats_run_in_ort_and_match_reference(fmt, group, op, tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((128, 48)).astype(np.float32)
    qw = _qw(w, fmt, group)
    g = _graph(w, qw)
    path = write_onnx(g, tmp_path / "w.onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert op in {n.op_type for n in model.graph.node}
    if op == "DequantizeLinear":
        dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear")
        assert {a.name: a.i for a in dq.attribute}["axis"] == 1  # per output channel of a [K, N] weight
    x = rng.standard_normal((2, 5, 128)).astype(np.float32)
    got = ort_session(model).run(None, {"x": x})[0]
    want = x @ qw.dequantize().T
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(RefExecutor(g).run({"x": x})["y"], want, rtol=1e-5, atol=1e-5)


def test_outliers_and_activation_quant_match_reference():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 32)).astype(np.float32)
    w[7, 3] = 25.0
    qw = _qw(w, "int4", 32, sparse_pct=1.0)
    smooth = rng.uniform(0.5, 2.0, 64).astype(np.float32)
    x = rng.standard_normal((2, 5, 64)).astype(np.float32) * 3
    for aq in (ActQuant("static", 8, 0.05, -3), ActQuant("dynamic", 8, granularity="row"),
               ActQuant("dynamic", 8, granularity="tensor", smooth=smooth)):
        g = _graph(w, qw, aq)
        model = graph_to_model(g)
        onnx.checker.check_model(model)
        got = ort_session(model).run(None, {"x": x})[0]
        want = RefExecutor(g).run({"x": x})["y"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert "ScatterND" in {n.op_type for n in graph_to_model(_graph(w, qw)).graph.node}


def test_conv_weight_per_channel_axis0():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    qw = wq.quantize_rtn(w.reshape(8, -1), "int8", 0)
    qw.layout, qw.orig_shape = "nk", w.shape
    node = Node("Conv", "c", ["x", "w"], ["y"], {"pads": [1, 1, 1, 1], "act_quant": ActQuant("static", 8, 0.02, 0)})
    g = Graph("c", [node], [TensorInfo("x", "float32", (1, 4, 6, 6))], [TensorInfo("y", "float32", (1, 8, 6, 6))],
              {"w": qw}, {}, {"opset": 17})
    model = graph_to_model(g)
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0].startswith("w"))
    assert {a.name: a.i for a in dq.attribute}["axis"] == 0
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(ort_session(model).run(None, {"x": x})[0], RefExecutor(g).run({"x": x})["y"],
                               rtol=1e-4, atol=1e-4)


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((32, 16)).astype(np.float32)
    g = _graph(w, _qw(w, "int8", 0))
    import lowbit.exporters.onnx_writer as ow

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ow.os, "replace", boom)
    with pytest.raises(OSError):
        write_onnx(g, tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("quant_weight", [True, False])
def test_conv_bias_and_float_weight_behind_qdq_match_reference(quant_weight):
    """ONNX Runtime (>= 1.20) rewrites a Conv whose input is DequantizeLinear even at BASIC level
    (WeightBiasQuantization): it rounds the bias to int32 at x_scale * w_scale, which overflows for a
    dead channel of a BatchNorm-folded conv, and quantizes a float weight per tensor. lowbit's
    sessions must run lowbit's arithmetic (float bias, the weight as given), as refexec does."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    w[2] *= 1e-9  # a dead channel: weights ~0, a large bias (BatchNorm folding does this)
    w[5] *= 40.0  # a channel with a large gain: one per-tensor scale would wipe out the others
    b = rng.standard_normal(8).astype(np.float32)
    b[2] = 7.0
    wv = w
    if quant_weight:
        wv = wq.quantize_rtn(w.reshape(8, -1), "int8", 0)
        wv.layout, wv.orig_shape = "nk", w.shape
    # the rewrite needs a QDQ node unit: DequantizeLinear -> Conv -> QuantizeLinear (the next layer's input)
    nodes = [Node("Conv", "c", ["x", "w", "b"], ["h"], {"pads": [1, 1, 1, 1], "act_quant": ActQuant("static", 8, 0.02, 0)}),
             Node("Conv", "c2", ["h", "w2"], ["y"], {"act_quant": ActQuant("static", 8, 0.1, 0)})]
    w2 = np.ones((3, 8, 1, 1), np.float32)
    g = Graph("c", nodes, [TensorInfo("x", "float32", (1, 4, 6, 6))], [TensorInfo("y", "float32", (1, 3, 6, 6))],
              {"w": wv, "b": b, "w2": w2}, {}, {"opset": 17})
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    want = RefExecutor(g).run({"x": x}, keep=["h"])
    got = ort_session(g, extra_outputs=["h"]).run(None, {"x": x})
    np.testing.assert_allclose(got[1], want["h"], rtol=1e-5, atol=1e-5 * np.abs(want["h"]).max())
    np.testing.assert_allclose(got[0], want["y"], rtol=1e-4, atol=1e-4 * np.abs(want["y"]).max())
