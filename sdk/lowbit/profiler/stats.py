"""The profiler's arithmetic: latency summaries, the roofline, the numeric gap to float, and
reading the kernel-name grammar (docs/kernel-names.md). Pure numpy, no native code."""
from __future__ import annotations

import math
import re
import time
from typing import Callable, Optional, Sequence

import numpy as np


def time_ms(fn: Callable[[], object], runs: int, warmup: int = 1) -> list:
    """Calls fn `warmup` times untimed, then `runs` times; returns each timed call in ms."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def summarize(values_ms: Sequence[float]) -> dict:
    """min / median / p95 / mean / max of a list of times (ms); p95 by linear interpolation."""
    a = np.asarray(list(values_ms), dtype=np.float64)
    if a.size == 0:
        return {"n": 0, "min": None, "median": None, "p95": None, "mean": None, "max": None}
    return {
        "n": int(a.size),
        "min": float(a.min()),
        "median": float(np.median(a)),
        "p95": float(np.percentile(a, 95)),
        "mean": float(a.mean()),
        "max": float(a.max()),
    }


def numeric_gap(reference, actual) -> dict:
    """How far `actual` (lowbit's output) is from `reference` (float): SNR in dB (signal power over
    error power), cosine similarity, max absolute error, and the max error relative to max |ref|.
    Identical tensors give exact=True and snr_db=None (infinite)."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    got = np.asarray(actual, dtype=np.float64).ravel()
    if ref.shape != got.shape:
        raise ValueError(f"numeric_gap: {ref.size} reference values vs {got.size} actual values")
    err = got - ref
    p_sig = float(np.dot(ref, ref))
    p_err = float(np.dot(err, err))
    n_ref = math.sqrt(p_sig)
    n_got = float(np.linalg.norm(got))
    if n_ref == 0.0 and n_got == 0.0:
        cosine = 1.0
    elif n_ref == 0.0 or n_got == 0.0:
        cosine = 0.0
    else:
        cosine = float(np.dot(ref, got) / (n_ref * n_got))
    max_abs = float(np.max(np.abs(err))) if err.size else 0.0
    ref_max = float(np.max(np.abs(ref))) if ref.size else 0.0
    exact = p_err == 0.0
    if exact:
        snr = None
    elif p_sig == 0.0:
        snr = -math.inf
    else:
        snr = 10.0 * math.log10(p_sig / p_err)
    return {
        "snr_db": None if snr is None or math.isinf(snr) else float(snr),
        "cosine": max(-1.0, min(1.0, cosine)),
        "max_abs_err": max_abs,
        "max_rel_err": (max_abs / ref_max) if ref_max > 0 else (0.0 if exact else None),
        "exact": exact,
    }


def roofline_point(bytes_moved: float, ops: float, seconds: float,
                   read_gbps: Optional[float], peak_gops: Optional[float]) -> dict:
    """Where one op sits on the roofline of a device with `read_gbps` bandwidth and `peak_gops`
    int8 peak. The attainable rate is min(peak, intensity * bandwidth); `fraction` is the achieved
    rate over it (ops if the op does arithmetic, bytes otherwise). Unknown roofs give None."""
    out = {"gbps": None, "gops": None, "intensity": None, "bound": None, "fraction": None, "attainable_gops": None}
    if seconds <= 0:
        return out
    gbps = bytes_moved / seconds / 1e9
    gops = ops / seconds / 1e9
    out["gbps"], out["gops"] = gbps, gops
    if bytes_moved > 0:
        out["intensity"] = ops / bytes_moved
    if ops > 0 and bytes_moved > 0 and read_gbps and peak_gops:
        mem_roof = out["intensity"] * read_gbps
        attainable = min(peak_gops, mem_roof)
        out["attainable_gops"] = attainable
        out["bound"] = "memory" if mem_roof < peak_gops else "compute"
        out["fraction"] = gops / attainable
    elif ops > 0 and peak_gops:
        out["bound"] = "compute"
        out["attainable_gops"] = peak_gops
        out["fraction"] = gops / peak_gops
    elif bytes_moved > 0 and read_gbps:
        out["bound"] = "memory"
        out["fraction"] = gbps / read_gbps
    return out


_KERNEL_RE = re.compile(r"^lb_(?P<op>[a-z0-9]+)_(?P<out>[a-z0-9]+)_(?P<act>[a-z0-9]+)_(?P<weight>[a-z0-9]+)"
                        r"(?:_(?P<tile>[0-9]+x[0-9]+))?__(?P<isa>[a-z0-9_]+)$")

# Op types whose kernels lowbit has SIMD variants for: a scalar run of one of them is a slow path
# even in float (elementwise and shape ops run scalar by design and are not flagged).
HEAVY_OP_TYPES = {"Conv", "ConvTranspose", "MatMul", "Gemm", "QLinear", "MatMulNBits", "Attention"}

# Weight formats that mean the op computes in float (no quantized weights).
FLOAT_WEIGHT_FORMATS = {"f32", "f16", "bf16", "fp32", "fp16"}


def parse_kernel_name(name: str) -> Optional[dict]:
    """Splits lb_<op>_<out>_<act>_<weight>[_<tile>]__<isa> into its parts; None if it does not
    follow the grammar (ops without a kernel, or a foreign name)."""
    m = _KERNEL_RE.match(name or "")
    return m.groupdict() if m else None


def is_float_kernel(name: str) -> bool:
    """True if the kernel computes with float weights and float activations."""
    parts = parse_kernel_name(name)
    if not parts:
        return False
    return parts["weight"] in FLOAT_WEIGHT_FORMATS and parts["act"] in FLOAT_WEIGHT_FORMATS


def is_scalar_kernel(name: str, isa: str) -> bool:
    """True if the code that ran is the scalar reference (by its ISA or its __ref suffix)."""
    return isa in ("scalar", "ref") or (name or "").endswith("__ref")
