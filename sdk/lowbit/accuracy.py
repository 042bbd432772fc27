"""Accuracy report of a quantized graph against its float original, on calibration data:
per quantized layer (its output) and per model output, the SNR in dB and the cosine similarity,
plus top-1 agreement for outputs that look like class scores. JSON-ready dict + terminal table.
Both graphs run in ONNX Runtime through the ONNX writer (the same tensors the packages hold).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import numpy as np

from lowbit.ir import Graph


class _Acc:
    def __init__(self):
        self.ss = self.nn = self.dot = self.qq = 0.0
        self.maxabs = 0.0
        self.top1 = self.top1_n = 0

    def add(self, ref: np.ndarray, q: np.ndarray) -> None:
        r = np.ascontiguousarray(ref, np.float32).reshape(-1)
        x = np.ascontiguousarray(q, np.float32).reshape(-1)
        d = r - x
        self.ss += float(np.dot(r, r))
        self.qq += float(np.dot(x, x))
        self.dot += float(np.dot(r, x))
        self.nn += float(np.dot(d, d))
        self.maxabs = max(self.maxabs, float(np.abs(d).max()) if r.size else 0.0)
        if ref.ndim == 2 and ref.shape[-1] >= 10:
            self.top1 += int((ref.argmax(-1) == q.argmax(-1)).sum())
            self.top1_n += ref.shape[0]

    def result(self) -> Dict[str, float]:
        snr = 10 * math.log10(self.ss / self.nn) if self.nn > 0 else float("inf")
        cos = self.dot / math.sqrt(self.ss * self.qq) if self.ss > 0 and self.qq > 0 else 1.0
        out = {"snr_db": round(snr, 3) if math.isfinite(snr) else 999.0, "cosine": round(cos, 6),
               "max_abs_err": self.maxabs}
        if self.top1_n:
            out["top1_agreement"] = self.top1 / self.top1_n
        return out


def accuracy_report(float_graph: Graph, quant_graph: Graph, feeds: List[Dict[str, np.ndarray]],
                    max_samples: int = 16) -> dict:
    from lowbit.exporters.onnx_writer import ort_session  # noqa: PLC0415

    layers = quant_graph.metadata.get("quantized_layers", [])
    node_out = {n.name: n.outputs[0] for n in quant_graph.nodes}
    names = [node_out[l["node"]] for l in layers if l["node"] in node_out]
    outs = [t.name for t in float_graph.outputs]
    extra = [n for n in names if n not in outs]
    fs = ort_session(float_graph, threads=2, extra_outputs=extra)
    qs = ort_session(quant_graph, threads=2, extra_outputs=extra)
    fo = [o.name for o in fs.get_outputs()]
    qo = [o.name for o in qs.get_outputs()]
    acc = {n: _Acc() for n in set(names) | set(outs)}
    for feed in feeds[:max_samples]:
        rf = dict(zip(fo, fs.run(None, feed)))
        rq = dict(zip(qo, qs.run(None, feed)))
        for n, a in acc.items():
            a.add(rf[n], rq[n])
    layer_rows = []
    for l in layers:
        if l["node"] in node_out:
            layer_rows.append({**l, **acc[node_out[l["node"]]].result()})
    return {"scheme": quant_graph.metadata.get("scheme"), "samples": min(len(feeds), max_samples),
            "layers": layer_rows, "outputs": {n: acc[n].result() for n in outs},
            "kept_float": quant_graph.metadata.get("kept_float", []),
            "budget_bits": quant_graph.metadata.get("budget_bits")}


def format_table(report: dict, max_rows: int = 40) -> str:
    rows = report.get("layers", [])
    lines = [f"accuracy vs float ({report.get('scheme')}, {report.get('samples')} calibration samples)"]
    if rows:
        lines.append(f"{'layer':<44} {'op':<8} {'fmt':<8} {'grp':>5} {'algo':<7} {'SNR dB':>8} {'cosine':>9}")
        shown = rows if len(rows) <= max_rows else sorted(rows, key=lambda r: r["snr_db"])[:max_rows]
        for r in shown:
            lines.append(f"{r['node'][-44:]:<44} {r['op']:<8} {r['fmt']:<8} {r['group']:>5} {r['algo']:<7} "
                         f"{r['snr_db']:>8.2f} {r['cosine']:>9.5f}")
        if len(rows) > max_rows:
            lines.append(f"... {len(rows) - max_rows} more layers (worst {max_rows} shown; all in the JSON report)")
    for name, r in report.get("outputs", {}).items():
        extra = f"  top-1 agreement {r['top1_agreement'] * 100:.1f}%" if "top1_agreement" in r else ""
        lines.append(f"output {name}: SNR {r['snr_db']:.2f} dB, cosine {r['cosine']:.6f}{extra}")
    return "\n".join(lines)
