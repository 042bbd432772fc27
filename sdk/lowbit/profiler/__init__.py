"""lowbit's on-device profiler: per-op time, the kernel and ISA that ran, memory, roofline and
the numeric gap to float, rendered as a terminal table, JSON, a Chrome trace or one HTML file.

    report = lowbit.profile("model.lbpk", runs=50)
    print(report)                  # terminal table
    report.to_html("model.html")   # plots: time per op, roofline, numeric gap by layer
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import numpy as np

from lowbit import LowbitError
from lowbit.profiler.device import fingerprint, load_cached, measure_device, roofline_for
from lowbit.profiler.report import SCHEMA, Report, build_report
from lowbit.profiler.stats import numeric_gap, roofline_point, summarize

__all__ = ["profile", "Report", "SCHEMA", "build_report", "measure_device", "fingerprint", "load_cached",
           "numeric_gap", "roofline_point", "summarize", "load_report"]


def load_report(path) -> Report:
    """A Report from a JSON file written by `lowbit profile --json` or the native `lowbit-profile`."""
    return Report.from_json(Path(path))


def profile(path: Union[str, Path], *, runs: int = 20, warmup: int = 3, threads: Optional[int] = None,
            inputs: Optional[dict] = None, reference: Optional[Union[dict, Callable]] = None,
            compare: Iterable[str] = (), measure: bool = False) -> Report:
    """Profiles a .lbpk package on this device and returns a Report.

    runs/warmup: measured and warm-up runs; threads: runtime threads (default: lowbit's default).
    inputs: {name: array}, default the package's golden inputs (random if it has none).
    reference: float values per layer for the numeric gap: {value name: array}, a callable
      inputs -> dict, a float .lbpk of the same model, or an .onnx file (run in ONNX Runtime);
      the package's golden outputs (and golden per-layer values, when the exporter stored them)
      are always used.
    compare: engines to run side by side ("ort", "tvm").
    measure: measure the roofline now if this device has no cached measurement.
    """
    import lowbit
    from lowbit.profiler import collect

    if runs < 1 or warmup < 0:
        raise LowbitError("profile: runs must be >= 1 and warmup >= 0")
    if _is_llm(path):
        from lowbit.profiler.llm import profile_llm

        return profile_llm(path, runs=runs, warmup=warmup, threads=threads, measure=measure)
    pkg = collect.read_package(path)
    manifest = pkg["manifest"]
    nat = lowbit.native()
    n_threads = int(threads or nat.default_threads())
    try:
        session = lowbit.load(path, threads=n_threads)
    except TypeError:
        session = lowbit.load(path)
    adapter = collect.SessionAdapter(session)
    feed = inputs if inputs is not None else collect.make_inputs(manifest, pkg["golden_inputs"])
    m = collect.measure_session(adapter, feed, runs, warmup)
    q_ops = collect.quantized_ops(manifest)
    for run_events in m["events"]:
        for ev in run_events:
            if "quantized" not in ev and ev.get("name") in q_ops:
                ev["quantized"] = q_ops[ev["name"]]

    # Numeric gap: outputs against the golden float outputs; layers against float values per
    # layer (golden values stored by the exporter, or `reference`), read from a run of a copy of
    # the package that exposes every op output (values.py).
    from lowbit.profiler.values import declarations, package_values, reference_values

    extra = []
    outputs = adapter.run(feed)
    out_gaps = collect.output_gaps(outputs, pkg["golden_outputs"]) if inputs is None else {}
    ref_values = dict(pkg["golden_values"]) if inputs is None else {}
    ref_values.update(reference_values(reference, feed, n_threads, manifest))
    producer = {out: op["name"] for op in manifest.get("ops") or [] for out in op.get("outputs") or []}
    layer_gaps = {}
    if ref_values:
        try:
            values = package_values(path, feed, n_threads, declarations(ref_values))
        except Exception as exc:  # the gap is extra information: never lose the profile for it
            values = {}
            extra.append(f"per-layer numeric gap unavailable: {exc}")
        for vname, ref in ref_values.items():
            if vname in values and vname in producer and np.shape(ref) == np.shape(values[vname]):
                layer_gaps[producer[vname]] = numeric_gap(ref, values[vname])
    for name, g in out_gaps.items():
        if name in producer:
            layer_gaps.setdefault(producer[name], g)

    memory = {"weights_bytes": pkg["weights_bytes"], "package_file_bytes": pkg["file_bytes"]}
    memory.update(adapter.memory())
    hw = collect.rss_high_water()
    if hw is not None:
        memory["process_rss_high_water_bytes"] = hw

    device = fingerprint(n_threads)
    roof = roofline_for(n_threads, measure_if_missing=measure)
    compare_rows = []
    engines = [e.strip() for e in compare if e.strip()]
    if engines:
        from lowbit.profiler.compare import compare_engines

        compare_rows = compare_engines(path, pkg, feed, m["e2e_off_ns"], engines, runs=runs, warmup=warmup,
                                       threads=n_threads)
    if roof["source"] == "none":
        extra.append("no roofline: this device has no measurement yet (`lowbit doctor --measure`)")
    return build_report(
        m["events"], m["e2e_ns"], device=device, roofline=roof,
        package={"path": str(path), "name": manifest.get("model"), "sha256": pkg["sha256"],
                 "scheme": manifest.get("scheme"), "target": manifest.get("target")},
        config={"runs": runs, "warmup": warmup, "threads": n_threads,
                "inputs": "golden" if inputs is None and pkg["golden_inputs"] else ("user" if inputs else "random")},
        memory=memory, gaps=layer_gaps, output_gaps=out_gaps, compare=compare_rows, overhead=m["overhead"],
        extra_warnings=extra)


def _is_llm(path) -> bool:
    try:
        from lowbit.llm.session import is_llm_package
    except ImportError:
        return False
    return is_llm_package(path)
