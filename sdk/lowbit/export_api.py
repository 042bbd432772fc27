"""``lowbit.export``: a model (ONNX file, torch.nn.Module, or a Hugging Face LLM folder) -> a quantized
device package (``.lbpk``), ONNX file, or TVM artifact, with an accuracy report.

Everything that can be wrong with the input (the model, the scheme, the target, the calibration
data, an op lowbit cannot handle) is reported before any file is written, and files are written
to a temporary name and renamed, so a failed export never leaves a half-written output behind.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from lowbit import LowbitError

FORMATS = ("lbpk", "onnx", "tvm")
log = logging.getLogger("lowbit.export")


def _resolve_target(target):
    """A target profile (or None where the targets module is not available)."""
    if target is None:
        return None
    try:
        import lowbit.targets as targets  # noqa: PLC0415
    except ImportError:
        return None
    if not isinstance(target, str):
        return target
    err = getattr(targets, "ProfileError", Exception)
    try:
        if target == "auto":
            return targets.detect() if hasattr(targets, "detect") else None
        if not hasattr(targets, "load"):
            return None
        return targets.load(target)
    except err as exc:
        raise LowbitError(str(exc)) from exc


def _keep_float_list(v) -> List[str]:
    if not v:
        return []
    if isinstance(v, str):
        return [p.strip() for p in v.split(",") if p.strip()]
    return [str(p) for p in v]


def _is_hf_dir(model) -> bool:
    return isinstance(model, (str, Path)) and Path(model).is_dir() and (Path(model) / "config.json").is_file()


def _input_infos(model_proto):
    from lowbit.importers.onnx_import import onnx_to_graph  # noqa: PLC0415

    g = onnx_to_graph(model_proto)
    return g.inputs


def _weight_bits7(value, profile=None) -> bool:
    """The weight_bits7 option: True / False, or "auto" (the default) = the target profile (this host's
    when none is given) lacks int8 dot products (lowbit.quant.weights.weight_bits7_for): there int8
    weights are rounded to 7 bits (codes within +-63) so that the AVX2 u8 x s8 GEMM is exact and fast,
    as ONNX Runtime's `reduce_range` advice for AVX2; VNNI and ARM targets keep 8 bits."""
    if isinstance(value, str) and value.lower() == "auto":
        from lowbit.quant.weights import weight_bits7_for  # noqa: PLC0415

        return weight_bits7_for(profile if profile is not None else _resolve_target("auto"))
    if value not in (True, False, None, 0, 1):
        raise LowbitError(f"weight_bits7 must be True, False or 'auto', not {value!r}")
    return bool(value)


