"""The profile schema: every section and key a target profile may have, with its type, and the
validation that names the offending key (``x86-64-avx2.toml: [perf] mem_bandwidth_gbs: ...``).

Pure Python (no tvm, no numpy) so that ``import lowbit.targets`` stays cheap.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

SCHEMA_VERSION = 1

ARCHES = ("x86_64", "aarch64")
DEVICES = ("cpu", "gpu")
ISA_PATHS = ("scalar", "avx2", "avx512vnni", "neon", "dotprod", "i8mm")
ISA_ARCH = {"scalar": None, "avx2": "x86_64", "avx512vnni": "x86_64",
            "neon": "aarch64", "dotprod": "aarch64", "i8mm": "aarch64"}
# Feature names as lb_cpu_feature_name() spells them (native/src/cpu.cpp).
FEATURES = {
    "x86_64": ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vnni",
               "avx512bf16", "avx512vbmi", "avxvnni"),
    "aarch64": ("asimd", "dotprod", "i8mm", "sve", "fp16", "bf16"),
}
# Scheme names of the public contract (DESIGN.md); -gptq and other suffixes are allowed on top.
SCHEME_BASES = ("fp32", "w8a8", "w8a8d", "w4a8-g32", "w4a8-g64", "w4a8-g128", "w4a16-g128",
                "nf4a8-g64", "fp4a8-g32", "t2a8")

# Type specs: a Python type, a tuple of types, ("list", type), ("enum", values), "table"
# (a free-form table of scalars: kernel tile settings), "tvm_target" (a TVM JSON-dict target).
_NUM = (int, float)
SCHEMA: Dict[str, Dict[str, Tuple[Any, bool, str]]] = {
    # section -> key -> (type spec, required, help)
    "": {
        "schema": (int, True, "profile schema version (1)"),
        "name": (str, True, "profile name, e.g. x86-64-avx2"),
        "description": (str, True, "one line saying what device this is"),
        "extends": (str, False, "name or path of a profile this one overrides (user/tuned profiles)"),
        "arch": (("enum", ARCHES), True, "CPU architecture of the device (the host CPU for GPUs)"),
        "device": (("enum", DEVICES), True, "where the model runs: cpu, or gpu through TVM's OpenCL"),
        "isa": (("enum", ISA_PATHS), True, "lowbit kernel path the native runtime uses"),
        "features": (("list", str), True, "CPU features the profile needs (lb_cpu_feature_name spelling)"),
    },
    "cpu": {
        "cores": (int, True, "CPU cores lowbit may use"),
        "big_cores": (int, False, "performance cores on big.LITTLE parts"),
        "l1d_kib": (int, True, "L1 data cache per core, KiB"),
        "l2_kib": (int, True, "L2 cache per core (or cluster), KiB"),
        "l3_kib": (int, True, "last-level cache shared, KiB (0 if none)"),
        "cache_line": (int, True, "cache line, bytes"),
        "sve_bits": (int, False, "SVE vector length in bits"),
    },
    "gpu": {
        "vendor": (str, True, "GPU family, e.g. Qualcomm Adreno 740"),
        "api": (("enum", ("opencl",)), True, "programming interface TVM generates code for"),
        "compute_units": (int, True, "compute units / shader cores"),
        "max_workgroup": (int, True, "largest OpenCL work-group"),
        "local_mem_kib": (int, True, "local (shared) memory per work-group, KiB"),
        "fp16": (bool, True, "native half-precision arithmetic"),
    },
    "perf": {
        "mem_bandwidth_gbs": (_NUM, True, "read bandwidth, GB/s (nominal until measured)"),
        "int8_peak_gops": (_NUM, True, "int8 multiply-accumulate peak, GOPS (nominal until measured)"),
        "fp32_peak_gflops": (_NUM, True, "float peak, GFLOPS"),
        "source": (("enum", ("nominal", "measured")), True, "where the figures come from"),
    },
    "quant": {
        "default_scheme": (str, True, "scheme `lowbit export` uses when none is given"),
        "schemes": (("list", str), True, "schemes that run well here, best first"),
    },
    "kernels": {
        "gemv": (str, True, "GEMV (M=1) kernel variant, by ISA suffix"),
        "gemm": (str, True, "GEMM (M>=2) kernel variant, by ISA suffix"),
        "threads": (int, True, "threads the runtime uses (0 = all cores)"),
        "tiles": ("table", False, "per-kernel tile settings (written by `lowbit tune`)"),
    },
    "tvm": {
        "target": ("tvm_target", True, "TVM target, JSON-dict form (TVM 0.27)"),
        "host": ("tvm_target", False, "TVM host target (GPU profiles: the CPU that launches kernels)"),
        "opt_level": (int, False, "TVM optimisation level (default 3)"),
    },
    "toolchain": {
        "cmake": (str, False, "CMake toolchain file, relative to targets/toolchains/"),
        "cc": (str, True, "C compiler"),
        "cxx": (str, True, "C++ compiler"),
        "cflags": (("list", str), True, "architecture flags for code built for this device"),
        "emulator": (("list", str), False, "how to run this device's binaries here (qemu)"),
    },
    "detect": {
        "priority": (int, True, "higher wins when several profiles match the host"),
        "cpu_parts": (("list", str), False, "ARM MIDR part numbers (0xd0b) that identify the core"),
    },
}
REQUIRED_SECTIONS = {"": True, "cpu": True, "gpu": False, "perf": True, "quant": True,
                     "kernels": True, "tvm": True, "toolchain": True, "detect": True}


try:
    from lowbit import LowbitError as _Base
except ImportError:  # pragma: no cover - only when loaded outside the lowbit package
    _Base = RuntimeError


class ProfileError(_Base, ValueError):
    """A profile that is missing, unknown or malformed; the message names the file and key."""


def _type_name(spec) -> str:
    if isinstance(spec, tuple) and spec and spec[0] == "enum":
        return "one of " + ", ".join(repr(v) for v in spec[1])
    if isinstance(spec, tuple) and spec and spec[0] == "list":
        return f"a list of {spec[1].__name__}"
    if spec == _NUM:
        return "a number"
    if spec == "table":
        return "a table"
    if spec == "tvm_target":
        return 'a TVM target table, e.g. {kind = "llvm", mcpu = "haswell"}'
    return f"a {spec.__name__}"


def _check_value(spec, value) -> bool:
    if isinstance(spec, tuple) and spec and spec[0] == "enum":
        return value in spec[1]
    if isinstance(spec, tuple) and spec and spec[0] == "list":
        return isinstance(value, list) and all(isinstance(v, spec[1]) for v in value)
    if spec == _NUM:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if spec is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if spec == "table":
        return isinstance(value, dict)
    if spec == "tvm_target":
        return isinstance(value, dict) and isinstance(value.get("kind"), str)
    return isinstance(value, spec)


def _where(src: str, section: str, key: str = "") -> str:
    loc = f"[{section}]" if section else "top level"
    return f"{src}: {loc}{' ' + key if key else ''}"


def validate(data: Dict[str, Any], src: str) -> List[str]:
    """Checks a merged profile dict; returns nothing, raises ProfileError listing every problem."""
    problems: List[str] = []
    for key, value in data.items():
        if isinstance(value, dict) and key in SCHEMA and key != "":
            continue
        if key not in SCHEMA[""]:
            if isinstance(value, dict):
                problems.append(f"{src}: unknown section [{key}] (known: {', '.join(s for s in SCHEMA if s)})")
            else:
                problems.append(f"{_where(src, '', key)}: unknown key (known: {', '.join(SCHEMA[''])})")
    for section, keys in SCHEMA.items():
        table = data if section == "" else data.get(section)
        if table is None:
            if REQUIRED_SECTIONS[section] or (section == "gpu" and data.get("device") == "gpu"):
                problems.append(f"{src}: missing section [{section}]")
            continue
        if not isinstance(table, dict):
            problems.append(f"{src}: [{section}] must be a table")
            continue
        for key, (spec, required, help_) in keys.items():
            if key not in table:
                if required:
                    problems.append(f"{_where(src, section, key)}: missing required key ({help_})")
                continue
            if not _check_value(spec, table[key]):
                problems.append(f"{_where(src, section, key)}: expected {_type_name(spec)}, got {table[key]!r}")
        if section:
            for key in table:
                if key not in keys:
                    problems.append(f"{_where(src, section, key)}: unknown key (known: {', '.join(keys)})")
    if problems:
        raise ProfileError("invalid target profile:\n  " + "\n  ".join(problems))
    _check_semantics(data, src)
    return problems


def _check_semantics(data: Dict[str, Any], src: str) -> None:
    problems = []
    if data["schema"] != SCHEMA_VERSION:
        problems.append(f"{_where(src, '', 'schema')}: version {data['schema']} is not supported (this lowbit reads {SCHEMA_VERSION})")
    arch = data["arch"]
    isa_arch = ISA_ARCH[data["isa"]]
    if isa_arch and isa_arch != arch:
        problems.append(f"{_where(src, '', 'isa')}: {data['isa']!r} is an {isa_arch} path but arch is {arch!r}")
    for f in data["features"]:
        if f not in FEATURES[arch]:
            problems.append(f"{_where(src, '', 'features')}: unknown {arch} feature {f!r} (known: {', '.join(FEATURES[arch])})")
    q = data["quant"]
    for s in [q["default_scheme"], *q["schemes"]]:
        if not any(s == b or s.startswith(b + "-") for b in SCHEME_BASES):
            problems.append(f"{_where(src, 'quant', 'schemes')}: unknown scheme {s!r} (known: {', '.join(SCHEME_BASES)})")
    for key in ("gemv", "gemm"):
        v = data["kernels"][key]
        if v not in ISA_PATHS and v != "tvm":
            problems.append(f"{_where(src, 'kernels', key)}: {v!r} is not a kernel path ({', '.join(ISA_PATHS)}, tvm)")
    tiles = data["kernels"].get("tiles", {})
    for fam, settings in tiles.items():
        if not isinstance(settings, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in settings.values()):
            problems.append(f"{_where(src, 'kernels.tiles', fam)}: expected a table of integers, got {settings!r}")
    kind = data["tvm"]["target"]["kind"]
    if data["device"] == "gpu" and kind != "opencl":
        problems.append(f"{_where(src, 'tvm', 'target')}: a gpu profile needs kind = \"opencl\", got {kind!r}")
    if data["device"] == "cpu" and kind != "llvm":
        problems.append(f"{_where(src, 'tvm', 'target')}: a cpu profile needs kind = \"llvm\", got {kind!r}")
    for key in ("mem_bandwidth_gbs", "int8_peak_gops", "fp32_peak_gflops"):
        if data["perf"][key] <= 0:
            problems.append(f"{_where(src, 'perf', key)}: must be > 0, got {data['perf'][key]!r}")
    if data["cpu"]["cores"] <= 0:
        problems.append(f"{_where(src, 'cpu', 'cores')}: must be > 0")
    if problems:
        raise ProfileError("invalid target profile:\n  " + "\n  ".join(problems))
