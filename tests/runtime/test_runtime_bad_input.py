"""Bad packages and bad inputs: every failure is a specific status with a message naming the part."""
import numpy as np
import pytest

import lowbit
from lowbit.exporters.lbpk import write_package
from lowbit.exporters.lbpk_container import PackageWriter
from lowbit.ir import Graph, Node, TensorInfo
from lowbit.runtime import RuntimeStatusError

X = np.random.default_rng(0).standard_normal((1, 2, 5, 5)).astype(np.float32)


def _tiny_graph():
    rng = np.random.default_rng(1)
    return Graph("tiny", [Node("Conv", "conv", ["x", "w", "b"], ["c"], {"pads": [1, 1, 1, 1]}),
                          Node("Relu", "relu", ["c"], ["r"]),
                          Node("GlobalAveragePool", "gap", ["r"], ["y"])],
                 [TensorInfo("x", "float32", (1, 2, 5, 5))], [TensorInfo("y", "float32", (1, 3, 1, 1))],
                 {"w": rng.standard_normal((3, 2, 3, 3)).astype(np.float32),
                  "b": rng.standard_normal(3).astype(np.float32)})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    p = tmp_path_factory.mktemp("bad") / "tiny.lbpk"
    write_package(_tiny_graph(), p, target="x86-64-avx2", scheme="fp32")
    return p


def _status(fn):
    with pytest.raises(RuntimeStatusError) as e:
        fn()
    return e.value.status, str(e.value)


def test_runtime_every_byte_flip_fails_cleanly_or_runs_correctly(tiny):
    raw = tiny.read_bytes()
    want = lowbit.load(raw).run({"x": X})["y"]
    outcomes = {}
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x5A
        try:
            s = lowbit.load(bytes(bad))
            got = s.run({"x": X})["y"]
            assert np.array_equal(got, want), f"byte {i}: loaded but computed something else"
            outcomes["ok"] = outcomes.get("ok", 0) + 1
        except RuntimeStatusError as e:
            assert e.status in ("LB_ERR_FORMAT", "LB_ERR_VERSION", "LB_ERR_CHECKSUM"), (i, str(e))
            assert e.detail, i
            outcomes[e.status] = outcomes.get(e.status, 0) + 1
    # flips in the header, table and sections are caught; only alignment padding loads
    assert outcomes.get("LB_ERR_CHECKSUM", 0) > len(raw) // 2
    assert outcomes.get("ok", 0) < 200