def prepare(model, *, example_inputs=None, scheme="w8a8", calib=None, **options):
    """Import + quantize + measure, without writing anything. Returns (float graph, quantized graph,
    calibration feeds, accuracy report)."""
    from lowbit.calib import input_shapes, load_calib  # noqa: PLC0415
    from lowbit.quant.pipeline import QuantOptions, quantize_graph  # noqa: PLC0415
    from lowbit.quant.schemes import parse_scheme  # noqa: PLC0415

    sch = parse_scheme(scheme)
    unknown = set(options) - {"smooth", "smooth_alpha", "sparse_outliers", "keep_float", "budget_bits",
                              "calib_method", "input_shapes", "progress", "max_calib", "gptq_damp",
                              "act_order", "report_samples", "verbose", "weight_bits7", "error_comp"}
    if unknown:
        raise LowbitError(f"unknown export options {sorted(unknown)}")
    max_calib = int(options.get("max_calib", 128))
    shapes = dict(options.get("input_shapes") or {})
    if hasattr(model, "forward") and hasattr(model, "eval"):  # a torch.nn.Module
        from lowbit.importers.onnx_import import import_torch  # noqa: PLC0415

        if example_inputs is None and calib is not None and not isinstance(calib, (str, Path)):
            calib = list(calib)
            example_inputs = calib[0]
        if example_inputs is None:
            raise LowbitError("exporting a torch.nn.Module needs example_inputs (a tuple of tensors or a dict)")
        names = list(example_inputs) if isinstance(example_inputs, dict) else None
        graph = import_torch(model, example_inputs, input_names=names)
        feeds = load_calib(calib, graph.inputs, limit=max_calib)
    elif isinstance(model, (str, Path)):
        from lowbit.importers.onnx_import import import_onnx, load_model  # noqa: PLC0415

        if Path(model).suffix not in (".onnx", "") or Path(model).is_dir():
            raise LowbitError(f"{model}: lowbit exports .onnx files, torch.nn.Modules and Hugging Face model folders")
        proto = load_model(model)
        infos = _input_infos(proto)
        feeds = load_calib(calib, infos, limit=max_calib)
        if feeds and not shapes:
            shapes = input_shapes(feeds)
        graph = import_onnx(proto, shapes or None)
        graph.metadata["source"] = str(model)
        graph.name = Path(model).stem
    else:
        raise LowbitError(f"cannot export a {type(model).__name__}: give an .onnx path or a torch.nn.Module")
    if sch.is_float is False and sch.act_mode == "static" and not feeds:
        raise LowbitError(f"scheme {sch.name} calibrates activation ranges: give calibration data "
                          "(calib=... / --calib PATH), or use a dynamic scheme such as w8a8d")
    smooth = options.get("smooth")
    qopts = QuantOptions(smooth="auto" if smooth is None else smooth,
                         smooth_alpha=None if options.get("smooth_alpha") is None else float(options["smooth_alpha"]),
                         sparse_outliers=_pct(options.get("sparse_outliers", 0.0)),
                         keep_float=_keep_float_list(options.get("keep_float")),
                         budget_bits=None if options.get("budget_bits") is None else float(options["budget_bits"]),
                         calib_method=options.get("calib_method", "minmax"),
                         gptq_damp=float(options.get("gptq_damp", 0.01)),
                         act_order=bool(options.get("act_order", True)),
                         weight_bits7=_weight_bits7(options.get("weight_bits7", "auto")),
                         error_comp=options.get("error_comp", "auto"),
                         progress=bool(options.get("progress", sys.stderr.isatty())))
    qgraph = quantize_graph(graph, sch, feeds, qopts)
    if sch.act_mode is not None:  # int8 activations: large Gather tables become int8 rows in the package (gather_q8);
        from lowbit.exporters.lbpk_attn import round_embedding_tables  # noqa: PLC0415  round them here, so the

        round_embedding_tables(qgraph)  # report, the golden vectors and an ONNX export see the table the device runs
    report = None
    if feeds:
        from lowbit.accuracy import accuracy_report  # noqa: PLC0415

        report = accuracy_report(graph, qgraph, feeds, max_samples=int(options.get("report_samples", 8)))
    else:
        report = {"scheme": sch.name, "samples": 0, "layers": weight_only_rows(qgraph), "outputs": {},
                  "kept_float": qgraph.metadata.get("kept_float", [])}
    qgraph.metadata["accuracy"] = report
    return graph, qgraph, feeds, report


def weight_only_rows(qgraph) -> List[Dict[str, Any]]:
    """Per-layer weight SNR/cosine (when there is no calibration data to run)."""
    from lowbit.ir import QuantWeight  # noqa: PLC0415

    rows = []
    for l in qgraph.metadata.get("quantized_layers", []):
        w = qgraph.initializers.get(l["weight"])
        if not isinstance(w, QuantWeight) or w.float_ref is None:
            continue
        ref = np.asarray(w.float_ref, np.float64)
        ref = ref.T if w.layout == "kn" else ref.reshape(w.q.shape[0], -1)
        d = w.dequantize().astype(np.float64)
        noise = ((ref - d) ** 2).sum()
        snr = 10 * np.log10((ref ** 2).sum() / noise) if noise > 0 else 999.0
        cos = float((ref * d).sum() / max(np.sqrt((ref ** 2).sum() * (d ** 2).sum()), 1e-30))
        rows.append({**l, "snr_db": round(float(snr), 3), "cosine": round(cos, 6), "measured_on": "weights"})
    return rows


def _pct(v) -> float:
    if isinstance(v, str):
        v = v.strip().rstrip("%")
    try:
        f = float(v or 0.0)
    except ValueError as exc:
        raise LowbitError(f"--sparse-outliers takes a percentage such as 0.5 or 0.5%, not {v!r}") from exc
    if not 0 <= f < 50:
        raise LowbitError(f"--sparse-outliers {f}% is out of range (0 to 50 percent)")
    return f


DEFAULT_SCHEME = "w8a8"
DEFAULT_LLM_SCHEME = "w4a8-g32"


