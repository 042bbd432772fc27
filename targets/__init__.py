"""Target profiles (TOML data in this folder), their loader and host detection.

A profile says what a device is: ISA features, cores and caches, bandwidth and int8 peak, the
schemes and kernel paths that suit it, the TVM target and the cross toolchain. ``load(name|path)``
validates it and names the offending key on any error; ``detect()`` picks the host's profile.
User profiles live in ``$LOWBIT_TARGETS_PATH`` (``os.pathsep``-separated folders) or
``~/.config/lowbit/targets``; a profile may ``extends = "x86-64-avx2"`` and override only what differs.

Importing this module is cheap (tomllib only): no numpy, no tvm, no native extension.
"""
from __future__ import annotations

import copy
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .schema import ISA_PATHS, SCHEMA, ProfileError, validate

__all__ = ["Profile", "ProfileError", "load", "list_profiles", "detect", "search_path",
           "host_info", "measured_path", "save_measured", "to_toml"]

BUILTIN_DIR = Path(__file__).resolve().parent
TOOLCHAIN_DIR = BUILTIN_DIR / "toolchains"


@dataclass
class Profile:
    """A validated target profile. ``data`` is the merged TOML (``extends`` resolved)."""

    name: str
    path: Optional[Path]
    data: Dict[str, Any]

    # Frequently used fields, by name.
    @property
    def description(self) -> str:
        return self.data["description"]

    @property
    def arch(self) -> str:
        return self.data["arch"]

    @property
    def device(self) -> str:
        return self.data["device"]

    @property
    def isa(self) -> str:
        return self.data["isa"]

    @property
    def features(self) -> List[str]:
        return list(self.data["features"])

    @property
    def cores(self) -> int:
        return self.data["cpu"]["cores"]

    @property
    def perf(self) -> Dict[str, Any]:
        return dict(self.data["perf"])

    @property
    def default_scheme(self) -> str:
        return self.data["quant"]["default_scheme"]

    @property
    def schemes(self) -> List[str]:
        return list(self.data["quant"]["schemes"])

    @property
    def kernels(self) -> Dict[str, Any]:
        return copy.deepcopy(self.data["kernels"])

    @property
    def tiles(self) -> Dict[str, Dict[str, int]]:
        """Per-kernel tile/thread settings (empty until `lowbit tune` writes some)."""
        return copy.deepcopy(self.data["kernels"].get("tiles", {}))

    @property
    def toolchain(self) -> Dict[str, Any]:
        return copy.deepcopy(self.data["toolchain"])

    @property
    def toolchain_file(self) -> Optional[Path]:
        rel = self.data["toolchain"].get("cmake")
        return (TOOLCHAIN_DIR / rel) if rel else None

    @property
    def is_gpu(self) -> bool:
        return self.device == "gpu"

    def tvm_target(self) -> Dict[str, Any]:
        """The TVM target as a JSON dict (TVM 0.27 form), the host folded in for GPU targets."""
        t = copy.deepcopy(self.data["tvm"]["target"])
        host = self.data["tvm"].get("host")
        if host is not None:
            t["host"] = copy.deepcopy(host)
        return t

    def is_native_here(self) -> bool:
        """True if code built for this profile runs on this machine without an emulator."""
        host = host_info()
        return (self.device == "cpu" and self.arch == host["arch"]
                and set(self.features) <= set(host["features"]))

    def to_dict(self) -> Dict[str, Any]:
        return copy.deepcopy(self.data)

    def to_toml(self) -> str:
        return to_toml(self.data)

    def __repr__(self) -> str:
        return f"Profile({self.name!r}, {self.arch}/{self.device}, isa={self.isa})"


# --- search and loading ---------------------------------------------------------------------

def search_path() -> List[Path]:
    """Folders searched for profiles by name, first match wins: user folders, then built-ins."""
    dirs: List[Path] = []
    env = os.environ.get("LOWBIT_TARGETS_PATH", "")
    dirs += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    cfg = Path(os.environ.get("XDG_CONFIG_HOME", "~/.config")).expanduser() / "lowbit" / "targets"
    dirs.append(cfg)
    dirs.append(BUILTIN_DIR)
    return dirs


