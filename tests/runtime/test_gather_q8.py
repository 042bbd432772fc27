"""int8 embedding tables (exporters/lbpk_attn.py, _quantize_embeddings; native/src/ops/ops_gather.cpp): in a
package with int8 activations a large constant fp32 Gather table becomes int8 codes + one fp32 scale per row
(gather_q8). The looked-up rows must be exactly scale[i] * codes[i] (fp32 product) on the AVX2 and the portable
path, negative indices count from the end, out-of-range ones give zeros (as gather), and fp32 packages keep the
float table."""
from __future__ import annotations

import numpy as np

from runtime_helpers import run_scalar_path

V, E = 2100, 37  # >= 64 Ki values; E not a multiple of 8: the AVX2 row has a tail


def _graph(quantized: bool):
    from lowbit.ir import ActQuant, Graph, Node, QuantWeight, TensorInfo

    rng = np.random.default_rng(5)
    table = rng.standard_normal((V, E)).astype(np.float32) * rng.uniform(0.1, 3, (V, 1)).astype(np.float32)
    table[7] = 0  # an all-zero row: scale 0, codes 0
    inits = {"table": table}
    n = 16
    if quantized:
        w = rng.standard_normal((n, E)).astype(np.float32)
        sc = (np.abs(w).max(1, keepdims=True) / 127).astype(np.float32)
        inits["w"] = QuantWeight("int8", np.round(w / sc).astype(np.int8), sc, E, orig_shape=(E, n))
        attrs = {"act_quant": ActQuant("dynamic", granularity="row")}
    else:
        inits["w"] = rng.standard_normal((E, n)).astype(np.float32)
        attrs = {}
    nodes = [Node("Gather", "emb", ["table", "ids"], ["e"], {"axis": 0}), Node("MatMul", "mm", ["e", "w"], ["y"], attrs)]
    g = Graph("g", nodes, [TensorInfo("ids", "int64", (2, 9))],
              [TensorInfo("e", "float32", (2, 9, E)), TensorInfo("y", "float32", (2, 9, n))], inits)
    ids = np.array([[0, 7, V - 1, -1, -V, 5, V, -V - 1, 1234], [3, 3, 2, 1, 0, 999, 42, 2099, 8]], np.int64)
    return g, table, {"ids": ids}


def _expected(table, ids):
    amax = np.abs(table).max(1)
    scale = (amax / 127.0).astype(np.float32)
    codes = np.clip(np.rint(table / np.where(scale > 0, scale, 1)[:, None]), -127, 127).astype(np.int8)
    deq = codes.astype(np.float32) * scale[:, None]
    out = np.zeros(ids.shape + (E,), np.float32)
    for pos, i in np.ndenumerate(ids):
        if -V <= i < V:
            out[pos] = deq[i]
    return out


def test_gather_q8_rows_exact_on_both_paths(tmp_path):
    import lowbit
    from lowbit.exporters.lbpk import write_package

    g, table, feeds = _graph(True)
    pkg = write_package(g, tmp_path / "q.lbpk", target="x86-64-avx2", scheme="w8a8")
    s = lowbit.load(pkg, threads=2)
    assert [op["kernel"] for op in s.manifest["ops"]][0] == "gather_q8"
    assert s.manifest["tensors"]["table.q8"]["dtype"] == "i8" and "table" not in s.manifest["tensors"]
    want = _expected(table, feeds["ids"])
    s.enable_profiling(True)
    out = s.run(feeds)
    assert {e["isa"] for e in s.profile_events() if e["kernel"] == "gather_q8"} == {"avx2"}
    assert np.array_equal(out["e"], want)
    assert not out["e"][0, 6].any() and not out["e"][0, 7].any()  # V and -V-1: out of range -> zeros
    inside = np.abs(feeds["ids"]) < V
    err = np.abs(out["e"] - table[feeds["ids"] % V])[inside].max(-1)
    assert (err <= np.abs(table[feeds["ids"] % V])[inside].max(-1) / 254 * 1.0001).all()  # half a step per row
    got, isa = run_scalar_path(pkg, feeds, tmp_path, kernel="gather_q8")
    assert isa == "scalar" and np.array_equal(got["e"], want) and np.array_equal(got["y"], out["y"])


