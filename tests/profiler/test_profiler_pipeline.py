"""lowbit.profile end to end on a tiny package, with a numpy stand-in for the runtime Session
(monkeypatched lowbit.load): runs, events, golden inputs, numeric gap per layer and per output,
memory, overhead, slow-path warning, and the CLI on the result."""
import json

import numpy as np
import pytest

import lowbit
from lowbit.cli import main as cli_main
from profiler_helpers import float_forward, load_fake, quant_forward


@pytest.fixture
def fake_runtime(monkeypatch, tmp_path):
    """lowbit.load -> FakeSession; returns a dict of switches (scalar: fc2 runs the scalar kernel)."""
    monkeypatch.setenv("LOWBIT_CACHE_DIR", str(tmp_path / "cache"))  # no device measurement
    flags = {}
    # setitem on the module dict: lowbit.load is a lazy name whose module may not exist yet.
    monkeypatch.setitem(vars(lowbit), "load", lambda path, threads=None: load_fake(path, flags.get("scalar", False)))
    return flags


def test_profile_tiny_package(fake_runtime, tiny_package):
    rep = lowbit.profile(tiny_package, runs=6, warmup=2, threads=1)
    assert [o["name"] for o in rep.ops] == ["fc1", "fc2"]
    assert all(o["time_ms"]["min"] <= o["time_ms"]["median"] <= o["time_ms"]["p95"] for o in rep.ops)
    assert rep.latency["n"] == 6 and len(rep.latency["runs"]) == 6
    assert rep.data["config"] == {"runs": 6, "warmup": 2, "threads": 1, "inputs": "golden"}
    assert rep.data["package"]["name"] == "tiny_mlp" and len(rep.data["package"]["sha256"]) == 64
    # Coverage: events lie inside each run, so the op times never exceed end-to-end.
    assert 0 < rep.data["ops_sum_over_e2e"] <= 1.0
    # Numeric gap: the fake runs int8-rounded weights; its values vs the golden float ones.
    x = np.random.default_rng(3).standard_normal((1, 16)).astype(np.float32)
    fl, q = float_forward(x), quant_forward(x)
    want_h = lowbit.profiler.numeric_gap(fl["h"], q["h"])
    ops = {o["name"]: o for o in rep.ops}
    assert ops["fc1"]["gap"]["snr_db"] == pytest.approx(want_h["snr_db"])
    assert 20 < ops["fc1"]["gap"]["snr_db"] < 80
    assert rep.data["outputs_gap"]["y"]["snr_db"] == pytest.approx(
        lowbit.profiler.numeric_gap(fl["y"], q["y"])["snr_db"], rel=1e-4)
    assert ops["fc2"]["gap"] == rep.data["outputs_gap"]["y"]
    assert rep.data["memory"]["weights_bytes"] == (16 * 32 + 32 * 4 + 16 + 4 + 32) * 4
    assert rep.data["memory"]["process_rss_high_water_bytes"] > 0
    assert set(rep.data["overhead"]) == {"on_ms", "off_ms", "fraction"}
    assert rep.data["roofline"]["source"] == "none"
    assert any("doctor --measure" in w for w in rep.warnings)
    assert not any("fallback" in w for w in rep.warnings)


def test_profile_flags_scalar_path(fake_runtime, tiny_package):
    fake_runtime["scalar"] = True
    rep = lowbit.profile(tiny_package, runs=2, warmup=0)
    ops = {o["name"]: o for o in rep.ops}
    if lowbit.native().isa_best() == "scalar":
        pytest.skip("this CPU has only the scalar path: nothing is a fallback")
    assert ops["fc2"]["isa"] == "scalar" and "scalar fallback" in ops["fc2"]["warnings"][0]
    assert not ops["fc1"]["warnings"]


