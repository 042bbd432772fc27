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


def error_split(float_graph: Graph, quant_graph: Graph) -> Dict[str, Graph]:
    """The two halves of a quantized graph's error, as graphs ONNX Runtime / refexec can run:

    * ``"activations_float"``: every weight (and bias) as quantized, every activation quantizer
      removed; a smoothed layer gets its dequantized weight with the smoothing divided back out, so
      the float input meets the weight it was folded from;
    * ``"weights_float"``: the float model's own weights and biases (smoothed where the quantizer
      divides its input by ``smooth``), every activation quantizer as exported.

    Removing a quantizer through ``ActQuant.smooth`` alone would leave the 1/s in place; this does not.
    Both graphs are plain float graphs plus ActQuant attributes, independent of ``quant_graph``."""
    from lowbit.ir import QuantWeight  # noqa: PLC0415

    def _unsmooth_shape(n, w: np.ndarray):  # the axis of w the smoothing divisor runs along
        if n.op == "MatMul":
            return (-1, 1)
        return (-1, 1, 1, 1) if n.attrs.get("group", 1) > 1 else (1, -1, 1, 1)

    acts, wts = quant_graph.clone(), quant_graph.clone()
    for na, nw in zip(acts.nodes, wts.nodes):
        aq = na.attrs.pop("act_quant", None)
        s = None if aq is None else aq.smooth
        w = quant_graph.initializers.get(na.inputs[1]) if len(na.inputs) > 1 else None
        if not isinstance(w, QuantWeight):
            continue
        d = w.dequantize().astype(np.float32)
        d = np.ascontiguousarray(d.T) if w.layout == "kn" else d.reshape(w.orig_shape)
        if s is not None:
            d = d / s.astype(np.float32).reshape(_unsmooth_shape(na, d))
        acts.initializers[na.inputs[1]] = d.astype(np.float32)
        wf = np.asarray(float_graph.initializers[nw.inputs[1]], np.float32)
        if s is not None:
            wf = wf * s.astype(np.float32).reshape(_unsmooth_shape(nw, wf))
        wts.initializers[nw.inputs[1]] = wf.astype(np.float32)
        bias = nw.inputs[2] if nw.op != "MatMul" and len(nw.inputs) > 2 else None
        if bias and isinstance(float_graph.initializers.get(bias), np.ndarray):
            wts.initializers[bias] = float_graph.initializers[bias]
    return {"activations_float": acts, "weights_float": wts}


def error_split_report(float_graph: Graph, quant_graph: Graph, feeds: List[Dict[str, np.ndarray]]) -> dict:
    """Per model output, SNR / cosine (/ top-1) against float of the quantized graph and of its two
    halves (:func:`error_split`), all run by ONNX Runtime on ``feeds``."""
    from lowbit.exporters.onnx_writer import ort_session  # noqa: PLC0415

    graphs = {"quantized": quant_graph, **error_split(float_graph, quant_graph)}
    fs = ort_session(float_graph, threads=2)
    sess = {k: ort_session(g, threads=2) for k, g in graphs.items()}
    outs = [o.name for o in fs.get_outputs()]
    acc = {k: {n: _Acc() for n in outs} for k in graphs}
    for feed in feeds:
        ref = fs.run(None, feed)
        for k, s in sess.items():
            for n, r, q in zip(outs, ref, s.run(None, feed)):
                acc[k][n].add(r, q)
    return {k: {n: a.result() for n, a in v.items()} for k, v in acc.items()}
