"""End-to-end model benchmark: lowbit packages vs ONNX Runtime (and PyTorch) on the real models.

    .venv/bin/python bench/models.py [--models effnet,minilm,det] [--threads 1,2] [--runs 20] [--out bench.json]

For each model: latency (median, p95) of lowbit fp32 and ONNX Runtime float at each thread count,
PyTorch fp32 where the model comes from PyTorch, ONNX Runtime int8 (dynamic quantization of the same
ONNX) for the quantized comparison, package load time (verified and lazy) and peak memory of a
process that loads and runs the package. Prints a table and writes JSON. This machine is shared and
noisy: compare ratios measured in the same run, not absolute times.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def _timeit(fn, runs):
    fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": float(np.median(ts)), "p95_ms": float(np.percentile(ts, 95))}


def _export(module, feeds, path, output_names):
    import torch

    args = tuple(torch.from_numpy(v) for v in feeds.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buf = io.BytesIO()
        with torch.no_grad():
            torch.onnx.export(module, args, buf, dynamo=False, input_names=list(feeds), output_names=output_names,
                              opset_version=17)
    Path(path).write_bytes(buf.getvalue())
    return args


def models(names, work: Path):
    from lowbit import zoo

    out = {}
    if "effnet" in names:
        m = zoo.efficientnet_lite0()
        feeds = {"input": zoo.preprocess_lite(zoo.natural_images(1))}
        args = _export(m, feeds, work / "effnet.onnx", ["logits"])
        out["efficientnet_lite0"] = (work / "effnet.onnx", feeds, (m, args))
    if "minilm" in names:
        enc = zoo.MiniLMEncoder()
        feeds = zoo.minilm_feeds(zoo.sentences(1), seq_len=128)[0]
        args = _export(enc, feeds, work / "minilm.onnx", ["embedding"])
        out["all-MiniLM-L6-v2 (seq 128)"] = (work / "minilm.onnx", feeds, (enc, args))
    if "det" in names:
        from skimage import data
        from skimage.transform import resize

        page = resize(data.page(), (320, 640), order=1, anti_aliasing=True)
        x = np.repeat(((page.astype(np.float32) - 0.5) / 0.5)[None, None], 3, axis=1).copy()
        out["PP-OCRv5 det (320x640)"] = (zoo.ppocr_paths()["det"], {"x": x}, None)
    return out


_CHILD = r"""
import sys, time, resource, numpy as np, lowbit
import lowbit.runtime; lowbit.native()
t0 = time.perf_counter(); s = lowbit.load(sys.argv[1], threads=int(sys.argv[2]), lazy=sys.argv[3] == "1"); t1 = time.perf_counter()
feeds = dict(np.load(sys.argv[4]))
s.run(feeds)
print(f"{(t1 - t0) * 1e3:.3f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} {s.arena_bytes}")
"""


def bench_model(name, onnx_path, feeds, torch_model, threads, runs, work: Path):
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import lowbit
    from lowbit.exporters.lbpk import write_package
    from lowbit.importers.onnx_import import import_onnx

    pkg = work / (Path(onnx_path).stem + ".fp32.lbpk")
    g = import_onnx(str(onnx_path), {k: v.shape for k, v in feeds.items()})
    write_package(g, pkg, target="auto", scheme="fp32")
    q_onnx = work / (Path(onnx_path).stem + ".int8.onnx")
    try:
        quantize_dynamic(str(onnx_path), str(q_onnx), weight_type=QuantType.QInt8)
    except Exception as exc:  # noqa: BLE001
        q_onnx = None
        print(f"  (ORT int8 quantization failed: {exc})", file=sys.stderr)
    res = {"model": name, "package_mb": pkg.stat().st_size / 2**20, "threads": {}}
    np.savez(work / "feeds.npz", **feeds)
    base_rss = None
    for lazy in ("0", "1"):
        loads = []
        for _ in range(5):
            r = subprocess.run([sys.executable, "-c", _CHILD, str(pkg), "1", lazy, str(work / "feeds.npz")],
                               capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(r.stderr)
            ms, rss, arena = r.stdout.split()
            loads.append(float(ms))
        res["load_ms_" + ("lazy" if lazy == "1" else "verified")] = float(np.median(loads))
        if lazy == "0":
            res["peak_rss_mb"] = int(rss) / 1024
            res["arena_mb"] = int(arena) / 2**20
    r = subprocess.run([sys.executable, "-c", "import resource, numpy, lowbit, lowbit.runtime; lowbit.native(); "
                        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"], capture_output=True, text=True)
    base_rss = int(r.stdout.strip()) / 1024 if r.returncode == 0 else 0.0
    res["baseline_rss_mb"] = base_rss  # python + numpy + lowbit imported, nothing loaded
    for t in threads:
        row = {}
        s = lowbit.load(pkg, threads=t)
        row["lowbit_fp32"] = _timeit(lambda: s.run(feeds), runs)
        so = ort.SessionOptions()
        so.intra_op_num_threads = t
        so.inter_op_num_threads = 1
        o = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        row["ort_fp32"] = _timeit(lambda: o.run(None, feeds), runs)
        if q_onnx is not None:
            oq = ort.InferenceSession(str(q_onnx), so, providers=["CPUExecutionProvider"])
            row["ort_int8_dynamic"] = _timeit(lambda: oq.run(None, feeds), runs)
        if torch_model is not None:
            import torch

            torch.set_num_threads(t)
            m, args = torch_model
            with torch.no_grad():
                row["torch_fp32"] = _timeit(lambda: m(*args), runs)
        row["lowbit_w8a8"] = row["lowbit_w4a8_g32"] = None  # TODO(#5): quantized ops through qlinear
        row["ratio_ort_fp32_over_lowbit_fp32"] = row["ort_fp32"]["median_ms"] / row["lowbit_fp32"]["median_ms"]
        res["threads"][str(t)] = row
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="effnet,minilm,det")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--out", default="bench-models.json")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    work = Path(tempfile.mkdtemp(prefix="lowbit-bench-"))
    results = []
    for name, (onnx_path, feeds, tm) in models(args.models.split(","), work).items():
        print(f"== {name}", flush=True)
        r = bench_model(name, onnx_path, feeds, tm, threads, args.runs, work)
        results.append(r)
        print(f"  package {r['package_mb']:.1f} MB, load {r['load_ms_verified']:.1f} ms verified / "
              f"{r['load_ms_lazy']:.1f} ms lazy (python process), peak RSS {r['peak_rss_mb']:.0f} MB "
              f"(baseline {r['baseline_rss_mb']:.0f} MB, arena {r['arena_mb']:.1f} MB)")
        for t, row in r["threads"].items():
            cells = "  ".join(f"{k} {v['median_ms']:.1f}/{v['p95_ms']:.1f}" for k, v in row.items()
                              if isinstance(v, dict))
            print(f"  {t} thr (median/p95 ms): {cells}  ort/lowbit fp32 {row['ratio_ort_fp32_over_lowbit_fp32']:.2f}x")
    info = {"cpu": __import__("lowbit").native().cpu_model(), "cores": os.cpu_count(),
            "load_avg": os.getloadavg(), "results": results}
    Path(args.out).write_text(json.dumps(info, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
