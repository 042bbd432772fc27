"""`lowbit profile --compare ort,tvm`: the same model in ONNX Runtime (the ONNX that lowbit
exported beside the package) and TVM (when the package comes with that artifact), timed on the
same inputs and threads, side by side with lowbit."""
from __future__ import annotations

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
    times = stats.time_ms(lambda: sess.run(None, f), runs, warmup)
    gap = None
    if golden:
        outs = sess.run(None, f)
        names = [o.name for o in sess.get_outputs()]
        first = next(iter(golden))
        got = outs[names.index(first)] if first in names else outs[0]
        gap = stats.numeric_gap(golden[first], got)
    return _row("onnxruntime", times, f"{onnx_path.name}, {threads} threads", gap)


def run_tvm(artifact: Path, feed: dict, golden: dict, runs: int, warmup: int) -> dict:
    """A TVM artifact folder written by lowbit's TVM writer (manifest.json + model.so)."""
    from lowbit.exporters.tvm import TvmModel

    m = TvmModel(artifact)
    f = _feed_for([t["name"] for t in m.inputs], feed)
    times = stats.time_ms(lambda: m.run(f), runs, warmup)
    gap = None
    if golden:
        outs = m.run(f)
        first = next(iter(golden))
        got = outs.get(first, next(iter(outs.values())))
        gap = stats.numeric_gap(golden[first], got)
    return _row("tvm", times, f"{artifact.name} ({m.manifest.get('profile')}, TVM {m.manifest.get('tvm_version')})", gap)


def _tvm_artifact(path: Path, manifest: dict) -> Optional[Path]:
    named = (manifest.get("artifacts") or {}).get("tvm")
    cands = [Path(named) if named and Path(named).is_absolute() else path.parent / named] if named else []
    cands += [path.with_suffix(".tvm"), path.parent / f"{path.stem}_tvm", path.parent / f"{path.stem}-tvm"]
    return next((c for c in cands if (c / "manifest.json").is_file()), None)


def compare_engines(path, pkg: dict, feed: dict, lowbit_e2e_ns: list, engines, *, runs: int, warmup: int,
                    threads: int) -> list:
    """Rows {engine, median_ms, p95_ms, note, gap}; lowbit's row uses its runs without profiling."""
    path = Path(path)
    rows = [_row("lowbit", [t / 1e6 for t in lowbit_e2e_ns], f"{pkg['manifest'].get('scheme', '')}, {threads} threads, profiling off")]
    for spec in engines:
        engine, _, explicit = spec.partition("=")
        if engine in ("ort", "onnxruntime"):
            p = Path(explicit) if explicit else _artifact(path, pkg["manifest"], "onnx", (".onnx",))
            if p is None or not p.exists():
                rows.append({"engine": "onnxruntime", "median_ms": None, "p95_ms": None,
                             "note": f"no exported ONNX found ({path.with_suffix('.onnx').name}, manifest artifacts.onnx, or ort=PATH)"})
                continue
            try:
                rows.append(run_ort(p, feed, pkg["golden_outputs"], runs, warmup, threads))
            except Exception as exc:  # a peer failing must not lose the lowbit profile
                rows.append({"engine": "onnxruntime", "median_ms": None, "p95_ms": None, "note": f"failed: {exc}"})
        elif engine == "tvm":
            p = Path(explicit) if explicit else _tvm_artifact(path, pkg["manifest"])
            if p is None or not p.exists():
                rows.append({"engine": "tvm", "median_ms": None, "p95_ms": None,
                             "note": f"no TVM artifact with this package ({path.stem}.tvm/, manifest artifacts.tvm, or tvm=PATH)"})
                continue
            try:
                rows.append(run_tvm(p, feed, pkg["golden_outputs"], runs, warmup))
            except Exception as exc:
                rows.append({"engine": "tvm", "median_ms": None, "p95_ms": None, "note": f"failed: {exc}"})
        else:
            rows.append({"engine": engine, "median_ms": None, "p95_ms": None, "note": "unknown engine (use ort, tvm)"})
    return rows
