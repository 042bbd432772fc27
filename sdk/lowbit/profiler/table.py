"""Terminal rendering of a profile: a summary, then one row per op, then the warnings."""
from __future__ import annotations


def _f(v, fmt="{:.3f}", none="-"):
    return none if v is None else fmt.format(v)


def _snr(gap):
    if not gap:
        return "-"
    if gap.get("exact"):
        return "exact"
    return _f(gap.get("snr_db"), "{:.1f}")


def render_table(data: dict) -> str:
    dev = data.get("device", {})
    roof = data.get("roofline") or {}
    lat = data.get("latency_ms") or {}
    pkg = data.get("package") or {}
    cfg = data.get("config") or {}
    lines = []
    if pkg:
        lines.append(f"package   {pkg.get('name') or pkg.get('path', '')}  sha256 {str(pkg.get('sha256', ''))[:16]}"
                     f"  scheme {pkg.get('scheme', '-')}")
    lines.append(f"device    {dev.get('cpu_model', '?')} [{dev.get('arch', '?')}] id {dev.get('id', '?')}, "
                 f"{dev.get('cores', '?')} cores, {dev.get('threads_used', '?')} threads, "
                 f"ISA {dev.get('isa_active', '?')} (best {dev.get('isa_best', '?')}), governor {dev.get('governor') or 'n/a'}")
    lines.append(f"roofline  read {_f(roof.get('read_gbps'), '{:.1f}')} GB/s, int8 peak {_f(roof.get('int8_gops'), '{:.0f}')} GOPS"
                 f" ({roof.get('source', 'none')})")
    if lat.get("n"):
        lines.append(f"latency   median {lat['median']:.3f} ms, min {lat['min']:.3f}, p95 {lat['p95']:.3f} "
                     f"over {lat['n']} runs (warm-up {cfg.get('warmup', '?')})")
    if data.get("ops_sum_over_e2e") is not None:
        lines.append(f"coverage  per-op times sum to {100 * data['ops_sum_over_e2e']:.1f}% of end-to-end")
    ov = data.get("overhead") or {}
    if ov.get("fraction") is not None:
        lines.append(f"overhead  profiling on vs off: {100 * ov['fraction']:+.1f}% (median {ov.get('on_ms', 0):.3f} vs {ov.get('off_ms', 0):.3f} ms)")
    mem = data.get("memory") or {}
    if mem:
        lines.append("memory    " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in mem.items() if isinstance(v, (int, float))))
    llm = data.get("llm")
    if llm:
        lines.append(f"prefill   {_f(llm.get('prefill_tokens_per_s'), '{:.1f}')} tokens/s "
                     f"({llm['prompt_tokens']} tokens, median {_f(llm['prefill_ms']['median'])} ms)")
        frac = llm.get("decode_bandwidth_fraction")
        lines.append(f"decode    {_f(llm.get('decode_tokens_per_s'), '{:.1f}')} tokens/s "
                     f"(median {_f(llm['decode_ms_per_token']['median'])} ms/token, p95 {_f(llm['decode_ms_per_token']['p95'])}), "
                     f"weights {llm['weight_bytes_per_token'] / 2**20:.1f} MiB/token = {_f(llm.get('decode_gbps'), '{:.2f}')} GB/s"
                     + (f" = {frac:.0%} of read bandwidth" if frac else ""))
        for phase in ("decode", "prefill"):
            rows = llm.get(f"ops_{phase}") or []
            if rows:
                lines.append("")
                lines.append(f"{phase} per op (summed over {llm.get('layers')} layers; one profiled run)")
                lines.append(f"  {'op':<11} {'ms/token':>9} {'share':>6} {'GB/s':>6} {'roof':>5}  kernel [isa]")
                for r in rows:
                    lines.append(f"  {r['op']:<11} {r['ms_per_token']:9.3f} {100 * r['share']:5.1f}% "
                                 f"{_f(r['gbps'] or None, '{:.2f}'):>6} {_f(r.get('roofline_fraction'), '{:.0%}'):>5}  "
                                 f"{r['kernel']} [{r['isa']}]")
        per_layer = llm.get("per_layer") or []
        if per_layer:
            dec = [p["decode_ms_per_token"] for p in per_layer]
            worst = max(per_layer, key=lambda p: p["decode_ms_per_token"])
            lines.append(f"layers    {len(per_layer)}: decode {min(dec):.3f}-{max(dec):.3f} ms/token per layer "
                         f"(slowest: layer {worst['layer']})")
    ops = data.get("ops") or []
    if ops:
        head = ["#", "op", "type", "kernel", "isa", "median ms", "p95 ms", "share", "GB/s", "GOPS", "roof", "SNR dB", "!"]
        rows = []
        for i, o in enumerate(ops):
            r = o.get("roofline") or {}
            rows.append([str(i), o["name"][:28], o.get("type", "")[:14], (o.get("kernel") or "-")[:44], o.get("isa") or "-",
                         _f(o["time_ms"]["median"]), _f(o["time_ms"]["p95"]), f"{100 * o.get('share', 0):.1f}%",
                         _f(r.get("gbps"), "{:.1f}"), _f(r.get("gops"), "{:.1f}"),
                         _f(r.get("fraction"), "{:.0%}"), _snr(o.get("gap")), "!" if o.get("warnings") else ""])
        widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(head)]
        lines.append("")
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
        for r in rows:
            lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    og = data.get("outputs_gap") or {}
    if og:
        lines.append("")
        for name, g in og.items():
            lines.append(f"output {name}: SNR {_snr(g)} dB, cosine {g.get('cosine', 0):.6f}, max abs err {g.get('max_abs_err', 0):.3g}")
    cmp_rows = data.get("compare") or []
    if cmp_rows:
        lines.append("")
        lines.append(f"{'engine':<14}{'median ms':>11}{'p95 ms':>10}{'vs lowbit':>11}  note")
        base = next((c["median_ms"] for c in cmp_rows if c.get("engine") == "lowbit"), None)
        for c in cmp_rows:
            med = c.get("median_ms")
            ratio = f"{med / base:.2f}x" if med and base else "-"
            lines.append(f"{c['engine']:<14}{_f(med):>11}{_f(c.get('p95_ms')):>10}{ratio:>11}  {c.get('note', '')}")
    warns = data.get("warnings") or []
    if warns:
        lines.append("")
        lines.extend(f"warning: {w}" for w in warns)
    return "\n".join(lines)
