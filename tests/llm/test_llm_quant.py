"""Quantized LLM packages: the native runtime computes what the dequantized weights define (up to
int8 activation rounding), the manifest records the model, and the export options work."""
from __future__ import annotations

import numpy as np
import pytest

from llm_helpers import make_hf_model, torch_logits
from lowbit import LowbitError
from lowbit.llm import quantize as Q
from lowbit.llm.export import export_hf, read_manifest
from lowbit.llm.hf import HfCheckpoint
from lowbit.llm.reference import ReferenceDecoder
from lowbit.llm.session import LlmSession

# Native (int8 dynamic activations) vs the numpy decoder on the dequantized weights (float
# activations): only activation rounding separates them.
kQuantVsDequantRelTol = 0.08
IDS = np.random.default_rng(0).integers(0, 256, 32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny128")
    model = make_hf_model(d, "llama", hidden_size=128, intermediate_size=256, eos_token_id=[2, 5])
    return d, model


def dequant_reference(d, scheme, head="int8", embed="int8"):
    ck = HfCheckpoint(d)
    w = ck.load_all()
    for k, v in list(w.items()):
        if k.split(".")[-1] in ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"):
            w[k] = Q.dequantized(v, scheme)
    if head == "int8":
        w["lm_head"] = Q.dequantized(w["lm_head"], "w8a8d")
    if embed == "int8":
        q, s = Q.quantize_rows_int8(w["embed"])
        w["embed"] = q * s[:, None]
    return ReferenceDecoder(ck.cfg, w).forward(IDS)


@pytest.mark.parametrize("scheme, fmt", [("w8a8d", "q8"), ("w4a8-g32", "q4"), ("w4a8-g128", "q4"), ("t2a8", "t2")])
def test_llm_quantized_matches_dequantized_reference(model_dir, tmp_path, scheme, fmt):
    d, model = model_dir
    pkg = export_hf(d, tmp_path / f"{scheme}.lbpk", scheme=scheme)
    man = read_manifest(pkg)
    assert man["kind"] == "llm" and man["scheme"] == scheme
    assert set(man["linears"].values()) == {fmt, "q8"}  # the head is int8
    s = LlmSession(pkg, threads=2)
    got = s.logits(IDS)
    ref = dequant_reference(d, scheme)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err <= kQuantVsDequantRelTol, f"{scheme}: {err}"
    # and the same package gives bitwise the same logits with 1 thread
    assert np.array_equal(LlmSession(pkg, threads=1).logits(IDS), got)
    if scheme == "w8a8d":  # int8 weights: close to float
        want = torch_logits(model, IDS)
        assert np.mean(got.argmax(-1) == want.argmax(-1)) >= 0.85


def test_llm_manifest_records_model_and_sizes(model_dir, tmp_path):
    d, _ = model_dir
    pkg = export_hf(d, tmp_path / "m.lbpk", scheme="w4a8-g32", context_length=64)
    man = read_manifest(pkg)
    llm = man["llm"]
    assert (llm["arch"], llm["context_length"], llm["bos_token_id"], llm["eos_token_ids"]) == ("llama", 64, 1, [2, 5])
    assert llm["embed_format"] == "i8" and not llm["head_tied"]
    s = LlmSession(pkg)
    assert s.context_length == 64 and s.eos_token_ids == [2, 5]
    # bytes read per token: 4.5 bits per linear weight (int4 + an fp16 scale per 32), the int8
    # head (+ fp32 scale and int32 sum per row) and one int8 embedding row
    lin = 2 * (128 * (128 + 64 + 64) + 128 * 128 + 2 * 256 * 128 + 128 * 256)
    assert s.info["weight_bytes"] == lin * 9 // 16 + 256 * (128 + 8) + 128
    # default stop = EOS ids: generation ends at the first EOS
    out = s.generate([7, 8, 9], 40)
    assert all(t not in (2, 5) for t in out[:-1])


def test_llm_float_embeddings_and_head_option(model_dir, tmp_path):
    d, _ = model_dir
    pkg = export_hf(d, tmp_path / "fh.lbpk", scheme="w8a8d", embed="f32", head="f32")
    man = read_manifest(pkg)
    assert man["llm"]["embed_format"] == "f32" and man["linears"]["head"] == "f32"
    got = LlmSession(pkg).logits(IDS)
    ref = dequant_reference(d, "w8a8d", head="f32", embed="f32")
    assert np.abs(got - ref).max() / np.abs(ref).max() <= kQuantVsDequantRelTol


def test_llm_export_bad_options(model_dir, tmp_path):
    d, _ = model_dir
    with pytest.raises(LowbitError, match="unknown LLM scheme"):
        export_hf(d, tmp_path / "x.lbpk", scheme="w3a8")
    with pytest.raises(LowbitError, match="context_length"):
        export_hf(d, tmp_path / "x.lbpk", scheme="fp32", context_length=10**6)
    with pytest.raises(LowbitError, match="embed"):
        export_hf(d, tmp_path / "x.lbpk", scheme="fp32", embed="int4")
    assert not (tmp_path / "x.lbpk").exists()


def test_llm_export_refuses_graph_only_options(model_dir, tmp_path):
    d, _ = model_dir
    with pytest.raises(LowbitError, match="smooth"):
        export_hf(d, tmp_path / "y.lbpk", scheme="w8a8d", smooth=True)
    with pytest.raises(LowbitError, match="w8a8d"):
        export_hf(d, tmp_path / "y.lbpk", scheme="w8a8")
    export_hf(d, tmp_path / "y.lbpk", scheme="fp32", smooth=False, keep_float=[], budget_bits=None)


def test_llm_gptq_beats_round_to_nearest(model_dir, tmp_path):
    d, model = model_dir
    rng = np.random.default_rng(0)
    calib = rng.integers(0, 256, (8, 64))
    want = torch_logits(model, IDS)

    def rms_err(pkg):
        got = LlmSession(pkg).logits(IDS)
        return np.sqrt(np.mean((got - want) ** 2) / np.mean(want ** 2))

    rtn = rms_err(export_hf(d, tmp_path / "rtn.lbpk", scheme="w4a8-g32", head="f32", embed="f32"))
    gptq_pkg = export_hf(d, tmp_path / "gptq.lbpk", scheme="w4a8-g32-gptq", calib=calib, head="f32", embed="f32")
    assert read_manifest(gptq_pkg)["linears"]["layers.0.qkv"] == "q4"
    assert read_manifest(gptq_pkg)["llm"]["kv_order_calib_rows"] == 8 * 64  # the same calibration pass
    assert rms_err(gptq_pkg) < rtn
    with pytest.raises(LowbitError, match="calibration"):
        export_hf(d, tmp_path / "g2.lbpk", scheme="w4a8-g32-gptq")
    with pytest.raises(LowbitError, match="token ids"):
        export_hf(d, tmp_path / "g2.lbpk", scheme="w4a8-g32-gptq", calib=[[1, 2, 999]])


def test_llm_gptq_is_sequential(model_dir):
    """Layer 0's qkv sees the float model's input; every later linear sees the input of a model whose earlier
    linears are already quantized (so its Hessian differs from the float run's), and layers go in order."""
    d, _ = model_dir
    ck = HfCheckpoint(d)
    calib = np.random.default_rng(1).integers(0, 256, (3, 40))
    float_h = {}

    def capture(layer, name, x):
        x = np.asarray(x, np.float64)
        float_h[(layer, name)] = float_h.get((layer, name), 0.0) + x.T @ x

    ref = ReferenceDecoder(ck.cfg, ck.load_all())
    for s in calib:
        ref.reset()
        ref.forward(s, capture=capture)
    g = Q.GptqContext(ck, calib)
    seen = {}
    real = g._hessian

    def spy(w, i, name):
        seen[(i, name)] = h = real(w, i, name)
        return h

    g._hessian = spy
    mats = {name: np.concatenate([ck.get(f"layers.0.{p}") for p in parts]) for name, parts in Q.FUSED_LINEARS.items()}
    with pytest.raises(LowbitError, match="layer 0 next"):
        g.quantize_layer(1, mats)
    qws = g.quantize_layer(0, mats)
    assert {k: v.q.shape for k, v in qws.items()} == {k: m.shape for k, m in mats.items()}
    n = calib.size
    np.testing.assert_allclose(seen[(0, "qkv")], float_h[(0, "qkv")] * 2 / n, rtol=1e-6)
    for name in ("o", "gate_up", "down"):
        assert not np.allclose(seen[(0, name)], float_h[(0, name)] * 2 / n, rtol=1e-3), name