def _find(name: str, exclude=()) -> Optional[Path]:
    for d in search_path():
        p = d / f"{name}.toml"
        if p.is_file() and p.resolve() not in exclude:
            return p
    return None


def list_profiles() -> List[str]:
    """Names of every profile found on the search path (built-ins and user profiles), sorted."""
    names = set()
    for d in search_path():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def _read_toml(path: Path) -> Dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror}") from None


def _merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "target" and k != "host":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _resolve(path: Path, chain: List[Path]) -> Dict[str, Any]:
    if path.resolve() in {p.resolve() for p in chain}:
        raise ProfileError(f"{path}: `extends` loops: {' -> '.join(str(p) for p in chain + [path])}")
    raw = _read_toml(path)
    parent = raw.get("extends")
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ProfileError(f"{path}: top level extends: expected a profile name or path, got {parent!r}")
    # By name, a file never finds itself: a user x86-64-avx2.toml may extend the built-in one.
    ppath = _locate(parent, relative_to=path.parent, exclude={path.resolve()})
    base = _resolve(ppath, chain + [path])
    merged = _merge(base, {k: v for k, v in raw.items() if k != "extends"})
    merged["extends"] = parent
    return merged


def _locate(name_or_path: str, relative_to: Optional[Path] = None, exclude=()) -> Path:
    s = str(name_or_path)
    looks_like_path = s.endswith(".toml") or os.sep in s or "/" in s
    if looks_like_path:
        p = Path(s).expanduser()
        if not p.is_absolute() and relative_to is not None and (relative_to / p).is_file():
            p = relative_to / p
        if not p.is_file():
            raise ProfileError(f"target profile file {s!r} does not exist")
        return p
    p = _find(s, exclude)
    if p is None:
        known = ", ".join(list_profiles())
        raise ProfileError(f"unknown target {s!r}: known targets are {known} "
                           f"(or give a .toml path; `lowbit targets list` shows them)")
    return p


def load(name_or_path: Union[str, Path, "Profile"]) -> Profile:
    """Loads and validates a profile by name (``x86-64-avx2``), by path, or ``"auto"`` (= detect())."""
    if isinstance(name_or_path, Profile):
        return name_or_path
    if str(name_or_path) == "auto":
        return detect()
    path = _locate(str(name_or_path))
    data = _resolve(path, [])
    validate(data, str(path))
    if path.parent == BUILTIN_DIR and data["name"] != path.stem:
        raise ProfileError(f"{path}: top level name: {data['name']!r} must match the file name {path.stem!r}")
    return Profile(name=data["name"], path=path, data=data)


# --- host detection -------------------------------------------------------------------------

def _arm_cpu_parts() -> List[str]:
    parts = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("cpu part"):
                parts.append(line.split(":", 1)[1].strip().lower())
    except OSError:
        pass
    return sorted(set(parts))


