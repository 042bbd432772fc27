"""The profiler on real models through the real runtime: EfficientNet-Lite0 and all-MiniLM-L6-v2
as fp32 packages (exported here from ONNX), profiled by lowbit.profile and by the native
lowbit-profile. Structure and sums only (no timing bounds: the CI machine is shared)."""
import io
import json
import sys
import warnings

import numpy as np
import pytest

from lowbit_testutil import ISA_INCLUDES, run

pytestmark = pytest.mark.slow


def _export(module, args, names, outs, path):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buf = io.BytesIO()
        with torch.no_grad():
            torch.onnx.export(module, args, buf, dynamo=False, input_names=names, output_names=outs, opset_version=17)
    path.write_bytes(buf.getvalue())


def _package(onnx_path, feeds, out):
    import onnxruntime as ort

    from lowbit.exporters.lbpk import write_package
    from lowbit.importers.onnx_import import import_onnx

    s = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ref = dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))
    g = import_onnx(str(onnx_path), {k: v.shape for k, v in feeds.items()})
    write_package(g, out, target="x86-64-avx2", scheme="fp32", golden={"inputs": feeds, "outputs": ref, "rtol": 1e-3, "atol": 1e-4})
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    pytest.importorskip("lowbit.runtime")
    pytest.importorskip("lowbit.exporters.lbpk")
    import torch

    from lowbit import zoo

    d = tmp_path_factory.mktemp("prof_models")
    x = zoo.preprocess_lite(zoo.natural_images(1))
    _export(zoo.efficientnet_lite0(), (torch.from_numpy(x),), ["input"], ["logits"], d / "effnet.onnx")
    feeds = zoo.minilm_feeds(zoo.sentences(1), seq_len=32)[0]
    _export(zoo.MiniLMEncoder(), (torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"])),
            ["input_ids", "attention_mask"], ["embedding"], d / "minilm.onnx")
    return {"effnet": _package(d / "effnet.onnx", {"input": x}, d / "effnet.lbpk"),
            "minilm": _package(d / "minilm.onnx", feeds, d / "minilm.lbpk")}


@pytest.mark.parametrize("name", ["effnet", "minilm"])
def test_profile_real_model(models, name, tmp_path, monkeypatch):
    import lowbit

    monkeypatch.setenv("LOWBIT_CACHE_DIR", str(tmp_path))
    pkg = models[name]
    rep = lowbit.profile(pkg, runs=3, warmup=1, threads=1, reference=pkg.with_suffix(".onnx"), compare=["ort"])
    from lowbit.exporters.lbpk_container import PackageReader

    r = PackageReader(pkg, verify=False)
    n_ops = len(r.manifest["ops"])
    r.close()
    # Every op, with the kernel and the ISA that ran.
    assert len(rep.ops) == n_ops
    assert all(o["kernel"] and o["isa"] for o in rep.ops), [o["name"] for o in rep.ops if not (o["kernel"] and o["isa"])]
    heavy = [o for o in rep.ops if o["type"] in ("Conv", "MatMul")]
    # the best path's own kernels, or (avx512vnni) the AVX2 fp32 ops it keeps; never the scalar fallback
    best = lowbit.native().isa_best()
    allowed = (ISA_INCLUDES[best] - {"scalar"}) or {"scalar"}
    assert heavy and all(o["isa"] in allowed for o in heavy), {o["isa"] for o in heavy}
    assert not any("fallback" in w for w in rep.warnings)
    # The op events are inside the measured runs and cover almost all of them (generous bound).
    assert 0.5 < rep.data["ops_sum_over_e2e"] <= 1.0
    # fp32 package: the numeric gap is tiny at every layer that has a float reference, and at the output.
    gaps = [o["gap"] for o in rep.ops if o["gap"]]
    assert len(gaps) > n_ops // 3
    assert all(g["exact"] or g["snr_db"] > 60 for g in gaps)
    (out_gap,) = rep.data["outputs_gap"].values()
    assert out_gap["snr_db"] > 60 and out_gap["cosine"] > 0.9999
    assert rep.data["memory"]["arena_bytes"] > 0 and rep.data["memory"]["weights_bytes"] > 1 << 20
    assert next(c for c in rep.data["compare"] if c["engine"] == "onnxruntime")["median_ms"] > 0
    html = rep.to_html()
    assert html.count('class="bar"') >= n_ops and 'id="plot-roofline"' in html
    trace = rep.to_trace()
    assert sum(1 for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] != "run") == n_ops


def test_forced_scalar_path_is_flagged(models, nat, tmp_path):
    """LOWBIT_ISA=scalar (a deliberately slow path): every Conv is flagged, in the JSON and the table."""
    if nat.isa_best() == "scalar":
        pytest.skip("this CPU runs only the scalar path")
    out = tmp_path / "s.json"
    r = run([sys.executable, "-m", "lowbit", "profile", models["effnet"], "--runs", "1", "--warmup", "0",
             "--threads", "1", "--json", out], env={"LOWBIT_ISA": "scalar", "LOWBIT_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "warning: /_conv_stem/Conv: scalar fallback" in r.stdout
    data = json.loads(out.read_text())
    convs = [o for o in data["ops"] if o["type"] == "Conv"]
    assert convs and all(o["isa"] == "scalar" and "scalar fallback" in o["warnings"][0] for o in convs)
    assert any(w.startswith("LOWBIT_ISA forces the scalar path") for w in data["warnings"])


def test_native_tool_profiles_a_package(models, native_host, tmp_path):
    out = tmp_path / "n.json"
    r = run([native_host / "lowbit-profile", models["minilm"], "--runs", "3", "--warmup", "1", "--threads", "1",
             "--json", out], env={"LOWBIT_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    import lowbit

    rep = lowbit.profiler.load_report(out)
    assert rep.data["tool"] == "lowbit-profile" and rep.latency["n"] == 3
    assert all(o["kernel"] and o["isa"] for o in rep.ops) and len(rep.ops) > 50  # 78 after the transformer fusions
    assert 0.5 < rep.data["ops_sum_over_e2e"] <= 1.0
    assert sum(o["share"] for o in rep.ops) == pytest.approx(1.0)
    assert rep.data["memory"]["arena_bytes"] > 0 and len(rep.data["package"]["sha256"]) == 64
    assert 'id="plot-time"' in rep.to_html()
    r = run([native_host / "lowbit-profile", tmp_path / "missing.lbpk"])
    assert r.returncode == 1 and "LB_ERR_IO" in r.stderr
