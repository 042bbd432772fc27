"""Mixed precision (``--budget-bits B``): per-layer bits from measured sensitivity.

Each layer starts at the scheme's low-bit format; its sensitivity is the output error that format
causes, ``sum_j H_jj * ||W_j - Q(W_j)||^2`` (the Hessian diagonal of its input from calibration,
i.e. the expected squared error of the layer's output), minus the same for int8. Layers are promoted
to int8 greedily, most error removed per extra bit first, while the parameter-weighted average
stays within the budget.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from lowbit import LowbitError
from lowbit.ir import Graph, Node
from lowbit.quant import weights as wq
from lowbit.quant.schemes import Scheme


def _err(w: np.ndarray, fmt: str, g: int, hdiag) -> float:
    qw = wq.quantize_rtn(w, fmt, g, hdiag=hdiag)
    d = (qw.dequantize() - w) ** 2
    return float((d * hdiag[None, :]).sum() if hdiag is not None else d.sum())


def choose_bits(graph: Graph, layers: List[Node], scheme: Scheme, stats, budget: float) -> Dict[str, int]:
    from lowbit.quant.pipeline import _layer_format, _weight_nk  # noqa: PLC0415

    low_bits = scheme.wbits
    if budget < low_bits:
        raise LowbitError(f"--budget-bits {budget} is below the {low_bits} bits of scheme {scheme.name}")
    if low_bits >= 8:
        return {n.name: 8 for n in layers}
    cand = []
    sizes = {}
    bits = {}
    for n in layers:
        w = graph.initializers[n.inputs[1]]
        wnk = _weight_nk(n, w)[0]
        fmt, g = _layer_format(scheme, wnk.shape[1], None)
        sizes[n.name] = wnk.size
        if fmt == "int8":
            bits[n.name] = 8
            continue
        bits[n.name] = low_bits
        st = stats.get(n.inputs[0])
        H = st.hessian if st is not None else None
        hdiag = np.diag(H).astype(np.float32) if H is not None and H.shape[0] == wnk.shape[1] else None
        gain = _err(wnk, fmt, g, hdiag) - _err(wnk, "int8", 0, hdiag)
        cand.append((gain / (wnk.size * (8 - low_bits)), n.name))
    total = sum(sizes.values())
    used = sum(bits[k] * sizes[k] for k in bits)
    for _, name in sorted(cand, reverse=True):
        extra = (8 - low_bits) * sizes[name]
        if (used + extra) / total <= budget + 1e-9:
            bits[name] = 8
            used += extra
    return bits