def _proc_features() -> List[str]:
    """Fallback when the native extension is missing: feature flags from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        key = line.split(":", 1)[0].strip().lower()
        if key in ("flags", "features"):
            flags.update(line.split(":", 1)[1].split())
    rename = {"avx512_vnni": "avx512vnni", "avx512_bf16": "avx512bf16", "avx_vnni": "avxvnni",
              "asimddp": "dotprod", "fphp": "fp16"}
    return sorted({rename.get(f, f) for f in flags})


def host_info() -> Dict[str, Any]:
    """This machine: arch, CPU features (lowbit spelling), ARM core part numbers, core count."""
    m = platform.machine().lower()
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}.get(m, m)
    try:
        import lowbit  # noqa: PLC0415
        feats = sorted(k for k, v in lowbit.native().cpu_features().items() if v)
    except Exception:  # no extension: read the kernel's view
        feats = _proc_features()
    return {"arch": arch, "features": feats, "cpu_parts": _arm_cpu_parts() if arch == "aarch64" else [],
            "cores": os.cpu_count() or 1}


def detect(host: Optional[Dict[str, Any]] = None) -> Profile:
    """The profile that fits this machine best: same arch, every needed feature present, a CPU part
    match on ARM, then the highest ``[detect] priority``. ``LOWBIT_TARGET`` overrides.
    Measured bandwidth/peak (``lowbit doctor --measure``) replace the nominal figures."""
    forced = os.environ.get("LOWBIT_TARGET")
    if forced and forced != "auto":
        return _with_measured(load(forced))
    host = host or host_info()
    best = None
    for name in list_profiles():
        try:
            prof = load(name)
        except ProfileError:
            continue  # a broken user profile must not stop detection of the others
        if prof.device != "cpu" or prof.arch != host["arch"]:
            continue
        if not set(prof.features) <= set(host["features"]):
            continue
        parts = [p.lower() for p in prof.data["detect"].get("cpu_parts", [])]
        part_match = bool(parts) and bool(set(parts) & set(host.get("cpu_parts", [])))
        key = (part_match, prof.data["detect"]["priority"], len(prof.features))
        if best is None or key > best[0]:
            best = (key, prof)
    if best is None:
        raise ProfileError(f"no target profile fits this {host['arch']} machine "
                              f"(features: {' '.join(host['features']) or 'none'}); "
                              "add one with `lowbit targets show x86-64-avx2 --toml > mine.toml`")
    return _with_measured(best[1])


# --- measured figures -----------------------------------------------------------------------

def measured_path() -> Path:
    """Cache of this device's measured bandwidth/peak (written by `lowbit doctor --measure`)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    return base / "lowbit" / "measured.json"


def save_measured(values: Dict[str, float]) -> Path:
    """Stores measured perf figures (keys of the [perf] section) for detect() to use."""
    known = set(SCHEMA["perf"]) - {"source"}
    bad = set(values) - known
    if bad:
        raise ProfileError(f"save_measured: unknown [perf] keys {sorted(bad)} (known: {sorted(known)})")
    p = measured_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({k: float(v) for k, v in values.items()}, indent=2))
    return p


def _profiler_measured() -> Dict[str, float]:
    """Figures from the profiler's per-device cache (`lowbit doctor --measure`), all threads."""
    try:
        from lowbit.profiler.device import load_cached  # noqa: PLC0415

        rec = load_cached()
    except Exception:  # noqa: BLE001 - no profiler, no extension, unreadable cache: nominal figures
        return {}
    if not rec:
        return {}
    m = rec.get("measured", {})
    out = {}
    for key, src in (("mem_bandwidth_gbs", "read_gbps"), ("int8_peak_gops", "int8_gops")):
        per_threads = m.get(src) or {}
        if per_threads:
            out[key] = per_threads[max(per_threads, key=lambda t: int(t))]
    return out


def _with_measured(prof: Profile) -> Profile:
    p = measured_path()
    vals: Dict[str, Any] = {}
    if p.is_file():
        try:
            vals = json.loads(p.read_text())
        except (OSError, ValueError):
            vals = {}
    vals = {**_profiler_measured(), **vals}
    if not vals:
        return prof
    known = set(SCHEMA["perf"]) - {"source"}
    vals = {k: float(v) for k, v in vals.items() if k in known and isinstance(v, (int, float)) and v > 0}
    if not vals:
        return prof
    data = copy.deepcopy(prof.data)
    data["perf"].update(vals)
    data["perf"]["source"] = "measured"
    return Profile(name=prof.name, path=prof.path, data=data)


# --- writing --------------------------------------------------------------------------------

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(k: str) -> str:
    return k if k.replace("-", "").replace("_", "").isalnum() else json.dumps(k)


def to_toml(data: Dict[str, Any]) -> str:
    """Writes a profile dict as TOML (top-level keys, then one [section] per table)."""
    lines = []
    for k, v in data.items():
        if not isinstance(v, dict):
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append("")
            lines.append(f"[{_toml_key(k)}]")
            for kk, vv in v.items():
                lines.append(f"{_toml_key(kk)} = {_toml_value(vv)}")
    return "\n".join(lines) + "\n"


ISA_PATHS = ISA_PATHS  # re-exported for callers that map profiles onto LOWBIT_ISA