def test_cli_profile_and_render(fake_runtime, tiny_package, tmp_path, capsys):
    out = tmp_path / "o"
    rc = cli_main(["profile", str(tiny_package), "--runs", "3", "--warmup", "1", "--threads", "1",
                   "--json", f"{out}.json", "--trace", f"{out}.trace.json", "--html", f"{out}.html",
                   "--compare", "ort,tvm"])
    assert rc == 0
    table = capsys.readouterr().out
    assert "fc1" in table and "lb_gemv_f32_q8d_q8c_4x32__avx2" in table and "onnxruntime" in table
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["schema"] == "lowbit.profile/1"
    engines = {c["engine"]: c for c in data["compare"]}
    assert engines["lowbit"]["median_ms"] > 0
    assert "no exported ONNX" in engines["onnxruntime"]["note"] and "no TVM artifact" in engines["tvm"]["note"]
    trace = json.loads((tmp_path / "o.trace.json").read_text())
    assert {e["name"] for e in trace["traceEvents"] if e["ph"] == "X"} >= {"fc1", "fc2"}
    assert "plot-roofline" in out.with_suffix(".html").read_text()
    # A JSON profile renders again without a package or a runtime.
    rc = cli_main(["profile", f"{out}.json", "--html", str(tmp_path / "again.html")])
    assert rc == 0 and (tmp_path / "again.html").read_text().count('class="bar"') >= 2


def test_compare_with_onnxruntime(fake_runtime, tiny_package, tmp_path):
    """An exported ONNX beside the package is timed in ONNX Runtime and checked against golden."""
    pytest.importorskip("onnx")
    from profiler_helpers import save_tiny_onnx

    save_tiny_onnx(tiny_package.with_suffix(".onnx"))
    rep = lowbit.profile(tiny_package, runs=3, warmup=1, compare=["ort"])
    row = next(c for c in rep.data["compare"] if c["engine"] == "onnxruntime")
    assert row["median_ms"] > 0
    assert row["gap"]["exact"] or row["gap"]["snr_db"] > 100  # float ONNX vs float golden (exact: snr_db is None)


def test_bad_arguments(fake_runtime, tiny_package, tmp_path):
    with pytest.raises(lowbit.LowbitError):
        lowbit.profile(tiny_package, runs=0)
    assert cli_main(["profile", str(tmp_path / "missing.lbpk")]) == 1


def test_all_values_package(tiny_package, tmp_path):
    from lowbit.exporters.lbpk_container import PackageReader
    from lowbit.profiler.values import all_values_package

    out = all_values_package(tiny_package, tmp_path / "v.lbpk")
    a, b = PackageReader(tiny_package), PackageReader(out)
    try:
        assert [o["name"] for o in b.manifest["outputs"]] == ["y", "h"]
        assert b.manifest["ops"] == a.manifest["ops"] and b.manifest["golden"] == a.manifest["golden"]
        for name in a.manifest["tensors"]:
            assert np.array_equal(a.tensor(name), b.tensor(name))
    finally:
        a.close()
        b.close()


def test_reference_from_onnx_gives_layer_gaps(fake_runtime, tiny_package, tmp_path):
    """--reference model.onnx: float values per layer from ONNX Runtime, matched by value name."""
    pytest.importorskip("onnx")
    from profiler_helpers import save_tiny_onnx

    ref = save_tiny_onnx(tmp_path / "float.onnx")
    x = np.random.default_rng(9).standard_normal((1, 16)).astype(np.float32)
    rep = lowbit.profile(tiny_package, runs=1, warmup=0, inputs={"x": x}, reference=ref)
    ops = {o["name"]: o for o in rep.ops}
    fl, q = float_forward(x), quant_forward(x)
    assert ops["fc1"]["gap"]["snr_db"] == pytest.approx(lowbit.profiler.numeric_gap(fl["h"], q["h"])["snr_db"], rel=1e-4)
    assert ops["fc2"]["gap"]["snr_db"] == pytest.approx(lowbit.profiler.numeric_gap(fl["y"], q["y"])["snr_db"], rel=1e-4)
    assert rep.data["outputs_gap"] == {}  # user inputs: the golden outputs do not apply


def test_fused_activation_takes_the_activation_output(tmp_path):
    """An op with a fused activation (attrs "act") writes the activation's value under its own
    output name: the ONNX reference of that name is taken after the activation."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from lowbit.profiler.values import onnx_fused_successors, reference_values
    from profiler_helpers import W1

    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["a"]), helper.make_node("Relu", ["a"], ["h"])], "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 32])], [numpy_helper.from_array(W1, "w1")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    assert onnx_fused_successors(path) == {"a": "h"}
    x = np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32)
    plain = reference_values(path, {"x": x})
    assert (plain["a"] < 0).any()  # pre-activation without a manifest
    man = {"ops": [{"name": "fc1", "outputs": ["a"], "attrs": {"act": "relu"}}]}
    fused = reference_values(path, {"x": x}, manifest=man)
    assert np.array_equal(fused["a"], np.maximum(plain["a"], 0))
