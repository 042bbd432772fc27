"""`lowbit tune PKG`: a small on-device search over the runtime's settings, written as a tuned profile.

As nn-JIT.web argues, on-device tuning pays off when the space is a few dozen well-chosen
candidates, measured on the device itself. The space is what the native runtime lets a caller
choose today: the thread count (1 .. cores) and the kernel ISA path (every path this CPU runs,
e.g. scalar / avx2). Kernel tile shapes are fixed at build time in this runtime (no tile knob is
exposed through the C API yet), so they are not searched: the tuned profile's ``[kernels.tiles]``
stays empty until they are. Each candidate runs the package's golden inputs (or zeros / random
inputs of the declared shapes), rounds interleaved, median of ``runs``; the default (all cores,
best ISA) is measured in the same rounds and the speed-up is reported against it.

The result is a user profile (``extends`` the package's target) with ``[kernels] threads, gemv,
gemm`` set. The runtime honours it through ``LOWBIT_NUM_THREADS`` / ``LOWBIT_ISA`` (``apply_env``).
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from . import ProfileError, detect, load, search_path, to_toml


NOISE = 1.03  # a candidate must beat the default by 3% to replace it


def _feeds(sess) -> Dict[str, np.ndarray]:
    g = sess.golden() if hasattr(sess, "golden") else None
    if g:
        return g["inputs"]
    rng = np.random.default_rng(0)
    feeds = {}
    for t in sess.inputs:
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in t["shape"]]
        dt = np.dtype({"f32": "float32", "i64": "int64", "i32": "int32", "u8": "uint8", "i8": "int8"}.get(t["dtype"], t["dtype"]))
        feeds[t["name"]] = rng.standard_normal(shape).astype(dt) if dt.kind == "f" else np.zeros(shape, dt)
    return feeds


def candidates(cores: int, isas: List[str]) -> List[Dict[str, Any]]:
    """threads x ISA path; threads 1, 2, 3, 4, 6, 8, 12, ... up to the core count."""
    threads = sorted({t for t in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64) if t <= cores} | {cores})
    return [{"threads": t, "isa": isa} for isa in isas for t in threads]


def tune(pkg: Path, *, target: Optional[str] = None, runs: int = 7, rounds: int = 3,
         max_candidates: int = 48) -> Dict[str, Any]:
    """Measures every candidate on this device; returns the results and the best one."""
    import lowbit  # noqa: PLC0415

    nat = lowbit.native()
    pkg = Path(pkg)
    base = load(target) if target else _package_profile(pkg)
    probe = lowbit.load(pkg)
    feeds = _feeds(probe)
    del probe
    cores = os.cpu_count() or 1
    isas = [i for i in nat.isa_usable()]
    cands = candidates(cores, isas)[:max_candidates]
    default = {"threads": 0, "isa": nat.isa_best(), "default": True}
    times: Dict[int, List[float]] = {i: [] for i in range(len(cands) + 1)}
    allc = [default] + cands
    sessions = {}
    try:
        for _ in range(rounds):
            for i, c in enumerate(allc):
                nat.isa_select(c["isa"])
                key = c["threads"]
                if key not in sessions:
                    sessions[key] = lowbit.load(pkg, threads=c["threads"])
                s = sessions[key]
                s.run(feeds)  # warm-up for this ISA path
                for _ in range(max(1, runs // rounds)):
                    t0 = time.perf_counter()
                    s.run(feeds)
                    times[i].append(time.perf_counter() - t0)
    finally:
        nat.isa_select("auto")
    res = [{**c, "median_ms": statistics.median(times[i]) * 1e3} for i, c in enumerate(allc)]
    best = min(res[1:], key=lambda r: r["median_ms"])
    speedup = res[0]["median_ms"] / best["median_ms"]
    kept = speedup < NOISE
    if kept:  # within this machine's noise: keep the default settings rather than chase noise
        best = {"threads": 0, "isa": nat.isa_best(), "median_ms": res[0]["median_ms"]}
    return {"package": str(pkg), "base_profile": base.name, "candidates": res, "default": res[0],
            "best": best, "speedup": 1.0 if kept else speedup, "measured_best_speedup": speedup,
            "kept_default": kept}


def _package_profile(pkg: Path):
    try:
        from lowbit.exporters.lbpk_container import PackageReader  # noqa: PLC0415

        r = PackageReader(pkg, verify=False)
        name = r.manifest.get("target")
        r.close()
        if isinstance(name, str) and name:
            return load(name)
    except (ProfileError, OSError, ValueError, ImportError):
        pass
    return detect()


def write_tuned(result: Dict[str, Any], out: Optional[Path] = None, name: Optional[str] = None) -> Path:
    """A user profile extending the base one with the best settings found."""
    base = result["base_profile"]
    name = name or f"{base}-tuned"
    best = result["best"]
    data = {
        "extends": base,
        "name": name,
        "description": f"{base} tuned on this device by `lowbit tune` for {Path(result['package']).name}: "
                       f"{best['threads']} threads, {best['isa']} kernels, {result['speedup']:.2f}x over the default",
        "kernels": {"threads": int(best["threads"]), "gemv": best["isa"], "gemm": best["isa"]},
    }
    if out is None:
        dirs = search_path()
        out = dirs[-2] / f"{name}.toml"  # the user config folder (~/.config/lowbit/targets)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Written by `lowbit tune`; edit or delete freely.\n" + to_toml(data))
    load(str(out))  # it must validate
    return out


def apply_env(profile) -> Dict[str, str]:
    """Environment that makes the native runtime follow a (tuned) profile's [kernels] settings."""
    k = load(profile).kernels
    env = {}
    if k.get("threads"):
        env["LOWBIT_NUM_THREADS"] = str(k["threads"])
    if k.get("gemm") not in (None, "tvm"):
        env["LOWBIT_ISA"] = k["gemm"]
    return env
