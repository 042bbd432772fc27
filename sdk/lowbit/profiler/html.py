"""One self-contained HTML report: inline CSS and inline SVG plots (time per op, roofline, numeric
gap by layer) and the tables; no script, no external file, so it opens anywhere offline."""
from __future__ import annotations

import json
import math
from html import escape

from lowbit.profiler.table import render_table

# Plot colours (the Chromium test looks for them in a screenshot).
C_TIME = "#4c78a8"
C_WARN = "#e45756"
C_POINT = "#f58518"
C_ROOF = "#333333"
C_GAP = "#54a24b"

_CSS = """
body{font:13px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.warn{color:#b00020}.muted{color:#777}svg{background:#fff;border:1px solid #e4e4e4}
svg text{font:11px system-ui,sans-serif;fill:#333}.kv td:first-child{color:#555}
pre{background:#f8f8f8;padding:8px;overflow:auto;font-size:11px}
"""


def _fmt(v, f="{:.3f}"):
    return "-" if v is None else f.format(v)


def _bars(rows, plot_id, title, unit, value_fmt, width=900):
    """Horizontal bar chart. rows: (label, value, colour, tooltip)."""
    if not rows:
        return f'<svg id="{plot_id}" class="plot" width="{width}" height="40"><text x="10" y="24">no data for {escape(title)}</text></svg>'
    bar_h, gap, left, right, top = 14, 4, 230, 90, 24
    vmax = max((r[1] for r in rows if r[1] is not None and r[1] > 0), default=1.0)
    h = top + len(rows) * (bar_h + gap) + 10
    span = width - left - right
    out = [f'<svg id="{plot_id}" class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" '
           f'viewBox="0 0 {width} {h}" role="img" aria-label="{escape(title)}">',
           f'<text x="{left}" y="15" font-weight="bold">{escape(title)} ({escape(unit)})</text>']
    for i, row in enumerate(rows):
        label, v, colour, tip = row[:4]
        text = row[4] if len(row) > 4 else value_fmt(v)
        y = top + i * (bar_h + gap)
        w = 0.0 if v is None or v <= 0 else max(1.0, span * v / vmax)
        out.append(f'<text x="{left - 6}" y="{y + bar_h - 3}" text-anchor="end">{escape(label[:34])}</text>')
        out.append(f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}">'
                   f'<title>{escape(tip)}</title></rect>')
        out.append(f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 3}">{escape(text)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _time_plot(data):
    rows = []
    for o in data.get("ops") or []:
        t = o["time_ms"]["median"]
        colour = C_WARN if o.get("warnings") else C_TIME
        tip = f"{o['name']} [{o.get('type', '')}] {o.get('kernel') or '-'} ({o.get('isa') or '-'}): median {t:.4f} ms, p95 {o['time_ms']['p95']:.4f} ms"
        rows.append((o["name"], t, colour, tip))
    return _bars(rows, "plot-time", "time per op, median", "ms", lambda v: _fmt(v, "{:.4f}"))


def _gap_plot(data):
    gaps = [(o, o.get("gap")) for o in data.get("ops") or [] if o.get("gap")]
    finite = [g["snr_db"] for _, g in gaps if g.get("snr_db") is not None]
    top = max([100.0] + finite)  # bit-exact layers get the longest bar
    rows = []
    for o, g in gaps:
        snr = g.get("snr_db")
        exact = g.get("exact")
        val = top if exact else (max(snr, 0.0) if snr is not None else 0.0)
        tip = f"{o['name']}: SNR {'exact' if exact else _fmt(snr, '{:.2f}')} dB, cosine {g.get('cosine', 0):.6f}, max abs err {g.get('max_abs_err', 0):.4g}"
        rows.append((o["name"], val, C_GAP, tip, "exact" if exact else _fmt(snr, "{:.1f}")))
    return _bars(rows, "plot-gap", "numeric gap to float by layer: SNR", "dB", lambda v: _fmt(v, "{:.1f}"))