def test_gather_stays_fp32_in_fp32_packages(tmp_path):
    import lowbit
    from lowbit.exporters.lbpk import write_package

    g, table, feeds = _graph(False)
    s = lowbit.load(write_package(g, tmp_path / "f.lbpk", target="x86-64-avx2", scheme="fp32"))
    assert [op["kernel"] for op in s.manifest["ops"]][0] == "gather"
    assert np.array_equal(s.run(feeds)["e"][1], table[feeds["ids"][1]])


def test_round_embedding_tables_is_what_the_package_stores(tmp_path):
    """export_api.prepare rounds the table in the quantized IR graph (round_embedding_tables) before the accuracy
    report: the rounded fp32 table is exactly what gather_q8 returns, and the package built from the rounded
    graph stores the same codes and scales (the rounding is idempotent); tables that feed anything but an
    axis-0 Gather keep their values."""
    import copy

    import lowbit
    from lowbit.exporters.lbpk import write_package
    from lowbit.exporters.lbpk_attn import embedding_q8, round_embedding_tables

    g, table, feeds = _graph(True)
    assert round_embedding_tables(g) == ["table"] and g.metadata["embedding_q8"] == ["table"]
    rounded = g.initializers["table"]
    assert rounded.dtype == np.float32 and not np.array_equal(rounded, table)
    codes, scale = embedding_q8(table)
    assert np.array_equal(rounded, codes.astype(np.float32) * scale[:, None])
    c2, s2 = embedding_q8(rounded)
    assert np.array_equal(c2, codes) and np.array_equal(s2, scale)
    s = lowbit.load(write_package(g, tmp_path / "r.lbpk", target="x86-64-avx2", scheme="w8a8"))
    assert [op["kernel"] for op in s.manifest["ops"]][0] == "gather_q8"
    assert np.array_equal(s.run(feeds)["e"], _expected(table, feeds["ids"]))
    # a table that is also read by another op stays as it is
    bad = copy.deepcopy(_graph(True)[0])
    bad.nodes.append(bad.nodes[0].__class__("Mul", "m", ["table", "table"], ["t2"], {}))
    assert round_embedding_tables(bad) == [] and np.array_equal(bad.initializers["table"], table)


def test_prepare_reports_the_rounded_table(tmp_path):
    """export_api.prepare with int8 activations rounds the table before its accuracy report; w4a16 (float
    activations) keeps it."""
    from onnx import TensorProto, helper, numpy_helper

    from lowbit.export_api import prepare
    from lowbit.exporters.lbpk_attn import embedding_q8

    rng = np.random.default_rng(2)
    table = rng.standard_normal((V, E)).astype(np.float32)
    w = rng.standard_normal((E, 32)).astype(np.float32)
    gr = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["e"], axis=0),
                            helper.make_node("MatMul", ["e", "w"], ["y"])], "emb",
                           [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 9])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 9, 32])],
                           [numpy_helper.from_array(table, "table"), numpy_helper.from_array(w, "w")])
    path = tmp_path / "emb.onnx"
    path.write_bytes(helper.make_model(gr, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    calib = [{"ids": rng.integers(0, V, (1, 9)).astype(np.int64)} for _ in range(2)]
    _, qg, _, report = prepare(str(path), scheme="w8a8", calib=calib, progress=False)
    assert qg.metadata["embedding_q8"] == ["table"] and report["samples"] > 0
    codes, scale = embedding_q8(table)
    assert np.array_equal(qg.initializers["table"], codes.astype(np.float32) * scale[:, None])
    _, qg16, _, _ = prepare(str(path), scheme="w4a16", calib=calib, progress=False)
    assert "embedding_q8" not in qg16.metadata and np.array_equal(qg16.initializers["table"], table)

