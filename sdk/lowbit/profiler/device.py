"""The device side of a profile: a fingerprint that identifies the machine (so profiles can be
compared across devices) and the measured roofline (read bandwidth, int8 peak), cached per device
under ~/.cache/lowbit/device-<id>.json by `lowbit doctor --measure`."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Optional

import lowbit

# Bumped when the microbenchmarks change, so older cached figures are measured again.
MEASURE_VERSION = 1


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.readline().strip() or None
    except OSError:
        return None


def fnv1a64(text: str) -> str:
    """FNV-1a 64-bit hash in hex; the native lowbit-profile computes the same device id."""
    h = 1469598103934665603
    for byte in text.encode():
        h ^= byte
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def fingerprint(threads_used: Optional[int] = None) -> dict:
    """CPU model, features, cores, threads used, frequency governor (where readable), lowbit
    version and the ISA paths; `id` hashes the stable facts (model, features, cores, arch)."""
    nat = lowbit.native()
    feats = sorted(k for k, v in nat.cpu_features().items() if v)
    # Same order as lb_cpu_feature_name's bits, as the native tool lists them.
    ordered = [k for k, v in nat.cpu_features().items() if v]
    cores = os.cpu_count() or 1
    arch = platform.machine()
    model = nat.cpu_model()
    return {
        "id": fnv1a64("\n".join([model, ",".join(ordered), str(cores), arch])),
        "cpu_model": model,
        "arch": arch,
        "os": f"{platform.system()} {platform.release()}",
        "features": feats,
        "cores": cores,
        "threads_used": int(threads_used or nat.default_threads()),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "isa_best": nat.isa_best(),
        "isa_active": nat.isa_active() if not nat.dispatch_error() else "scalar",
        "lowbit_version": lowbit.__version__,
    }


def cache_dir() -> Path:
    """$LOWBIT_CACHE_DIR, else $XDG_CACHE_HOME/lowbit, else ~/.cache/lowbit."""
    env = os.environ.get("LOWBIT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lowbit"


def cache_path(device_id: Optional[str] = None) -> Path:
    return cache_dir() / f"device-{device_id or fingerprint()['id']}.json"


def measure(threads: Optional[int] = None, bandwidth_bytes: int = 256 << 20, repeats: int = 5) -> dict:
    """Measures read bandwidth (GB/s) and the int8 peak (GOPS) of the best ISA path, on 1 thread
    and on `threads` (default: lowbit's default), without touching the cache."""
    nat = lowbit.native()
    n = int(threads or nat.default_threads())
    isa = nat.isa_best()
    counts = sorted({1, n})
    out = {
        "measure_version": MEASURE_VERSION,
        "isa": isa,
        "threads": n,
        "read_gbps": {},
        "int8_gops": {},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for t in counts:
        out["read_gbps"][str(t)] = nat.measure_bandwidth(bandwidth_bytes, t, repeats)
        out["int8_gops"][str(t)] = nat.measure_int8_peak(isa, t, repeats)
    return out


def measure_device(threads: Optional[int] = None, force: bool = True, **kw) -> dict:
    """`lowbit doctor --measure`: measures (or, with force=False, reuses the cache) and writes
    ~/.cache/lowbit/device-<id>.json. Returns the cached record (fingerprint + measurements)."""
    fp = fingerprint(threads)
    path = cache_path(fp["id"])
    if not force:
        cached = load_cached(fp["id"])
        if cached and str(fp["threads_used"]) in cached["measured"]["read_gbps"]:
            return cached
    record = {"device": fp, "measured": measure(threads, **kw)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, path)
    record["cache_path"] = str(path)
    return record


def load_cached(device_id: Optional[str] = None) -> Optional[dict]:
    """The cached measurement record of this device, or None (missing, unreadable, or made by an
    older version of the microbenchmarks)."""
    path = cache_path(device_id)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("measured", {}).get("measure_version") != MEASURE_VERSION:
        return None
    record["cache_path"] = str(path)
    return record


def roofline_for(threads: int, measure_if_missing: bool = False) -> dict:
    """The roofline figures for a profile run on `threads` threads: from the cache (the entry
    with the nearest thread count), measured now if asked, else unknown (source "none")."""
    record = load_cached()
    if record is None and measure_if_missing:
        record = measure_device(threads)
    if record is None:
        return {"read_gbps": None, "int8_gops": None, "isa": None, "threads": None, "source": "none",
                "note": "no device measurement: run `lowbit doctor --measure`"}
    m = record["measured"]
    counts = sorted(int(k) for k in m["read_gbps"])
    best = min(counts, key=lambda c: (abs(c - threads), -c))
    return {"read_gbps": m["read_gbps"][str(best)], "int8_gops": m["int8_gops"][str(best)],
            "isa": m["isa"], "threads": best, "source": "cache", "cache_path": record.get("cache_path"),
            "measured_at": m.get("measured_at")}
