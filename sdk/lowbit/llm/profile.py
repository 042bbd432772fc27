"""Per-op breakdown of an LLM session's profile events (``LlmSession.profile_events``).

The runtime charges the time between consecutive op boundaries to the op that just ran, so the
ops of a forward pass add up to the pass; this module sums them over layers (or keeps layers
apart) and derives milliseconds per token, shares and the weight-read bandwidth of the linears.
"""
from __future__ import annotations

from typing import Dict, Iterable, List

OP_ORDER = ["embed", "attn_norm", "qkv", "rope", "kv_store", "attention", "o_proj", "residual", "ffn_norm",
            "gate_up", "swiglu", "down", "final_norm", "lm_head", "sampling"]


def summarize(events: Iterable[Dict], phase: str = "decode", tokens: int = 1, per_layer: bool = False) -> List[Dict]:
    """Rows {op, layer, kernel, isa, calls, ms_per_token, share, gbps} for one phase, in forward
    order. tokens: how many tokens (decode steps, or prompt tokens) the events cover."""
    if phase not in ("prefill", "decode"):
        raise ValueError(f"phase must be 'prefill' or 'decode', got {phase!r}")
    if tokens <= 0:
        raise ValueError(f"tokens must be positive, got {tokens}")
    acc: Dict = {}
    for e in events:
        if e["phase"] != phase:
            continue
        key = (e["op"], e["layer"] if per_layer else None)
        a = acc.setdefault(key, {"op": e["op"], "layer": key[1], "kernel": e["kernel"], "isa": e["isa"], "calls": 0,
                                 "ns": 0, "bytes": 0})
        a["calls"] += e["calls"]
        a["ns"] += e["ns"]
        a["bytes"] += e["weight_bytes"] * e["calls"]
    total = sum(a["ns"] for a in acc.values()) or 1
    order = {op: i for i, op in enumerate(OP_ORDER)}
    rows = []
    for a in sorted(acc.values(), key=lambda a: (-2 if a["layer"] is None else a["layer"], order.get(a["op"], 99))):
        rows.append({"op": a["op"], "layer": a["layer"], "kernel": a["kernel"], "isa": a["isa"], "calls": a["calls"],
                     "ms_per_token": a["ns"] / 1e6 / tokens, "share": a["ns"] / total,
                     # weight-read bandwidth means something in decode only (prefill reuses
                     # each weight across the chunk's rows)
                     "gbps": a["bytes"] / a["ns"] if phase == "decode" and a["bytes"] and a["ns"] else 0.0})
    if not per_layer:  # ops outside the blocks at their place in the forward order
        rows.sort(key=lambda r: order.get(r["op"], 99))
    return rows


def format_table(rows: List[Dict], title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"  {'op':<11} {'layer':>5} {'ms/token':>9} {'share':>6} {'GB/s':>6}  kernel [isa]")
    for r in rows:
        layer = "all" if r["layer"] is None else ("-" if r["layer"] < 0 else str(r["layer"]))
        gb = f"{r['gbps']:6.2f}" if r["gbps"] else "     -"
        lines.append(f"  {r['op']:<11} {layer:>5} {r['ms_per_token']:9.3f} {100 * r['share']:5.1f}% {gb}  "
                     f"{r['kernel']} [{r['isa']}]")
    tot = sum(r["ms_per_token"] for r in rows)
    lines.append(f"  {'total':<11} {'':>5} {tot:9.3f}")
    return "\n".join(lines)
