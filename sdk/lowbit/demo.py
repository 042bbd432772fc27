"""`make demo`: lowbit's main job on a default model.

Exports EfficientNet-Lite0 (PyTorch) to a device package with ``lowbit.export`` (fp32), loads it
with the native runtime, classifies one of scikit-image's photographs (the cat, "chelsea"), and
prints the top-5 classes and the latency beside ONNX Runtime float on the same input; then the
same model as a w8a8 package (int8 convs through qconv2d_f32): its top-1 and latency.
"""
from __future__ import annotations

import io
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def _median_ms(fn, runs=10):
    from lowbit.profiler.stats import time_ms  # noqa: PLC0415

    return float(np.median(time_ms(fn, runs)))


def _w8a8(model, x, work: Path, name: str, fp32_logits, fp32_ms: float, labels) -> None:
    """The same model as a w8a8 package (calibrated on 8 other photographs), run natively."""
    import lowbit
    from lowbit import zoo

    try:
        imgs = zoo.preprocess_lite(zoo.natural_images(10))
        calib = [{"input": imgs[i:i + 1]} for i in range(2, 10)]
        qpkg = work / "efficientnet_lite0.w8a8.lbpk"
        t0 = time.perf_counter()
        lowbit.export(model, qpkg, example_inputs={"input": x}, scheme="w8a8", calib=calib, format="lbpk",
                      target="auto", progress=False)
        export_s = time.perf_counter() - t0
        qs = lowbit.load(qpkg)
        ql = next(iter(qs.run({name: x}).values()))[0]
        q_ms = _median_ms(lambda: qs.run({name: x}))
    except Exception as exc:  # noqa: BLE001 - the fp32 demo above stands on its own
        print(f"w8a8: skipped ({type(exc).__name__}: {exc})")
        return
    k, kf = int(np.argmax(ql)), int(np.argmax(fp32_logits))
    label = labels[k] if labels else f"class {k}"
    print(f"w8a8 package {qpkg.stat().st_size / 2**20:.1f} MiB (exported in {export_s:.1f} s): top-1 {k} {label} "
          f"({'same as' if k == kf else 'differs from'} fp32), latency {q_ms:.1f} ms vs fp32 {fp32_ms:.1f} ms")


def main(argv=None) -> int:
    import lowbit
    from lowbit import doctor, zoo

    work = Path(tempfile.mkdtemp(prefix="lowbit-demo-"))
    print(f"lowbit {lowbit.__version__}: EfficientNet-Lite0 -> .lbpk -> native runtime  (work dir {work})")
    model = zoo.efficientnet_lite0()
    img = zoo.natural_images(2)[1]  # scikit-image's "chelsea" (a cat)
    x = zoo.preprocess_lite([img])
    pkg = work / "efficientnet_lite0.lbpk"
    t0 = time.perf_counter()
    lowbit.export(model, pkg, example_inputs={"input": x}, scheme="fp32", format="lbpk", target="auto")
    print(f"exported {pkg.name}: {pkg.stat().st_size / 2**20:.1f} MiB in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    sess = lowbit.load(pkg)
    load_ms = (time.perf_counter() - t0) * 1e3
    name = sess.inputs[0]["name"]
    logits = next(iter(sess.run({name: x}).values()))[0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    labels = zoo.imagenet_labels()
    print(f"loaded and verified in {load_ms:.1f} ms; arena {sess.arena_bytes / 2**20:.1f} MiB")
    print("top-5 (ImageNet class, probability):")
    for k in np.argsort(-p)[:5]:
        label = labels[k] if labels else f"class {k}"
        print(f"  {k:4d}  {p[k]:.3f}  {label}")

    lb_ms = _median_ms(lambda: sess.run({name: x}))
    try:
        import onnxruntime as ort
        import torch

        buf = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.from_numpy(x),), buf, dynamo=False, input_names=["input"], opset_version=17)
        o = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
        ref = o.run(None, {"input": x})[0][0]
        ort_ms = _median_ms(lambda: o.run(None, {"input": x}))
        rel = float(np.max(np.abs(ref - logits)) / np.max(np.abs(ref)))
        print(f"latency: lowbit fp32 {lb_ms:.1f} ms, ONNX Runtime float {ort_ms:.1f} ms (median of 10, "
              f"{sess.threads or 'all'} threads); max relative difference of the logits {rel:.1e}")
    except ImportError:
        print(f"latency: lowbit fp32 {lb_ms:.1f} ms (onnxruntime not installed for the comparison)")
    _w8a8(model, x, work, name, logits, lb_ms, labels)
    print()
    return doctor.run(__import__("types").SimpleNamespace(json=False, selfcheck=False, measure=False))


if __name__ == "__main__":
    sys.exit(main())
