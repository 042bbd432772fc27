"""End-to-end model benchmark: lowbit packages vs ONNX Runtime (and PyTorch) on the real models.

    .venv/bin/python bench/models.py [--models effnet,minilm,det] [--threads 1,2] [--runs 20] [--out bench.json]

For each model: latency (median, p95) of lowbit fp32, w8a8 and w4a8-g32 packages, ONNX Runtime float,
PyTorch fp32 where the model comes from PyTorch, and ONNX Runtime's int8 models: its dynamic
quantization of the float ONNX, its static QOperator int8 model (QLinearConv; conv nets, same
calibration feeds) and the QDQ ONNX lowbit exports from the same quantized graph as the package
(ort_qdq_*). All of one thread count are timed interleaved, round by round. Also package load time
(verified and lazy) and peak memory of a process that loads and runs each package. Prints a table
and writes JSON. This machine is shared and noisy: compare ratios measured in the same run.
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

from benchutil import settle  # noqa: E402  (bench/ is on sys.path)


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
        # the astronaut is timed; 32 held-out crops (not among the tests' 200 images) calibrate both engines:
        # with the 8 photos used before (two nearly black) the accuracy columns measured over-fitting
        # (docs/quantization.md, session 12)
        imgs = zoo.preprocess_lite(zoo.natural_images(232))
        feeds = {"input": imgs[:1]}
        args = _export(m, feeds, work / "effnet.onnx", ["logits"])
        calib = [{"input": imgs[i:i + 1]} for i in range(200, 232)]
        out["efficientnet_lite0"] = (work / "effnet.onnx", feeds, (m, args), calib)
    if "minilm" in names:
        enc = zoo.MiniLMEncoder()
        feeds = zoo.minilm_feeds(zoo.sentences(1), seq_len=128)[0]
        args = _export(enc, feeds, work / "minilm.onnx", ["embedding"])
        calib = zoo.minilm_feeds(zoo.sentences(8), seq_len=128)
        out["all-MiniLM-L6-v2 (seq 128)"] = (work / "minilm.onnx", feeds, (enc, args), calib)
    if "det" in names:
        from skimage import data
        from skimage.transform import resize

        page = resize(data.page(), (320, 640), order=1, anti_aliasing=True)
        x = np.repeat(((page.astype(np.float32) - 0.5) / 0.5)[None, None], 3, axis=1).copy()
        calib = [{"x": v[None]} for v in zoo.text_images(4, (320, 640))]
        out["PP-OCRv5 det (320x640)"] = (zoo.ppocr_paths()["det"], {"x": x}, None, calib)
    return out


_CHILD = r"""
import sys, time, resource, numpy as np, lowbit
import lowbit.runtime; lowbit.native()
t0 = time.perf_counter(); s = lowbit.load(sys.argv[1], threads=int(sys.argv[2]), lazy=sys.argv[3] == "1"); t1 = time.perf_counter()
feeds = dict(np.load(sys.argv[4]))
s.run(feeds)
print(f"{(t1 - t0) * 1e3:.3f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} {s.arena_bytes}")
"""

SCHEMES = ("w8a8", "w4a8-g32")


def _interleaved(fns, runs, block=4):
    """Rounds of short blocks: per round every callable runs `block` times in a row, the first run of a
    block untimed, until each has `runs` timed runs (so load changes still hit all alike). The untimed
    run absorbs the previous engine's thread-pool tail: ORT's workers spin after a run by default (and
    lowbit's for LOWBIT_SPIN_US), and on a 2-core machine threads still spinning steal the core from the
    engine that runs next. Alternating single runs made ORT's 2-thread int8 model slower than its
    1-thread one (18.8 vs 9.8 ms) and flattered lowbit 2x. Each block also starts on a settled process
    (`benchutil.settle`: no other thread running; a fixed 20 ms pause was too short for ORT's workers,
    which spin 20-40 ms of CPU after a Run here, session 11) and the engine order reverses every round:
    a block timed right after ORT's still measured up to 1.19x slower than the same block after
    lowbit's (session 4)."""
    for fn in fns.values():
        fn()
    ts = {k: [] for k in fns}
    order = list(fns.items())
    while any(len(v) < runs for v in ts.values()):
        for k, fn in order:
            settle()  # the previous engine's threads stop spinning and block
            fn()  # untimed: the other engine's spinning threads settle
            for _ in range(min(block - 1, runs - len(ts[k]))):
                t0 = time.perf_counter()
                fn()
                ts[k].append((time.perf_counter() - t0) * 1e3)
        order.reverse()  # no engine always runs right after the same other one
    return {k: {"median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95))} for k, v in ts.items()}


def _load_stats(pkg, work: Path, repeats: int):
    out = {}
    for lazy in ("0", "1"):
        loads = []
        for _ in range(repeats):
            r = subprocess.run([sys.executable, "-c", _CHILD, str(pkg), "1", lazy, str(work / "feeds.npz")],
                               capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(r.stderr)
            ms, rss, arena = r.stdout.split()
            loads.append(float(ms))
        out["load_ms_" + ("lazy" if lazy == "1" else "verified")] = float(np.median(loads))
        if lazy == "0":
            out["peak_rss_mb"] = int(rss) / 1024
            out["arena_mb"] = int(arena) / 2**20
    out["package_mb"] = Path(pkg).stat().st_size / 2**20
    return out


def _ort_static_int8(onnx_path, feeds_list, out: Path):
    """ONNX Runtime's own static int8 model (QOperator: QLinearConv/QLinearMatMul, u8 activations,
    per-channel s8 weights) calibrated on the same feeds: ORT's fastest int8 path on x86."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds_list)

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(onnx_path), str(out), _Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def _first_output(out) -> np.ndarray:
    """The first output of a lowbit run (dict), an ORT run (list) or a torch call, as float64."""
    if isinstance(out, dict):
        out = next(iter(out.values()))
    elif isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out, np.float64).ravel()


def _agreement(fns) -> dict:
    """Output agreement of every engine with ONNX Runtime float on the bench's input (one run each, untimed):
    max |diff| / max |ref| (the runtime tests' fp32 metric, target 1e-4) and cosine; each lowbit quantized
    package also against ORT running the same quantized graph as QDQ ONNX."""
    ref = _first_output(fns["ort_fp32"]())
    outs = {k: _first_output(f()) for k, f in fns.items() if k != "ort_fp32" and not k.startswith("torch")}
    res = {}

    def _cmp(a, b):
        if a.shape != b.shape:
            return None
        return {"max_rel": float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12)),
                "cosine": float(a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-30))}

    for k, o in outs.items():
        res[k + "_vs_ort_fp32"] = _cmp(o, ref)
        peer = "ort_qdq_" + k[len("lowbit_"):]
        if k.startswith("lowbit_") and peer in outs:
            res[k + "_vs_" + peer] = _cmp(o, outs[peer])
    return res


def bench_model(name, onnx_path, feeds, torch_model, threads, runs, work: Path, calib=None, schemes=SCHEMES):
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import lowbit
    from lowbit.export_api import prepare
    from lowbit.exporters.lbpk import write_package
    from lowbit.exporters.onnx_writer import write_onnx
    from lowbit.importers.onnx_import import import_onnx

    calib = calib or [feeds]
    stem = Path(onnx_path).stem
    pkg = work / (stem + ".fp32.lbpk")
    g = import_onnx(str(onnx_path), {k: v.shape for k, v in feeds.items()})
    write_package(g, pkg, target="auto", scheme="fp32")
    pkgs = {"fp32": pkg}
    qdq = {}
    for scheme in schemes:  # lowbit's quantized package and the same quantized graph as QDQ ONNX
        try:
            # "w8a8": the target's default int8 weight bits (7 on x86 without VNNI, 8 elsewhere);
            # "w8a8+w7" / "w8a8+w8": 7-bit / 8-bit int8 weights forced (export option weight_bits7)
            base, _, extra = scheme.partition("+")
            if extra not in ("", "w7", "w8"):
                raise ValueError(f"unknown scheme suffix +{extra} (use +w7 or +w8)")
            opts = {"weight_bits7": extra == "w7"} if extra else {}
            _, qg, _, _ = prepare(str(onnx_path), scheme=base, calib=calib, progress=False,
                                  input_shapes={k: v.shape for k, v in feeds.items()}, **opts)
            pkgs[scheme] = write_package(qg, work / f"{stem}.{scheme}.lbpk", target="auto", scheme=base)
            qdq[scheme] = write_onnx(qg, work / f"{stem}.{scheme}.qdq.onnx")
        except Exception as exc:  # noqa: BLE001
            print(f"  ({scheme} export failed: {exc})", file=sys.stderr)
    q_onnx = work / (stem + ".int8.onnx")
    try:
        quantize_dynamic(str(onnx_path), str(q_onnx), weight_type=QuantType.QInt8)
    except Exception as exc:  # noqa: BLE001
        q_onnx = None
        print(f"  (ORT int8 quantization failed: {exc})", file=sys.stderr)
    s_onnx = None
    if any(len(v.shape) == 4 for v in feeds.values()):  # conv nets: ORT's static int8 (QLinearConv)
        try:
            s_onnx = _ort_static_int8(onnx_path, calib, work / (stem + ".int8s.onnx"))
        except Exception as exc:  # noqa: BLE001
            print(f"  (ORT static int8 quantization failed: {exc})", file=sys.stderr)
    from lowbit.export_api import _weight_bits7

    res = {"model": name, "packages": {}, "threads": {},
           "int8_weight_bits_default": 7 if _weight_bits7("auto") else 8}  # what plain "w8a8" ran here
    np.savez(work / "feeds.npz", **feeds)
    for k, p in pkgs.items():
        res["packages"][k] = _load_stats(p, work, 5 if k == "fp32" else 3)
    res.update({k: v for k, v in res["packages"]["fp32"].items()})  # fp32 fields at top level (older readers)
    r = subprocess.run([sys.executable, "-c", "import resource, numpy, lowbit, lowbit.runtime; lowbit.native(); "
                        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"], capture_output=True, text=True)
    res["baseline_rss_mb"] = int(r.stdout.strip()) / 1024 if r.returncode == 0 else 0.0
    for t in threads:
        so = ort.SessionOptions()
        so.intra_op_num_threads = t
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        fns = {}
        for k, p in pkgs.items():
            s = lowbit.load(p, threads=t)
            fns["lowbit_" + k.replace("-", "_")] = (lambda s=s: s.run(feeds))
        o = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        fns["ort_fp32"] = lambda o=o: o.run(None, feeds)
        if q_onnx is not None:
            oq = ort.InferenceSession(str(q_onnx), so, providers=["CPUExecutionProvider"])
            fns["ort_int8_dynamic"] = lambda oq=oq: oq.run(None, feeds)
        if s_onnx is not None:
            os_ = ort.InferenceSession(str(s_onnx), so, providers=["CPUExecutionProvider"])
            fns["ort_int8_static"] = lambda os_=os_: os_.run(None, feeds)
        for k, p in qdq.items():  # the same quantized tensors as lowbit's package (ORT's own optimisation)
            oo = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
            fns["ort_qdq_" + k.replace("-", "_")] = (lambda oo=oo: oo.run(None, feeds))
        if torch_model is not None:
            import torch

            torch.set_num_threads(t)
            m, args = torch_model

            def _torch(m=m, args=args):
                with torch.no_grad():
                    m(*args)

            fns["torch_fp32"] = _torch
        if t == threads[0]:
            res["agreement"] = _agreement(fns)
        row = _interleaved(fns, runs)
        lb = row["lowbit_fp32"]["median_ms"]
        row["ratio_ort_fp32_over_lowbit_fp32"] = row["ort_fp32"]["median_ms"] / lb
        for mine in [k for k in row if k.startswith("lowbit_w8a8")]:  # w8a8 and w8a8+w7
            w8 = row[mine]["median_ms"]
            for peer in ("ort_int8_static", "ort_int8_dynamic", "ort_qdq_w8a8"):
                if peer in row:
                    row[f"ratio_{peer}_over_{mine}"] = row[peer]["median_ms"] / w8
        res["threads"][str(t)] = row
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="effnet,minilm,det")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--schemes", default=",".join(SCHEMES),
                    help="lowbit quantized packages to add (comma list; SCHEME = the target's default int8 weight "
                         "bits, SCHEME+w7 / SCHEME+w8 = 7-bit / 8-bit int8 weights forced)")
    ap.add_argument("--out", default="bench-models.json")
    ap.add_argument("--workdir", default=None,
                    help="keep the exported models and packages here (for A/B runs); default: a temporary "
                         "directory removed at the end (the packages of one run take ~0.5 GB)")
    args = ap.parse_args(argv)
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        return _run(args, Path(args.workdir))
    with tempfile.TemporaryDirectory(prefix="lowbit-bench-") as tmp:
        return _run(args, Path(tmp))


def _run(args, work: Path) -> int:
    threads = [int(t) for t in args.threads.split(",")]
    results = []
    schemes = tuple(x for x in args.schemes.split(",") if x)
    for name, (onnx_path, feeds, tm, calib) in models(args.models.split(","), work).items():
        print(f"== {name}", flush=True)
        r = bench_model(name, onnx_path, feeds, tm, threads, args.runs, work, calib=calib, schemes=schemes)
        results.append(r)
        print(f"  (plain w8a8 = {r['int8_weight_bits_default']}-bit int8 weights on this target)")
        for k, ps in r["packages"].items():
            print(f"  {k}: package {ps['package_mb']:.1f} MB, load {ps['load_ms_verified']:.1f} ms verified / "
                  f"{ps['load_ms_lazy']:.1f} ms lazy (python process), peak RSS {ps['peak_rss_mb']:.0f} MB "
                  f"(baseline {r['baseline_rss_mb']:.0f} MB, arena {ps['arena_mb']:.1f} MB)")
        agree = "  ".join(f"{k} {v['max_rel']:.2e}/{v['cosine']:.5f}" for k, v in r.get("agreement", {}).items() if v)
        print(f"  output agreement (max |diff| / max |ref|, cosine): {agree}")
        for t, row in r["threads"].items():
            cells = "  ".join(f"{k} {v['median_ms']:.1f}/{v['p95_ms']:.1f}" for k, v in row.items()
                              if isinstance(v, dict))
            ratios = "  ".join(f"{k[6:]} {v:.2f}x" for k, v in row.items() if k.startswith("ratio_"))
            print(f"  {t} thr (median/p95 ms): {cells}\n    {ratios}", flush=True)
    info = {"cpu": __import__("lowbit").native().cpu_model(), "cores": os.cpu_count(),
            "load_avg": os.getloadavg(), "results": results}
    Path(args.out).write_text(json.dumps(info, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
