"""`lowbit doctor`: what this build is and what this machine can run."""
from __future__ import annotations

import json
import os
import platform
import sys

import lowbit


def collect() -> dict:
    """Everything doctor reports, as a JSON-able dict."""
    nat = lowbit.native()
    feats = nat.cpu_features()
    info = {
        "lowbit": lowbit.__version__,
        "native_version": nat.version(),
        "build": json.loads(nat.build_info()),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": nat.cpu_model(),
        "features": sorted(k for k, v in feats.items() if v),
        "isa_best": nat.isa_best(),
        "isa_active": nat.isa_active(),
        "isa_usable": nat.isa_usable(),
        "isa_override": os.environ.get("LOWBIT_ISA", ""),
        "isa_error": nat.dispatch_error(),
        "threads": nat.default_threads(),
        "kernels": {k: {"name": v[0], "isa": v[1]} for k, v in nat.kernel_names("scalar" if nat.dispatch_error() else "").items()},
        "target": _target_profile(nat.isa_best()),
    }
    return info


def _target_profile(isa: str) -> dict:
    try:
        from lowbit import targets
    except ImportError:
        targets = None
    detect = getattr(targets, "detect", None) if targets else None
    if detect is not None:
        try:
            prof = detect()
            return {"name": prof.name, "source": "targets.detect"}
        except Exception as exc:  # a broken user profile must not break doctor
            return {"name": None, "error": str(exc)}
    return {"name": None, "isa_level": isa, "note": "target profiles not installed; showing the ISA level"}


def run(args) -> int:
    info = collect()
    if getattr(args, "measure", False):
        try:
            from lowbit.profiler.device import measure_device  # noqa: PLC0415
        except ImportError:
            print("lowbit doctor: --measure needs the profiler (not in this build)", file=sys.stderr)
            return 2
        info["measured"] = _measured_summary(measure_device())
    if getattr(args, "selfcheck", False):
        failures, report = lowbit.native().selfcheck()
        info["selfcheck"] = {"failures": failures, "report": report}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_table(info)
    if info["isa_error"]:
        return 1
    if info.get("selfcheck", {}).get("failures"):
        return 1
    return 0


def _measured_summary(record: dict) -> dict:
    """The roofline figures of `lowbit doctor --measure`, flattened for the table."""
    m = record["measured"]
    out = {f"read GB/s ({t} thr)": round(v, 2) for t, v in m["read_gbps"].items()}
    out.update({f"int8 GOPS {m['isa']} ({t} thr)": round(v, 1) for t, v in m["int8_gops"].items()})
    out["cache"] = record.get("cache_path", "")
    return out


def _kernel_path(info: dict) -> str:
    if info["isa_error"]:
        return f"none: LOWBIT_ISA={info['isa_override']} refused (see below)"
    if info["isa_override"]:
        return f"{info['isa_active']} (forced by LOWBIT_ISA={info['isa_override']})"
    return f"{info['isa_active']} (best available)"


def _print_table(info: dict) -> None:
    b = info["build"]
    rows = [
        ("lowbit", f"{info['lowbit']} (native {info['native_version']})"),
        ("build", f"{b['build_type']}, {b['compiler']}, arch {b['arch']}, ISA files: {b['isa_files'] or 'none'}"
                  + (", sanitizers" if b.get("sanitize") else "")),
        ("python", f"{info['python']} on {info['platform']}"),
        ("cpu", info["cpu_model"]),
        ("features", " ".join(info["features"]) or "(none beyond baseline)"),
        ("isa paths", ", ".join(info["isa_usable"])),
        ("kernel path", _kernel_path(info)),
        ("threads", str(info["threads"])),
    ]
    t = info["target"]
    rows.append(("target", t.get("name") or f"(no profile) ISA level {t.get('isa_level', '?')}"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if "measured" in info:
        for k, v in info["measured"].items():
            print(f"{('measured ' + k):<{width}}  {v}")
    if info["isa_error"]:
        print(f"\nerror: {info['isa_error']}")
    if "selfcheck" in info:
        sc = info["selfcheck"]
        print("\nkernel self-check:")
        print(sc["report"].rstrip())
        print("PASSED" if sc["failures"] == 0 else f"FAILED ({sc['failures']} checks)")
