"""End to end on small models: every scheme exports to ONNX, ONNX Runtime runs it and agrees with
lowbit's reference executor; options (--smooth, --sparse-outliers, --keep-float, --budget-bits);
bad input fails clearly before any file is written."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import lowbit
from lowbit import LowbitError
from lowbit.export_api import prepare
from lowbit.exporters.onnx_writer import ort_session
from lowbit.ir import QuantWeight
from lowbit.refexec import RefExecutor

SCHEMES = ["fp32", "w8a8", "w8a8d", "w4a8-g32", "w4a8-g64-gptq", "w4a16-g128", "nf4a8-g64", "fp4a8-g32",
           "cb4a8-g64", "t2a8"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_ort_matches_reference(scheme, mlp_onnx, mlp_feeds, tmp_path):
    import onnx

    out = lowbit.export(mlp_onnx, tmp_path / "m.onnx", format="onnx", scheme=scheme, calib=mlp_feeds,
                        progress=False)
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    if scheme in ("w4a8-g32", "w4a8-g64-gptq", "w4a16-g128"):
        assert "MatMulNBits" in ops
    if scheme == "w8a8":
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    _, q, feeds, report = prepare(mlp_onnx, scheme=scheme, calib=mlp_feeds, progress=False)
    sess = ort_session(model)
    ref = RefExecutor(q)
    for f in feeds[:4]:
        got = sess.run(None, f)[0]
        want = ref.run(f)["y"]
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=2e-3 * np.abs(want).max())
    props = {p.key: p.value for p in model.metadata_props}
    rep = json.loads(props["lowbit.accuracy"])
    assert rep["scheme"] == scheme and "y" in rep["outputs"]
    floor = {"fp32": 100, "w8a8": 25, "w8a8d": 25, "t2a8": 0}.get(scheme, 10)
    assert rep["outputs"]["y"]["snr_db"] > floor


def test_matmulnbits_packing_bit_exact(mlp_onnx, mlp_feeds):
    from lowbit.exporters.onnx_writer import pack_matmulnbits

    _, q, _, _ = prepare(mlp_onnx, scheme="w4a16-g128", calib=mlp_feeds, progress=False)
    w = q.initializers["w2"]
    packed, scales = pack_matmulnbits(w)
    lo = (packed & 0xF).astype(np.int16) - 8
    hi = (packed >> 4).astype(np.int16) - 8
    codes = np.stack([lo, hi], -1).reshape(w.q.shape)
    np.testing.assert_array_equal(codes, w.q)
    assert scales.shape == (w.q.shape[0] * w.q.shape[1] // w.group_size,)


def test_conv_model_all_schemes(convnet_onnx, convnet_feeds):
    for scheme in ("w8a8", "w4a8-g32", "nf4a8-g64"):
        _, q, feeds, rep = prepare(convnet_onnx, scheme=scheme, calib=convnet_feeds, progress=False)
        sess = ort_session(q)
        want = RefExecutor(q).run(feeds[0])["logits"]
        np.testing.assert_allclose(sess.run(None, feeds[0])[0], want, rtol=1e-3, atol=1e-3)
        # the depthwise conv (K = 9) cannot hold a group of 32: it falls back to int8 per channel
        fmts = {r["node"]: r["fmt"] for r in rep["layers"]}
        assert fmts["dw1"] == "int8"


def test_smooth_improves_outlier_layer(mlp_onnx, mlp_feeds):
    _, q0, _, plain = prepare(mlp_onnx, scheme="w8a8", calib=mlp_feeds, progress=False, smooth=False)
    _, q, _, smooth = prepare(mlp_onnx, scheme="w8a8", calib=mlp_feeds, progress=False, smooth=True)
    snr = lambda r: {l["node"]: l["snr_db"] for l in r["layers"]}["fc1"]  # noqa: E731
    assert snr(smooth) > snr(plain) + 1.0
    fc1 = next(n for n in q.nodes if n.name == "fc1")
    assert fc1.attrs["act_quant"].smooth is not None
    assert next(n for n in q0.nodes if n.name == "fc1").attrs["act_quant"].smooth is None


def test_smooth_default_is_matmul_inputs_of_static_schemes(mlp_onnx, mlp_feeds, convnet_onnx, convnet_feeds):
    # default: w8a8 (static per-tensor activations) smooths MatMul inputs with outlier channels ...
    _, q, _, rep = prepare(mlp_onnx, scheme="w8a8", calib=mlp_feeds, progress=False)
    assert {r["node"]: r["smooth"] for r in rep["layers"]}["fc1"]  # fc1: outlier channel 3
    # ... when the calibration data has at least as many rows as channels: 4 samples of 8 rows for 64
    # channels are too few to tell an outlier channel from sampling noise (a classifier after pooling)
    _, _, _, rep4 = prepare(mlp_onnx, scheme="w8a8", calib=mlp_feeds[:4], progress=False)
    fc1 = {r["node"]: r for r in rep4["layers"]}["fc1"]
    assert fc1["act_outlier_ratio"] > 8 and not fc1["smooth"]
    # ... but not Conv inputs behind a ReLU, and not the dynamic-activation schemes (their GPTQ/RTN results
    # stay as they were)
    _, q, _, _ = prepare(convnet_onnx, scheme="w8a8", calib=convnet_feeds, progress=False)
    assert all(n.attrs["act_quant"].smooth is None for n in q.nodes if n.op == "Conv" and "act_quant" in n.attrs)
    _, q, _, _ = prepare(mlp_onnx, scheme="w8a8d", calib=mlp_feeds, progress=False)
    assert all(n.attrs["act_quant"].smooth is None for n in q.nodes if "act_quant" in n.attrs)
    with pytest.raises(LowbitError, match="smooth="):
        prepare(mlp_onnx, scheme="w8a8", calib=mlp_feeds, progress=False, smooth="sometimes")


def test_keep_float_and_budget(mlp_onnx, mlp_feeds):
    from lowbit.ir import QuantWeight
    from lowbit.quant.pipeline import average_bits

    _, q, _, rep = prepare(mlp_onnx, scheme="w4a8-g32", calib=mlp_feeds, progress=False, keep_float="fc2")
    assert isinstance(q.initializers["w1"], QuantWeight) and isinstance(q.initializers["w2"], np.ndarray)
    assert rep["kept_float"] == ["fc2"]
    _, q, _, _ = prepare(mlp_onnx, scheme="w4a8-g32", calib=mlp_feeds, progress=False, budget_bits=6.0)
    avg = average_bits(q)
    assert 4.0 < avg <= 6.0
    with pytest.raises(LowbitError, match="budget"):
        prepare(mlp_onnx, scheme="w4a8-g32", calib=mlp_feeds, progress=False, budget_bits=3)


def test_torch_module_export(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)  # unseeded, a test input beyond the 8 calibration batches' range made it flaky
    m = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).eval()
    x = torch.randn(4, 32)
    calib = [(torch.randn(4, 32),) for _ in range(8)]
    out = lowbit.export(m, tmp_path / "t.onnx", example_inputs=(x,), scheme="w8a8", calib=calib,
                        format="onnx", progress=False)
    sess = ort_session(__import__("onnx").load(str(out)))
    with torch.no_grad():
        want = m(x).numpy()
    got = sess.run(None, {"input": x.numpy()})[0]
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.999


# ------------------------------------------------------------------ bad input

def _no_files(d):
    return sorted(p.name for p in d.iterdir())


def test_bad_inputs_fail_before_writing(mlp_onnx, mlp_feeds, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    target = out / "m.onnx"
    bad_model = tmp_path / "bad.onnx"
    bad_model.write_bytes(b"not an onnx model")
    cases = [
        (dict(model=bad_model), "not a loadable ONNX model"),
        (dict(model=tmp_path / "missing.onnx"), "does not exist"),
        (dict(scheme="w5a8"), "unknown scheme"),
        (dict(target="no-such-board"), "no-such-board"),
        (dict(format="tflite"), "unknown format"),
        (dict(calib=[{"y": mlp_feeds[0]["x"]}]), "inputs"),
        (dict(calib=[{"x": np.zeros((1, 8, 63), np.float32)}]), "shape"),
        (dict(calib=[{"x": np.zeros((1, 8, 64), np.int64)}]), "dtype"),
        (dict(scheme="w8a8", calib=None), "calibration data"),
    ]
    for kw, msg in cases:
        args = dict(model=mlp_onnx, scheme="w8a8", calib=mlp_feeds, format="onnx")
        args.update(kw)
        model = args.pop("model")
        with pytest.raises(LowbitError, match=msg):
            lowbit.export(model, target, progress=False, **args)
        assert _no_files(out) == [], kw


def test_unsupported_op_names_node_and_suggests_keep_float(tmp_path, mlp_feeds):
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("FancyOp", ["r"], ["y"], name="my_fancy_node", domain="acme")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 64])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme", 1)])
    m.ir_version = 9
    p = tmp_path / "custom.onnx"
    onnx.save(m, str(p))
    with pytest.raises(LowbitError, match=r"FancyOp.*my_fancy_node.*--keep-float"):
        lowbit.export(p, tmp_path / "o.onnx", scheme="w8a8d", format="onnx", progress=False)
    assert not (tmp_path / "o.onnx").exists()


def test_cli_export_npz_and_report(mlp_onnx, tmp_path):
    rng = np.random.default_rng(0)
    npz = tmp_path / "calib.npz"
    np.savez(npz, x=rng.standard_normal((8, 1, 8, 64)).astype(np.float32))
    folder = tmp_path / "calib_dir"
    folder.mkdir()
    np.save(folder / "x.npy", rng.standard_normal((4, 8, 64)).astype(np.float32))
    out = tmp_path / "cli.onnx"
    rep = tmp_path / "rep.json"
    for calib in (npz, folder):
        r = subprocess.run([sys.executable, "-m", "lowbit", "export", str(mlp_onnx), "-o", str(out), "--format",
                            "onnx", "--scheme", "w8a8", "--calib", str(calib), "--smooth", "--sparse-outliers",
                            "0.5%", "--report-json", str(rep)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "SNR" in r.stdout and out.exists()
        assert json.loads(rep.read_text())["layers"][0]["outliers"] > 0
    algos = {}
    for flag in ("--error-comp", "--no-error-comp"):
        r = subprocess.run([sys.executable, "-m", "lowbit", "export", str(mlp_onnx), "-o", str(out), "--format", "onnx",
                            "--scheme", "w8a8", "--calib", str(npz), flag, "--report-json", str(rep), "-q"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        algos[flag] = {layer["algo"] for layer in json.loads(rep.read_text())["layers"]}
    assert all(a.endswith("+comp") for a in algos["--error-comp"]), algos
    assert not any(a.endswith("+comp") for a in algos["--no-error-comp"]), algos
    r = subprocess.run([sys.executable, "-m", "lowbit", "export", str(mlp_onnx), "-o", str(tmp_path / "x.onnx"),
                        "--format", "onnx", "--scheme", "w9a9"], capture_output=True, text=True)
    assert r.returncode == 1 and "unknown scheme" in r.stderr and not (tmp_path / "x.onnx").exists()


def test_lbpk_export_fp32_runs_and_refusal_leaves_nothing(mlp_onnx, mlp_feeds, tmp_path):
    pytest.importorskip("lowbit.exporters.lbpk")
    out = lowbit.export(mlp_onnx, tmp_path / "m.lbpk", scheme="fp32", calib=mlp_feeds, format="lbpk",
                        progress=False)
    try:
        sess = lowbit.load(out)
    except LowbitError as exc:  # the native runtime is not built in this environment
        pytest.skip(str(exc))
    got = sess.run(mlp_feeds[0])["y"]
    _, q, _, _ = prepare(mlp_onnx, scheme="fp32", calib=mlp_feeds, progress=False)
    np.testing.assert_allclose(got, RefExecutor(q).run(mlp_feeds[0])["y"], rtol=1e-4, atol=1e-4)
    # a scheme the runtime cannot run yet (or any op it lacks) is refused before a file exists
    try:
        lowbit.export(mlp_onnx, tmp_path / "q.lbpk", scheme="w8a8", calib=mlp_feeds, format="lbpk", progress=False)
    except LowbitError as exc:
        assert "--keep-float" in str(exc)
        assert not (tmp_path / "q.lbpk").exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m.lbpk"]


def test_model_input_stays_float_unless_int8_holds_it(convnet_onnx, convnet_feeds):
    # the convnet's input is Gaussian noise: int8 cannot hold it, so its first conv keeps a float input
    _, q, _, rep = prepare(convnet_onnx, scheme="w8a8", calib=convnet_feeds, progress=False)
    conv0 = next(n for n in q.nodes if n.name == "conv0")
    assert "act_quant" not in conv0.attrs and isinstance(q.initializers["w0"], QuantWeight)
    assert {r["node"]: r["act"] for r in rep["layers"]} == {"conv0": "float", "dw1": "static", "fc": "static"}
    # 8-bit pixels mapped by a fixed affine map ((p - 127) / 128, as EfficientNet-Lite's preprocessing)
    # are exactly on an int8 grid: then the input is quantized, losslessly
    rng = np.random.default_rng(3)
    from lowbit.refexec import quantize_activation
    for lo, hi in ((0, 256), (10, 200)):  # all 256 levels, or fewer (min/max then miss the grid)
        pix = [{"x": ((rng.integers(lo, hi, (1, 3, 16, 16)) - 127) / 128).astype(np.float32)} for _ in range(8)]
        _, q, _, _ = prepare(convnet_onnx, scheme="w8a8", calib=pix, progress=False)
        aq = next(n for n in q.nodes if n.name == "conv0").attrs["act_quant"]
        assert aq.scale == pytest.approx(1 / 128)
        x = pix[0]["x"]
        np.testing.assert_allclose(quantize_activation(x, aq, 1), x, atol=1e-7)


def test_small_k_layers_get_hessian_rounding(convnet_onnx, convnet_feeds):
    # w8a8 without error compensation (round to nearest) still rounds the small-K layers (first conv
    # K=27, depthwise K=9) with GPTQ
    _, _, _, rep = prepare(convnet_onnx, scheme="w8a8", calib=convnet_feeds, progress=False, error_comp=False)
    algo = {r["node"]: r["algo"] for r in rep["layers"]}
    assert algo["conv0"] == "gptq" and algo["dw1"] == "gptq" and algo["fc"] == "rtn"
    # 7-bit weights (codes in [-63, 63] for the u8 x s8 AVX2 GEMM): the same GPTQ rounding within +-63
    _, q, _, rep = prepare(convnet_onnx, scheme="w8a8", calib=convnet_feeds, progress=False, weight_bits7=True,
                           error_comp=False)
    algo7 = {r["node"]: r["algo"] for r in rep["layers"]}
    assert algo7["conv0"] == "gptq" and algo7["dw1"] == "gptq" and algo7["fc"] == "rtn"
    assert max(int(np.abs(v.q).max()) for v in q.initializers.values() if isinstance(v, QuantWeight)) == 63
    # and error compensation by default, as for 8-bit weights
    _, q, _, rep = prepare(convnet_onnx, scheme="w8a8", calib=convnet_feeds, progress=False, weight_bits7=True)
    assert {r["node"]: r["algo"] for r in rep["layers"]} == {"conv0": "gptq+comp", "dw1": "gptq+comp",
                                                              "fc": "rtn+comp"}
    assert max(int(np.abs(v.q).max()) for v in q.initializers.values() if isinstance(v, QuantWeight)) == 63


def test_gptq_int8_qmax_keeps_codes_in_range():
    from lowbit.quant.gptq import gptq_per_row, gptq_quantize

    rng = np.random.default_rng(1)
    w = rng.standard_normal((8, 48)).astype(np.float32)
    x = rng.standard_normal((500, 48)) + 0.5 * rng.standard_normal((500, 1))
    h = 2 * x.T @ x / 500
    q7 = gptq_quantize(w, h, "int8", 0, int8_qmax=63)
    assert int(np.abs(q7.q).max()) == 63
    np.testing.assert_allclose(q7.scale[:, 0], np.abs(w).max(axis=1) / 63, rtol=1e-6)
    q8 = gptq_quantize(w, h, "int8", 0)
    err = lambda qw: np.einsum("nk,kl,nl->", qw.dequantize() - w, h, qw.dequantize() - w)  # noqa: E731
    assert err(q8) < err(q7)  # half the step: less output error
    r7 = gptq_per_row(w[:, :9], np.broadcast_to(h[:9, :9], (8, 9, 9)), qmax=63)
    assert int(np.abs(r7.q).max()) == 63


def test_gptq_per_row_is_gptq_with_each_rows_hessian():
    from lowbit.quant.gptq import gptq_per_row, gptq_quantize
    from lowbit.quant.weights import quantize_rtn

    rng = np.random.default_rng(0)
    n, k = 6, 9
    w = rng.standard_normal((n, k)).astype(np.float32)
    # strongly correlated inputs, like the pixels of a smooth image patch
    x = rng.standard_normal((n, 400, 1)) + 0.1 * rng.standard_normal((n, 400, k))
    h = 2 * np.matmul(x.transpose(0, 2, 1), x) / 400
    h[2] = 0.0  # a dead channel: plain rounding
    got = gptq_per_row(w, h)
    rtn = quantize_rtn(w, "int8", 0)
    np.testing.assert_array_equal(got.q[2], rtn.q[2])
    err = lambda qw, i: (qw.dequantize()[i] - w[i]) @ h[i] @ (qw.dequantize()[i] - w[i])  # noqa: E731
    for i in (0, 1, 3, 4, 5):
        ref = gptq_quantize(w[i:i + 1], h[i], "int8", 0)
        np.testing.assert_array_equal(got.q[i], ref.q[0])
        np.testing.assert_allclose(got.scale[i], ref.scale[0])
    assert sum(err(got, i) for i in range(n)) < 0.5 * sum(err(rtn, i) for i in range(n))


def test_error_compensation_fits_the_float_layer_on_the_quantized_input(convnet_onnx, convnet_feeds):
    """w8a8's default sequential pass (quant/seqcomp.py): every layer GPTQ-rounded on the quantized
    model's own input (round to nearest where the calibration data has fewer rows than inputs: the
    classifier, 8 rows for K = 16), the depthwise conv refitted to the float layer's output, each
    conv's bias corrected so that its mean output on the calibration data equals the float layer's."""
    from lowbit.refexec import RefExecutor

    fg, q, _, rep = prepare(convnet_onnx, scheme="w8a8", calib=convnet_feeds, progress=False)
    _, q_off, _, _ = prepare(convnet_onnx, scheme="w8a8", calib=convnet_feeds, progress=False, error_comp=False)
    assert {r["node"]: r["algo"] for r in rep["layers"]} == {"conv0": "gptq+comp", "dw1": "gptq+comp",
                                                              "fc": "rtn+comp"}
    _, _, _, rep_many = prepare(convnet_onnx, scheme="w8a8", calib=convnet_feeds * 8, progress=False)
    assert {r["node"]: r["algo"] for r in rep_many["layers"]}["fc"] == "gptq+comp"  # 64 rows for K = 16
    with pytest.raises(LowbitError, match="error_comp"):
        prepare(convnet_onnx, scheme="w8a8", calib=convnet_feeds, progress=False, error_comp="yes")

    def outs(g):
        ex = RefExecutor(g)
        return np.concatenate([ex.run(f, keep=["c1"])["c1"] for f in convnet_feeds])  # the depthwise output

    ref, on, off = outs(fg), outs(q), outs(q_off)
    # bias correction with the quantized input: per-channel mean error 0 on the calibration data
    np.testing.assert_allclose((ref - on).mean(axis=(0, 2, 3)), 0, atol=1e-4 * np.abs(ref).max())
    err_on, err_off = ((ref - on) ** 2).mean(), ((ref - off) ** 2).mean()
    assert err_on < err_off, (err_on, err_off)
