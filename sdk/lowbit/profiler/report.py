"""The profile Report: one JSON document (schema "lowbit.profile/1"), built from per-op runtime
events, that every output (terminal table, JSON, Chrome trace, HTML) is rendered from. The native
`lowbit-profile` writes the same schema, so `Report.from_json` renders its files too."""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Optional

from lowbit.profiler import stats

SCHEMA = "lowbit.profile/1"


class Report:
    """A profile. `data` is the JSON-able dict; the properties below are shortcuts into it."""

    def __init__(self, data: dict):
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not a lowbit profile (schema {data.get('schema')!r}, expected {SCHEMA!r})")
        self.data = data

    # ---- accessors ------------------------------------------------------------------------------
    @property
    def ops(self) -> list:
        return self.data.get("ops") or []

    @property
    def warnings(self) -> list:
        return self.data.get("warnings") or []

    @property
    def device(self) -> dict:
        return self.data.get("device") or {}

    @property
    def latency(self) -> dict:
        return self.data.get("latency_ms") or {}

    # ---- outputs ----------------------------------------------------------------------------------
    def to_json(self, path=None, indent: int = 2) -> str:
        text = json.dumps(self.data, indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def to_trace(self, path=None) -> dict:
        from lowbit.profiler.trace import chrome_trace

        trace = chrome_trace(self.data)
        if path is not None:
            Path(path).write_text(json.dumps(trace))
        return trace

    def to_html(self, path=None) -> str:
        from lowbit.profiler.html import render_html

        html = render_html(self.data)
        if path is not None:
            Path(path).write_text(html)
        return html

    def to_table(self) -> str:
        from lowbit.profiler.table import render_table

        return render_table(self.data)

    def __str__(self) -> str:
        return self.to_table()

    @classmethod
    def from_json(cls, source) -> "Report":
        """From a dict, a JSON string, or a path to a JSON file (lowbit or lowbit-profile)."""
        if isinstance(source, dict):
            return cls(source)
        if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith("{")):
            source = Path(source).read_text()
        return cls(json.loads(source))


def _op_key(ev: dict, index: int) -> str:
    return ev.get("name") or f"op{index}"


