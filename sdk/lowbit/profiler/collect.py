"""Running a package under the profiler: warm-up, N measured runs with per-op events from the
runtime, end-to-end times, profiling overhead (runs with events off vs on), memory, and the
numeric gap to float on the package's golden inputs."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from lowbit import LowbitError
from lowbit.profiler import stats

_DTYPES = {"f32": np.float32, "f16": np.float16, "i8": np.int8, "u8": np.uint8, "i32": np.int32,
           "i64": np.int64, "bool": np.bool_, "i16": np.int16}


def read_package(path) -> dict:
    """Manifest, file hash and golden tensors of a .lbpk, through the container reader."""
    import hashlib

    from lowbit.exporters.lbpk_container import PackageReader

    path = Path(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    reader = PackageReader(path, verify=True)
    try:
        manifest = reader.manifest
        golden = manifest.get("golden") or {}
        g_in = {k: np.array(reader.tensor(v)) for k, v in (golden.get("inputs") or {}).items()}
        g_out = {k: np.array(reader.tensor(v)) for k, v in (golden.get("outputs") or {}).items()}
        g_vals = {k: np.array(reader.tensor(v)) for k, v in (golden.get("values") or {}).items()}
        weights = sum(int(t.get("nbytes", 0)) for t in (manifest.get("tensors") or {}).values())
    finally:
        reader.close()
    return {"path": str(path), "sha256": h.hexdigest(), "manifest": manifest, "golden_inputs": g_in,
            "golden_outputs": g_out, "golden_values": g_vals, "weights_bytes": weights,
            "file_bytes": path.stat().st_size}


def make_inputs(manifest: dict, golden: Dict[str, np.ndarray], seed: int = 0) -> Dict[str, np.ndarray]:
    """The golden inputs, or seeded random ones of the declared dtypes/shapes when a package has none."""
    if golden:
        return golden
    rng = np.random.default_rng(seed)
    out = {}
    for spec in manifest.get("inputs") or []:
        shape = [d if isinstance(d, int) else 1 for d in spec["shape"]]
        dt = _DTYPES.get(spec.get("dtype", "f32"), np.float32)
        if np.issubdtype(dt, np.integer):
            out[spec["name"]] = rng.integers(0, 100, size=shape).astype(dt)
        else:
            out[spec["name"]] = rng.standard_normal(shape).astype(dt)
    return out


class SessionAdapter:
    """The runtime calls the profiler needs, in one place: run, switch per-op events on/off, read
    the last run's events, and memory figures. Tolerates the runtime's naming, which is owned by
    the runtime area (sdk/lowbit/runtime.py)."""

    def __init__(self, session):
        self.s = session
        # The Python Session may wrap the native GraphSession without forwarding the profiling
        # calls: use the wrapped object for those.
        self.p = session
        if not any(hasattr(session, n) for n in ("profile_events", "last_profile", "events")):
            for v in list(getattr(session, "__dict__", {}).values()):
                if hasattr(v, "profile_events"):
                    self.p = v
                    break

    def run(self, inputs):
        return self.s.run(inputs)

    def set_profiling(self, on: bool) -> None:
        for name in ("set_profiling", "enable_profiling"):
            fn = getattr(self.p, name, None)
            if fn is not None:
                fn(on)
                return
        if hasattr(self.p, "profiling"):
            self.p.profiling = on
            return
        raise LowbitError("this runtime build has no per-op profiling (Session.set_profiling)")

    def events(self) -> list:
        for name in ("profile_events", "last_profile", "events"):
            fn = getattr(self.p, name, None)
            if fn is not None:
                return [normalize_event(e) for e in (fn() if callable(fn) else fn)]
        raise LowbitError("this runtime build exposes no profile events (Session.profile_events)")

    def memory(self) -> dict:
        out = {}
        for key, attr in (("arena_bytes", "arena_bytes"), ("weights_mapped_bytes", "mapped_bytes")):
            v = getattr(self.s, attr, None)
            v = getattr(self.p, attr, None) if v is None else v
            v = v() if callable(v) else v
            if isinstance(v, (int, np.integer)):
                out[key] = int(v)
        return out


def normalize_event(ev) -> dict:
    """One runtime event in the profiler's keys: the executor's ProfileEvent names (op_name,
    op_type, ops, shapes as text) are mapped onto name, type, int_ops/float_ops, shapes dict."""
    e = dict(ev) if not isinstance(ev, dict) else dict(ev)
    if "name" not in e and "op_name" in e:
        e["name"] = e.pop("op_name")
    if "type" not in e and "op_type" in e:
        e["type"] = e.pop("op_type")
    if isinstance(e.get("shapes"), str):
        e["shapes"] = {"text": e["shapes"]}
    if "ops" in e and "int_ops" not in e and "float_ops" not in e:
        n = int(e.pop("ops"))
        parts = stats.parse_kernel_name(e.get("kernel", ""))
        is_float = parts is None or parts["act"] in stats.FLOAT_WEIGHT_FORMATS
        e["int_ops"], e["float_ops"] = (0, n) if is_float else (n, 0)
    for k in ("bytes_read", "bytes_written", "int_ops", "float_ops"):
        e[k] = int(e.get(k, 0) or 0)
    return e


def quantized_ops(manifest: dict) -> dict:
    """{op name: True/False}: an op is quantized when one of its stored inputs is packed integer
    data (i8/u8, or a tensor entry with packing metadata), per the package format."""
    tensors = manifest.get("tensors") or {}
    out = {}
    for op in manifest.get("ops") or []:
        q = False
        for name in op.get("inputs") or []:
            t = tensors.get(name)
            if t and (t.get("dtype") in ("i8", "u8") or "packed" in t or "layout" in t):
                q = True
        out[op.get("name")] = q
    return out


def rss_high_water() -> Optional[int]:
    """This process's resident-set high-water mark in bytes (VmHWM), where Linux tells it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def timed_runs(run: Callable[[], object], n: int) -> list:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        run()
        out.append(time.perf_counter_ns() - t0)
    return out


def measure_session(adapter: SessionAdapter, inputs: dict, runs: int, warmup: int) -> dict:
    """Warm-up, then interleaved blocks of runs with events off and on (so drift on a shared
    machine hits both alike). Returns the per-run events and e2e times of the profiled runs, the
    e2e times without profiling, and the overhead (median on / median off - 1)."""
    adapter.set_profiling(False)
    for _ in range(warmup):
        adapter.run(inputs)
    events, e2e_on, e2e_off = [], [], []
    block = max(1, min(5, runs))
    done = 0
    while done < runs:
        k = min(block, runs - done)
        adapter.set_profiling(False)
        e2e_off += timed_runs(lambda: adapter.run(inputs), k)
        adapter.set_profiling(True)
        for _ in range(k):
            t0 = time.perf_counter_ns()
            adapter.run(inputs)
            e2e_on.append(time.perf_counter_ns() - t0)
            events.append(adapter.events())
        done += k
    adapter.set_profiling(False)
    on = stats.summarize([t / 1e6 for t in e2e_on])["median"]
    off = stats.summarize([t / 1e6 for t in e2e_off])["median"]
    return {"events": events, "e2e_ns": e2e_on, "e2e_off_ns": e2e_off,
            "overhead": {"on_ms": on, "off_ms": off, "fraction": (on / off - 1.0) if off else None}}


def output_gaps(outputs: dict, reference: dict) -> dict:
    """numeric_gap of each model output that has a float reference."""
    return {name: stats.numeric_gap(reference[name], np.asarray(outputs[name]))
            for name in reference if name in outputs}
