"""Chrome trace event format (JSON object form) of a profile: the median run's ops as complete
("X") events on their thread, plus the end-to-end run, so the file opens in Perfetto or
chrome://tracing."""
from __future__ import annotations


def chrome_trace(data: dict) -> dict:
    ops = {o["name"]: o for o in data.get("ops") or []}
    events = [
        {"name": "process_name", "ph": "M", "pid": 1, "tid": 0,
         "args": {"name": f"lowbit {data.get('package', {}).get('name') or 'profile'}"}},
    ]
    timeline = data.get("timeline") or []
    tids = sorted({int(t.get("tid", 0)) for t in timeline}) or [0]
    for tid in tids:
        events.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": tid + 1,
                       "args": {"name": f"ops (thread {tid})"}})
    events.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": "run"}})
    lat = data.get("latency_ms") or {}
    if timeline:
        end = max(t["start_us"] + t["dur_us"] for t in timeline)
        events.append({"name": "run (median)", "cat": "run", "ph": "X", "pid": 1, "tid": 0, "ts": 0.0,
                       "dur": max(end, (lat.get("median") or 0) * 1e3),
                       "args": {"median_ms": lat.get("median"), "p95_ms": lat.get("p95")}})
    for t in timeline:
        o = ops.get(t["name"], {})
        roof = o.get("roofline") or {}
        events.append({
            "name": t["name"], "cat": o.get("type") or "op", "ph": "X", "pid": 1, "tid": int(t.get("tid", 0)) + 1,
            "ts": t["start_us"], "dur": t["dur_us"],
            "args": {"kernel": o.get("kernel"), "isa": o.get("isa"), "shapes": o.get("shapes"),
                     "bytes_read": o.get("bytes_read"), "bytes_written": o.get("bytes_written"),
                     "int_ops": o.get("int_ops"), "float_ops": o.get("float_ops"),
                     "gbps": roof.get("gbps"), "gops": roof.get("gops"), "roofline_fraction": roof.get("fraction"),
                     "warnings": o.get("warnings") or []},
        })
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"schema": data.get("schema"), "device": data.get("device", {}).get("id"),
                          "cpu_model": data.get("device", {}).get("cpu_model")}}