def export(model, out, *, example_inputs=None, target="auto", scheme=None, calib=None, format="lbpk",
           **options) -> Path:
    """Quantize ``model`` with ``scheme`` and write it to ``out`` as ``format`` (lbpk, onnx, tvm).

    ``scheme`` defaults to ``w8a8`` for ONNX files and torch modules, and to ``w4a8-g32`` (the
    decoder fast path) for a Hugging Face model folder."""
    return export_with_report(model, out, example_inputs=example_inputs, target=target, scheme=scheme,
                              calib=calib, format=format, **options)[0]


def export_with_report(model, out, *, example_inputs=None, target="auto", scheme=None, calib=None,
                       format="lbpk", **options):
    """Like :func:`export`, returning ``(path, accuracy report dict or None)``."""
    out = Path(out)
    if format not in FORMATS:
        raise LowbitError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    from lowbit.quant.schemes import parse_scheme  # noqa: PLC0415

    if scheme is None:
        scheme = DEFAULT_LLM_SCHEME if _is_hf_dir(model) else DEFAULT_SCHEME
    if _is_hf_dir(model):
        try:
            from lowbit.llm.export import export_hf  # noqa: PLC0415
        except ImportError as exc:
            raise LowbitError("exporting a Hugging Face model folder needs lowbit.llm (not in this build)") from exc
        return Path(export_hf(model, out, scheme=scheme, target=target, format=format, calib=calib,
                              **options)), None
    parse_scheme(scheme)  # an unknown scheme fails before anything else
    profile = _resolve_target(target)
    # "auto" (the default) follows the target profile, not this host
    options["weight_bits7"] = _weight_bits7(options.get("weight_bits7", "auto"), profile)
    writer = _writer(format)  # a missing writer fails before the (slow) quantization
    _, qgraph, feeds, report = prepare(model, example_inputs=example_inputs, scheme=scheme, calib=calib, **options)
    qgraph.metadata["target"] = getattr(profile, "name", None)
    if options.get("verbose", False):
        from lowbit.accuracy import format_table  # noqa: PLC0415

        print(format_table(report), file=sys.stderr)
    return writer(qgraph, out, profile, feeds, report, scheme), report


def _writer(format: str):
    if format == "onnx":
        def write(qgraph, out, profile, feeds, report, scheme):
            from lowbit.exporters.onnx_writer import write_onnx  # noqa: PLC0415

            return write_onnx(qgraph, out, metadata={"lowbit.scheme": qgraph.metadata.get("scheme", ""),
                                                     "lowbit.accuracy": json.dumps(report, default=_json)})
        return write
    if format == "lbpk":
        try:
            from lowbit.exporters.lbpk import write_package  # noqa: PLC0415
        except ImportError as exc:
            raise LowbitError("the .lbpk device package writer is not part of this build yet; "
                              "use format='onnx' (--format onnx) meanwhile") from exc

        def write(qgraph, out, profile, feeds, report, scheme):
            # write_package lowers first (refusing ops the runtime lacks, naming them) and then
            # writes atomically, so a refusal leaves no file behind.
            try:
                return Path(write_package(qgraph, out, target=getattr(profile, "name", None) or "host",
                                          scheme=scheme, golden=_golden(qgraph, feeds), report=report))
            except LowbitError:
                raise
            except (ValueError, NotImplementedError, KeyError) as exc:
                raise LowbitError(str(exc)) from exc
        return write
    try:
        from lowbit.exporters.tvm import write_tvm  # noqa: PLC0415
    except ImportError as exc:
        raise LowbitError("the TVM writer is not part of this build yet; use format='onnx' meanwhile") from exc

    def write(qgraph, out, profile, feeds, report, scheme):
        return Path(write_tvm(qgraph, out, profile))  # builds in OUT.partial and renames
    return write


def _golden(qgraph, feeds):
    """One input/output pair of the quantized graph (ONNX Runtime on the same tensors) for the
    package. The tolerance allows for int8 rounding flips between float summation orders."""
    if not feeds:
        return None
    from lowbit.exporters.onnx_writer import ort_session  # noqa: PLC0415

    sess = ort_session(qgraph, threads=1)
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(None, feeds[0])))
    quantized = qgraph.metadata.get("scheme", "fp32") != "fp32"
    scale = max((float(np.abs(v).max()) for v in outs.values() if np.size(v)), default=1.0)
    return {"inputs": dict(feeds[0]), "outputs": outs, "rtol": 1e-3 if quantized else 1e-4,
            "atol": (2e-2 if quantized else 1e-5) * max(scale, 1e-6)}


def _json(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
