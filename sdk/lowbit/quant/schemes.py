"""Scheme names (public contract, see DESIGN.md): ``fp32``, ``w8a8``, ``w8a8d``, ``w4a8-g32|g64|g128``,
``w4a16-g128``, the ``-gptq`` suffix, ``nf4a8-g64``, ``fp4a8-g32``, ``cb4a8-g64``, ``t2a8``."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from lowbit import LowbitError

KNOWN = ["fp32", "w8a8", "w8a8d", "w8a16", "w4a8-g32", "w4a8-g64", "w4a8-g128", "w4a16-g128",
         "nf4a8-g64", "fp4a8-g32", "cb4a8-g64", "t2a8"]

_RE = re.compile(r"^(?P<w>w8|w4|nf4|fp4|cb4|t2)a(?P<a>8|16|32)(?P<dyn>d?)(?:-g(?P<g>\d+))?(?P<gptq>-gptq)?$")
_FMT = {"w8": "int8", "w4": "int4", "nf4": "nf4", "fp4": "fp4", "cb4": "cb4", "t2": "ternary"}
_BITS = {"int8": 8, "int4": 4, "nf4": 4, "fp4": 4, "cb4": 4, "ternary": 2}


@dataclass(frozen=True)
class Scheme:
    name: str
    wfmt: Optional[str]  # None = float weights (fp32)
    group: int  # 0 = per output channel (group = K)
    abits: int  # 8 = int8 activations, 16/32 = float activations
    act_mode: Optional[str]  # "static", "dynamic" or None (float activations)
    algo: str  # "rtn" or "gptq" (codebook formats learn their codebook by k-means; ternary: absmean)

    @property
    def wbits(self) -> int:
        return _BITS.get(self.wfmt, 32)

    @property
    def is_float(self) -> bool:
        return self.wfmt is None


def parse_scheme(name: str) -> Scheme:
    name = str(name).strip().lower()
    if name in ("fp32", "float", "none"):
        return Scheme("fp32", None, 0, 32, None, "rtn")
    m = _RE.match(name)
    if not m:
        raise LowbitError(f"unknown scheme {name!r}; known schemes: {', '.join(KNOWN)} "
                          "(a '-gptq' suffix selects GPTQ, '-gNN' the group size)")
    fmt = _FMT[m["w"]]
    abits = int(m["a"])
    group = int(m["g"]) if m["g"] else 0
    if fmt == "int8" and group:
        raise LowbitError(f"scheme {name!r}: int8 weights are per output channel; drop the -g{group}")
    if fmt in ("int4", "nf4", "fp4", "cb4") and not group:
        group = {"int4": 32, "nf4": 64, "fp4": 32, "cb4": 64}[fmt]
    if group and (group < 8 or group & (group - 1)):
        raise LowbitError(f"scheme {name!r}: the group size must be a power of two >= 8")
    if m["dyn"] and abits != 8:
        raise LowbitError(f"scheme {name!r}: 'd' (dynamic) applies to 8-bit activations only")
    if abits == 8:
        # w8a8 is static (calibrated); the sub-8-bit weight schemes use dynamic per-row int8 activations
        act_mode = "dynamic" if (m["dyn"] or fmt != "int8") else "static"
    else:
        act_mode = None
    algo = "gptq" if m["gptq"] else ("kmeans" if fmt == "cb4" else "absmean" if fmt == "ternary" else "rtn")
    if m["gptq"] and fmt == "ternary":
        raise LowbitError("GPTQ is not offered for ternary weights (t2a8 uses the absmean quantizer)")
    return Scheme(name, fmt, group, abits, act_mode, algo)