def test_runtime_truncated_packages_are_refused(tiny):
    raw = tiny.read_bytes()
    for n in [0, 10, 127, 128, 200, len(raw) // 2, len(raw) - 1]:
        st, msg = _status(lambda: lowbit.load(raw[:n]))
        assert st == "LB_ERR_FORMAT", (n, msg)
        assert "truncated" in msg or "too short" in msg, msg


def test_runtime_foreign_and_newer_files(tiny, tmp_path):
    for blob in [b"\x89PNG\r\n\x1a\n" + bytes(300), b"PK\x03\x04" + bytes(300), b"{}" * 100]:
        st, msg = _status(lambda: lowbit.load(blob))
        assert st == "LB_ERR_FORMAT" and "not a lowbit package" in msg
    raw = bytearray(tiny.read_bytes())
    raw[8] = 2  # format major 2
    st, msg = _status(lambda: lowbit.load(bytes(raw)))
    assert st == "LB_ERR_VERSION" and "2.0" in msg and "update lowbit" in msg
    st, msg = _status(lambda: lowbit.load(tmp_path / "missing.lbpk"))
    assert st == "LB_ERR_IO" and "missing.lbpk" in msg


def test_runtime_lazy_mode_checks_data_on_first_use(tiny, tmp_path):
    from lowbit.exporters.lbpk_container import PackageReader

    raw = bytearray(tiny.read_bytes())
    data0 = PackageReader(tiny).sections["data.0"]
    raw[data0.offset + 5] ^= 1
    p = tmp_path / "lazy.lbpk"
    p.write_bytes(bytes(raw))
    st, msg = _status(lambda: lowbit.load(p))  # full mode: at load
    assert st == "LB_ERR_CHECKSUM" and "data.0" in msg
    st, msg = _status(lambda: lowbit.load(p, lazy=True))  # lazy: when a session first uses the weights
    assert st == "LB_ERR_CHECKSUM" and "data.0" in msg


def test_runtime_package_needing_a_missing_kernel(tmp_path):
    p = tmp_path / "future.lbpk"
    with PackageWriter(p) as w:
        w.manifest.update({"kind": "graph", "inputs": [{"name": "x", "dtype": "f32", "shape": [4]}],
                           "outputs": [{"name": "y", "dtype": "f32", "shape": [4]}],
                           "ops": [{"name": "fancy_node", "op": "FancyOp", "kernel": "fancy_f32", "inputs": ["x"],
                                    "outputs": ["y"], "attrs": {}}]})
    st, msg = _status(lambda: lowbit.load(p))
    assert st == "LB_ERR_UNSUPPORTED" and "fancy_node" in msg and "fancy_f32" in msg


def test_runtime_bad_inputs_name_what_was_expected(tiny):
    s = lowbit.load(tiny)
    st, msg = _status(lambda: s.run({"nope": X}))
    assert st == "LB_ERR_NOT_FOUND" and "'nope'" in msg and "'x'" in msg
    st, msg = _status(lambda: s.run({"x": X[:, :1]}))
    assert st == "LB_ERR_SHAPE" and "[1, 2, 5, 5]" in msg and "[1, 1, 5, 5]" in msg
    st, msg = _status(lambda: s.run({"x": X.astype(np.float64)}))
    assert st == "LB_ERR_DTYPE"
    st, msg = _status(lambda: s.run({"x": X.astype(np.int32)}))
    assert st == "LB_ERR_DTYPE" and "f32" in msg and "i32" in msg
    s2 = lowbit.load(tiny)
    st, msg = _status(lambda: s2.run({}))
    assert st == "LB_ERR_INVALID_ARG" and "'x'" in msg and "not set" in msg
    assert s.run({"x": X})["y"].shape == (1, 3, 1, 1)  # the session still works after errors


def test_runtime_dtype_is_compared_by_value(tiny):
    """An array from pickle carries a float32 dtype object that is not numpy's cached one: it must
    run (it was refused as "dtype float32, which lowbit does not take"); a byte-swapped float32
    is refused with the dtype named."""
    import pickle

    s = lowbit.load(tiny)
    want = s.run({"x": X})["y"]
    x2 = pickle.loads(pickle.dumps(X))
    assert x2.dtype == np.float32
    np.testing.assert_array_equal(s.run({"x": x2})["y"], want)
    st, msg = _status(lambda: s.run({"x": X.astype(X.dtype.newbyteorder("S"))}))
    assert st == "LB_ERR_DTYPE" and ">f4" in msg, msg


def test_runtime_export_refuses_every_unsupported_op(tmp_path):
    g = _tiny_graph()
    g.nodes.insert(2, Node("Mystery", "m1", ["r"], ["r2"]))
    g.nodes.append(Node("Enigma", "m2", ["y"], ["z"]))
    g.nodes[3].inputs = ["r2"]
    g.outputs = [TensorInfo("z", "float32", (1, 3, 1, 1))]
    out = tmp_path / "no.lbpk"
    with pytest.raises(lowbit.LowbitError) as e:
        write_package(g, out, target="x86-64-avx2", scheme="fp32")
    msg = str(e.value)
    assert "2 op(s)" in msg and "Mystery in node 'm1'" in msg and "Enigma in node 'm2'" in msg and "--keep-float" in msg
    assert not out.exists() and not list(tmp_path.iterdir())


def test_runtime_load_from_buffer_and_lazy_match(tiny):
    a = lowbit.load(tiny).run({"x": X})["y"]
    b = lowbit.load(tiny.read_bytes()).run({"x": X})["y"]
    c = lowbit.load(tiny, lazy=True).run({"x": X})["y"]
    assert np.array_equal(a, b) and np.array_equal(a, c)
    ref = np.maximum(0, _conv_ref(X, _tiny_graph())).mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-6)


def _conv_ref(x, g):
    w, b = g.initializers["w"], g.initializers["b"]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((1, 3, 5, 5), np.float64)
    for o in range(3):
        for i in range(5):
            for j in range(5):
                out[0, o, i, j] = np.sum(xp[0, :, i:i + 3, j:j + 3] * w[o]) + b[o]
    return out