def _roofline_plot(data, width=900, height=420):
    roof = data.get("roofline") or {}
    bw, peak = roof.get("read_gbps"), roof.get("int8_gops")
    pts = []
    for o in data.get("ops") or []:
        r = o.get("roofline") or {}
        if r.get("intensity") and r.get("gops"):
            pts.append((r["intensity"], r["gops"], o))
    if not bw or not peak:
        return (f'<svg id="plot-roofline" class="plot" width="{width}" height="40"><text x="10" y="24">'
                'roofline unknown: run `lowbit doctor --measure` on this device</text></svg>')
    ridge = peak / bw
    xs = [p[0] for p in pts] + [ridge]
    ys = [p[1] for p in pts] + [peak]
    x_lo = 10 ** math.floor(math.log10(min(xs) / 2))
    x_hi = 10 ** math.ceil(math.log10(max(xs) * 4))
    y_lo = 10 ** math.floor(math.log10(max(min(ys) / 2, 1e-6)))
    y_hi = 10 ** math.ceil(math.log10(max(ys) * 1.5))
    ml, mr, mt, mb = 70, 20, 30, 45
    pw, ph = width - ml - mr, height - mt - mb

    def X(v):
        return ml + pw * (math.log10(v) - math.log10(x_lo)) / (math.log10(x_hi) - math.log10(x_lo))

    def Y(v):
        return mt + ph * (1 - (math.log10(v) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo)))

    out = [f'<svg id="plot-roofline" class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="roofline">',
           f'<text x="{ml}" y="18" font-weight="bold">roofline: read {bw:.1f} GB/s, int8 peak {peak:.0f} GOPS '
           f'(ridge {ridge:.1f} ops/byte)</text>',
           f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>']
    d = 0
    while x_lo * 10 ** d <= x_hi * 1.0001:
        v = x_lo * 10 ** d
        out.append(f'<line x1="{X(v):.1f}" y1="{mt}" x2="{X(v):.1f}" y2="{mt + ph}" stroke="#eee"/>'
                   f'<text x="{X(v):.1f}" y="{mt + ph + 14}" text-anchor="middle">{v:g}</text>')
        d += 1
    d = 0
    while y_lo * 10 ** d <= y_hi * 1.0001:
        v = y_lo * 10 ** d
        out.append(f'<line x1="{ml}" y1="{Y(v):.1f}" x2="{ml + pw}" y2="{Y(v):.1f}" stroke="#eee"/>'
                   f'<text x="{ml - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        d += 1
    out.append(f'<text x="{ml + pw / 2}" y="{height - 8}" text-anchor="middle">arithmetic intensity (ops/byte)</text>')
    out.append(f'<text x="14" y="{mt + ph / 2}" transform="rotate(-90 14 {mt + ph / 2})" text-anchor="middle">GOPS</text>')
    x0 = max(x_lo, y_lo / bw)
    out.append(f'<polyline id="roof" fill="none" stroke="{C_ROOF}" stroke-width="2" points="'
               f'{X(x0):.1f},{Y(bw * x0):.1f} {X(ridge):.1f},{Y(peak):.1f} {X(x_hi):.1f},{Y(peak):.1f}"/>')
    for inten, gops, o in pts:
        colour = C_WARN if o.get("warnings") else C_POINT
        frac = (o.get("roofline") or {}).get("fraction")
        out.append(f'<circle class="op" cx="{X(inten):.1f}" cy="{Y(max(gops, y_lo)):.1f}" r="5" fill="{colour}" '
                   f'stroke="#ffffff" stroke-width="1"><title>{escape(o["name"])}: {gops:.2f} GOPS at {inten:.2f} ops/byte, '
                   f'{_fmt(frac, "{:.0%}")} of roofline ({escape(o.get("kernel") or "-")})</title></circle>')
    out.append("</svg>")
    return "\n".join(out)


def _op_table(data):
    head = ("#", "op", "type", "kernel", "isa", "shapes", "median ms", "p95 ms", "share", "GB/s", "GOPS",
            "roofline", "SNR dB", "cosine", "warnings")
    rows = ["<table id='ops'><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for i, o in enumerate(data.get("ops") or []):
        r = o.get("roofline") or {}
        g = o.get("gap") or {}
        snr = "exact" if g.get("exact") else _fmt(g.get("snr_db"), "{:.1f}")
        sh = o.get("shapes") or {}
        shapes = sh.get("text") or " → ".join(json.dumps(sh.get(k, [])) for k in ("inputs", "outputs"))
        cells = [str(i), escape(o["name"]), escape(o.get("type", "")), escape(o.get("kernel") or "-"),
                 escape(o.get("isa") or "-"), escape(shapes), _fmt(o["time_ms"]["median"], "{:.4f}"),
                 _fmt(o["time_ms"]["p95"], "{:.4f}"), f"{100 * o.get('share', 0):.1f}%", _fmt(r.get("gbps"), "{:.2f}"),
                 _fmt(r.get("gops"), "{:.2f}"), _fmt(r.get("fraction"), "{:.0%}"), snr, _fmt(g.get("cosine"), "{:.5f}"),
                 "<span class='warn'>" + escape("; ".join(o.get("warnings") or [])) + "</span>"]
        num = {0, 6, 7, 8, 9, 10, 11, 12, 13}
        rows.append("<tr>" + "".join(f"<td class='n'>{c}</td>" if j in num else f"<td>{c}</td>"
                                     for j, c in enumerate(cells)) + "</tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _kv(d):
    return "<table class='kv'>" + "".join(
        f"<tr><td>{escape(str(k))}</td><td>{escape(', '.join(map(str, v)) if isinstance(v, list) else str(v))}</td></tr>"
        for k, v in d.items() if not isinstance(v, dict)) + "</table>"


def render_html(data: dict) -> str:
    pkg = data.get("package") or {}
    name = pkg.get("name") or pkg.get("path") or "profile"
    warns = data.get("warnings") or []
    parts = [
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>lowbit profile: {escape(str(name))}</title>", f"<style>{_CSS}</style></head><body>",
        f"<h1>lowbit profile: {escape(str(name))}</h1>",
        f"<p class='muted'>{escape(data.get('device', {}).get('cpu_model', ''))} · device id "
        f"{escape(str(data.get('device', {}).get('id', '')))} · schema {escape(data.get('schema', ''))}</p>",
    ]
    if warns:
        parts.append("<h2>Warnings</h2><ul id='warnings'>" + "".join(f"<li class='warn'>{escape(w)}</li>" for w in warns) + "</ul>")
    parts += ["<h2>Time per op</h2>", _time_plot(data),
              "<h2>Roofline</h2>", _roofline_plot(data),
              "<h2>Numeric gap to float by layer</h2>", _gap_plot(data),
              "<h2>Summary</h2>", f"<pre>{escape(render_table({**data, 'ops': []}))}</pre>",
              "<h2>Ops</h2>", _op_table(data),
              "<h2>Device</h2>", _kv(data.get("device") or {}),
              "<h2>Package</h2>", _kv(pkg) if pkg else "<p class='muted'>none</p>",
              "</body></html>"]
    return "\n".join(parts)