def build_report(runs: list, e2e_ns: list, *, device: dict, roofline: dict, package: Optional[dict] = None,
                 config: Optional[dict] = None, memory: Optional[dict] = None, gaps: Optional[dict] = None,
                 output_gaps: Optional[dict] = None, compare: Optional[list] = None,
                 overhead: Optional[dict] = None, extra_warnings: Iterable[str] = ()) -> Report:
    """Aggregates measured runs into a Report.

    runs: one list of op events per measured run, each event a dict with name, type, kernel, isa,
      shapes ({"inputs": [...], "outputs": [...]}), start_ns, end_ns, bytes_read, bytes_written,
      int_ops, float_ops and optionally quantized (bool: the package quantized this op).
    e2e_ns: the end-to-end time of each of those runs (ns), measured around the whole run.
    gaps: {op name: numeric_gap dict} per layer; output_gaps: the same per model output.
    """
    if not runs:
        raise ValueError("build_report: no runs")
    read_gbps = roofline.get("read_gbps")
    peak_gops = roofline.get("int8_gops")
    isa_best = device.get("isa_best", "scalar")
    forced = device.get("isa_active") != isa_best
    warnings = list(extra_warnings)

    if forced:
        warnings.append(f"LOWBIT_ISA forces the {device.get('isa_active')} path; this CPU runs {isa_best}")
    # Per-op times across runs, keyed by op name in execution order of the first run.
    per_op: "OrderedDict[str, dict]" = OrderedDict()
    for run_events in runs:
        for i, ev in enumerate(run_events):
            key = _op_key(ev, i)
            slot = per_op.setdefault(key, {"event": ev, "times_ms": [], "start_ms": []})
            slot["times_ms"].append((ev["end_ns"] - ev["start_ns"]) / 1e6)

    e2e_ms = [t / 1e6 for t in e2e_ns]
    lat = stats.summarize(e2e_ms)
    lat["runs"] = e2e_ms
    ops_out = []
    total_median = sum(stats.summarize(s["times_ms"])["median"] for s in per_op.values()) or 1e-12
    for key, slot in per_op.items():
        ev = slot["event"]
        t = stats.summarize(slot["times_ms"])
        bytes_moved = float(ev.get("bytes_read", 0) + ev.get("bytes_written", 0))
        ops = float(ev.get("int_ops", 0) + ev.get("float_ops", 0))
        roof = stats.roofline_point(bytes_moved, ops, t["median"] / 1e3, read_gbps, peak_gops)
        kernel = ev.get("kernel") or ""
        isa = ev.get("isa") or ""
        quantized = ev.get("quantized")
        if quantized is None:
            parts = stats.parse_kernel_name(kernel)
            quantized = bool(parts) and parts["weight"] not in stats.FLOAT_WEIGHT_FORMATS
        op_warnings = []
        if quantized and kernel and stats.is_float_kernel(kernel):
            op_warnings.append(f"float fallback: quantized op ran the float kernel {kernel}")
        heavy = quantized or ev.get("type", "") in stats.HEAVY_OP_TYPES
        if heavy and kernel and stats.is_scalar_kernel(kernel, isa) and isa_best != "scalar":
            why = f"forced by LOWBIT_ISA={device.get('isa_active')}" if forced else "no SIMD variant in this build"
            op_warnings.append(f"scalar fallback: {kernel} ran on the scalar path although this CPU runs "
                               f"{isa_best} ({why})")
        for w in op_warnings:
            warnings.append(f"{key}: {w}")
        ops_out.append({
            "name": key,
            "type": ev.get("type", ""),
            "kernel": kernel,
            "isa": isa,
            "quantized": bool(quantized),
            "shapes": ev.get("shapes", {}),
            "time_ms": {k: t[k] for k in ("min", "median", "p95", "mean", "max")},
            "share": t["median"] / total_median,
            "bytes_read": int(ev.get("bytes_read", 0)),
            "bytes_written": int(ev.get("bytes_written", 0)),
            "int_ops": int(ev.get("int_ops", 0)),
            "float_ops": int(ev.get("float_ops", 0)),
            "roofline": roof,
            "gap": (gaps or {}).get(key),
            "warnings": op_warnings,
        })

    # The timeline of the run whose end-to-end time is the median (for the Chrome trace).
    order = sorted(range(len(e2e_ms)), key=lambda i: e2e_ms[i])
    mid = order[len(order) // 2]
    t0 = min(ev["start_ns"] for ev in runs[mid]) if runs[mid] else 0
    timeline = [{"name": _op_key(ev, i), "start_us": (ev["start_ns"] - t0) / 1e3,
                 "dur_us": (ev["end_ns"] - ev["start_ns"]) / 1e3, "tid": int(ev.get("thread", 0))}
                for i, ev in enumerate(runs[mid])]

    # Coverage: per run, the op times summed over the end-to-end time (median over runs). Below 1
    # is time outside any op (dispatch, allocation, Python); above 1 means overlapping events.
    ratios = [sum(ev["end_ns"] - ev["start_ns"] for ev in r) / e for r, e in zip(runs, e2e_ns) if e > 0]
    ops_sum = sum(o["time_ms"]["median"] for o in ops_out)
    data = {
        "schema": SCHEMA,
        "tool": "lowbit.profile",
        "package": package or {},
        "device": device,
        "roofline": roofline,
        "config": config or {},
        "latency_ms": lat,
        "ops": ops_out,
        "ops_sum_ms": ops_sum,
        "ops_sum_over_e2e": stats.summarize(ratios)["median"],
        "timeline": timeline,
        "memory": memory or {},
        "outputs_gap": output_gaps or {},
        "overhead": overhead or {},
        "compare": compare or [],
        "warnings": warnings,
    }
    return Report(data)
