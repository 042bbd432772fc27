"""`lowbit profile --compare ort,tvm`: the same model in ONNX Runtime (the ONNX that lowbit
exported beside the package) and TVM (when the package comes with that artifact), timed on the
same inputs and threads, side by side with lowbit."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np

from lowbit.profiler import stats


def _artifact(path: Path, manifest: dict, kind: str, suffixes) -> Optional[Path]:
    """An artifact named in the manifest ("artifacts": {kind: file}) or lying beside the package."""
    named = (manifest.get("artifacts") or {}).get(kind)
    if named:
        p = Path(named)
        p = p if p.is_absolute() else path.parent / p
        if p.exists():
            return p
    for suf in suffixes:
        p = path.with_suffix(suf)
        if p.exists():
            return p
    return None


def _timed(fn, runs: int, warmup: int) -> list:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def _row(engine, times_ms, note="", gap=None):
    s = stats.summarize(times_ms)
    return {"engine": engine, "median_ms": s["median"], "p95_ms": s["p95"], "min_ms": s["min"], "runs": s["n"],
            "note": note, "gap": gap}


def _feed_for(names, feed: dict) -> dict:
    """Maps our inputs onto the peer's input names (by name, else by position)."""
    if all(n in feed for n in names):
        return {n: feed[n] for n in names}
    return dict(zip(names, feed.values()))


def run_ort(onnx_path: Path, feed: dict, golden: dict, runs: int, warmup: int, threads: int) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    f = _feed_for([i.name for i in sess.get_inputs()], feed)
    times = _timed(lambda: sess.run(None, f), runs, warmup)
    gap = None
    if golden:
        outs = sess.run(None, f)
        names = [o.name for o in sess.get_outputs()]
        first = next(iter(golden))
        got = outs[names.index(first)] if first in names else outs[0]
        gap = stats.numeric_gap(golden[first], got)
    return _row("onnxruntime", times, f"{onnx_path.name}, {threads} threads", gap)


def run_tvm(lib_path: Path, feed: dict, runs: int, warmup: int) -> dict:
    import tvm
    from tvm import relax

    dev = tvm.cpu()
    lib = tvm.runtime.load_module(str(lib_path))
    vm = relax.VirtualMachine(lib, dev)
    to_dev = getattr(tvm.runtime, "tensor", None) or tvm.nd.array
    args = [to_dev(np.ascontiguousarray(v), dev) for v in feed.values()]
    times = _timed(lambda: vm["main"](*args), runs, warmup)
    return _row("tvm", times, lib_path.name)


def compare_engines(path, pkg: dict, feed: dict, lowbit_e2e_ns: list, engines, *, runs: int, warmup: int,
                    threads: int) -> list:
    """Rows {engine, median_ms, p95_ms, note, gap}; lowbit's row uses its runs without profiling."""
    path = Path(path)
    rows = [_row("lowbit", [t / 1e6 for t in lowbit_e2e_ns], f"{pkg['manifest'].get('scheme', '')}, {threads} threads, profiling off")]
    for engine in engines:
        if engine in ("ort", "onnxruntime"):
            p = _artifact(path, pkg["manifest"], "onnx", (".onnx",))
            if p is None:
                rows.append({"engine": "onnxruntime", "median_ms": None, "p95_ms": None,
                             "note": f"no exported ONNX found ({path.with_suffix('.onnx').name} or manifest artifacts.onnx)"})
                continue
            try:
                rows.append(run_ort(p, feed, pkg["golden_outputs"], runs, warmup, threads))
            except Exception as exc:  # a peer failing must not lose the lowbit profile
                rows.append({"engine": "onnxruntime", "median_ms": None, "p95_ms": None, "note": f"failed: {exc}"})
        elif engine == "tvm":
            p = _artifact(path, pkg["manifest"], "tvm", (".tvm.so", ".so"))
            if p is None:
                rows.append({"engine": "tvm", "median_ms": None, "p95_ms": None,
                             "note": "no TVM artifact with this package (manifest artifacts.tvm or <name>.tvm.so)"})
                continue
            try:
                rows.append(run_tvm(p, feed, runs, warmup))
            except Exception as exc:
                rows.append({"engine": "tvm", "median_ms": None, "p95_ms": None, "note": f"failed: {exc}"})
        else:
            rows.append({"engine": engine, "median_ms": None, "p95_ms": None, "note": "unknown engine (use ort, tvm)"})
    return rows
