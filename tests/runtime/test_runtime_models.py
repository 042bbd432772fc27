"""Real models through the whole path: ONNX -> IR -> .lbpk -> native runtime, against ONNX Runtime."""
import numpy as np
import pytest

import lowbit
from lowbit_testutil import ISA_INCLUDES

FP32_RTOL = 1e-4  # the target: fp32 packages match ONNX Runtime float within 1e-4 relative


def _rel_err(got, ref):
    return float(np.max(np.abs(got.astype(np.float64) - ref)) / max(np.max(np.abs(ref)), 1e-12))


def test_runtime_effnet_fp32_matches_onnxruntime(effnet):
    s = lowbit.load(effnet.lbpk, threads=2)
    assert s.inputs == [{"name": "input", "dtype": "float32", "shape": [1, 3, 224, 224]}]
    out = s.run(effnet.feeds)["logits"]
    assert out.shape == (1, 1000)
    assert _rel_err(out, effnet.ref["logits"]) < FP32_RTOL
    assert np.argmax(out) == np.argmax(effnet.ref["logits"])
    assert 0 < s.arena_bytes < 64 << 20


def test_runtime_results_do_not_depend_on_threads(effnet):
    outs = [lowbit.load(effnet.lbpk, threads=t).run(effnet.feeds)["logits"] for t in (1, 2, 3)]
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


def test_runtime_minilm_fp32_matches_onnxruntime(minilm):
    s = lowbit.load(minilm.lbpk, threads=2)
    out = s.run(minilm.feeds)["embedding"]
    assert out.shape == (1, 384)
    assert _rel_err(out, minilm.ref["embedding"]) < FP32_RTOL


def test_runtime_ppocr_det_fp32_matches_onnxruntime(ppocr_det):
    s = lowbit.load(ppocr_det.lbpk, threads=2)
    name = s.outputs[0]["name"]
    out = s.run(ppocr_det.feeds)[name]
    ref = next(iter(ppocr_det.ref.values()))
    assert out.shape == ref.shape
    assert _rel_err(out, ref) < FP32_RTOL


def test_runtime_profile_events_name_kernels_and_isa(effnet):
    s = lowbit.load(effnet.lbpk, threads=1)
    s.run(effnet.feeds)
    assert s.profile_events()[0]["end_ns"] == 0  # profiling off: nothing recorded
    s.enable_profiling(True)
    s.run(effnet.feeds)
    ev = s.profile_events()
    assert len(ev) == len(s.manifest["ops"])
    convs = [e for e in ev if e["op_type"] == "Conv"]
    isas = ISA_INCLUDES[lowbit.native().isa_best()]  # the AVX-512 path runs some convs with avx512vnni kernels
    assert convs and all(e["kernel"] in ("conv2d_f32", "conv2d_pw_f32", "conv2d_pwdw_f32", "conv2d_dwpw_f32")
                         and e["isa"] in isas for e in convs)
    assert sum(e["kernel"] == "conv2d_pwdw_f32" for e in convs) == 2  # the 112x112 / 56x56 expansions + depthwise
    assert sum(e["kernel"] == "conv2d_dwpw_f32" for e in convs) == 1  # the 32x112x112 depthwise + projection
    assert all(e["end_ns"] >= e["start_ns"] >= 0 for e in ev)
    assert sum(e["ops"] for e in convs) > 5e8  # EfficientNet-Lite0: ~0.4 GMAC
    assert convs[0]["shapes"].startswith("[1, 3, 224, 224]")
